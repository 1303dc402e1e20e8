//! The EPJ (the municipality's electronic patient record system) as this service needs it:
//! one operation, registering a patient's cancellation of a visit.
//!
//! [`Epj`] is what the delivery worker calls; [`FhirEpj`] implements it over FHIR R4 REST.
//! Every failure is classified as worth retrying or not, because the worker keeps trying a
//! cancellation for hours but must stop at once when the EPJ says no.

mod fhir;

use std::time::Duration;

pub use fhir::{FhirEpj, FhirEpjConfig, REQUESTED_BY_EXTENSION};

/// A cancellation to register in the EPJ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancellation {
    /// The visit's id in the EPJ.
    pub epj_id: String,
    /// The reason the patient gave, if any.
    pub reason: Option<String>,
    /// The same for every attempt at this cancellation, so the EPJ can recognise a repeat.
    pub idempotency_key: String,
    /// Who cancelled: the patient, or someone acting for them.
    pub requested_by: RequestedBy,
}

/// Who cancelled a visit through this service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestedBy {
    /// The patient themself.
    Patient,
    /// A person acting for the patient under a proxy or a guardianship.
    Proxy {
        /// Their name as the proxy gives it.
        name: String,
    },
}

/// What the EPJ did with a cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The visit's version in the EPJ afterwards, when it told.
    pub version_id: Option<String>,
    /// True when the EPJ already had the visit as cancelled (an earlier attempt reached it,
    /// or staff cancelled it there), so nothing was written.
    pub already_cancelled: bool,
}

/// Why the EPJ did not register a cancellation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpjError {
    /// It may work later: a timeout, a network error, 5xx, 408, 409, 412 or 429.
    #[error("temporary EPJ failure: {reason}")]
    Temporary {
        /// What happened, for staff and logs; never contains the request.
        reason: String,
        /// How long the EPJ asked us to wait (Retry-After), if it did.
        retry_after: Option<Duration>,
    },
    /// The EPJ refused it and will refuse it again: any other 4xx, or an answer that is not
    /// FHIR.
    #[error("the EPJ refused: {reason}")]
    Refused {
        /// The EPJ's reason (OperationOutcome), for staff.
        reason: String,
    },
}

/// The EPJ as the delivery worker sees it.
#[async_trait::async_trait]
pub trait Epj: Send + Sync + 'static {
    /// Registers `cancellation` of a visit. Calling it again for a visit that is already
    /// cancelled in the EPJ succeeds without writing.
    async fn cancel_appointment(&self, cancellation: &Cancellation)
    -> Result<Registered, EpjError>;
}
