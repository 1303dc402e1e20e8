//! [`Sms`] over Twilio's Messages API.

use std::time::{Duration, SystemTime};

use reqwest::header::RETRY_AFTER;
use reqwest::{Client, Response, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::{Accepted, OutgoingSms, Sms, SmsError};

/// How the client proves itself: HTTP Basic with the account SID and auth token, or with an
/// API key SID and its secret.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// The account's own auth token.
    AuthToken(SecretString),
    /// An API key (`SK…`) and its secret.
    ApiKey {
        /// The key's SID.
        sid: String,
        /// Its secret.
        secret: SecretString,
    },
}

/// Who a message comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// A number or an alphanumeric sender name (`From`), e.g. the municipality's name.
    From(String),
    /// A messaging service (`MessagingServiceSid`, `MG…`), which picks the sender.
    MessagingService(String),
}

/// Where and how to reach the provider.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// `https://api.twilio.com` in production.
    pub base_url: String,
    /// The account (`AC` and 32 hex digits).
    pub account_sid: String,
    /// How to authenticate.
    pub credentials: Credentials,
    /// Who messages come from.
    pub sender: Sender,
    /// Where the provider reports delivery (`StatusCallback`), if anywhere.
    pub status_callback: Option<String>,
    /// How long one request may take.
    pub timeout: Duration,
}

/// Twilio's Messages API.
#[derive(Debug, Clone)]
pub struct Twilio {
    client: Client,
    config: TwilioConfig,
    messages_url: String,
}

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The account SID is not `AC` and 32 hex digits.
    #[error("the account SID must be AC followed by 32 hex digits")]
    AccountSid,
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Twilio {
    /// A client for `config`.
    pub fn new(config: TwilioConfig) -> Result<Self, ConfigError> {
        if !is_sid(&config.account_sid, "AC") {
            return Err(ConfigError::AccountSid);
        }
        let client = Client::builder().timeout(config.timeout).build()?;
        let messages_url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            config.base_url.trim_end_matches('/'),
            config.account_sid
        );
        Ok(Self {
            client,
            config,
            messages_url,
        })
    }

    fn basic_auth(&self) -> (&str, &str) {
        match &self.config.credentials {
            Credentials::AuthToken(token) => (&self.config.account_sid, token.expose_secret()),
            Credentials::ApiKey { sid, secret } => (sid, secret.expose_secret()),
        }
    }
}

/// `prefix` followed by 32 hex digits, as Twilio's SIDs are.
fn is_sid(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 32 && rest.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The message resource, as far as it is read.
#[derive(Deserialize)]
struct MessageResource {
    sid: String,
    #[serde(default)]
    status: Option<String>,
}

/// Twilio's error body.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<serde_json_number::Number>,
    #[serde(default)]
    message: Option<String>,
}

mod serde_json_number {
    //! Twilio sends its error code as a number; keep it as text.
    use serde::{Deserialize, Deserializer};

    pub(super) struct Number(pub(super) String);

    impl<'de> Deserialize<'de> for Number {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Either {
                Int(i64),
                Text(String),
            }
            Ok(Number(match Either::deserialize(deserializer)? {
                Either::Int(code) => code.to_string(),
                Either::Text(code) => code,
            }))
        }
    }
}

#[async_trait::async_trait]
impl Sms for Twilio {
    async fn send(&self, message: &OutgoingSms) -> Result<Accepted, SmsError> {
        let mut form: Vec<(&str, &str)> = vec![("To", &message.to), ("Body", &message.body)];
        match &self.config.sender {
            Sender::From(from) => form.push(("From", from)),
            Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid)),
        }
        if let Some(callback) = &self.config.status_callback {
            form.push(("StatusCallback", callback));
        }
        let (user, password) = self.basic_auth();
        let response = self
            .client
            .post(&self.messages_url)
            .basic_auth(user, Some(password))
            .form(&form)
            .send()
            .await
            .map_err(transport_error)?;
        let response = successful(response).await?;
        let resource: MessageResource = response.json().await.map_err(|_| SmsError::Temporary {
            reason: "the SMS provider's answer could not be read".to_owned(),
            retry_after: None,
        })?;
        Ok(Accepted {
            provider_id: resource.sid,
            status: resource.status.unwrap_or_else(|| "queued".to_owned()),
        })
    }
}

/// The response if its status is a success, else the classified error.
async fn successful(response: Response) -> Result<Response, SmsError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after);
    let body = response.json::<ErrorBody>().await.ok();
    let code = body
        .as_ref()
        .and_then(|body| body.code.as_ref())
        .map(|code| code.0.clone());
    let message = body.and_then(|body| body.message);
    let mut reason = format!("HTTP {}", status.as_u16());
    if let Some(code) = &code {
        reason.push_str(&format!(" (code {code})"));
    }
    if let Some(message) = message {
        reason.push_str(": ");
        reason.extend(message.chars().take(300));
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Err(SmsError::Temporary {
            reason,
            retry_after,
        })
    } else {
        Err(SmsError::Refused { reason, code })
    }
}

fn transport_error(error: reqwest::Error) -> SmsError {
    let reason = if error.is_timeout() {
        "the SMS provider did not answer in time"
    } else if error.is_connect() {
        "could not connect to the SMS provider"
    } else {
        "the connection to the SMS provider failed"
    };
    SmsError::Temporary {
        reason: reason.to_owned(),
        retry_after: None,
    }
}

/// Retry-After as seconds or as an HTTP date.
fn parse_retry_after(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_their_prefix_and_32_hex_digits() {
        assert!(is_sid(&format!("AC{}", "a".repeat(32)), "AC"));
        assert!(!is_sid(&format!("AC{}", "a".repeat(31)), "AC"));
        assert!(!is_sid(&format!("MG{}", "a".repeat(32)), "AC"));
        assert!(!is_sid(&format!("AC{}", "g".repeat(32)), "AC"));
    }
}
