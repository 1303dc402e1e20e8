//! E-mail as notifications need it: one message, as plain text with an HTML alternative, to
//! one address, over SMTP (`lettre`). STARTTLS is required unless the server is on loopback
//! and the configuration says plain.

#[cfg(feature = "test-server")]
pub mod testing;

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret as _, SecretString};

/// Whether `text` is an e-mail address mail can be sent to.
pub fn is_address(text: &str) -> bool {
    text.parse::<lettre::Address>().is_ok()
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The recipient's address.
    pub to: String,
    /// The subject (any Unicode; encoded as the standard requires).
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML alternative of the same text.
    pub html: String,
    /// The left part of the `Message-ID` (e.g. the notice's id), unique per message; the
    /// domain of the sender's address is the right part.
    pub message_id: String,
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// STARTTLS, required (production).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a server on loopback (tests, a local relay).
    PlainOnLoopback,
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// The server's host name.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub security: Security,
    /// A user name and password, when the server wants them.
    pub credentials: Option<(String, SecretString)>,
    /// Who messages come from, e.g. `Hjemmetjenesten <varsel@kommune.no>`.
    pub from: String,
    /// How long one message may take.
    pub timeout: Duration,
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// It may work later: a connection failure, a timeout, a 4xx reply.
    #[error("temporary e-mail failure: {reason}")]
    Temporary {
        /// What happened, for staff; never the address or the text.
        reason: String,
    },
    /// The server refused it for good (a 5xx reply), or the address cannot be used.
    #[error("the e-mail was refused: {reason}")]
    Refused {
        /// Why, for staff.
        reason: String,
    },
}

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `from` is not a mailbox.
    #[error("email.from is not an e-mail address with an optional name")]
    From,
    /// Plain SMTP was asked for a server that is not on loopback.
    #[error("plain SMTP is only allowed to a server on loopback; use STARTTLS")]
    PlainNotOnLoopback,
    /// The TLS settings could not be made.
    #[error("could not set up TLS: {0}")]
    Tls(String),
}

/// An e-mail sender.
#[async_trait::async_trait]
pub trait Email: Send + Sync + 'static {
    /// Sends `message` once.
    async fn send(&self, message: &OutgoingEmail) -> Result<(), EmailError>;
}

/// [`Email`] over SMTP.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("from", &self.from.email.to_string())
            .finish_non_exhaustive()
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

impl Smtp {
    /// A sender for `config`.
    pub fn new(config: &SmtpConfig) -> Result<Self, ConfigError> {
        let from: Mailbox = config.from.parse().map_err(|_| ConfigError::From)?;
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|error| ConfigError::Tls(error.to_string()))
        };
        let tls = match config.security {
            Security::StartTls => Tls::Required(tls(&config.host)?),
            Security::Tls => Tls::Wrapper(tls(&config.host)?),
            Security::PlainOnLoopback if is_loopback(&config.host) => Tls::None,
            Security::PlainOnLoopback => return Err(ConfigError::PlainNotOnLoopback),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(config.timeout));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    fn message(&self, email: &OutgoingEmail) -> Result<Message, EmailError> {
        let to: Mailbox = email.to.parse().map_err(|_| EmailError::Refused {
            reason: "the recipient's address cannot be used".to_owned(),
        })?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(format!(
                "<{}@{}>",
                email.message_id,
                self.from.email.domain()
            )))
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|error| EmailError::Refused {
                reason: format!("the message could not be built: {error}"),
            })
    }
}

#[async_trait::async_trait]
impl Email for Smtp {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), EmailError> {
        let message = self.message(email)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => Err(EmailError::Refused {
                reason: smtp_reason(&error),
            }),
            Err(error) => Err(EmailError::Temporary {
                reason: smtp_reason(&error),
            }),
        }
    }
}

/// The SMTP reply code, without the server's text (which may echo the address).
fn smtp_reason(error: &lettre::transport::smtp::Error) -> String {
    match error.status() {
        Some(code) => format!("SMTP {code}"),
        None if error.is_timeout() => "the SMTP server did not answer in time".to_owned(),
        None => "could not talk to the SMTP server".to_owned(),
    }
}
