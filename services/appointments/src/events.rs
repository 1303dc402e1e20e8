//! Every visit's history, which is also the change stream staff tools follow.
//!
//! An event is written in the same transaction as the change it records. The table is an
//! event log ([`homecare_core::event_log`]): streams and durable consumers read it in commit
//! order.

use chrono::{DateTime, Utc};
use homecare_core::db::with_literal_limit;
pub use homecare_core::event_log::Position;
use homecare_core::event_log::{self, Log, LogEvent};
use homecare_core::identifier::CareUnitId;
use homecare_patients::Actor;
use homecare_patients::actor::Via;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait as _,
};
use uuid::Uuid;

use crate::domain::{ActorKind, AppointmentStatus, EventType};
use crate::entity as appointment;

pub use crate::entity::appointment_event as entity;

use entity::{Column, Entity};

/// The subject id recorded for the delivery worker.
pub const DELIVERY_WORKER: &str = "epj-delivery";

/// Who did something, as a history entry records it: never an identity number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// In what role.
    pub kind: ActorKind,
    /// The staff subject, system account or proxy id; empty for the patient.
    pub subject: String,
    /// The proxy holder's or staff member's name, when known.
    pub name: Option<String>,
}

impl Who {
    /// How `actor` is recorded.
    pub fn of(actor: &Actor) -> Who {
        let kind = match actor.via {
            Via::SelfService => ActorKind::Patient,
            Via::Proxy { .. } => ActorKind::Proxy,
            Via::Staff { .. } => ActorKind::Staff,
            Via::System { .. } => ActorKind::System,
        };
        Who {
            kind,
            subject: actor.subject(),
            name: actor.name().map(str::to_owned),
        }
    }
}

/// Records that `who` did `event_type` to `visit`, as it is after the change.
pub async fn append<C: ConnectionTrait>(
    db: &C,
    visit: &appointment::Model,
    event_type: EventType,
    who: &Who,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    append_many(db, std::slice::from_ref(visit), event_type, who, now).await
}

/// Records that `who` did `event_type` to each of `visits`, with one statement.
pub async fn append_many<C: ConnectionTrait>(
    db: &C,
    visits: &[appointment::Model],
    event_type: EventType,
    who: &Who,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if visits.is_empty() {
        return Ok(());
    }
    let events = visits
        .iter()
        .map(|visit| event_of(visit, event_type, who, now));
    Entity::insert_many(events)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The event [`append`] stores.
pub fn event_of(
    visit: &appointment::Model,
    event_type: EventType,
    who: &Who,
    now: DateTime<Utc>,
) -> entity::ActiveModel {
    entity::ActiveModel {
        seq: NotSet,
        tx_order: NotSet,
        appointment_id: Set(visit.id),
        patient_id: Set(visit.patient_id),
        care_unit_id: Set(visit.care_unit_id.clone()),
        occurred_at: Set(now),
        event_type: Set(event_type.as_stored().to_owned()),
        actor_kind: Set(who.kind.as_stored().to_owned()),
        actor_subject: Set(who.subject.clone()),
        actor_name: Set(who.name.clone()),
        version: Set(visit.version),
        previous_status: Set(None),
        previous_window_start: Set(None),
        previous_window_end: Set(None),
    }
}

/// The event recording that the EPJ (as `who`) changed a visit from `before` to `after`:
/// `completed` when its status became completed, otherwise `changed`, with the status and
/// window before when they differ, so that a reader can tell a moved visit from a completed
/// or cancelled one.
pub fn change(
    before: &appointment::Model,
    after: &appointment::Model,
    who: &Who,
    now: DateTime<Utc>,
) -> entity::ActiveModel {
    let completed = AppointmentStatus::Completed.as_stored();
    let event_type = if after.status == completed && before.status != completed {
        EventType::Completed
    } else {
        EventType::Changed
    };
    let window_moved =
        before.window_start != after.window_start || before.window_end != after.window_end;
    entity::ActiveModel {
        seq: NotSet,
        tx_order: NotSet,
        appointment_id: Set(after.id),
        patient_id: Set(after.patient_id),
        care_unit_id: Set(after.care_unit_id.clone()),
        occurred_at: Set(now),
        event_type: Set(event_type.as_stored().to_owned()),
        actor_kind: Set(who.kind.as_stored().to_owned()),
        actor_subject: Set(who.subject.clone()),
        actor_name: Set(who.name.clone()),
        version: Set(after.version),
        previous_status: Set((before.status != after.status).then(|| before.status.clone())),
        previous_window_start: Set(window_moved.then_some(before.window_start)),
        previous_window_end: Set(window_moved.then_some(before.window_end)),
    }
}

/// The most entries [`history`] returns.
pub const MAX_HISTORY: u64 = 500;

/// The latest [`MAX_HISTORY`] entries of a visit's history, oldest first.
pub async fn history<C: ConnectionTrait>(
    db: &C,
    appointment_id: Uuid,
) -> Result<Vec<entity::Model>, DbErr> {
    let statement = Entity::find()
        .filter(Column::AppointmentId.eq(appointment_id))
        .order_by_desc(Column::Seq)
        .limit(MAX_HISTORY)
        .build(db.get_database_backend());
    let mut events = Entity::find()
        .from_raw_sql(with_literal_limit(statement))
        .all(db)
        .await?;
    events.reverse();
    Ok(events)
}

impl LogEvent for entity::Model {
    fn order(&self) -> (i64, i64) {
        (self.tx_order, self.seq)
    }
}

impl Log for Entity {
    fn tx_order() -> Column {
        Column::TxOrder
    }

    fn seq() -> Column {
        Column::Seq
    }
}

fn of_units(care_units: &[CareUnitId]) -> Condition {
    Condition::all().add(Column::CareUnitId.is_in(care_units.iter().cloned()))
}

/// Where the stream of `care_units` stands now: a reader starting here sees only later
/// changes. One index lookup per unit.
pub async fn tail<C: ConnectionTrait>(
    db: &C,
    care_units: &[CareUnitId],
) -> Result<Position, DbErr> {
    let mut tail = Position::default();
    for unit in care_units {
        let of_unit = Condition::all().add(Column::CareUnitId.eq(unit.as_str()));
        tail = tail.max(event_log::last_settled::<Entity, _>(db, Some(of_unit)).await?);
    }
    Ok(tail)
}

/// Events of `care_units` after `tail` committed before now but not yet readable (see
/// [`event_log::committed_unsettled`]): a stream starting at `tail` skips them.
pub async fn committed_after_tail<C: ConnectionTrait>(
    db: &C,
    care_units: &[CareUnitId],
    tail: Position,
) -> Result<std::collections::HashSet<Position>, DbErr> {
    event_log::committed_unsettled::<Entity, _>(db, of_units(care_units), tail, 1_000).await
}

/// Whether events of `care_units` after `position` are committed but not yet readable (see
/// [`event_log::held_back`]).
pub async fn held_back<C: ConnectionTrait>(
    db: &C,
    care_units: &[CareUnitId],
    position: Position,
) -> Result<bool, DbErr> {
    event_log::held_back::<Entity, _>(db, of_units(care_units), position).await
}

/// Up to `limit` events of `care_units` after `position`, in stream order.
pub async fn read_after<C: ConnectionTrait>(
    db: &C,
    care_units: &[CareUnitId],
    position: Position,
    limit: u64,
) -> Result<Vec<entity::Model>, DbErr> {
    event_log::read_after::<Entity, _>(db, Some(of_units(care_units)), position, limit).await
}
