//! The messaging capability's configuration: where general inquiries go, and where
//! attachment bytes are kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use homecare_runtime::InvalidConfig;

/// Secure messaging.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessagingConfig {
    /// The care unit that receives threads no other unit fits ("general inquiries"); staff
    /// of this unit answer them.
    pub general_inquiries_unit: String,
    /// Where attachment bytes are kept: empty for the directory `attachments` in `data_dir`,
    /// or a URL `object_store` opens, e.g. `s3://bucket/attachments`.
    pub blob_store_url: String,
    /// Options of that store (`aws_region`, `aws_endpoint`, ...). Credentials are best left
    /// to the environment (`AWS_ACCESS_KEY_ID`, ...), which is read as well.
    pub blob_store_options: BTreeMap<String, String>,
    /// The size of each part written to the store: what one upload holds in memory. S3
    /// needs at least 5 MiB.
    pub blob_part_bytes: usize,
    /// How often a staff inbox stream looks for steps no wake-up told it of (a replica's
    /// whose signal was lost), in milliseconds; every step of this process wakes it at once.
    pub stream_poll_ms: u64,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        Self {
            general_inquiries_unit: "general-inquiries".into(),
            blob_store_url: String::new(),
            blob_store_options: BTreeMap::new(),
            blob_part_bytes: 256 * 1024,
            stream_poll_ms: 500,
        }
    }
}

impl MessagingConfig {
    /// Checks what the types alone do not.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        homecare_core::identifier::parse_identifier(&self.general_inquiries_unit, 64).map_err(
            |error| InvalidConfig {
                key: "messaging.general_inquiries_unit",
                reason: error.to_string(),
            },
        )?;
        if self.stream_poll_ms == 0 {
            return Err(InvalidConfig {
                key: "messaging.stream_poll_ms",
                reason: "must be at least 1".into(),
            });
        }
        if self.blob_part_bytes < 64 * 1024 {
            return Err(InvalidConfig {
                key: "messaging.blob_part_bytes",
                reason: "must be at least 65536".into(),
            });
        }
        Ok(())
    }
}
