//! The notifications capability's configuration: what notices say about the service, when
//! they may go, and the SMS and e-mail providers.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use crate::quiet::QuietHours;
use chrono::NaiveTime;
use chrono_tz::Tz;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use homecare_runtime::InvalidConfig;

/// Notices by SMS and e-mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotificationsConfig {
    /// Who notices are from, first in every text, e.g. `Hjemmetjenesten i Ås`.
    pub service_name: String,
    /// Where citizens log in to see what a notice is about.
    pub portal_url: String,
    /// After a message to someone, further notices to them wait this long and go as one.
    pub merge_window_seconds: u64,
    /// A visit added at most this far ahead is told of.
    pub added_horizon_hours: u64,
    /// A folder of templates (`<language>/<kind>.hbs`) that replace the shipped ones; each is
    /// checked at start.
    pub templates_dir: Option<PathBuf>,
    /// How often the histories are read when no one says they changed.
    pub poll_millis: u64,
    /// No SMS in these hours (local time in `time_zone`); none when unset.
    pub sms_quiet_hours: Option<QuietHoursConfig>,
    /// No e-mail in these hours; none when unset.
    pub email_quiet_hours: Option<QuietHoursConfig>,
    /// The SMS provider.
    pub sms: SmsConfig,
    /// The SMTP server.
    pub email: EmailConfig,
}

/// A daily span of local time, `HH:MM` to `HH:MM`, crossing midnight when `start` is later.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuietHoursConfig {
    /// When it begins, e.g. `21:00`.
    pub start: String,
    /// When it ends, e.g. `08:00`.
    pub end: String,
}

/// How a channel's worker paces itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pacing {
    /// Attempts before a message is failed for good and shown to staff.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; doubled after each further one.
    pub retry_base_millis: u64,
    /// The longest wait between attempts.
    pub retry_cap_seconds: u64,
    /// Messages one loop sends at once.
    pub batch_size: u64,
    /// Loops working at once.
    pub parallelism: usize,
    /// The longest the worker sleeps when nothing is due.
    pub idle_poll_millis: u64,
    /// Messages per second this process sends at most (the provider's limit); unset: none.
    #[serde(default)]
    pub rate_per_second: Option<NonZeroU32>,
}

impl Pacing {
    fn settings(&self, timeout: Duration) -> homecare_outbox::Settings {
        homecare_outbox::Settings {
            max_attempts: self.max_attempts,
            retry_base: Duration::from_millis(self.retry_base_millis),
            retry_cap: Duration::from_secs(self.retry_cap_seconds),
            lease: timeout * 2 + Duration::from_secs(30),
            batch_size: self.batch_size,
            parallelism: self.parallelism,
            idle_poll: Duration::from_millis(self.idle_poll_millis.max(1)),
            rate_per_second: self.rate_per_second,
        }
    }
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            // About a day of trying, as for the EPJ.
            max_attempts: 150,
            retry_base_millis: 2000,
            retry_cap_seconds: 600,
            batch_size: 64,
            parallelism: 4,
            idle_poll_millis: 30_000,
            rate_per_second: None,
        }
    }
}

/// A Twilio-style SMS provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SmsConfig {
    /// `https://api.twilio.com`. Empty: no SMS provider; messages wait (nothing is lost).
    pub base_url: String,
    /// The account SID (`AC…`).
    pub account_sid: String,
    /// The account's auth token: signs requests unless an API key is set, and always checks
    /// the provider's status reports. Never printed.
    #[serde(default, skip_serializing)]
    pub auth_token: Option<SecretString>,
    /// An API key SID (`SK…`) to authenticate with instead of the auth token.
    pub api_key_sid: Option<String>,
    /// Its secret. Never printed.
    #[serde(default, skip_serializing)]
    pub api_key_secret: Option<SecretString>,
    /// The alphanumeric sender name (at most 11 letters, digits or spaces), e.g. `AasKommune`.
    pub from: String,
    /// A messaging service (`MG…`) to send through instead of `from`.
    pub messaging_service_sid: Option<String>,
    /// The URL of this service's `/callbacks/sms/status` as the provider reaches it (through
    /// any proxy): given to the provider and used to check its signatures. Unset: no reports.
    pub status_callback_url: Option<String>,
    /// The longest one request may take.
    pub timeout_seconds: u64,
    /// The worker's pace.
    #[serde(flatten)]
    pub pacing: Pacing,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            account_sid: String::new(),
            auth_token: None,
            api_key_sid: None,
            api_key_secret: None,
            from: "Kommunen".to_owned(),
            messaging_service_sid: None,
            status_callback_url: None,
            timeout_seconds: 10,
            pacing: Pacing::default(),
        }
    }
}

