//! The gRPC face of this context: `homecare.appointments.v1.AppointmentService`.
//!
//! Handlers are thin: decode the request into its command (`commands`), resolve the actor,
//! call the store, map the result. Conversions to the contract's messages are in `convert`,
//! the staff change stream in `stream`.

use std::pin::Pin;
use std::sync::Arc;

use chrono::{Days, NaiveDate};
use homecare_core::identifier::CareUnitId;
use homecare_core::paging::{Cursor, QueryKey};
use homecare_core::shutdown::Shutdown;
use homecare_core::status;
use homecare_core::{Caller, Clock, SystemClock};
use homecare_outbox::Wakeup;
use homecare_patients::access_log::{Action, ReadLog};
use homecare_patients::actor::Via;
use homecare_patients::{Actor, Actors, Need, Scope};
use homecare_proto::appointments::v1 as pb;
use sea_orm::{DatabaseConnection, DbErr};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::cancellation::{CancellationPolicy, Refusal};
use crate::domain::UpsertCommand;
use crate::entity;
use crate::events;
use crate::feed::ChangeFeed;
use crate::outbox::{self, RetryError};
use crate::store::{self, CancelCommand, CancelError, PatientQuery, UpsertError};

mod commands;
mod convert;
mod stream;

use convert::{delivery_to_proto, event_to_proto, to_proto};
use homecare_core::calendar::{self, start_of_day};
use stream::ChangeWatcher;

/// Implements `homecare.appointments.v1.AppointmentService`.
#[derive(Clone)]
pub struct AppointmentApi {
    db: DatabaseConnection,
    actors: Arc<Actors>,
    read_log: ReadLog,
    clock: Arc<dyn Clock>,
    policy: Arc<CancellationPolicy>,
    feed: ChangeFeed,
    epj_outbox: Wakeup,
    shutdown: Shutdown,
}

