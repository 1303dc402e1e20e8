//! Queries over the appointments table. Plain functions over a connection.

use chrono::{DateTime, Utc};
use homecare_core::db::{begin_write, first_row, insert_for_each, with_literal_limit};
use homecare_core::identifier::CareUnitId;
use homecare_core::paging::Cursor;
use homecare_patients::access_log::{self, Action};
use homecare_patients::{Actor, store as patients};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{
    Alias, CommonTableExpression, InsertStatement, OnConflict, SubQueryStatement, WithClause,
    WithQuery,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, FromQueryResult as _, Insert,
    IntoActiveModel as _, QueryFilter, QueryOrder, QuerySelect, QueryTrait as _, UpdateMany,
};
use uuid::Uuid;

use crate::cancellation::{self, CancellationPolicy, Refusal, VisitFacts};
use crate::domain::{AppointmentStatus, EventType, ServiceType};
use crate::domain::{UpsertCommand, VisitPlan, VisitWindow};
use crate::entity::{self, Column, Entity};
use crate::events::{self, Who};
use crate::outbox;
use crate::visit_state::VisitState;

/// What an upsert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertOutcome {
    /// The visit as stored after the call.
    pub appointment: entity::Model,
    /// Whether the call created it.
    pub created: bool,
    /// Whether the call changed its plan.
    pub changed: bool,
}

/// Why an upsert was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpsertError {
    /// The EPJ id is already a visit of another patient.
    #[error("the visit belongs to another patient")]
    PatientMismatch,
    /// Another writer changed the visit while this one held it: cannot happen while the
    /// database keeps its locks (see [`upsert`]); the caller may try again.
    #[error("the visit was changed by another writer while held")]
    Contended,
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Creates or updates the visit with the command's EPJ id, and logs the write.
///
/// The EPJ mostly changes visits that exist (a day's plan, then each visit completed), and
/// mostly one writer at a time, so that is the short way: the visit is read with its
/// patient's identity number, outside a transaction, and the change written by
/// [`write_change`], guarded by the version read. Only a new visit takes a transaction that
/// may register its patient. A writer that loses a race with another (parallel workers
/// syncing a day's plan, a retry racing the original) decides again holding the visit: its
/// row lock on PostgreSQL, the writer turn on SQLite, so that it waits for the others
/// instead of retrying blindly, and cannot lose again.
pub async fn upsert(
    db: &DatabaseConnection,
    actor: &Actor,
    command: &UpsertCommand,
    now: DateTime<Utc>,
) -> Result<UpsertOutcome, UpsertError> {
    if let Some(outcome) = upsert_unlocked(db, actor, command, now).await? {
        return Ok(outcome);
    }
    upsert_holding(db, actor, command, now).await
}

/// One optimistic try of [`upsert`]; `None` when another writer got there first.
async fn upsert_unlocked(
    db: &DatabaseConnection,
    actor: &Actor,
    command: &UpsertCommand,
    now: DateTime<Utc>,
) -> Result<Option<UpsertOutcome>, UpsertError> {
    Ok(match with_owner(db, &command.epj_id, false).await? {
        Some((_, owner)) if owner != command.patient.expose() => {
            return Err(UpsertError::PatientMismatch);
        }
        Some((current, _)) => match replanned(&current, &command.plan, now)? {
            None => Some(UpsertOutcome {
                appointment: current,
                created: false,
                changed: false,
            }),
            Some(updated) => write_change(db, actor, &current, &updated, now)
                .await?
                .then_some(UpsertOutcome {
                    appointment: updated,
                    created: false,
                    changed: true,
                }),
        },
        None => {
            let txn = begin_write(db).await?;
            let created = create_in(&*txn, actor, command, now).await?;
            if created.is_some() {
                txn.commit().await?;
            } else {
                txn.rollback().await?;
            }
            created
        }
    })
}

