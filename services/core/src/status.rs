//! gRPC statuses with rich error details (google.rpc.BadRequest, ErrorInfo,
//! PreconditionFailure), built in one place so every service answers alike.
//!
//! Messages are short, lowercase and never contain identity numbers or message text.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `domain` of every ErrorInfo this service sends.
pub const ERROR_DOMAIN: &str = "homecare.no";

/// Collects every invalid field of a request, so the caller learns all of them at once.
#[derive(Debug, Default)]
pub struct FieldViolations(Vec<(String, String)>);

impl FieldViolations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` is invalid, and why. The same violation is recorded once, so a
    /// request repeating a bad value thousands of times still gets a short answer.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        let violation = (field.into(), description.into());
        if !self.0.contains(&violation) {
            self.0.push(violation);
        }
    }

    /// Takes the value of a parse result, or records its error against `field`.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error.to_string());
                None
            }
        }
    }

    /// The value of a request's one checked field, or INVALID_ARGUMENT naming it.
    pub fn single<T, E: std::fmt::Display>(
        field: &str,
        result: Result<T, E>,
    ) -> Result<T, FieldViolations> {
        result.map_err(|error| {
            let mut violations = FieldViolations::new();
            violations.add(field, error.to_string());
            violations
        })
    }

    /// The invalid fields, in the order found.
    pub fn fields(&self) -> Vec<String> {
        self.0.iter().map(|(field, _)| field.clone()).collect()
    }

    /// Whether no field was invalid.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Err` with the violations when any field was invalid: what domain code returns.
    pub fn finish(self) -> Result<(), FieldViolations> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// These violations, or one on the whole request when there is none (a check that gave
    /// no value without saying why: a bug, answered as a refusal rather than a panic).
    pub fn or_incomplete(mut self) -> FieldViolations {
        if self.0.is_empty() {
            tracing::error!("a request check gave no value and recorded no violation");
            self.add("request", "is incomplete");
        }
        self
    }

    /// INVALID_ARGUMENT naming every recorded field, or `Ok` when there is none.
    pub fn into_result(self) -> Result<(), Status> {
        self.finish().map_err(Status::from)
    }
}

impl std::fmt::Display for FieldViolations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (field, description) in &self.0 {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{field}: {description}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldViolations {}

impl From<FieldViolations> for Status {
    /// INVALID_ARGUMENT naming every field, with a BadRequest detail per field.
    fn from(violations: FieldViolations) -> Status {
        let message = format!("invalid request: {violations}");
        let mut details = ErrorDetails::new();
        for (field, description) in violations.0 {
            details.add_bad_request_violation(field, description);
        }
        Status::with_error_details(Code::InvalidArgument, message, details)
    }
}

/// The values of a request's checks, each an `Option` that is `None` where its check failed:
/// `Ok` with all of them when every check passed, otherwise `Err` with the violations.
///
/// ```ignore
/// let (start, page_size) = all_checked!(violations; start, page_size)?;
/// ```
#[macro_export]
macro_rules! all_checked {
    ($violations:expr; $($value:ident),+ $(,)?) => {
        match ($($value,)+) {
            ($(Some($value),)+) if $violations.is_empty() => Ok(($($value,)+)),
            _ => Err($violations.or_incomplete()),
        }
    };
}

/// INVALID_ARGUMENT for a single field.
pub fn invalid_argument(field: &str, description: &str) -> Status {
    let mut violations = FieldViolations::new();
    violations.add(field, description);
    violations
        .into_result()
        .expect_err("one violation was recorded")
}

fn with_reason(code: Code, reason: &str, message: &str) -> Status {
    with_reason_and_metadata(code, reason, message, &[])
}

fn with_reason_and_metadata(
    code: Code,
    reason: &str,
    message: &str,
    metadata: &[(&str, String)],
) -> Status {
    let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, error_metadata(metadata));
    Status::with_error_details(code, message, details)
}

fn error_metadata(metadata: &[(&str, String)]) -> std::collections::HashMap<String, String> {
    metadata
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.clone()))
        .collect()
}