/// The SMTP server e-mail goes through.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmailConfig {
    /// Its host. Empty: no e-mail; messages wait (nothing is lost).
    pub host: String,
    /// Its port (587 for STARTTLS).
    pub port: u16,
    /// `starttls` (required in production), `tls`, or `plain` (only to a server on
    /// loopback).
    pub security: String,
    /// A user name, when the server wants one.
    pub username: Option<String>,
    /// Its password. Never printed.
    #[serde(default, skip_serializing)]
    pub password: Option<SecretString>,
    /// The sender, e.g. `Hjemmetjenesten <varsel@kommune.no>`.
    pub from: String,
    /// The longest one message may take.
    pub timeout_seconds: u64,
    /// The worker's pace.
    #[serde(flatten)]
    pub pacing: Pacing,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            security: "starttls".to_owned(),
            username: None,
            password: None,
            from: "Hjemmetjenesten <varsel@kommune.invalid>".to_owned(),
            timeout_seconds: 30,
            pacing: Pacing::default(),
        }
    }
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            service_name: "Hjemmetjenesten".to_owned(),
            portal_url: "https://helsenorge.no".to_owned(),
            merge_window_seconds: 120,
            added_horizon_hours: 48,
            templates_dir: None,
            poll_millis: 1000,
            sms_quiet_hours: Some(QuietHoursConfig {
                start: "21:00".to_owned(),
                end: "08:00".to_owned(),
            }),
            email_quiet_hours: None,
            sms: SmsConfig::default(),
            email: EmailConfig::default(),
        }
    }
}

fn invalid(key: &'static str, reason: &str) -> InvalidConfig {
    InvalidConfig {
        key,
        reason: reason.to_owned(),
    }
}

impl QuietHoursConfig {
    fn hours(&self, key: &'static str, zone: Tz) -> Result<Option<QuietHours>, InvalidConfig> {
        let parse = |text: &str| {
            NaiveTime::parse_from_str(text, "%H:%M")
                .map_err(|_| invalid(key, "start and end must be HH:MM"))
        };
        Ok(QuietHours::new(
            parse(&self.start)?,
            parse(&self.end)?,
            zone,
        ))
    }
}

/// Whether `name` can be an alphanumeric SMS sender: 1 to 11 ASCII letters, digits or
/// spaces, with at least one letter.
fn is_sender_name(name: &str) -> bool {
    (1..=11).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
        && name.chars().any(|c| c.is_ascii_alphabetic())
}

impl NotificationsConfig {
    /// Checks what the types alone do not.
    pub fn validate(&self, zone: Tz) -> Result<(), InvalidConfig> {
        self.timing(zone)?;
        if !self.portal_url.starts_with("https://") && !self.portal_url.starts_with("http://") {
            return Err(invalid(
                "notifications.portal_url",
                "must be an http(s) URL",
            ));
        }
        if self.service_name.trim().is_empty() || self.service_name.chars().count() > 40 {
            return Err(invalid(
                "notifications.service_name",
                "must be 1 to 40 characters",
            ));
        }
        if self.poll_millis == 0 {
            return Err(invalid("notifications.poll_millis", "must be at least 1"));
        }
        let sms = &self.sms;
        if sms.messaging_service_sid.is_none()
            && !sms.from.starts_with('+')
            && !is_sender_name(&sms.from)
        {
            return Err(invalid(
                "notifications.sms.from",
                "must be a number (+…) or 1 to 11 letters, digits or spaces",
            ));
        }
        for (key, pacing) in [
            ("notifications.sms", &sms.pacing),
            ("notifications.email", &self.email.pacing),
        ] {
            if pacing.max_attempts == 0 || pacing.batch_size == 0 || pacing.idle_poll_millis == 0 {
                return Err(invalid(
                    key,
                    "max_attempts, batch_size and idle_poll_millis must be at least 1",
                ));
            }
        }
        self.email_security()?;
        Ok(())
    }