/// [`upsert`] holding the visit from its read to its write.
async fn upsert_holding(
    db: &DatabaseConnection,
    actor: &Actor,
    command: &UpsertCommand,
    now: DateTime<Utc>,
) -> Result<UpsertOutcome, UpsertError> {
    let txn = begin_write(db).await?;
    // Twice at most: a visit that a concurrent writer inserted first (its INSERT waited for
    // that writer's commit) is there to be read and locked the second time.
    for _ in 0..2 {
        let outcome = match with_owner(&*txn, &command.epj_id, true).await? {
            Some((_, owner)) if owner != command.patient.expose() => {
                return Err(UpsertError::PatientMismatch);
            }
            Some((current, _)) => match replanned(&current, &command.plan, now)? {
                None => UpsertOutcome {
                    appointment: current,
                    created: false,
                    changed: false,
                },
                Some(updated) => {
                    if !write_change(&*txn, actor, &current, &updated, now).await? {
                        return Err(UpsertError::Contended);
                    }
                    UpsertOutcome {
                        appointment: updated,
                        created: false,
                        changed: true,
                    }
                }
            },
            None => match create_in(&*txn, actor, command, now).await? {
                Some(outcome) => outcome,
                None => continue,
            },
        };
        txn.commit().await?;
        return Ok(outcome);
    }
    Err(UpsertError::Contended)
}

/// The visit with `epj_id` and its patient's identity number, in one query.
/// With `lock`, the row stays locked until the transaction `db` ends (PostgreSQL; on SQLite
/// the writer turn the transaction holds does that).
async fn with_owner<C: ConnectionTrait>(
    db: &C,
    epj_id: &str,
    lock: bool,
) -> Result<Option<(entity::Model, String)>, DbErr> {
    const OWNER: &str = "owner_national_id";
    let mut select = Entity::find()
        .filter(Column::EpjId.eq(epj_id))
        .expr_as(patients::national_id_by((Entity, Column::PatientId)), OWNER);
    if lock {
        select = select.lock_exclusive();
    }
    let Some(row) = first_row(db, select).await? else {
        return Ok(None);
    };
    let owner = row.try_get("", OWNER)?;
    let visit = entity::rows::visits(std::slice::from_ref(&row))?
        .pop()
        .ok_or_else(|| DbErr::Custom("a visit's row read as none".into()))?;
    Ok(Some((visit, owner)))
}

/// Creates the visit of `command` in `txn`, registering its patient if need be; `None`,
/// having written nothing, when a concurrent upsert created it first.
async fn create_in<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    command: &UpsertCommand,
    now: DateTime<Utc>,
) -> Result<Option<UpsertOutcome>, DbErr> {
    let patient_id = patients::find_or_register(txn, &command.patient, now).await?;
    let Some(outcome) = insert(txn, command, patient_id, now).await? else {
        return Ok(None);
    };
    let visit = &outcome.appointment;
    events::append(txn, visit, EventType::Created, &Who::of(actor), now).await?;
    access_log::record(
        txn,
        actor,
        patient_id,
        Action::WriteAppointment,
        Some(visit.id.to_string()),
        now,
    )
    .await?;
    Ok(Some(outcome))
}

/// Stores `updated` over `current` with its event and access-log entry, all or nothing;
/// false, storing nothing, when another writer changed the visit since `current` was read.
async fn write_change<C: Writer>(
    db: &C,
    actor: &Actor,
    current: &entity::Model,
    updated: &entity::Model,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let entry = access_log::entry(
        actor,
        updated.patient_id,
        Action::WriteAppointment,
        Some(updated.id.to_string()),
        now,
    );
    let backend = db.get_database_backend();
    db.write_visit(
        Entity::update_many().set(updated.clone().into_active_model().reset_all()),
        current,
        Dependent::of(
            events::change(current, updated, &Who::of(actor), now),
            backend,
        ),
        entry
            .map(|entry| Dependent::of(entry, backend))
            .into_iter()
            .collect(),
    )
    .await
}

