//! Why resolving who acts for whom refused, in the domain's words. Handlers turn it into a
//! gRPC status with the one [`From`] below, so the reasons on the wire are written once.

use chrono::{DateTime, SecondsFormat, Utc};
use homecare_core::caller::CallerError;
use homecare_core::status;
use sea_orm::DbErr;
use tonic::Status;

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