/// UNAUTHENTICATED with a stable `reason`.
pub fn unauthenticated(reason: &str, message: &str) -> Status {
    with_reason(Code::Unauthenticated, reason, message)
}

/// UNAUTHENTICATED like [`unauthenticated`], with ErrorInfo metadata (such as the claim a
/// token lacks). Never a value the caller sent.
pub fn unauthenticated_with(reason: &str, message: &str, metadata: &[(&str, String)]) -> Status {
    with_reason_and_metadata(Code::Unauthenticated, reason, message, metadata)
}

/// PERMISSION_DENIED with a stable `reason`.
pub fn permission_denied(reason: &str, message: &str) -> Status {
    with_reason(Code::PermissionDenied, reason, message)
}

/// NOT_FOUND for `resource`, also used when it exists but is not the caller's.
pub fn not_found(resource: &str) -> Status {
    with_reason(
        Code::NotFound,
        "NOT_FOUND",
        &format!("{resource} not found"),
    )
}

/// FAILED_PRECONDITION with a stable `reason`, naming the `subject` whose state is wrong.
pub fn failed_precondition(reason: &str, subject: &str, message: &str) -> Status {
    failed_precondition_with(reason, subject, message, &[])
}

/// FAILED_PRECONDITION like [`failed_precondition`], with ErrorInfo metadata the caller can
/// act on (such as the deadline that was missed).
pub fn failed_precondition_with(
    reason: &str,
    subject: &str,
    message: &str,
    metadata: &[(&str, String)],
) -> Status {
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, error_metadata(metadata));
    details.add_precondition_failure_violation(reason, subject, message);
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

/// FAILED_PRECONDITION `REQUEST_ID_REUSED`: a `request_id` sent again with other content than
/// the request it was first used for. A true repeat is answered with the first result.
pub fn request_id_reused() -> Status {
    failed_precondition(
        "REQUEST_ID_REUSED",
        "request_id",
        "this request_id was used for a different request; use a new one",
    )
}

/// ABORTED `CONTENDED`: another writer changed `resource` while this call held it, which the
/// database's locks rule out; the whole call may be sent again.
pub fn contended(resource: &str) -> Status {
    with_reason(
        Code::Aborted,
        "CONTENDED",
        &format!("{resource} was changed by another writer; try again"),
    )
}

/// INTERNAL for a fault the caller cannot fix. The cause goes to the log, not to the caller.
pub fn internal(error: &dyn std::error::Error) -> Status {
    tracing::error!(error = %error, "internal error");
    Status::internal("internal error")
}

/// UNAVAILABLE for a fault that may pass, such as a lost database connection.
pub fn unavailable(message: &str) -> Status {
    Status::unavailable(message)
}

/// The status for a storage error: UNAVAILABLE when the database cannot be reached (the
/// caller may retry), INTERNAL otherwise.
pub fn from_db(error: sea_orm::DbErr) -> Status {
    match error {
        sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_) => {
            tracing::warn!(error = %error, "database unavailable");
            unavailable("storage is unavailable, try again")
        }
        other => internal(&other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_checked_gives_every_value_or_every_violation_and_never_panics() {
        let violations = FieldViolations::new();
        let (a, b) = (Some(1), Some("two"));
        assert_eq!(crate::all_checked!(violations; a, b).unwrap(), (1, "two"));

        let (a, b): (Option<i32>, Option<&str>) = (Some(1), None);
        let mut violations = FieldViolations::new();
        violations.add("b", "is required");
        let refused = crate::all_checked!(violations; a, b).unwrap_err();
        assert_eq!(refused.to_string(), "b: is required");

        // A check that failed without saying why is still a refusal, not a panic.
        let violations = FieldViolations::new();
        let refused = crate::all_checked!(violations; a, b).unwrap_err();
        assert_eq!(refused.to_string(), "request: is incomplete");
        let status = Status::from(refused);
        assert_eq!(status.code(), Code::InvalidArgument);
    }
}
