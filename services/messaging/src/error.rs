//! Why a messaging call was refused, in the domain's words, and its one mapping to gRPC.

use homecare_core::status::{self, FieldViolations};
use homecare_patients::AccessError;
use tonic::Status;

use crate::thread::StepError;

/// Why a messaging call was refused.
#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    /// Who may act for whom said no.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The caller's kind does not allow the call.
    #[error(transparent)]
    Caller(#[from] homecare_core::caller::CallerError),
    /// Fields of the request are wrong.
    #[error(transparent)]
    Invalid(#[from] FieldViolations),
    /// No such thread the caller may see.
    #[error("thread not found")]
    ThreadNotFound,
    /// No such draft of the caller's.
    #[error("draft not found")]
    DraftNotFound,
    /// No such attachment the caller may see.
    #[error("attachment not found")]
    AttachmentNotFound,
    /// No such care unit of the caller's.
    #[error("care unit not found")]
    CareUnitNotFound,
    /// A staff caller whose token names no care unit.
    #[error("the caller works in no care unit")]
    NoCareUnit,
    /// The step is not possible in the thread's state.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The visit of a cancellation request is not one that can still be cancelled.
    #[error("the visit is already over, cancelled or completed")]
    VisitNotOpen,
    /// A thread follows on only from a closed one.
    #[error("the thread it follows on from is still open; reply there")]
    PreviousThreadOpen,
    /// The request id was used before for another request.
    #[error("request id reused")]
    RequestIdReused,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] homecare_blob::BlobError),
}

impl From<MessagingError> for Status {
    fn from(error: MessagingError) -> Status {
        match error {
            MessagingError::Access(error) => error.into(),
            MessagingError::Caller(error) => error.into(),
            MessagingError::Invalid(violations) => violations.into(),
            MessagingError::ThreadNotFound => status::not_found("thread"),
            MessagingError::DraftNotFound => status::not_found("draft"),
            MessagingError::AttachmentNotFound => status::not_found("attachment"),
            MessagingError::CareUnitNotFound => status::not_found("care unit"),
            MessagingError::NoCareUnit => {
                status::permission_denied("NO_CARE_UNIT", &MessagingError::NoCareUnit.to_string())
            }
            MessagingError::Step(StepError::Closed) => status::failed_precondition(
                "THREAD_CLOSED",
                "thread_id",
                &StepError::Closed.to_string(),
            ),
            MessagingError::Step(StepError::NotSent) => status::not_found("thread"),
            MessagingError::VisitNotOpen => status::failed_precondition(
                "VISIT_NOT_OPEN",
                "appointment_id",
                &MessagingError::VisitNotOpen.to_string(),
            ),
            MessagingError::PreviousThreadOpen => status::failed_precondition(
                "PREVIOUS_THREAD_OPEN",
                "previous_thread_id",
                &MessagingError::PreviousThreadOpen.to_string(),
            ),
            MessagingError::RequestIdReused => status::request_id_reused(),
            MessagingError::Db(error) => status::from_db(error),
            MessagingError::Blob(error) => {
                tracing::error!(%error, "the blob store failed");
                status::unavailable("attachments cannot be stored or read now; try again")
            }
        }
    }
}
