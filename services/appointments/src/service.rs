//! The gRPC face of this context: `homecare.appointments.v1.AppointmentService`.
//!
//! Handlers are thin: decode and validate, resolve the actor, call the store, map the result.

use std::sync::Arc;

use chrono::{Days, NaiveDate, TimeZone};
use chrono_tz::Tz;
use homecare_core::paging::{self, Cursor};
use homecare_core::status::{self, FieldViolations};
use homecare_core::{Caller, Clock, timestamp};
use homecare_patients::actor::Via;
use homecare_patients::{Actor, PatientDirectory};
use homecare_proto::appointments::v1 as pb;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::parse_identifier;
use crate::domain::{AppointmentStatus, MAX_CARE_UNIT_ID_LEN, ServiceType, UpsertCommand};
use crate::entity;
use crate::store::{self, PatientQuery, UpsertError};

/// Implements `homecare.appointments.v1.AppointmentService`.
#[derive(Clone)]
pub struct AppointmentApi {
    db: DatabaseConnection,
    directory: Arc<PatientDirectory>,
    clock: Arc<dyn Clock>,
    time_zone: Tz,
}

impl std::fmt::Debug for AppointmentApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppointmentApi")
            .field("time_zone", &self.time_zone)
            .finish_non_exhaustive()
    }
}

impl AppointmentApi {
    /// A service over `db`; days are calendar days in `time_zone`.
    pub fn new(
        db: DatabaseConnection,
        directory: Arc<PatientDirectory>,
        clock: Arc<dyn Clock>,
        time_zone: Tz,
    ) -> Self {
        Self {
            db,
            directory,
            clock,
            time_zone,
        }
    }

    /// Logs the reads of a page (when the actor is not the patient) and turns it into the
    /// visits and the next page token of a response.
    async fn serve_page(
        &self,
        actor: &Actor,
        page: store::Page,
        query_key: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Vec<pb::Appointment>, String), Status> {
        store::log_reads(&self.db, actor, &page.appointments, now)
            .await
            .map_err(status::from_db)?;
        let next_page_token = page
            .next
            .map(|cursor| cursor.encode(query_key))
            .unwrap_or_default();
        Ok((to_proto_list(&page.appointments)?, next_page_token))
    }

    /// The first instant of `date` in the municipality's time zone.
    fn start_of_day(&self, date: NaiveDate) -> chrono::DateTime<chrono::Utc> {
        let midnight = date.and_time(chrono::NaiveTime::MIN);
        // Midnight exists on every day in Norway (clocks change at 02:00 and 03:00); the
        // fallback keeps zones where it may not correct.
        self.time_zone
            .from_local_datetime(&midnight)
            .earliest()
            .unwrap_or_else(|| self.time_zone.from_utc_datetime(&midnight))
            .to_utc()
    }
}

#[tonic::async_trait]
impl pb::appointment_service_server::AppointmentService for AppointmentApi {
    #[tracing::instrument(skip_all)]
    async fn list_appointments(
        &self,
        request: Request<pb::ListAppointmentsRequest>,
    ) -> Result<Response<pb::ListAppointmentsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();

        let mut violations = FieldViolations::new();
        let start = violations.check(
            "start_time",
            timestamp::optional(message.start_time.as_ref()),
        );
        let end = violations.check("end_time", timestamp::optional(message.end_time.as_ref()));
        let page_size = violations.check("page_size", paging::page_size(message.page_size));
        if let (Some(Some(start)), Some(Some(end))) = (start, end)
            && end <= start
        {
            violations.add("end_time", "must be after start_time");
        }
        // The token is bound to the filters as sent, so the default start ("now") may move
        // between pages without invalidating it.
        let query_key = format!(
            "patient={}|start={}|end={}",
            message.patient_id,
            start.flatten().map_or(-1, |t| t.timestamp_micros()),
            end.flatten().map_or(-1, |t| t.timestamp_micros()),
        );
        let cursor = violations.check(
            "page_token",
            Cursor::decode(&message.page_token, &query_key),
        );
        violations.into_result()?;
        let (Some(start), Some(end), Some(page_size), Some(cursor)) =
            (start, end, page_size, cursor)
        else {
            unreachable!("every missing value recorded a violation");
        };