impl std::fmt::Debug for AppointmentApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppointmentApi")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl AppointmentApi {
    /// A service over `db`; days are calendar days in the policy's time zone. Callers are
    /// resolved by `actors`, reads by others logged through `read_log`, changes announced on
    /// `feed`, queued cancellations on `epj_outbox`; streams end on `shutdown`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: DatabaseConnection,
        actors: Arc<Actors>,
        read_log: ReadLog,
        clock: Arc<dyn Clock>,
        policy: CancellationPolicy,
        feed: ChangeFeed,
        epj_outbox: Wakeup,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            db,
            actors,
            read_log,
            clock,
            policy: Arc::new(policy),
            feed,
            epj_outbox,
            shutdown,
        }
    }

    /// One page of a patient's visits as `actor` may see them. A citizen's page comes from
    /// the kept upcoming visits when they cover it; a first look from now on (`from_now`)
    /// reads and keeps them.
    async fn patient_page(
        &self,
        actor: &Actor,
        query: PatientQuery,
        from_now: bool,
        cursor: Option<Cursor>,
        page_size: u64,
    ) -> Result<(pb::ListAppointmentsResponse, Option<Cursor>), Status> {
        if actor.is_citizen() {
            let upcoming = self.feed.upcoming();
            let kept = match upcoming.get(query.patient_id) {
                Some(kept) => Some(kept),
                None if from_now => upcoming
                    .load(
                        &self.db,
                        query.patient_id,
                        query.ends_at_or_after,
                        |visit| {
                            to_proto(visit, false)
                                .map_err(|error| DbErr::Custom(error.message().to_owned()))
                        },
                    )
                    .await
                    .map_err(status::from_db)?,
                None => None,
            };
            if let Some(kept) = kept.filter(|kept| kept.covers(&query)) {
                let (encoded_appointments, next) = kept.page(&query, cursor, page_size);
                let page = pb::ListAppointmentsResponse {
                    encoded_appointments,
                    ..Default::default()
                };
                return Ok((page, next));
            }
        }
        let page = store::list_for_patient(&self.db, query, cursor, page_size)
            .await
            .map_err(status::from_db)?;
        let staff_view = is_staff(actor);
        let appointments = page
            .appointments
            .iter()
            .map(|model| to_proto(model, staff_view))
            .collect::<Result<_, _>>()?;
        let response = pb::ListAppointmentsResponse {
            appointments,
            ..Default::default()
        };
        Ok((response, page.next))
    }

    /// Turns a page into the visits and the next page token of a response.
    fn serve_page(
        actor: &Actor,
        page: store::Page,
        query_key: &QueryKey,
    ) -> Result<(Vec<pb::Appointment>, String), Status> {
        let next_page_token = page
            .next
            .map(|cursor| cursor.encode(query_key))
            .unwrap_or_default();
        let staff_view = is_staff(actor);
        let appointments = page
            .appointments
            .iter()
            .map(|model| to_proto(model, staff_view))
            .collect::<Result<_, _>>()?;
        Ok((appointments, next_page_token))
    }

    /// A citizen's visit from the kept upcoming visits, its read logged; `None` when the
    /// caller is not a citizen or the visit is not kept (then the database answers).
    async fn kept_one(
        &self,
        actor: &Actor,
        patient_id: Uuid,
        appointment_id: Uuid,
    ) -> Result<Option<pb::Appointment>, Status> {
        if !actor.is_citizen() {
            return Ok(None);
        }
        let Some(kept) = self.feed.upcoming().get(patient_id) else {
            return Ok(None);
        };
        let Some(visit) = kept.find(appointment_id) else {
            return Ok(None);
        };
        self.read_log
            .record(
                actor,
                [(patient_id, Some(appointment_id.to_string()))],
                Action::ReadAppointments,
                self.clock.now(),
            )
            .await?;
        let appointment = visit
            .citizen_view
            .decode()
            .map_err(|error| status::internal(&error))?;
        Ok(Some(appointment))
    }

    /// The history of the patient's visit as citizens see it, kept or read and kept;
    /// NOT_FOUND when the patient has no such visit. The read is not logged here.
    async fn citizens_history(
        &self,
        patient_id: Uuid,
        appointment_id: Uuid,
    ) -> Result<crate::upcoming::History, Status> {
        let kept = self.feed.upcoming();
        if let Some(history) = kept.history(patient_id, appointment_id) {
            return Ok(history);
        }
        kept.load_history(&self.db, patient_id, appointment_id, |event| {
            event_to_proto(event).map_err(|error| DbErr::Custom(error.message().to_owned()))
        })
        .await
        .map_err(status::from_db)?
        .ok_or_else(|| status::not_found("appointment"))
    }

    /// The visit `appointment_id` of `patient_id` if `actor` may see it, its read logged;
    /// NOT_FOUND for a visit that does not exist and one the caller may not see alike.
    async fn find_one(
        &self,
        actor: &Actor,
        patient_id: Uuid,
        appointment_id: Uuid,
    ) -> Result<entity::Model, Status> {
        let appointment = store::find_for_patient(&self.db, patient_id, appointment_id)
            .await
            .map_err(status::from_db)?
            .filter(|appointment| actor.may_see_care_unit(&appointment.care_unit_id))
            .ok_or_else(|| status::not_found("appointment"))?;
        self.log_reads(actor, std::slice::from_ref(&appointment), self.clock.now())
            .await?;
        Ok(appointment)
    }

    /// Records that `actor` read `appointments` (nothing when the actor is the patient),
    /// one entry per visit, before they are served.
    async fn log_reads(
        &self,
        actor: &Actor,
        appointments: &[entity::Model],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Status> {
        self.read_log
            .record(
                actor,
                appointments
                    .iter()
                    .map(|visit| (visit.patient_id, Some(visit.id.to_string()))),
                Action::ReadAppointments,
                now,
            )
            .await
    }

    /// The first instant of `date` in the municipality's time zone.
    fn start_of_day(&self, date: NaiveDate) -> chrono::DateTime<chrono::Utc> {
        start_of_day(date, self.policy.time_zone)
    }
}

