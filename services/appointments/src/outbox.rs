//! The EPJ outbox: cancellations waiting to be written to the EPJ, and what the EPJ's answer
//! does to the visit.
//!
//! A row is inserted in the same transaction as the cancellation it carries, so a
//! cancellation the service accepted is never without its row. The generic outbox
//! (`homecare_outbox`) claims, sends through [`EpjSink`], retries, parks and lists the rows;
//! this module says how a row is sent and records each outcome together with its effect on
//! the visit.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use homecare_core::Clock;
use homecare_core::db::begin_write;
use homecare_core::identifier::CareUnitId;
use homecare_core::paging::Cursor;
use homecare_epj::{Cancellation, Epj, EpjError, RequestedBy};
use homecare_outbox::{Attempt, OutboxRow, RowState, Sink, store as outbox_store};
use homecare_patients::Actor;
use homecare_patients::access_log::{self, Action};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, IntoActiveModel as _, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use crate::domain::{ActorKind, EventType};
use crate::entity as appointment;
use crate::events::{self, Who};
use crate::feed::ChangeFeed;
use crate::visit_state::VisitState;

pub use crate::entity::epj_outbox as entity;

use entity::{Column, Entity};

impl OutboxRow for entity::Model {
    fn id(&self) -> Uuid {
        self.id
    }

    fn attempts(&self) -> i32 {
        self.attempts
    }

    fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    fn lease_until(&self) -> Option<DateTime<Utc>> {
        self.lease_until
    }
}

const CANCEL: &str = "cancel";

/// The row that queues the cancellation of `visit` for the EPJ, to store with the visit's
/// change.
pub fn cancellation(
    visit: &appointment::Model,
    reason: Option<String>,
    request_id: &str,
    who: &Who,
    now: DateTime<Utc>,
) -> entity::ActiveModel {
    entity::ActiveModel::from(entity::Model {
        id: homecare_core::ids::new_id(now),
        appointment_id: visit.id,
        epj_id: visit.epj_id.clone(),
        patient_id: visit.patient_id,
        care_unit_id: visit.care_unit_id.clone(),
        operation: CANCEL.to_owned(),
        reason,
        request_id: Some(request_id.to_owned()),
        requested_by_kind: Some(who.kind.as_stored().to_owned()),
        requested_by_name: who.name.clone(),
        state: RowState::Pending.as_stored().to_owned(),
        attempts: 0,
        next_attempt_at: now,
        lease_until: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    })
}

/// The worker as the access log records it.
fn delivery_worker() -> Actor {
    Actor {
        via: homecare_patients::actor::Via::System {
            subject: events::DELIVERY_WORKER.to_owned(),
        },
    }
}

/// Writes cancellations to the EPJ, and applies the EPJ's answers to the visits.
pub struct EpjSink {
    epj: Arc<dyn Epj>,
    business_clock: Arc<dyn Clock>,
    feed: ChangeFeed,
}

impl EpjSink {
    /// A sink writing to `epj`; history entries are stamped by `business_clock`, and stream
    /// readers woken on `feed` when visits changed.
    pub fn new(epj: Arc<dyn Epj>, business_clock: Arc<dyn Clock>, feed: ChangeFeed) -> Self {
        Self {
            epj,
            business_clock,
            feed,
        }
    }
}

#[async_trait::async_trait]
impl Sink for EpjSink {
    type Entity = Entity;
    type Row = entity::Model;
    type Batch = ();

    const NAME: &'static str = "epj";

    async fn prepare(&self, _rows: &[entity::Model]) {}

    async fn send(&self, row: &entity::Model, (): &()) -> Attempt {
        let cancellation = Cancellation {
            epj_id: row.epj_id.clone(),
            reason: row.reason.clone(),
            idempotency_key: row.id.to_string(),
            requested_by: match (row.requested_by_kind.as_deref(), &row.requested_by_name) {
                (Some(kind), Some(name)) if kind == ActorKind::Proxy.as_stored() => {
                    RequestedBy::Proxy { name: name.clone() }
                }
                _ => RequestedBy::Patient,
            },
        };
        match self.epj.cancel_appointment(&cancellation).await {
            // The EPJ's new version is not kept: every attempt reads the current one first,
            // and the EPJ sends it with its next upsert.
            Ok(_registered) => Attempt::Delivered,
            Err(EpjError::Refused { reason }) => Attempt::Refused { reason },
            Err(EpjError::Temporary {
                reason,
                retry_after,
            }) => Attempt::Temporary {
                reason,
                retry_after,
            },
        }
    }

    async fn on_delivered(
        &self,
        txn: &DatabaseTransaction,
        rows: &[entity::Model],
    ) -> Result<usize, DbErr> {
        confirm_cancellations(txn, rows, self.business_clock.now()).await
    }

    async fn on_parked(
        &self,
        txn: &DatabaseTransaction,
        row: &entity::Model,
        error: &str,
        refused: bool,
    ) -> Result<bool, DbErr> {
        fail_cancellation(txn, row, error, refused, self.business_clock.now()).await
    }

    fn changed(&self, rows: &[entity::Model]) {
        self.feed
            .visits_changed(rows.iter().map(|row| row.patient_id));
    }
}

