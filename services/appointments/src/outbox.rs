//! The EPJ outbox: cancellations waiting to be written to the EPJ.
//!
//! A row is inserted in the same transaction as the cancellation it carries, so a
//! cancellation the service accepted is never without its row. Workers claim due rows with a
//! lease (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so several processes never claim the
//! same row), and record each outcome together with its effect on the visit.
//!
//! Outbox times are the machine's clock, not the business clock: they schedule work.

use chrono::{DateTime, Utc};
use homecare_core::db::begin_write;
use homecare_core::paging::Cursor;
use homecare_patients::Actor;
use homecare_patients::access_log::{self, Action};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend,
    DatabaseConnection, DbErr, EntityTrait, IntoActiveModel as _, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait as _, Statement,
};
use uuid::Uuid;

use crate::domain::{AppointmentStatus, CancellationState, DeliveryState, EventType};
use crate::entity as appointment;
use crate::events::{self, Who};

/// The `epj_outbox` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "epj_outbox")]
    pub struct Model {
        /// Also the idempotency key sent to the EPJ.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub appointment_id: Uuid,
        /// The visit's id in the EPJ (it never changes).
        pub epj_id: String,
        pub patient_id: Uuid,
        pub care_unit_id: String,
        /// What to do in the EPJ; only "cancel" so far.
        pub operation: String,
        /// The patient's reason, sent with the cancellation.
        pub reason: Option<String>,
        /// Who cancelled: an [`crate::domain::ActorKind`] in its stored form.
        pub requested_by_kind: Option<String>,
        /// The proxy holder's name, when a proxy cancelled.
        pub requested_by_name: Option<String>,
        /// A [`crate::domain::DeliveryState`] in its stored form.
        pub state: String,
        /// Attempts started, including one in flight.
        pub attempts: i32,
        pub next_attempt_at: DateTimeUtc,
        /// Until when a worker holds the row.
        pub lease_until: Option<DateTimeUtc>,
        pub last_error: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use entity::{Column, Entity};

const CANCEL: &str = "cancel";

/// Queues the cancellation of `visit` for the EPJ, inside the caller's transaction.
pub async fn enqueue_cancellation<C: ConnectionTrait>(
    db: &C,
    visit: &appointment::Model,
    reason: Option<String>,
    who: &Who,
    now: DateTime<Utc>,
) -> Result<Uuid, DbErr> {
    let id = Uuid::now_v7();
    let row = entity::Model {
        id,
        appointment_id: visit.id,
        epj_id: visit.epj_id.clone(),
        patient_id: visit.patient_id,
        care_unit_id: visit.care_unit_id.clone(),
        operation: CANCEL.to_owned(),
        reason,
        requested_by_kind: Some(who.kind.as_stored().to_owned()),
        requested_by_name: who.name.clone(),
        state: DeliveryState::Pending.as_stored().to_owned(),
        attempts: 0,
        next_attempt_at: now,
        lease_until: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    };
    Entity::insert(entity::ActiveModel::from(row))
        .exec_without_returning(db)
        .await?;
    Ok(id)
}

/// Takes up to `limit` due rows for one attempt each, holding them until `lease_until`.
///
/// Each claimed row's `attempts` already counts the attempt about to be made, so a worker that
/// dies mid-attempt still uses one up.
pub async fn claim(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<entity::Model>, DbErr> {
    let backend = db.get_database_backend();
    // Named, not `*`: with `RETURNING *`, sqlx's SQLite driver panicked (column index out
    // of bounds) once a later migration had added columns to this table.
    let columns = <Column as sea_orm::Iterable>::iter()
        .map(|column| sea_orm::IdenStatic::as_str(&column))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = match backend {
        DatabaseBackend::Postgres => format!(
            "UPDATE epj_outbox SET lease_until = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id IN (SELECT id FROM epj_outbox \
                 WHERE state = 'pending' AND next_attempt_at <= $2 \
                 AND (lease_until IS NULL OR lease_until <= $2) \
                 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING {columns}"
        ),
        // One writer at a time: the statement alone is atomic.
        _ => format!(
            "UPDATE epj_outbox SET lease_until = ?1, attempts = attempts + 1, updated_at = ?2 \
             WHERE id IN (SELECT id FROM epj_outbox \
                 WHERE state = 'pending' AND next_attempt_at <= ?2 \
                 AND (lease_until IS NULL OR lease_until <= ?2) \
                 ORDER BY next_attempt_at LIMIT ?3) \
             RETURNING {columns}"
        ),
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let statement = Statement::from_sql_and_values(
        backend,
        sql,
        [lease_until.into(), now.into(), limit.into()],
    );
    Entity::find().from_raw_sql(statement).all(db).await
}

/// The earliest instant at which some pending row can be claimed, if any is pending: for
/// each row the later of its next attempt and its lease, the earliest of those over all rows.
///
/// Not merely the first row by `next_attempt_at`: when that row is leased by a process that
/// died, every other due row would wait for the dead lease.
pub async fn next_due(db: &DatabaseConnection) -> Result<Option<DateTime<Utc>>, DbErr> {
    let due: Option<Option<DateTime<Utc>>> = Entity::find()
        .select_only()
        .expr_as(
            Expr::cust(
                "MIN(CASE WHEN lease_until > next_attempt_at THEN lease_until \
                 ELSE next_attempt_at END)",
            ),
            "due",
        )
        .filter(Column::State.eq(DeliveryState::Pending.as_stored()))
        .into_tuple()
        .one(db)
        .await?;
    Ok(due.flatten())
}

/// The worker as the access log records it.
fn delivery_worker() -> Actor {
    Actor {
        via: homecare_patients::actor::Via::System {
            subject: events::DELIVERY_WORKER.to_owned(),
        },
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The EPJ registered it.
    Delivered,
    /// Try again at `next_attempt_at`.
    Retry {
        /// What went wrong.
        error: String,
        /// When to try next.
        next_attempt_at: DateTime<Utc>,
    },
    /// Give up: the EPJ refused, or attempts ran out.
    Failed {
        /// Why, for staff.
        error: String,
        /// True when the EPJ refused: the visit goes ahead as the EPJ has it, so it is planned
        /// again here. When attempts ran out the EPJ never answered; the patient's
        /// cancellation stands and staff must register it by hand.
        refused: bool,
    },
}

/// Records how the attempts on a batch of rows ended, and what that means for their visits,
/// in one transaction (one commit for the batch, not one per row). Returns how many visits
/// changed (so stream readers should be woken).
pub async fn record_batch(
    db: &DatabaseConnection,
    outcomes: Vec<(entity::Model, Outcome)>,
    machine_now: DateTime<Utc>,
    business_now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let mut delivered = Vec::new();
    let mut retries = Vec::new();
    let mut failures = Vec::new();
    for (row, outcome) in outcomes {
        match outcome {
            Outcome::Delivered => delivered.push(row.id),
            Outcome::Retry {
                error,
                next_attempt_at,
            } => retries.push((row, error, next_attempt_at)),
            Outcome::Failed { error, refused } => failures.push((row, error, refused)),
        }
    }
    let txn = begin_write(db).await?;
    let mut changed = record_delivered(&*txn, delivered, machine_now, business_now).await?;
    for (row, error, next_attempt_at) in retries {
        record_retry(&*txn, &row, error, next_attempt_at, machine_now).await?;
    }
    for (row, error, refused) in failures {
        let failed = record_failure(&*txn, &row, error, refused, machine_now, business_now).await?;
        changed += usize::from(failed);
    }
    txn.commit().await?;
    Ok(changed)
}

/// Marks the rows `ids` delivered and their visits' cancellations confirmed, with three
/// statements for the whole batch: the common case, kept cheap so the worker keeps up.
async fn record_delivered<C: ConnectionTrait>(
    txn: &C,
    ids: impl IntoIterator<Item = Uuid>,
    machine_now: DateTime<Utc>,
    business_now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let ids: Vec<Uuid> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(0);
    }
    let rows = Entity::update_many()
        .col_expr(Column::State, DeliveryState::Delivered.as_stored().into())
        .col_expr(Column::LeaseUntil, Option::<DateTime<Utc>>::None.into())
        .col_expr(Column::UpdatedAt, machine_now.into())
        .filter(Column::Id.is_in(ids))
        // A row whose lease ran out and was taken over is recorded by its new holder.
        .filter(Column::State.eq(DeliveryState::Pending.as_stored()))
        .exec_with_returning(txn)
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    // Only the cancellations these rows carry; a later replan by the EPJ stands.
    let visits = appointment::Entity::update_many()
        .col_expr(
            appointment::Column::CancellationState,
            CancellationState::Confirmed.as_stored().into(),
        )
        .col_expr(
            appointment::Column::Version,
            sea_orm::sea_query::ExprTrait::add(Expr::col(appointment::Column::Version), 1),
        )
        .col_expr(appointment::Column::UpdatedAt, business_now.into())
        .filter(appointment::Column::Id.is_in(rows.iter().map(|row| row.appointment_id)))
        .filter(
            appointment::Column::CancellationState.eq(CancellationState::PendingEpj.as_stored()),
        )
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

/// Schedules the next attempt on a row whose attempt failed for now.
async fn record_retry<C: ConnectionTrait>(
    txn: &C,
    row: &entity::Model,
    error: String,
    next_attempt_at: DateTime<Utc>,
    machine_now: DateTime<Utc>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::LeaseUntil, Option::<DateTime<Utc>>::None.into())
        .col_expr(Column::UpdatedAt, machine_now.into())
        .col_expr(Column::NextAttemptAt, next_attempt_at.into())
        .col_expr(Column::LastError, error.into())
        .filter(Column::Id.eq(row.id))
        .filter(Column::State.eq(DeliveryState::Pending.as_stored()))
        .exec(txn)
        .await?;
    Ok(())
}

/// Fails a row for good and marks its visit's cancellation failed (planned again when the
/// EPJ refused it); true when the visit changed.
async fn record_failure<C: ConnectionTrait>(
    txn: &C,
    row: &entity::Model,
    error: String,
    refused: bool,
    machine_now: DateTime<Utc>,
    business_now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let failed = Entity::update_many()
        .col_expr(Column::State, DeliveryState::Failed.as_stored().into())
        .col_expr(Column::LeaseUntil, Option::<DateTime<Utc>>::None.into())
        .col_expr(Column::UpdatedAt, machine_now.into())
        .col_expr(Column::LastError, error.clone().into())
        .filter(Column::Id.eq(row.id))
        .filter(Column::State.eq(DeliveryState::Pending.as_stored()))
        .exec(txn)
        .await?;
    if failed.rows_affected == 0 {
        // Not pending any more (a lease that ran out and was taken over); nothing to record.
        return Ok(false);
    }
    let visit = appointment::Entity::find_by_id(row.appointment_id)
        .one(txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("appointment of outbox row".into()))?;
    // Only the cancellation this row carries; a later replan by the EPJ stands.
    if visit.cancellation_state.as_deref() != Some(CancellationState::PendingEpj.as_stored()) {
        return Ok(false);
    }
    let mut updated = appointment::Model {
        cancellation_state: Some(CancellationState::Failed.as_stored().to_owned()),
        cancellation_failure_reason: Some(error),
        version: visit.version + 1,
        updated_at: business_now,
        ..visit
    };
    if refused {
        updated.status = AppointmentStatus::Planned.as_stored().to_owned();
    }
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
    care_units: &[String],
    cursor: Option<Cursor>,
    page_size: u64,
) -> Result<(Vec<entity::Model>, Option<Cursor>), DbErr> {
    let mut select = Entity::find()
        .filter(Column::CareUnitId.is_in(care_units.iter().cloned()))
        .filter(Column::State.eq(DeliveryState::Failed.as_stored()));
    if let Some(cursor) = cursor {
        select = select.filter(
            Condition::any()
                .add(Column::CreatedAt.gt(cursor.after))
                .add(
                    Condition::all()
                        .add(Column::CreatedAt.eq(cursor.after))
                        .add(Column::Id.gt(cursor.id)),
                ),
        );
    }
    let statement = select
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .limit(page_size + 1)
        .build(db.get_database_backend());
    let mut rows = Entity::find()
        .from_raw_sql(homecare_core::db::with_literal_limit(statement))
        .all(db)
        .await?;
    let has_more = rows.len() as u64 > page_size;
    rows.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
    let next = match rows.last() {
        Some(last) if has_more => Some(Cursor {
            after: last.created_at,
            id: last.id,
        }),
        _ => None,
    };
    Ok((rows, next))
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
    let row = Entity::find_by_id(id)
        .one(&*txn)
        .await?
        .filter(|row| actor.may_see_care_unit(&row.care_unit_id))
        .ok_or(RetryError::NotFound)?;
    if row.state != DeliveryState::Failed.as_stored() {
        return Err(RetryError::NotFailed);
    }
    let row = entity::Model {
        state: DeliveryState::Pending.as_stored().to_owned(),
        attempts: 0,
        next_attempt_at: machine_now,
        lease_until: None,
        updated_at: machine_now,
        ..row
    };
    row.clone()
        .into_active_model()
        .reset_all()
        .update(&*txn)
        .await?;
    let visit = appointment::Entity::find_by_id(row.appointment_id)
        .one(&*txn)
        .await?
        .ok_or(RetryError::NotFound)?;
    let visit = appointment::Model {
        status: AppointmentStatus::Cancelled.as_stored().to_owned(),
        cancellation_state: Some(CancellationState::PendingEpj.as_stored().to_owned()),
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