        let (actor, patient_id) =
            Actor::for_patient(&self.db, &self.directory, caller, &message.patient_id).await?;
        let now = self.clock.now();
        let query = PatientQuery {
            patient_id,
            ends_at_or_after: start.unwrap_or(now),
            starts_before: end,
            care_units: actor.visible_care_units(),
        };
        let page = store::list_for_patient(&self.db, query, cursor, page_size)
            .await
            .map_err(status::from_db)?;
        let (appointments, next_page_token) =
            self.serve_page(&actor, page, &query_key, now).await?;
        Ok(Response::new(pb::ListAppointmentsResponse {
            appointments,
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_appointment(
        &self,
        request: Request<pb::GetAppointmentRequest>,
    ) -> Result<Response<pb::GetAppointmentResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let appointment_id = parse_appointment_id(&message.appointment_id)?;
        let (actor, patient_id) =
            Actor::for_patient(&self.db, &self.directory, caller, &message.patient_id).await?;

        let appointment = store::find_for_patient(&self.db, patient_id, appointment_id)
            .await
            .map_err(status::from_db)?
            .filter(|appointment| actor.may_see_care_unit(&appointment.care_unit_id))
            .ok_or_else(|| status::not_found("appointment"))?;
        store::log_reads(
            &self.db,
            &actor,
            std::slice::from_ref(&appointment),
            self.clock.now(),
        )
        .await
        .map_err(status::from_db)?;

        Ok(Response::new(pb::GetAppointmentResponse {
            appointment: Some(to_proto(&appointment)?),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_care_unit_appointments(
        &self,
        request: Request<pb::ListCareUnitAppointmentsRequest>,
    ) -> Result<Response<pb::ListCareUnitAppointmentsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let actor = Actor::staff(caller)?;
        let message = request.get_ref();
        let now = self.clock.now();

        let mut violations = FieldViolations::new();
        let date = if message.date.is_empty() {
            Some(now.with_timezone(&self.time_zone).date_naive())
        } else {
            violations.check(
                "date",
                NaiveDate::parse_from_str(&message.date, "%Y-%m-%d")
                    .map_err(|_| "must be a date as YYYY-MM-DD"),
            )
        };
        let requested_unit = if message.care_unit_id.is_empty() {
            Some(None)
        } else {
            violations
                .check(
                    "care_unit_id",
                    parse_identifier(&message.care_unit_id, MAX_CARE_UNIT_ID_LEN),
                )
                .map(Some)
        };
        let page_size = violations.check("page_size", paging::page_size(message.page_size));
        // The effective date, so a token from yesterday's "today" is not used on today's list.
        let query_key = format!(
            "unit={}|date={}",
            message.care_unit_id,
            date.map(|day| day.to_string()).unwrap_or_default()
        );
        let cursor = violations.check(
            "page_token",
            Cursor::decode(&message.page_token, &query_key),
        );
        violations.into_result()?;
        let (Some(date), Some(requested_unit), Some(page_size), Some(cursor)) =
            (date, requested_unit, page_size, cursor)
        else {
            unreachable!("every missing value recorded a violation");
        };

        let Via::Staff { care_units, .. } = &actor.via else {
            unreachable!("Actor::staff resolves to staff");
        };
        let units = match requested_unit {
            None if care_units.is_empty() => {
                return Err(status::permission_denied(
                    "NO_CARE_UNIT",
                    "the caller works in no care unit",
                ));
            }
            None => care_units.clone(),
            Some(unit) if actor.may_see_care_unit(&unit) => vec![unit],
            Some(_) => {
                return Err(status::permission_denied(
                    "NOT_IN_CARE_UNIT",
                    "the caller does not work in that care unit",
                ));
            }
        };
        let from = self.start_of_day(date);
        let until = self.start_of_day(
            date.checked_add_days(Days::new(1))
                .ok_or_else(|| status::invalid_argument("date", "is out of range"))?,
        );
        let page = store::list_for_care_units(&self.db, &units, from, until, cursor, page_size)
            .await
            .map_err(status::from_db)?;
        let (appointments, next_page_token) =
            self.serve_page(&actor, page, &query_key, now).await?;
        Ok(Response::new(pb::ListCareUnitAppointmentsResponse {
            appointments,
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn upsert_appointment(
        &self,
        request: Request<pb::UpsertAppointmentRequest>,
    ) -> Result<Response<pb::UpsertAppointmentResponse>, Status> {
        let actor = Actor::epj_integration(Caller::from_request(&request)?)?;
        let command = UpsertCommand::parse(request.get_ref())?;
        let outcome = store::upsert(&self.db, &actor, &command, self.clock.now())
            .await
            .map_err(|error| match error {
                UpsertError::PatientMismatch => status::failed_precondition(
                    "EPJ_ID_OF_OTHER_PATIENT",
                    "epj_id",
                    "this EPJ id is already a visit of another patient",
                ),
                UpsertError::Db(error) => status::from_db(error),
            })?;
        tracing::info!(
            appointment_id = %outcome.appointment.id,
            created = outcome.created,
            changed = outcome.changed,
            version = outcome.appointment.version,
            "appointment upserted"
        );
        Ok(Response::new(pb::UpsertAppointmentResponse {
            appointment: Some(to_proto(&outcome.appointment)?),
            created: outcome.created,
            changed: outcome.changed,
        }))
    }
}

fn parse_appointment_id(text: &str) -> Result<Uuid, Status> {
    if text.is_empty() {
        return Err(status::invalid_argument("appointment_id", "is required"));
    }
    Uuid::parse_str(text)
        .map_err(|_| status::invalid_argument("appointment_id", "is not a valid appointment id"))
}

fn to_proto_list(appointments: &[entity::Model]) -> Result<Vec<pb::Appointment>, Status> {
    appointments.iter().map(to_proto).collect()
}

fn to_proto(model: &entity::Model) -> Result<pb::Appointment, Status> {
    let service_type =
        ServiceType::from_stored(&model.service_type).map_err(|e| status::internal(&e))?;
    let appointment_status =
        AppointmentStatus::from_stored(&model.status).map_err(|e| status::internal(&e))?;
    Ok(pb::Appointment {
        id: model.id.to_string(),
        patient_id: model.patient_id.to_string(),
        epj_id: model.epj_id.clone(),
        care_unit_id: model.care_unit_id.clone(),
        window_start: Some(timestamp::to_proto(model.window_start)),
        window_end: Some(timestamp::to_proto(model.window_end)),
        service_type: service_type.to_proto().into(),
        status: appointment_status.to_proto().into(),
        citizen_cancellable: model.citizen_cancellable,
        version: model.version,
        update_time: Some(timestamp::to_proto(model.updated_at)),
    })
}