/// A row stored with a change of a visit, only if the change is stored: on PostgreSQL
/// inserted once for each row the visit's UPDATE returns, elsewhere inserted in the change's
/// transaction (see [`write_visit`]).
struct Dependent(InsertStatement);

impl Dependent {
    fn of<A: ActiveModelTrait>(row: A, backend: DbBackend) -> Self {
        Self(if backend == DbBackend::Postgres {
            insert_for_each(&row, CHANGED)
        } else {
            Insert::one(row).into_query()
        })
    }
}

/// The name the visit's UPDATE goes by in [`write_visit`]'s statement.
const CHANGED: &str = "changed";

/// Where a change of a visit is written: the pool, which gives it a transaction of its own
/// where one is needed, or a transaction already open.
trait Writer: ConnectionTrait {
    /// Applies `update` to `current` if its version is still the one read, and stores
    /// `event` and `also` with it, all or nothing; false, storing nothing, when another writer
    /// changed the visit first (the caller judges again on what that writer left). Writes
    /// with [`write_visit_in`], in a transaction of its own where `self` is none.
    async fn write_visit(
        &self,
        update: UpdateMany<Entity>,
        current: &entity::Model,
        event: Dependent,
        also: Vec<Dependent>,
    ) -> Result<bool, DbErr>;
}

impl Writer for DatabaseConnection {
    async fn write_visit(
        &self,
        update: UpdateMany<Entity>,
        current: &entity::Model,
        event: Dependent,
        also: Vec<Dependent>,
    ) -> Result<bool, DbErr> {
        if self.get_database_backend() == DbBackend::Postgres {
            return write_visit_in(self, update, current, event, also).await;
        }
        let txn = begin_write(self).await?;
        if !write_visit_in(&*txn, update, current, event, also).await? {
            txn.rollback().await?;
            return Ok(false);
        }
        txn.commit().await?;
        Ok(true)
    }
}

impl Writer for DatabaseTransaction {
    async fn write_visit(
        &self,
        update: UpdateMany<Entity>,
        current: &entity::Model,
        event: Dependent,
        also: Vec<Dependent>,
    ) -> Result<bool, DbErr> {
        write_visit_in(self, update, current, event, also).await
    }
}

/// [`Writer::write_visit`] on `db`, which on SQLite must be a write transaction (it runs several
/// statements, and leaves rolling back to the caller when the visit changed meanwhile).
///
/// On PostgreSQL this is one statement, `WITH changed AS (UPDATE ... RETURNING id), ...
/// INSERT ... SELECT ... FROM changed`: one round trip where a transaction of the same writes
/// took five or six, on the paths every completed and every cancelled visit takes.
async fn write_visit_in<C: ConnectionTrait>(
    db: &C,
    update: UpdateMany<Entity>,
    current: &entity::Model,
    event: Dependent,
    also: Vec<Dependent>,
) -> Result<bool, DbErr> {
    let update = update
        .filter(Column::Id.eq(current.id))
        .filter(Column::Version.eq(current.version));
    if db.get_database_backend() == DbBackend::Postgres {
        // Built in place: sea-query's chained `to_owned()` and `InsertStatement::with` clone
        // the whole statement at each step, which showed in the profile of the EPJ's
        // completions.
        let mut with = WithClause::new();
        let mut changed = update.into_query();
        changed.returning_col(Column::Id);
        with.cte(named_query(changed, CHANGED));
        for (n, row) in also.into_iter().enumerate() {
            with.cte(named_query(row.0, &format!("also_{n}")));
        }
        let mut statement = WithQuery::new();
        statement.with_clause(with).query(event.0);
        return Ok(db.execute(&statement).await?.rows_affected() == 1);
    }
    if update.exec(db).await?.rows_affected == 0 {
        return Ok(false);
    }
    for row in std::iter::once(event).chain(also) {
        db.execute(&row.0).await?;
    }
    Ok(true)
}

/// `query` as the common table expression `name`.
fn named_query(query: impl Into<SubQueryStatement>, name: &str) -> CommonTableExpression {
    let mut cte = CommonTableExpression::new();
    cte.query(query).table_name(Alias::new(name));
    cte
}