/// The EPJ took `rows`: their visits' cancellations are confirmed, with three statements for
/// the whole batch (the common case, kept cheap so the worker keeps up).
async fn confirm_cancellations<C: ConnectionTrait>(
    txn: &C,
    rows: &[entity::Model],
    business_now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    // Only the cancellations these rows carry, still on their way; a later replan by the EPJ
    // stands. Set-based for speed; the transition is the state machine's.
    let pending = VisitState::PENDING_EPJ;
    let (Some(from), Some(to)) = (
        pending.cancellation,
        pending.confirmed().and_then(|state| state.cancellation),
    ) else {
        unreachable!("a cancellation on its way can be confirmed");
    };
    let visits = appointment::Entity::update_many()
        .col_expr(
            appointment::Column::CancellationState,
            to.as_stored().into(),
        )
        .col_expr(
            appointment::Column::Version,
            sea_orm::sea_query::ExprTrait::add(Expr::col(appointment::Column::Version), 1),
        )
        .col_expr(appointment::Column::UpdatedAt, business_now.into())
        .filter(appointment::Column::Id.is_in(rows.iter().map(|row| row.appointment_id)))
        .filter(appointment::Column::CancellationState.eq(from.as_stored()))
        .exec_with_returning(txn)
        .await?;
    events::append_many(
        txn,
        &visits,
        EventType::CancellationConfirmed,
        &Who::of(&delivery_worker()),
        business_now,
    )
    .await?;
    access_log::record_many(
        txn,
        &delivery_worker(),
        visits
            .iter()
            .map(|visit| (visit.patient_id, Some(visit.id.to_string()))),
        Action::WriteAppointment,
        business_now,
    )
    .await?;
    Ok(visits.len())
}

/// The row's cancellation could not be registered: marks its visit's cancellation failed
/// (planned again when the EPJ refused it); true when the visit changed.
async fn fail_cancellation<C: ConnectionTrait>(
    txn: &C,
    row: &entity::Model,
    error: &str,
    refused: bool,
    business_now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    // Locked: an EPJ replan that commits meanwhile must not be overwritten.
    let visit = appointment::Entity::find_by_id(row.appointment_id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("appointment of outbox row".into()))?;
    let state = VisitState::of(&visit).map_err(|e| DbErr::Custom(e.to_string()))?;
    let failed = if refused {
        state.refused()
    } else {
        state.gave_up()
    };
    // Only the cancellation this row carries, still on its way; a later replan by the EPJ
    // stands.
    let Some(failed) = failed else {
        return Ok(false);
    };
    let updated = appointment::Model {
        status: failed.status.as_stored().to_owned(),
        cancellation_state: failed
            .cancellation
            .map(|state| state.as_stored().to_owned()),
        cancellation_failure_reason: Some(error.to_owned()),
        version: visit.version + 1,
        updated_at: business_now,
        ..visit
    };
    updated
        .clone()
        .into_active_model()
        .reset_all()
        .update(txn)
        .await?;
    events::append(
        txn,
        &updated,
        EventType::CancellationFailed,
        &Who::of(&delivery_worker()),
        business_now,
    )
    .await?;
    access_log::record(
        txn,
        &delivery_worker(),
        updated.patient_id,
        Action::WriteAppointment,
        Some(updated.id.to_string()),
        business_now,
    )
    .await?;
    Ok(true)
}

/// One page of failed deliveries of `care_units`, oldest first.
pub async fn list_failed<C: ConnectionTrait>(
    db: &C,
    care_units: &[CareUnitId],
    cursor: Option<Cursor>,
    page_size: u64,
) -> Result<(Vec<entity::Model>, Option<Cursor>), DbErr> {
    outbox_store::parked_page::<Entity, C>(
        db,
        Condition::all().add(Column::CareUnitId.is_in(care_units.iter().cloned())),
        cursor,
        page_size,
    )
    .await
}

/// Why a retry was refused.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No such failed delivery in the caller's units.
    #[error("no such failed delivery")]
    NotFound,
    /// It is not failed (pending or delivered).
    #[error("only a failed delivery can be retried")]
    NotFailed,
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Puts a failed delivery back in the queue with a fresh count of attempts, and the visit
/// back to cancelled-and-waiting. Only staff of the row's care unit find it.
pub async fn retry(
    db: &DatabaseConnection,
    id: Uuid,
    actor: &Actor,
    machine_now: DateTime<Utc>,
    business_now: DateTime<Utc>,
) -> Result<(entity::Model, appointment::Model), RetryError> {
    let txn = begin_write(db).await?;
    outbox_store::find::<Entity, _>(&*txn, id)
        .await?
        .filter(|row| actor.may_see_care_unit(&row.care_unit_id))
        .ok_or(RetryError::NotFound)?;
    let row = outbox_store::unpark::<Entity, _>(&*txn, id, machine_now)
        .await?
        .ok_or(RetryError::NotFailed)?;
    // Locked: an EPJ replan that commits meanwhile must not be overwritten.
    let visit = appointment::Entity::find_by_id(row.appointment_id)
        .lock_exclusive()
        .one(&*txn)
        .await?
        .ok_or(RetryError::NotFound)?;
    let retried = VisitState::of(&visit)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .retried();
    let visit = appointment::Model {
        status: retried.status.as_stored().to_owned(),
        cancellation_state: retried
            .cancellation
            .map(|state| state.as_stored().to_owned()),
        cancellation_failure_reason: None,
        version: visit.version + 1,
        updated_at: business_now,
        ..visit
    };
    visit
        .clone()
        .into_active_model()
        .reset_all()
        .update(&*txn)
        .await?;
    events::append(
        &*txn,
        &visit,
        EventType::CancellationRetried,
        &Who::of(actor),
        business_now,
    )
    .await?;
    access_log::record(
        &*txn,
        actor,
        visit.patient_id,
        Action::WriteAppointment,
        Some(visit.id.to_string()),
        business_now,
    )
    .await?;
    txn.commit().await?;
    Ok((row, visit))
}
