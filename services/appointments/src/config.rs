//! The appointments capability's configuration: when patients may cancel, and the EPJ
//! cancellations are written to.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cancellation::{CancellationPolicy, CutOff};
use crate::domain::ServiceType;
use chrono_tz::Tz;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use homecare_runtime::InvalidConfig;

/// How long before a visit a patient must cancel it. Each cut-off is `{ hours = N }` or
/// `{ working_days = N }` (Norwegian working days in `time_zone`). A care unit's rule wins
/// over a service type's, which wins over the default.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancellationConfig {
    /// For every visit without a more specific rule.
    pub default: CutOff,
    /// By service type: `home_nursing`, `practical_help`, `medication`, `personal_care`.
    pub service_types: BTreeMap<String, CutOff>,
    /// By care unit id.
    pub care_units: BTreeMap<String, CutOff>,
}

/// The EPJ (FHIR R4 REST) and the pace of delivering cancellations to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpjConfig {
    /// The FHIR base URL. Empty: no EPJ is configured, and cancellations wait in the outbox
    /// (nothing is lost) until a server with one starts.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; never printed, never serialised.
    #[serde(default, skip_serializing)]
    pub bearer_token: Option<SecretString>,
    /// The longest one HTTP request may take.
    pub timeout_seconds: u64,
    /// Attempts before a cancellation is failed for good and shown to staff.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; doubled after each further one.
    pub retry_base_millis: u64,
    /// The longest wait between attempts.
    pub retry_cap_seconds: u64,
    /// Cancellations one delivery loop sends at once.
    pub batch_size: u64,
    /// Delivery loops working at once when cancellations queue up.
    pub parallelism: usize,
    /// The longest the worker sleeps when nothing is due; picks up rows another server
    /// process queued or abandoned.
    pub idle_poll_seconds: u64,
    /// Requests per second this process sends to the EPJ at most; unset: no limit.
    #[serde(default)]
    pub rate_per_second: Option<std::num::NonZeroU32>,
}

impl EpjConfig {
    /// The worker's pacing.
    pub fn delivery_settings(&self) -> homecare_outbox::Settings {
        let timeout = Duration::from_secs(self.timeout_seconds);
        homecare_outbox::Settings {
            max_attempts: self.max_attempts,
            retry_base: Duration::from_millis(self.retry_base_millis),
            retry_cap: Duration::from_secs(self.retry_cap_seconds),
            // A read and a write, plus room for recording the outcome.
            lease: timeout * 2 + Duration::from_secs(30),
            batch_size: self.batch_size,
            parallelism: self.parallelism,
            idle_poll: Duration::from_secs(self.idle_poll_seconds),
            rate_per_second: self.rate_per_second,
        }
    }
}

impl CancellationConfig {
    /// The cancellation rules, with service type names checked.
    pub fn policy(&self, time_zone: Tz) -> Result<CancellationPolicy, InvalidConfig> {
        let check = |key: &'static str, cut_off: &CutOff| match cut_off {
            CutOff::WorkingDays(0) => Err(InvalidConfig {
                key,
                reason: "working_days must be at least 1 (use hours for the same day)".into(),
            }),
            _ => Ok(*cut_off),
        };
        let mut policy =
            CancellationPolicy::uniform(check("cancellation.default", &self.default)?, time_zone);
        for (name, cut_off) in &self.service_types {
            let service_type = ServiceType::from_stored(name).map_err(|_| InvalidConfig {
                key: "cancellation.service_types",
                reason: format!(
                    "{name} is not one of home_nursing, practical_help, medication, \
                         personal_care"
                ),
            })?;
            policy
                .service_types
                .insert(service_type, check("cancellation.service_types", cut_off)?);
        }
        for (unit, cut_off) in &self.care_units {
            policy
                .care_units
                .insert(unit.clone(), check("cancellation.care_units", cut_off)?);
        }
        Ok(policy)
    }
}

impl EpjConfig {
    /// Checks what the types alone do not.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if self.timeout_seconds == 0 || self.max_attempts == 0 || self.batch_size == 0 {
            return Err(InvalidConfig {
                key: "epj",
                reason: "timeout_seconds, max_attempts and batch_size must be at least 1".into(),
            });
        }
        if self.idle_poll_seconds == 0 {
            return Err(InvalidConfig {
                key: "epj.idle_poll_seconds",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

impl Default for CancellationConfig {
    fn default() -> Self {
        Self {
            default: CutOff::Hours(24),
            service_types: BTreeMap::new(),
            care_units: BTreeMap::new(),
        }
    }
}

impl Default for EpjConfig {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            bearer_token: None,
            timeout_seconds: 10,
            // With the defaults below, about a day of trying: an EPJ may be down for a
            // weekend night's maintenance.
            max_attempts: 150,
            retry_base_millis: 2000,
            retry_cap_seconds: 600,
            batch_size: 64,
            parallelism: 4,
            idle_poll_seconds: 30,
            rate_per_second: None,
        }
    }
}