/// Inserts a new visit; `None` when a concurrent upsert inserted the same EPJ id first.
async fn insert<C: ConnectionTrait>(
    db: &C,
    command: &UpsertCommand,
    patient_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<UpsertOutcome>, DbErr> {
    let plan = &command.plan;
    let model = entity::Model {
        id: homecare_core::ids::new_id(now),
        epj_id: command.epj_id.clone(),
        patient_id,
        care_unit_id: plan.care_unit_id.as_str().to_owned(),
        window_start: plan.window.start(),
        window_end: plan.window.end(),
        service_type: plan.service_type.as_stored().to_owned(),
        status: plan.status.as_stored().to_owned(),
        citizen_cancellable: plan.citizen_cancellable,
        epj_version_id: plan.epj_version_id.clone(),
        version: 1,
        created_at: now,
        updated_at: now,
        cancellation_state: None,
        cancellation_reason: None,
        cancellation_request_id: None,
        cancellation_request_fingerprint: None,
        cancellation_requested_at: None,
        cancellation_requested_by: None,
        cancellation_requested_by_name: None,
        cancellation_failure_reason: None,
    };
    let active: entity::ActiveModel = model.clone().into();
    let result = Entity::insert(active)
        .on_conflict(OnConflict::column(Column::EpjId).do_nothing().to_owned())
        .exec_without_returning(db)
        .await;
    match result {
        Ok(0) | Err(DbErr::RecordNotInserted) => Ok(None),
        Ok(_) => Ok(Some(UpsertOutcome {
            appointment: model,
            created: true,
            changed: true,
        })),
        Err(error) => Err(error),
    }
}

/// `current` with `plan` applied (its version one higher); `None` when `plan` is what it
/// already has.
fn replanned(
    current: &entity::Model,
    plan: &VisitPlan,
    now: DateTime<Utc>,
) -> Result<Option<entity::Model>, DbErr> {
    let before = VisitState::of(current).map_err(|e| DbErr::Custom(e.to_string()))?;
    let after = before.replanned(plan.status);
    let mut plan = plan.clone();
    plan.status = after.status;
    let plan = &plan;
    if plan_of(current).as_ref() == Ok(plan) {
        return Ok(None);
    }
    let mut updated = entity::Model {
        care_unit_id: plan.care_unit_id.as_str().to_owned(),
        window_start: plan.window.start(),
        window_end: plan.window.end(),
        service_type: plan.service_type.as_stored().to_owned(),
        status: plan.status.as_stored().to_owned(),
        citizen_cancellable: plan.citizen_cancellable,
        epj_version_id: plan.epj_version_id.clone(),
        version: current.version + 1,
        updated_at: now,
        ..current.clone()
    };
    if before.cancellation.is_some() && after.cancellation.is_none() {
        clear_cancellation(&mut updated);
    }
    Ok(Some(updated))
}

fn clear_cancellation(visit: &mut entity::Model) {
    visit.cancellation_state = None;
    visit.cancellation_reason = None;
    visit.cancellation_request_id = None;
    visit.cancellation_request_fingerprint = None;
    visit.cancellation_requested_at = None;
    visit.cancellation_requested_by = None;
    visit.cancellation_requested_by_name = None;
    visit.cancellation_failure_reason = None;
}

/// A validated cancellation.
#[derive(Debug, Clone)]
pub struct CancelCommand {
    /// The visit.
    pub appointment_id: Uuid,
    /// The patient's reason.
    pub reason: Option<crate::domain::CancellationReason>,
    /// The caller's id for this cancellation.
    pub request_id: homecare_core::identifier::RequestId,
}

impl CancelCommand {
    /// What this cancellation asks for, by whom: a repeat of its request id must match it.
    fn fingerprint(&self, actor: &Actor) -> String {
        homecare_core::idempotency::fingerprint([
            self.appointment_id.to_string().as_str(),
            self.reason.as_ref().map_or("", |reason| reason.as_str()),
            actor.kind().as_stored(),
            actor.subject().as_str(),
        ])
    }
}

/// Why a cancellation was refused.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// No such visit of this patient (or not one the caller may see).
    #[error("appointment not found")]
    NotFound,
    /// The rules say no.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The request id was used before for another cancellation (another visit or reason, or
    /// another person).
    #[error("the request id was used for another request")]
    RequestIdReused,
    /// Another writer changed the visit while this one held it: cannot happen while the
    /// database keeps its locks (see [`cancel`]); the caller may try again.
    #[error("the visit was changed by another writer while held")]
    Contended,
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What a cancellation did.
#[derive(Debug, Clone)]
pub struct CancelOutcome {
    /// The visit afterwards.
    pub appointment: entity::Model,
    /// False when this repeated an earlier request with the same id.
    pub cancelled_now: bool,
}

/// Cancels a visit of `patient_id` for `actor`: the visit, its history entry, the access log
/// and the EPJ outbox row commit together, or nothing does.
///
/// Like [`upsert`]: read outside a transaction, written guarded by the version read; a
/// cancellation that lost a race with another writer of the visit decides again holding it.
#[allow(clippy::too_many_arguments)]
pub async fn cancel(
    db: &DatabaseConnection,
    actor: &Actor,
    patient_id: Uuid,
    command: &CancelCommand,
    policy: &CancellationPolicy,
    now: DateTime<Utc>,
    machine_now: DateTime<Utc>,
) -> Result<CancelOutcome, CancelError> {
    let cancellation = Cancellation {
        actor,
        patient_id,
        command,
        fingerprint: command.fingerprint(actor),
        policy,
        now,
        machine_now,
    };
    if let Some(outcome) = cancellation.try_on(db, false).await? {
        return Ok(outcome);
    }
    let txn = begin_write(db).await?;
    let outcome = cancellation
        .try_on(&*txn, true)
        .await?
        .ok_or(CancelError::Contended)?;
    txn.commit().await?;
    Ok(outcome)
}

/// One cancellation, as [`cancel`] tries it.
struct Cancellation<'a> {
    actor: &'a Actor,
    patient_id: Uuid,
    command: &'a CancelCommand,
    fingerprint: String,
    policy: &'a CancellationPolicy,
    now: DateTime<Utc>,
    machine_now: DateTime<Utc>,
}