    /// When messages may go.
    pub fn timing(&self, zone: Tz) -> Result<crate::queue::Timing, InvalidConfig> {
        Ok(crate::queue::Timing {
            merge_window: Duration::from_secs(self.merge_window_seconds),
            sms_quiet: match &self.sms_quiet_hours {
                Some(hours) => hours.hours("notifications.sms_quiet_hours", zone)?,
                None => None,
            },
            email_quiet: match &self.email_quiet_hours {
                Some(hours) => hours.hours("notifications.email_quiet_hours", zone)?,
                None => None,
            },
        })
    }

    /// The SMS client, if a provider is configured.
    pub fn twilio(&self) -> Result<Option<homecare_sms::Twilio>, InvalidConfig> {
        let sms = &self.sms;
        if sms.base_url.is_empty() {
            return Ok(None);
        }
        let credentials = match (&sms.api_key_sid, &sms.api_key_secret, &sms.auth_token) {
            (Some(sid), Some(secret), _) => homecare_sms::Credentials::ApiKey {
                sid: sid.clone(),
                secret: secret.clone(),
            },
            (None, None, Some(token)) => homecare_sms::Credentials::AuthToken(token.clone()),
            _ => {
                return Err(invalid(
                    "notifications.sms",
                    "needs auth_token, or api_key_sid with api_key_secret",
                ));
            }
        };
        let sender = match &sms.messaging_service_sid {
            Some(sid) => homecare_sms::Sender::MessagingService(sid.clone()),
            None => homecare_sms::Sender::From(sms.from.clone()),
        };
        homecare_sms::Twilio::new(homecare_sms::TwilioConfig {
            base_url: sms.base_url.clone(),
            account_sid: sms.account_sid.clone(),
            credentials,
            sender,
            status_callback: sms.status_callback_url.clone(),
            timeout: Duration::from_secs(sms.timeout_seconds),
        })
        .map(Some)
        .map_err(|error| invalid("notifications.sms.account_sid", &error.to_string()))
    }

    fn email_security(&self) -> Result<homecare_email::Security, InvalidConfig> {
        match self.email.security.as_str() {
            "starttls" => Ok(homecare_email::Security::StartTls),
            "tls" => Ok(homecare_email::Security::Tls),
            "plain" => Ok(homecare_email::Security::PlainOnLoopback),
            _ => Err(invalid(
                "notifications.email.security",
                "must be starttls, tls or plain",
            )),
        }
    }

    /// The SMTP sender, if a server is configured.
    pub fn smtp(&self) -> Result<Option<homecare_email::Smtp>, InvalidConfig> {
        let email = &self.email;
        if email.host.is_empty() {
            return Ok(None);
        }
        homecare_email::Smtp::new(&homecare_email::SmtpConfig {
            host: email.host.clone(),
            port: email.port,
            security: self.email_security()?,
            credentials: email.username.clone().zip(email.password.clone()),
            from: email.from.clone(),
            timeout: Duration::from_secs(email.timeout_seconds),
        })
        .map(Some)
        .map_err(|error| invalid("notifications.email", &error.to_string()))
    }

    /// The SMS worker's pace.
    pub fn sms_settings(&self) -> homecare_outbox::Settings {
        self.sms
            .pacing
            .settings(Duration::from_secs(self.sms.timeout_seconds))
    }

    /// The e-mail worker's pace.
    pub fn email_settings(&self) -> homecare_outbox::Settings {
        self.email
            .pacing
            .settings(Duration::from_secs(self.email.timeout_seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_names_are_short_and_alphanumeric() {
        for good in ["AasKommune", "Oslo", "Bydel 2"] {
            assert!(is_sender_name(good), "{good}");
        }
        for bad in ["", "Kommunen i Aas", "Ås", "12345", "a\u{202e}b"] {
            assert!(!is_sender_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_defaults_are_valid_and_bad_quiet_hours_are_named() {
        let zone = chrono_tz::Europe::Oslo;
        NotificationsConfig::default().validate(zone).unwrap();
        let config = NotificationsConfig {
            sms_quiet_hours: Some(QuietHoursConfig {
                start: "9pm".to_owned(),
                end: "08:00".to_owned(),
            }),
            ..NotificationsConfig::default()
        };
        let error = config.validate(zone).unwrap_err().to_string();
        assert!(error.contains("notifications.sms_quiet_hours"), "{error}");
    }
}
