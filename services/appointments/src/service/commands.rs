//! Each RPC's request checked into a command: every wrong field named at once
//! (INVALID_ARGUMENT with a violation per field), no value sent echoed. A handler decodes
//! with `Command::try_from(request)?`, or `decode` where the request's meaning depends on
//! the day, at the point where it always checked its fields. The patient id is resolved,
//! and a bad one named, by `Actors`; the EPJ's upsert has its own command in
//! `crate::domain::UpsertCommand`, which needs the identity rules.

use chrono::{DateTime, NaiveDate, Utc};
use homecare_core::all_checked;
use homecare_core::identifier::{IdError, RequestId};
use homecare_core::paging::{self, Cursor, QueryKey};
use homecare_core::status::FieldViolations;
use homecare_core::timestamp;
use homecare_proto::appointments::v1 as pb;
use uuid::Uuid;

use crate::domain::{CancellationReason, CareUnitId};
use crate::events::Position;

/// One page of a patient's visits (ListAppointments).
pub(super) struct ListAppointments {
    pub(super) start: Option<DateTime<Utc>>,
    pub(super) end: Option<DateTime<Utc>>,
    pub(super) page_size: u64,
    pub(super) cursor: Option<Cursor>,
    /// What the page token is bound to: the filters as sent, so the default start ("now")
    /// may move between pages without invalidating it.
    pub(super) query_key: QueryKey,
}

impl TryFrom<&pb::ListAppointmentsRequest> for ListAppointments {
    type Error = FieldViolations;

    fn try_from(request: &pb::ListAppointmentsRequest) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let start = violations.check(
            "start_time",
            timestamp::optional(request.start_time.as_ref()),
        );
        let end = violations.check("end_time", timestamp::optional(request.end_time.as_ref()));
        let page_size = violations.check("page_size", paging::page_size(request.page_size));
        if let (Some(Some(start)), Some(Some(end))) = (start, end)
            && end <= start
        {
            violations.add("end_time", "must be after start_time");
        }
        let query_key = QueryKey::default()
            .with("patient", &request.patient_id)
            .with(
                "start",
                start.flatten().map_or(-1, |t| t.timestamp_micros()),
            )
            .with("end", end.flatten().map_or(-1, |t| t.timestamp_micros()));
        let cursor = violations.check(
            "page_token",
            Cursor::decode(&request.page_token, &query_key),
        );
        let (start, end, page_size, cursor) =
            all_checked!(violations; start, end, page_size, cursor)?;
        Ok(Self {
            start,
            end,
            page_size,
            cursor,
            query_key,
        })
    }
}

/// One visit (GetAppointment).
pub(super) struct GetAppointment {
    pub(super) appointment_id: Uuid,
}

impl TryFrom<&pb::GetAppointmentRequest> for GetAppointment {
    type Error = FieldViolations;

    fn try_from(request: &pb::GetAppointmentRequest) -> Result<Self, FieldViolations> {
        Ok(Self {
            appointment_id: FieldViolations::single(
                "appointment_id",
                parse_uuid(&request.appointment_id),
            )?,
        })
    }
}

/// A visit's history (ListAppointmentHistory).
pub(super) struct ListAppointmentHistory {
    pub(super) appointment_id: Uuid,
}

impl TryFrom<&pb::ListAppointmentHistoryRequest> for ListAppointmentHistory {
    type Error = FieldViolations;

    fn try_from(request: &pb::ListAppointmentHistoryRequest) -> Result<Self, FieldViolations> {
        Ok(Self {
            appointment_id: FieldViolations::single(
                "appointment_id",
                parse_uuid(&request.appointment_id),
            )?,
        })
    }
}

/// One page of a care unit's day (ListCareUnitAppointments).
pub(super) struct ListCareUnitAppointments {
    pub(super) date: NaiveDate,
    pub(super) requested_unit: Option<CareUnitId>,
    pub(super) page_size: u64,
    pub(super) cursor: Option<Cursor>,
    /// Bound to the effective date, so a token from yesterday's "today" is not used on
    /// today's list.
    pub(super) query_key: QueryKey,
}