impl Cancellation<'_> {
    /// Reads the visit (locked, with `lock`, until `db`'s transaction ends), judges and
    /// writes; `None` when another writer changed the visit between the read and the write.
    async fn try_on<C: Writer>(
        &self,
        db: &C,
        lock: bool,
    ) -> Result<Option<CancelOutcome>, CancelError> {
        let (actor, command, now) = (self.actor, self.command, self.now);
        let who = Who::of(actor);
        let visit = patients_visit(db, self.patient_id, command.appointment_id, lock)
            .await?
            .filter(|visit| actor.may_see_care_unit(&visit.care_unit_id))
            .ok_or(CancelError::NotFound)?;
        if visit.cancellation_request_id.as_deref() == Some(command.request_id.as_str()) {
            if !homecare_core::idempotency::is_repeat(
                visit.cancellation_request_fingerprint.as_deref(),
                &self.fingerprint,
            ) {
                return Err(CancelError::RequestIdReused);
            }
            return Ok(Some(CancelOutcome {
                appointment: visit,
                cancelled_now: false,
            }));
        }
        let service_type = ServiceType::from_stored(&visit.service_type)
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        let status = AppointmentStatus::from_stored(&visit.status)
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        let facts = VisitFacts {
            status,
            window_start: visit.window_start,
            citizen_cancellable: visit.citizen_cancellable,
            care_unit: &visit.care_unit_id,
            service_type,
        };
        cancellation::check(facts, self.policy, now)?;
        let requested = VisitState::of(&visit)
            .map_err(|e| DbErr::Custom(e.to_string()))?
            .requested()
            .ok_or(CancelError::Refused(Refusal::NotPlanned))?;

        let cancelled = entity::Model {
            status: requested.status.as_stored().to_owned(),
            cancellation_state: requested
                .cancellation
                .map(|state| state.as_stored().to_owned()),
            cancellation_reason: command
                .reason
                .as_ref()
                .map(|reason| reason.as_str().to_owned()),
            cancellation_request_id: Some(command.request_id.as_str().to_owned()),
            cancellation_request_fingerprint: Some(self.fingerprint.clone()),
            cancellation_requested_at: Some(now),
            cancellation_requested_by: Some(who.kind.as_stored().to_owned()),
            cancellation_requested_by_name: who.name.clone(),
            cancellation_failure_reason: None,
            version: visit.version + 1,
            updated_at: now,
            ..visit.clone()
        };
        // Only the columns that change: a smaller statement on the hottest write path.
        let changes = entity::ActiveModel {
            status: Set(cancelled.status.clone()),
            cancellation_state: Set(cancelled.cancellation_state.clone()),
            cancellation_reason: Set(cancelled.cancellation_reason.clone()),
            cancellation_request_id: Set(cancelled.cancellation_request_id.clone()),
            cancellation_request_fingerprint: Set(cancelled
                .cancellation_request_fingerprint
                .clone()),
            cancellation_requested_at: Set(cancelled.cancellation_requested_at),
            cancellation_requested_by: Set(cancelled.cancellation_requested_by.clone()),
            cancellation_requested_by_name: Set(cancelled.cancellation_requested_by_name.clone()),
            cancellation_failure_reason: Set(None),
            version: Set(cancelled.version),
            updated_at: Set(now),
            ..Default::default()
        };
        let delivery = outbox::cancellation(
            &cancelled,
            command
                .reason
                .as_ref()
                .map(|reason| reason.as_str().to_owned()),
            command.request_id.as_str(),
            &who,
            self.machine_now,
        );
        let entry = access_log::entry(
            actor,
            self.patient_id,
            Action::WriteAppointment,
            Some(visit.id.to_string()),
            now,
        );
        let backend = db.get_database_backend();
        let written = db
            .write_visit(
                Entity::update_many().set(changes),
                &visit,
                Dependent::of(
                    events::event_of(&cancelled, EventType::CancellationRequested, &who, now),
                    backend,
                ),
                std::iter::once(Dependent::of(delivery, backend))
                    .chain(entry.map(|entry| Dependent::of(entry, backend)))
                    .collect(),
            )
            .await
            .map_err(|error| match error.sql_err() {
                // Another visit of the patient was cancelled with this request id (unique per
                // patient in the outbox; nothing else this writes is unique but by a new id).
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => CancelError::RequestIdReused,
                _ => CancelError::Db(error),
            })?;
        // Not written: the EPJ or another request changed it meanwhile.
        Ok(written.then_some(CancelOutcome {
            appointment: cancelled,
            cancelled_now: true,
        }))
    }
}

