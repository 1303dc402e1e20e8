//! The patients capability's configuration: the terms of use citizens accept.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The terms of use: the version citizens must have accepted, and how long after their first
/// acceptance they can use the service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TermsConfig {
    /// The version in force, as the portal shows it (1-64 characters). Changing it asks every
    /// citizen to accept again; someone already in goes on at once after accepting.
    pub version: String,
    /// Hours from a citizen's first acceptance until they can use the service.
    pub activation_delay_hours: u32,
}

impl TermsConfig {
    /// The terms of use in force, checked.
    pub fn policy(&self) -> Result<homecare_patients::terms::TermsPolicy, ConfigError> {
        let version = self.version.trim();
        if version.is_empty() || version.chars().count() > 64 {
            return Err(ConfigError::Invalid {
                key: "terms.version",
                reason: "must be 1-64 characters".into(),
            });
        }
        Ok(homecare_patients::terms::TermsPolicy {
            version: version.to_owned(),
            activation_delay: chrono::Duration::hours(i64::from(self.activation_delay_hours)),
        })
    }
}

impl Default for TermsConfig {
    fn default() -> Self {
        Self {
            version: "1".into(),
            // "From acceptance it takes one day before the service can be used."
            activation_delay_hours: 24,
        }
    }
}
