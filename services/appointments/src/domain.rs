//! The rules of a home visit, as types that are valid by construction.

use chrono::{DateTime, Duration, Utc};
use homecare_core::NationalIdentityNumber;
use homecare_core::status::FieldViolations;
use homecare_core::timestamp;
use homecare_proto::appointments::v1 as pb;

/// The longest planned window accepted; a longer one is an EPJ data error, not a visit.
pub const MAX_WINDOW: Duration = Duration::hours(24);

/// What kind of help a visit gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceType {
    /// Home nursing.
    HomeNursing,
    /// Practical help in the home.
    PracticalHelp,
    /// Help with medication.
    Medication,
    /// Personal care.
    PersonalCare,
}

/// Where a visit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppointmentStatus {
    /// Planned, not yet carried out.
    Planned,
    /// Carried out.
    Completed,
    /// Cancelled.
    Cancelled,
}

pub use homecare_core::stored::UnknownStoredValue;
use homecare_core::stored_enum;

stored_enum!(ServiceType, "service type", pb::ServiceType, {
    HomeNursing => "home_nursing", HomeNursing;
    PracticalHelp => "practical_help", PracticalHelp;
    Medication => "medication", Medication;
    PersonalCare => "personal_care", PersonalCare;
});

stored_enum!(AppointmentStatus, "appointment status", pb::AppointmentStatus, {
    Planned => "planned", Planned;
    Completed => "completed", Completed;
    Cancelled => "cancelled", Cancelled;
});

/// Why a patient cancels, in their words: read by staff, so one line or a few, without
/// invisible or direction-changing characters, at most [`CancellationReason::MAX_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationReason(String);

impl CancellationReason {
    /// The longest reason accepted, in characters.
    pub const MAX_CHARS: usize = 500;

    /// Checks a reason as sent; blank means none.
    pub fn parse(text: &str) -> Result<Option<CancellationReason>, homecare_core::text::TextError> {
        homecare_core::text::parse_optional_text(text, Self::MAX_CHARS)
            .map(|reason| reason.map(CancellationReason))
    }

    /// The reason as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How far a cancellation made through this service has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancellationState {
    /// Stored, on its way to the EPJ.
    PendingEpj,
    /// Registered in the EPJ.
    Confirmed,
    /// Refused by the EPJ, or undeliverable after every attempt.
    Failed,
}

stored_enum!(CancellationState, "cancellation state", pb::CancellationState, {
    PendingEpj => "pending_epj", PendingEpj;
    Confirmed => "confirmed", Confirmed;
    Failed => "failed", Failed;
});

/// Who did something to a visit: the kind every history records.
pub use homecare_patients::ActorKind;

/// What kind of change a history entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The EPJ sent a new visit.
    Created,
    /// The EPJ changed the plan.
    Changed,
    /// Someone cancelled through this service.
    CancellationRequested,
    /// The EPJ registered the cancellation.
    CancellationConfirmed,
    /// The cancellation could not be registered.
    CancellationFailed,
    /// Staff sent a failed cancellation again.
    CancellationRetried,
    /// The EPJ sent the visit as carried out.
    Completed,
    /// The citizen asked the care service by message to cancel (see the messaging service).
    CancellationRequestSent,
}

stored_enum!(EventType, "event type", pb::AppointmentEventType, {
    Created => "created", Created;
    Changed => "changed", Changed;
    CancellationRequested => "cancellation_requested", CancellationRequested;
    CancellationConfirmed => "cancellation_confirmed", CancellationConfirmed;
    CancellationFailed => "cancellation_failed", CancellationFailed;
    CancellationRetried => "cancellation_retried", CancellationRetried;
    Completed => "completed", Completed;
    CancellationRequestSent => "cancellation_request_sent", CancellationRequestSent;
});

/// The planned window of a visit: start strictly before end, at most [`MAX_WINDOW`] long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// Why a window is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The end is at or before the start.
    #[error("must be after window_start")]
    EndNotAfterStart,
    /// Longer than [`MAX_WINDOW`].
    #[error("must be at most 24 hours after window_start")]
    TooLong,
}

impl VisitWindow {
    /// A window from `start` to `end`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, WindowError> {
        if end <= start {
            return Err(WindowError::EndNotAfterStart);
        }
        if end - start > MAX_WINDOW {
            return Err(WindowError::TooLong);
        }
        Ok(Self { start, end })
    }

    /// When the window opens.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// When the window closes.
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }
}

pub use homecare_core::identifier::{CareUnitId, IdentifierError, parse_identifier};

/// The longest EPJ id: a FHIR resource id is at most 64 characters.
pub const MAX_EPJ_ID_LEN: usize = 64;