/// The visits with these ids.
pub async fn find_many<C: ConnectionTrait>(
    db: &C,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<Vec<entity::Model>, DbErr> {
    Entity::find().filter(Column::Id.is_in(ids)).all(db).await
}

/// The plan a stored visit carries.
fn plan_of(model: &entity::Model) -> Result<VisitPlan, DbErr> {
    let corrupt = |error: &dyn std::fmt::Display| DbErr::Custom(error.to_string());
    Ok(VisitPlan {
        care_unit_id: CareUnitId::stored(model.care_unit_id.clone()),
        window: VisitWindow::new(model.window_start, model.window_end).map_err(|e| corrupt(&e))?,
        service_type: ServiceType::from_stored(&model.service_type).map_err(|e| corrupt(&e))?,
        status: AppointmentStatus::from_stored(&model.status).map_err(|e| corrupt(&e))?,
        citizen_cancellable: model.citizen_cancellable,
        epj_version_id: model.epj_version_id.clone(),
    })
}

/// A page of visits and whether more follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The visits, ordered by window start, then id.
    pub appointments: Vec<entity::Model>,
    /// The cursor for the next page, when there is one.
    pub next: Option<Cursor>,
}

/// Which visits of one patient to list.
#[derive(Debug, Clone)]
pub struct PatientQuery {
    /// The patient.
    pub patient_id: Uuid,
    /// Visits whose window ends at or after this.
    pub ends_at_or_after: DateTime<Utc>,
    /// Visits whose window starts before this, if bounded.
    pub starts_before: Option<DateTime<Utc>>,
    /// Only visits of these care units (staff see their units' visits only); `None` for all.
    pub care_units: Option<Vec<CareUnitId>>,
}

