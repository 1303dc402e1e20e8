//! SMS as notifications need it: send one text to one phone number, know how many segments
//! it costs, and check that a delivery report really comes from the provider.
//!
//! [`Sms`] is what the notification worker calls; [`Twilio`] implements it over Twilio's
//! Messages API (`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`). Every failure is
//! classified as worth retrying or not, as for the EPJ.

mod segments;
mod signature;
mod twilio;

use std::time::Duration;

pub use segments::{Encoding, Segments, segments};
pub use signature::{signature, verify_signature};
pub use twilio::{Credentials, Sender, Twilio, TwilioConfig};

/// One text to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingSms {
    /// The recipient, E.164 (`+4791234567`).
    pub to: String,
    /// The text.
    pub body: String,
}

/// The provider took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id of the message (`SM…`), which its delivery reports name.
    pub provider_id: String,
    /// The provider's status at once (usually `queued` or `accepted`).
    pub status: String,
}

/// Why the provider did not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    /// It may work later: a timeout, a network error, 5xx or 429.
    #[error("temporary SMS provider failure: {reason}")]
    Temporary {
        /// What happened, for staff; never contains the number or the text.
        reason: String,
        /// How long the provider asked us to wait (Retry-After), if it did.
        retry_after: Option<Duration>,
    },
    /// The provider refused it and will refuse it again (any other 4xx).
    #[error("the SMS provider refused: {reason}")]
    Refused {
        /// The provider's message, for staff.
        reason: String,
        /// The provider's error code (Twilio's `code`), kept on the notice.
        code: Option<String>,
    },
}

/// An SMS provider.
#[async_trait::async_trait]
pub trait Sms: Send + Sync + 'static {
    /// Sends `message` once.
    async fn send(&self, message: &OutgoingSms) -> Result<Accepted, SmsError>;
}