/// The plan of a visit as the EPJ sends it; comparing two plans tells whether it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitPlan {
    /// The care unit that carries out the visit.
    pub care_unit_id: CareUnitId,
    /// When staff come.
    pub window: VisitWindow,
    /// What help is given.
    pub service_type: ServiceType,
    /// Where the visit stands.
    pub status: AppointmentStatus,
    /// Whether the patient may cancel it.
    pub citizen_cancellable: bool,
    /// The EPJ's own version of its record.
    pub epj_version_id: Option<String>,
}

/// A validated UpsertAppointment request.
#[derive(Debug, Clone)]
pub struct UpsertCommand {
    /// The visit's id in the EPJ.
    pub epj_id: String,
    /// The patient the visit is for.
    pub patient: NationalIdentityNumber,
    /// The plan.
    pub plan: VisitPlan,
}

impl UpsertCommand {
    /// Validates `request` (identity numbers under `identity_rules`), naming every wrong field
    /// in one INVALID_ARGUMENT.
    pub fn parse(
        request: &pb::UpsertAppointmentRequest,
        identity_rules: homecare_core::IdentityRules,
    ) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let epj_id = violations.check("epj_id", parse_identifier(&request.epj_id, MAX_EPJ_ID_LEN));
        let patient = violations.check(
            "patient_national_id",
            identity_rules.parse(&request.patient_national_id),
        );
        let care_unit_id =
            violations.check("care_unit_id", CareUnitId::parse(&request.care_unit_id));
        let start = violations.check(
            "window_start",
            timestamp::required(request.window_start.as_ref()),
        );
        let end = violations.check(
            "window_end",
            timestamp::required(request.window_end.as_ref()),
        );
        let window = match (start, end) {
            (Some(start), Some(end)) => {
                violations.check("window_end", VisitWindow::new(start, end))
            }
            _ => None,
        };
        let service_type = violations.check(
            "service_type",
            ServiceType::from_proto(request.service_type),
        );
        let status = violations.check("status", AppointmentStatus::from_proto(request.status));
        let epj_version_id = if request.epj_version_id.is_empty() {
            Some(None)
        } else {
            violations
                .check(
                    "epj_version_id",
                    parse_identifier(&request.epj_version_id, MAX_EPJ_ID_LEN),
                )
                .map(Some)
        };
        let (epj_id, patient, care_unit_id, window, service_type, status, epj_version_id) = homecare_core::all_checked!(
            violations;
            epj_id, patient, care_unit_id, window, service_type, status, epj_version_id
        )?;
        Ok(UpsertCommand {
            epj_id,
            patient,
            plan: VisitPlan {
                care_unit_id,
                window,
                service_type,
                status,
                citizen_cancellable: request.citizen_cancellable,
                epj_version_id,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap()
    }

    #[test]
    fn window_must_end_after_it_starts() {
        assert_eq!(
            VisitWindow::new(at(10), at(10)),
            Err(WindowError::EndNotAfterStart)
        );
        assert_eq!(
            VisitWindow::new(at(10), at(9)),
            Err(WindowError::EndNotAfterStart)
        );
        assert!(VisitWindow::new(at(10), at(11)).is_ok());
    }

    #[test]
    fn window_of_exactly_a_day_is_accepted_and_longer_refused() {
        let start = at(0);
        assert!(VisitWindow::new(start, start + MAX_WINDOW).is_ok());
        assert_eq!(
            VisitWindow::new(start, start + MAX_WINDOW + Duration::seconds(1)),
            Err(WindowError::TooLong)
        );
    }

    #[test]
    fn identifiers_are_bounded_and_url_safe() {
        assert_eq!(
            parse_identifier("visit-42.a_b", 64),
            Ok("visit-42.a_b".into())
        );
        assert_eq!(parse_identifier("", 64), Err(IdentifierError::Empty));
        assert_eq!(
            parse_identifier(&"a".repeat(65), 64),
            Err(IdentifierError::TooLong(64))
        );
        for bad in ["a/b", "a b", "æ", "a?x=1"] {
            assert_eq!(parse_identifier(bad, 64), Err(IdentifierError::Character));
        }
    }

    #[test]
    fn enums_round_trip_through_storage_and_refuse_unspecified() {
        for status in [
            AppointmentStatus::Planned,
            AppointmentStatus::Completed,
            AppointmentStatus::Cancelled,
        ] {
            assert_eq!(
                AppointmentStatus::from_stored(status.as_stored()).unwrap(),
                status
            );
            assert_eq!(
                AppointmentStatus::from_proto(status.to_proto().into()),
                Ok(status)
            );
        }
        assert_eq!(ServiceType::from_proto(0), Err("is required"));
        assert_eq!(ServiceType::from_proto(99), Err("is not a known value"));
    }
}