/// The care units a staff call covers: the one asked for, if the caller works there, or all
/// of the caller's units.
fn units_for(actor: &Actor, requested: Option<CareUnitId>) -> Result<Vec<CareUnitId>, Status> {
    let Via::Staff { care_units, .. } = &actor.via else {
        unreachable!("only called for staff");
    };
    match requested {
        None if care_units.is_empty() => Err(status::permission_denied(
            "NO_CARE_UNIT",
            "the caller works in no care unit",
        )),
        None => Ok(care_units.clone()),
        Some(unit) if actor.may_see_care_unit(unit.as_str()) => Ok(vec![unit]),
        Some(_) => Err(status::permission_denied(
            "NOT_IN_CARE_UNIT",
            "the caller does not work in that care unit",
        )),
    }
}

fn is_staff(actor: &Actor) -> bool {
    matches!(actor.via, Via::Staff { .. } | Via::System { .. })
}

/// What a refused citizen can do instead: ask the care service by a message linked to the
/// visit (homecare.messaging.v1 CreateThread with appointment_id).
fn late_cancellation_by_message() -> (&'static str, String) {
    ("alternative", "SEND_CANCELLATION_REQUEST".to_owned())
}

fn refusal_status(refusal: Refusal) -> Status {
    let message = refusal.to_string();
    match refusal {
        Refusal::DeadlinePassed { deadline } => status::failed_precondition_with(
            refusal.reason(),
            "appointment",
            &format!(
                "{message}: it had to be cancelled before {}",
                deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            &[
                (
                    "deadline",
                    deadline.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                ),
                late_cancellation_by_message(),
            ],
        ),
        Refusal::NotCitizenCancellable => status::failed_precondition_with(
            refusal.reason(),
            "appointment",
            &message,
            &[
                ("action", "CALL_CARE_SERVICE".to_owned()),
                late_cancellation_by_message(),
            ],
        ),
        _ => status::failed_precondition(refusal.reason(), "appointment", &message),
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

        let commands::ListAppointments {
            start,
            end,
            page_size,
            cursor,
            query_key,
        } = message.try_into()?;

        let (actor, patient_id) = self
            .actors
            .for_patient(caller, &message.patient_id, Need::Scope(Scope::ReadVisits))
            .await?;
        let now = self.clock.now();
        let query = PatientQuery {
            patient_id,
            ends_at_or_after: start.unwrap_or(now),
            starts_before: end,
            care_units: actor.visible_care_units(),
        };
        // The read is logged while the visits are read, not after: the answer waits for
        // both, so nothing is served unlogged, but the two waits overlap.
        let (page, logged) = tokio::join!(
            self.patient_page(&actor, query, start.is_none(), cursor, page_size),
            self.read_log
                .record(&actor, [(patient_id, None)], Action::ReadAppointments, now),
        );
        logged?;
        let (page, next) = page?;
        Ok(Response::new(pb::ListAppointmentsResponse {
            next_page_token: next
                .map(|cursor| cursor.encode(&query_key))
                .unwrap_or_default(),
            ..page
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_appointment(
        &self,
        request: Request<pb::GetAppointmentRequest>,
    ) -> Result<Response<pb::GetAppointmentResponse>, Status> {
        let message = request.get_ref();
        let caller = Caller::from_request(&request)?;
        let commands::GetAppointment { appointment_id } = message.try_into()?;
        let (actor, patient_id) = self
            .actors
            .for_patient(caller, &message.patient_id, Need::Scope(Scope::ReadVisits))
            .await?;
        if let Some(kept) = self.kept_one(&actor, patient_id, appointment_id).await? {
            return Ok(Response::new(pb::GetAppointmentResponse {
                appointment: Some(kept),
            }));
        }
        let appointment = self.find_one(&actor, patient_id, appointment_id).await?;
        Ok(Response::new(pb::GetAppointmentResponse {
            appointment: Some(to_proto(&appointment, is_staff(&actor))?),
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

        let commands::ListCareUnitAppointments {
            date,
            requested_unit,
            page_size,
            cursor,
            query_key,
        } = commands::ListCareUnitAppointments::decode(
            message,
            calendar::day_of(now, self.policy.time_zone),
        )?;

        let units = units_for(&actor, requested_unit)?;
        let from = self.start_of_day(date);
        let until = self.start_of_day(
            date.checked_add_days(Days::new(1))
                .ok_or_else(|| status::invalid_argument("date", "is out of range"))?,
        );
        let page = store::list_for_care_units(&self.db, &units, from, until, cursor, page_size)
            .await
            .map_err(status::from_db)?;
        self.log_reads(&actor, &page.appointments, now).await?;
        let (appointments, next_page_token) = Self::serve_page(&actor, page, &query_key)?;
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
        let command = UpsertCommand::parse(request.get_ref(), self.actors.identity_rules())?;
        let outcome = store::upsert(&self.db, &actor, &command, self.clock.now())
            .await
            .map_err(|error| match error {
                UpsertError::PatientMismatch => status::failed_precondition(
                    "EPJ_ID_OF_OTHER_PATIENT",
                    "epj_id",
                    "this EPJ id is already a visit of another patient",
                ),
                UpsertError::Contended => status::contended("appointment"),
                UpsertError::Db(error) => status::from_db(error),
            })?;
        if outcome.created || outcome.changed {
            self.feed.visits_changed([outcome.appointment.patient_id]);
        }
        tracing::info!(
            appointment_id = %outcome.appointment.id,
            created = outcome.created,
            changed = outcome.changed,
            version = outcome.appointment.version,
            "appointment upserted"
        );
        Ok(Response::new(pb::UpsertAppointmentResponse {
            appointment: Some(to_proto(&outcome.appointment, true)?),
            created: outcome.created,
            changed: outcome.changed,
        }))
    }
    #[tracing::instrument(skip_all)]
    async fn cancel_appointment(
        &self,
        request: Request<pb::CancelAppointmentRequest>,
    ) -> Result<Response<pb::CancelAppointmentResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let commands::CancelAppointment {
            appointment_id,
            request_id,
            reason,
        } = message.try_into()?;

        if let homecare_core::Caller::Staff(_) = caller {
            return Err(status::permission_denied(
                "PATIENT_ONLY",
                "only the patient or their proxy cancels here; staff cancel in the EPJ",
            ));
        }
        let (actor, patient_id) = self
            .actors
            .for_patient(
                caller,
                &message.patient_id,
                Need::Scope(Scope::CancelVisits),
            )
            .await?;
        let command = CancelCommand {
            appointment_id,
            reason,
            request_id,
        };
        let outcome = store::cancel(
            &self.db,
            &actor,
            patient_id,
            &command,
            &self.policy,
            self.clock.now(),
            SystemClock.now(),
        )
        .await
        .map_err(|error| match error {
            CancelError::NotFound => status::not_found("appointment"),
            CancelError::Refused(refusal) => refusal_status(refusal),
            CancelError::RequestIdReused => status::request_id_reused(),
            CancelError::Contended => status::contended("appointment"),
            CancelError::Db(error) => status::from_db(error),
        })?;
        if outcome.cancelled_now {
            self.epj_outbox.rows_queued();
            self.feed.visits_changed([patient_id]);
            tracing::info!(appointment_id = %outcome.appointment.id, "appointment cancelled");
        }
        Ok(Response::new(pb::CancelAppointmentResponse {
            appointment: Some(to_proto(&outcome.appointment, false)?),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_appointment_history(
        &self,
        request: Request<pb::ListAppointmentHistoryRequest>,
    ) -> Result<Response<pb::ListAppointmentHistoryResponse>, Status> {
        let message = request.get_ref();
        let caller = Caller::from_request(&request)?;
        let commands::ListAppointmentHistory { appointment_id } = message.try_into()?;
        let (actor, patient_id) = self
            .actors
            .for_patient(caller, &message.patient_id, Need::Scope(Scope::ReadVisits))
            .await?;
        if actor.is_citizen() {
            let history = self.citizens_history(patient_id, appointment_id).await?;
            self.read_log
                .record(
                    &actor,
                    [(patient_id, Some(appointment_id.to_string()))],
                    Action::ReadAppointments,
                    self.clock.now(),
                )
                .await?;
            return Ok(Response::new(pb::ListAppointmentHistoryResponse {
                events: history.to_vec(),
            }));
        }
        let appointment = self.find_one(&actor, patient_id, appointment_id).await?;
        let history = events::history(&self.db, appointment.id)
            .await
            .map_err(status::from_db)?;
        Ok(Response::new(pb::ListAppointmentHistoryResponse {
            events: history
                .iter()
                .map(event_to_proto)
                .collect::<Result<_, _>>()?,
        }))
    }

    type WatchCareUnitChangesStream =
        Pin<Box<dyn Stream<Item = Result<pb::WatchCareUnitChangesResponse, Status>> + Send>>;

    #[tracing::instrument(skip_all)]
    async fn watch_care_unit_changes(
        &self,
        request: Request<pb::WatchCareUnitChangesRequest>,
    ) -> Result<Response<Self::WatchCareUnitChangesStream>, Status> {
        let caller = Caller::from_request(&request)?;
        let actor = Actor::staff(caller)?;
        let message = request.get_ref();
        let commands::WatchCareUnitChanges {
            requested_unit,
            resume,
        } = message.try_into()?;
        let units = units_for(&actor, requested_unit)?;
        let (start, before_start) = match resume {
            Some(position) => (position, Default::default()),
            None => {
                // "From now": changes committed before this call are not sent, also those
                // not yet readable in order because a transaction elsewhere is still open.
                let tail = events::tail(&self.db, &units)
                    .await
                    .map_err(status::from_db)?;
                let before = events::committed_after_tail(&self.db, &units, tail)
                    .await
                    .map_err(status::from_db)?;
                (tail, before)
            }
        };
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        let watcher = ChangeWatcher {
            api: self.clone(),
            actor,
            units,
            sender,
            before_start,
        };
        tokio::spawn(watcher.run(start));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    #[tracing::instrument(skip_all)]
    async fn list_failed_epj_deliveries(
        &self,
        request: Request<pb::ListFailedEpjDeliveriesRequest>,
    ) -> Result<Response<pb::ListFailedEpjDeliveriesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let actor = Actor::staff(caller)?;
        let message = request.get_ref();
        let commands::ListFailedEpjDeliveries {
            requested_unit,
            page_size,
            cursor,
            query_key,
        } = message.try_into()?;
        let units = units_for(&actor, requested_unit)?;
        let (rows, next) = outbox::list_failed(&self.db, &units, cursor, page_size)
            .await
            .map_err(status::from_db)?;
        self.read_log
            .record(
                &actor,
                rows.iter()
                    .map(|row| (row.patient_id, Some(row.appointment_id.to_string()))),
                Action::ReadAppointments,
                self.clock.now(),
            )
            .await?;
        Ok(Response::new(pb::ListFailedEpjDeliveriesResponse {
            deliveries: rows
                .iter()
                .map(delivery_to_proto)
                .collect::<Result<_, _>>()?,
            next_page_token: next
                .map(|cursor| cursor.encode(&query_key))
                .unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn retry_epj_delivery(
        &self,
        request: Request<pb::RetryEpjDeliveryRequest>,
    ) -> Result<Response<pb::RetryEpjDeliveryResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let actor = Actor::staff(caller)?;
        let commands::RetryEpjDelivery { delivery_id } = request.get_ref().try_into()?;
        let (row, visit) = outbox::retry(
            &self.db,
            delivery_id,
            &actor,
            SystemClock.now(),
            self.clock.now(),
        )
        .await
        .map_err(|error| match error {
            RetryError::NotFound => status::not_found("delivery"),
            RetryError::NotFailed => status::failed_precondition(
                "NOT_FAILED",
                "delivery",
                "only a failed delivery can be retried",
            ),
            RetryError::Db(error) => status::from_db(error),
        })?;
        self.epj_outbox.rows_queued();
        self.feed.visits_changed([visit.patient_id]);
        tracing::info!(delivery_id = %row.id, "EPJ delivery retried by staff");
        Ok(Response::new(pb::RetryEpjDeliveryResponse {
            delivery: Some(delivery_to_proto(&row)?),
        }))
    }
}