impl ListCareUnitAppointments {
    /// The request, where no date means `today`.
    pub(super) fn decode(
        request: &pb::ListCareUnitAppointmentsRequest,
        today: NaiveDate,
    ) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let date = if request.date.is_empty() {
            Some(today)
        } else {
            violations.check(
                "date",
                NaiveDate::parse_from_str(&request.date, "%Y-%m-%d")
                    .map_err(|_| "must be a date as YYYY-MM-DD"),
            )
        };
        let requested_unit = violations.check(
            "care_unit_id",
            CareUnitId::parse_optional(&request.care_unit_id),
        );
        let page_size = violations.check("page_size", paging::page_size(request.page_size));
        let query_key = QueryKey::default()
            .with("unit", &request.care_unit_id)
            .with("date", date.map(|day| day.to_string()).unwrap_or_default());
        let cursor = violations.check(
            "page_token",
            Cursor::decode(&request.page_token, &query_key),
        );
        let (date, requested_unit, page_size, cursor) =
            all_checked!(violations; date, requested_unit, page_size, cursor)?;
        Ok(Self {
            date,
            requested_unit,
            page_size,
            cursor,
            query_key,
        })
    }
}

/// A patient's (or proxy's) cancellation (CancelAppointment).
pub(super) struct CancelAppointment {
    pub(super) appointment_id: Uuid,
    pub(super) request_id: RequestId,
    pub(super) reason: Option<CancellationReason>,
}

impl TryFrom<&pb::CancelAppointmentRequest> for CancelAppointment {
    type Error = FieldViolations;

    fn try_from(request: &pb::CancelAppointmentRequest) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let appointment_id =
            violations.check("appointment_id", parse_uuid(&request.appointment_id));
        let request_id = violations.check("request_id", RequestId::parse(&request.request_id));
        let reason = violations.check("reason", CancellationReason::parse(&request.reason));
        let (appointment_id, request_id, reason) =
            all_checked!(violations; appointment_id, request_id, reason)?;
        Ok(Self {
            appointment_id,
            request_id,
            reason,
        })
    }
}

/// A staff change stream, from its start or resumed (WatchCareUnitChanges).
pub(super) struct WatchCareUnitChanges {
    pub(super) requested_unit: Option<CareUnitId>,
    /// Where to resume; none: from now.
    pub(super) resume: Option<Position>,
}

impl TryFrom<&pb::WatchCareUnitChangesRequest> for WatchCareUnitChanges {
    type Error = FieldViolations;

    fn try_from(request: &pb::WatchCareUnitChangesRequest) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let requested_unit = violations.check(
            "care_unit_id",
            CareUnitId::parse_optional(&request.care_unit_id),
        );
        let resume = if request.resume_token.is_empty() {
            Some(None)
        } else {
            violations
                .check("resume_token", Position::from_token(&request.resume_token))
                .map(Some)
        };
        let (requested_unit, resume) = all_checked!(violations; requested_unit, resume)?;
        Ok(Self {
            requested_unit,
            resume,
        })
    }
}

/// One page of cancellations the EPJ did not take (ListFailedEpjDeliveries).
pub(super) struct ListFailedEpjDeliveries {
    pub(super) requested_unit: Option<CareUnitId>,
    pub(super) page_size: u64,
    pub(super) cursor: Option<Cursor>,
    pub(super) query_key: QueryKey,
}

impl TryFrom<&pb::ListFailedEpjDeliveriesRequest> for ListFailedEpjDeliveries {
    type Error = FieldViolations;

    fn try_from(request: &pb::ListFailedEpjDeliveriesRequest) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let requested_unit = violations.check(
            "care_unit_id",
            CareUnitId::parse_optional(&request.care_unit_id),
        );
        let page_size = violations.check("page_size", paging::page_size(request.page_size));
        let query_key = QueryKey::named("failed-deliveries").with("unit", &request.care_unit_id);
        let cursor = violations.check(
            "page_token",
            Cursor::decode(&request.page_token, &query_key),
        );
        let (requested_unit, page_size, cursor) =
            all_checked!(violations; requested_unit, page_size, cursor)?;
        Ok(Self {
            requested_unit,
            page_size,
            cursor,
            query_key,
        })
    }
}

/// Staff sending a failed cancellation to the EPJ again (RetryEpjDelivery).
pub(super) struct RetryEpjDelivery {
    pub(super) delivery_id: Uuid,
}

impl TryFrom<&pb::RetryEpjDeliveryRequest> for RetryEpjDelivery {
    type Error = FieldViolations;

    fn try_from(request: &pb::RetryEpjDeliveryRequest) -> Result<Self, FieldViolations> {
        Ok(Self {
            delivery_id: FieldViolations::single("delivery_id", parse_uuid(&request.delivery_id))?,
        })
    }
}

fn parse_uuid(text: &str) -> Result<Uuid, IdError> {
    homecare_core::identifier::parse_id(text, "id")
}
