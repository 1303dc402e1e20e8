//! Why resolving who acts for whom refused, in the domain's words. Handlers turn it into a
//! gRPC status with the one [`From`] below, so the reasons on the wire are written once.

use chrono::{DateTime, SecondsFormat, Utc};
use homecare_core::caller::CallerError;
use homecare_core::status;
use sea_orm::DbErr;
use tonic::Status;

use crate::proxy::ProxyError;
use crate::proxy_rules::ProxyRuleError;
use crate::scope::ProxyRefusal;

/// Why a caller may not act for a patient, or could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The caller's kind or role does not allow the call.
    #[error(transparent)]
    Caller(#[from] CallerError),
    /// The patient id is missing or not an id.
    #[error("patient_id {0}")]
    InvalidPatientId(homecare_core::identifier::IdError),
    /// No such patient, or one the caller has nothing to do with: the two look the same.
    #[error("patient not found")]
    PatientNotFound,
    /// No such proxy of this patient that the caller holds.
    #[error("proxy not found")]
    ProxyNotFound,
    /// A proxy holder asked for what only the patient may do.
    #[error("only the patient themself can do this, not a proxy")]
    PatientOnly,
    /// The proxy held does not allow the call now.
    #[error(transparent)]
    Proxy(ProxyRefusal),
    /// The citizen has not accepted the terms in force.
    #[error("accept the terms of use (version {version}) first")]
    TermsNotAccepted {
        /// The version to accept.
        version: String,
    },
    /// The citizen accepted, but the waiting time is not over.
    #[error("the service can be used from {}", .available_from.to_rfc3339_opts(SecondsFormat::Secs, true))]
    TermsNotYetAvailable {
        /// When the citizen can use the service.
        available_from: DateTime<Utc>,
    },
    /// Stored data the service cannot read (a fault of ours).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<AccessError> for Status {
    fn from(error: AccessError) -> Status {
        match error {
            AccessError::Caller(error) => error.into(),
            AccessError::InvalidPatientId(error) => {
                status::invalid_argument("patient_id", &error.to_string())
            }
            AccessError::PatientNotFound => status::not_found("patient"),
            AccessError::ProxyNotFound => status::not_found("proxy"),
            AccessError::PatientOnly => {
                status::permission_denied("PATIENT_ONLY", &AccessError::PatientOnly.to_string())
            }
            AccessError::Proxy(refusal) => {
                status::permission_denied(refusal.reason(), &refusal.to_string())
            }
            AccessError::TermsNotAccepted { ref version } => status::failed_precondition_with(
                "TERMS_NOT_ACCEPTED",
                "terms_version",
                &error.to_string(),
                &[("terms_version", version.clone())],
            ),
            AccessError::TermsNotYetAvailable { available_from } => {
                status::failed_precondition_with(
                    "TERMS_NOT_YET_AVAILABLE",
                    "terms_version",
                    &error.to_string(),
                    &[(
                        "available_time",
                        available_from.to_rfc3339_opts(SecondsFormat::Micros, true),
                    )],
                )
            }
            AccessError::Corrupt(_) => status::internal(&error),
            AccessError::Db(error) => status::from_db(error),
        }
    }
}

impl From<ProxyRuleError> for Status {
    fn from(error: ProxyRuleError) -> Status {
        let message = error.to_string();
        match error {
            ProxyRuleError::OwnProxy => status::invalid_argument("holder_national_id", &message),
            ProxyRuleError::GrantorTooYoung => {
                status::failed_precondition("GRANTOR_TOO_YOUNG", "patient_id", &message)
            }
            ProxyRuleError::Guardianship => status::permission_denied("GUARDIANSHIP", &message),
        }
    }
}

impl From<ProxyError> for Status {
    fn from(error: ProxyError) -> Status {
        match error {
            ProxyError::ProtectedAddress => status::failed_precondition(
                "PROTECTED_ADDRESS",
                "patient_id",
                "the patient has a protected address and cannot be given new proxies",
            ),
            ProxyError::Overlaps { existing } => status::failed_precondition_with(
                "PROXY_EXISTS",
                "holder_national_id",
                "the holder already has a proxy from this patient for that time; change or end it",
                &[("proxy_id", existing.to_string())],
            ),
            ProxyError::NotFound => status::not_found("proxy"),
            ProxyError::Ended => status::failed_precondition(
                "PROXY_ENDED",
                "proxy_id",
                "the proxy was ended; grant a new one",
            ),
            ProxyError::RequestIdReused => status::request_id_reused(),
            ProxyError::Db(error) => status::from_db(error),
        }
    }
}
