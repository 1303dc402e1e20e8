//! Each step of a thread (started, replied, read by staff, reassigned, closed) as an event,
//! written in the step's transaction. The table is an event log
//! ([`homecare_core::event_log`]): the staff inbox stream and the notifier read it in commit
//! order.

use chrono::{DateTime, Utc};
use homecare_core::identifier::CareUnitId;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use crate::entity::{event, thread};
use crate::participant::Participant;
use crate::thread::StepType;

/// Records that `by` took `step` in `thread` (as it is after the step).
pub async fn append<C: ConnectionTrait>(
    db: &C,
    thread: &thread::Model,
    step: StepType,
    message_id: Option<Uuid>,
    from_unit: Option<String>,
    by: &Participant,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    event::Entity::insert(event::ActiveModel {
        seq: NotSet,
        tx_order: NotSet,
        thread_id: Set(thread.id),
        patient_id: Set(thread.patient_id),
        care_unit_id: Set(thread.care_unit_id.clone()),
        from_care_unit_id: Set(from_unit),
        message_id: Set(message_id),
        event_type: Set(step.as_stored().to_owned()),
        actor_kind: Set(by.author_kind().as_stored().to_owned()),
        actor_subject: Set(by.actor.subject()),
        actor_name: Set(by.actor.name().map(str::to_owned)),
        occurred_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The steps of `thread_id`, oldest first.
pub async fn of_thread<C: ConnectionTrait>(
    db: &C,
    thread_id: Uuid,
) -> Result<Vec<event::Model>, DbErr> {
    event::Entity::find()
        .filter(event::Column::ThreadId.eq(thread_id))
        .order_by_asc(event::Column::Seq)
        .all(db)
        .await
}

/// The events a stream of `units` follows: those of threads in them, and those that moved a
/// thread out of them.
pub fn of_units(units: &[CareUnitId]) -> Condition {
    Condition::any()
        .add(event::Column::CareUnitId.is_in(units.iter().cloned()))
        .add(event::Column::FromCareUnitId.is_in(units.iter().cloned()))
}