/// One page of a patient's visits.
pub async fn list_for_patient<C: ConnectionTrait>(
    db: &C,
    query: PatientQuery,
    cursor: Option<Cursor>,
    page_size: u64,
) -> Result<Page, DbErr> {
    let mut condition = Condition::all()
        .add(Column::PatientId.eq(query.patient_id))
        .add(Column::WindowEnd.gte(query.ends_at_or_after));
    if let Some(before) = query.starts_before {
        condition = condition.add(Column::WindowStart.lt(before));
    }
    if let Some(units) = query.care_units {
        condition = condition.add(Column::CareUnitId.is_in(units));
    }
    page(db, condition, cursor, page_size).await
}

/// One page of the visits of `care_units` whose window starts in [`from`, `until`).
pub async fn list_for_care_units<C: ConnectionTrait>(
    db: &C,
    care_units: &[CareUnitId],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    cursor: Option<Cursor>,
    page_size: u64,
) -> Result<Page, DbErr> {
    let condition = Condition::all()
        .add(Column::CareUnitId.is_in(care_units.iter().cloned()))
        .add(Column::WindowStart.gte(from))
        .add(Column::WindowStart.lt(until));
    page(db, condition, cursor, page_size).await
}

async fn page<C: ConnectionTrait>(
    db: &C,
    condition: Condition,
    cursor: Option<Cursor>,
    page_size: u64,
) -> Result<Page, DbErr> {
    let mut select = Entity::find().filter(condition);
    if let Some(cursor) = cursor {
        select = select.filter(
            Condition::any()
                .add(Column::WindowStart.gt(cursor.after))
                .add(
                    Condition::all()
                        .add(Column::WindowStart.eq(cursor.after))
                        .add(Column::Id.gt(cursor.id)),
                ),
        );
    }
    // One row more than asked tells whether another page follows.
    let statement = select
        .order_by_asc(Column::WindowStart)
        .order_by_asc(Column::Id)
        .limit(page_size + 1)
        .build(db.get_database_backend());
    let rows = db.query_all_raw(with_literal_limit(statement)).await?;
    let mut appointments = entity::rows::visits(&rows)?;
    let has_more = appointments.len() as u64 > page_size;
    appointments.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
    let next = match appointments.last() {
        Some(last) if has_more => Some(Cursor {
            after: last.window_start,
            id: last.id,
        }),
        _ => None,
    };
    Ok(Page { appointments, next })
}

/// The visit with `id` of patient `patient_id`, if both match.
pub async fn find_for_patient<C: ConnectionTrait>(
    db: &C,
    patient_id: Uuid,
    id: Uuid,
) -> Result<Option<entity::Model>, DbErr> {
    patients_visit(db, patient_id, id, false).await
}

/// [`find_for_patient`]; with `lock`, the row stays locked until the transaction `db` ends.
async fn patients_visit<C: ConnectionTrait>(
    db: &C,
    patient_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<Option<entity::Model>, DbErr> {
    let mut select = Entity::find_by_id(id).filter(Column::PatientId.eq(patient_id));
    if lock {
        select = select.lock_exclusive();
    }
    first_row(db, select)
        .await?
        .map(|row| entity::Model::from_query_result(&row, ""))
        .transpose()
}
