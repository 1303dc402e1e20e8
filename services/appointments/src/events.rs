//! Every visit's history, which is also the change stream staff tools follow.
//!
//! An event is written in the same transaction as the change it records. Readers of the
//! stream read in `(tx_order, seq)` order and, on PostgreSQL, only events of transactions
//! older than every transaction still running, so an event never commits behind a position a
//! reader has already passed (see the migration for why).

use base64::Engine as _;
use chrono::{DateTime, Utc};
use homecare_core::db::with_literal_limit;
use homecare_patients::Actor;
use homecare_patients::actor::Via;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait as _,
};
use uuid::Uuid;

use crate::domain::{ActorKind, AppointmentStatus, EventType};
use crate::entity as appointment;

/// The `appointment_events` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "appointment_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub tx_order: i64,
        pub appointment_id: Uuid,
        pub patient_id: Uuid,
        pub care_unit_id: String,
        pub occurred_at: DateTimeUtc,
        /// A [`crate::domain::EventType`] in its stored form.
        pub event_type: String,
        /// A [`crate::domain::ActorKind`] in its stored form.
        pub actor_kind: String,
        pub actor_subject: String,
        pub actor_name: Option<String>,
        pub version: i64,
        /// For a change by the EPJ: the status before, when it changed.
        pub previous_status: Option<String>,
        /// For a change by the EPJ: the window before, when it moved.
        pub previous_window_start: Option<DateTimeUtc>,
        pub previous_window_end: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use entity::{Column, Entity};

/// The `event_cursors` table: where each durable consumer of the history stands.
pub mod cursor {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "event_cursors")]
    pub struct Model {
        /// The consumer's name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub tx_order: i64,
        pub seq: i64,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

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
    let events = visits.iter().map(|visit| entity::ActiveModel {
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
    });
    Entity::insert_many(events)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Records that the EPJ (as `who`) changed a visit from `before` to `after`: `completed` when
/// its status became completed, otherwise `changed`, with the status and window before when
/// they differ, so that a reader can tell a moved visit from a completed or cancelled one.
pub async fn append_change<C: ConnectionTrait>(
    db: &C,
    before: &appointment::Model,
    after: &appointment::Model,
    who: &Who,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let completed = AppointmentStatus::Completed.as_stored();
    let event_type = if after.status == completed && before.status != completed {
        EventType::Completed
    } else {
        EventType::Changed
    };
    let window_moved =
        before.window_start != after.window_start || before.window_end != after.window_end;
    let event = entity::ActiveModel {
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
    };
    Entity::insert(event).exec_without_returning(db).await?;
    Ok(())
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

/// A place in the change stream: right after the event with this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    tx_order: i64,
    seq: i64,
}

impl Position {
    /// Right after `event`.
    pub fn after(event: &entity::Model) -> Self {
        Self {
            tx_order: event.tx_order,
            seq: event.seq,
        }
    }

    /// The opaque token a client sends back to resume here.
    pub fn to_token(self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("v1:{}:{}", self.tx_order, self.seq))
    }

    /// Reads a token made by [`Position::to_token`].
    pub fn from_token(token: &str) -> Result<Self, &'static str> {
        const BAD: &str = "is not a resume token from this service";
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| BAD)?;
        let text = String::from_utf8(bytes).map_err(|_| BAD)?;
        let mut parts = text.split(':');
        let (Some("v1"), Some(tx_order), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(BAD);
        };
        Ok(Self {
            tx_order: tx_order.parse().map_err(|_| BAD)?,
            seq: seq.parse().map_err(|_| BAD)?,
        })
    }
}

/// On PostgreSQL, only transactions that can no longer commit: older than every one still
/// running. SQLite has one writer at a time, so everything committed is safe to read.
fn settled(backend: DatabaseBackend) -> Option<sea_orm::sea_query::SimpleExpr> {
    (backend == DatabaseBackend::Postgres)
        .then(|| Expr::cust("tx_order < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
}

/// Where the stream of `care_units` stands now: a reader starting here sees only later
/// changes. One index lookup per unit.
pub async fn tail<C: ConnectionTrait>(db: &C, care_units: &[String]) -> Result<Position, DbErr> {
    let mut tail = Position::default();
    for unit in care_units {
        tail = tail.max(last_settled(db, Some(unit)).await?);
    }
    Ok(tail)
}

/// Right after the last settled event (of `care_unit`, or of any unit); the start when there
/// is none.
async fn last_settled<C: ConnectionTrait>(
    db: &C,
    care_unit: Option<&str>,
) -> Result<Position, DbErr> {
    let mut select = Entity::find();
    if let Some(unit) = care_unit {
        select = select.filter(Column::CareUnitId.eq(unit));
    }
    if let Some(settled) = settled(db.get_database_backend()) {
        select = select.filter(settled);
    }
    let statement = select
        .order_by_desc(Column::TxOrder)
        .order_by_desc(Column::Seq)
        .limit(1)
        .build(db.get_database_backend());
    let last = Entity::find()
        .from_raw_sql(with_literal_limit(statement))
        .all(db)
        .await?;
    Ok(last.first().map(Position::after).unwrap_or_default())
}

/// Whether events of `care_units` after `position` are committed but not yet readable,
/// because an older transaction was still running (PostgreSQL only). A reader then looks
/// again shortly instead of waiting for the next wake-up.
pub async fn held_back<C: ConnectionTrait>(
    db: &C,
    care_units: &[String],
    position: Position,
) -> Result<bool, DbErr> {
    if settled(db.get_database_backend()).is_none() {
        return Ok(false);
    }
    let select = Entity::find()
        .filter(Column::CareUnitId.is_in(care_units.iter().cloned()))
        .filter(after(position));
    Ok(homecare_core::db::first_row(db, select).await?.is_some())
}

fn after(position: Position) -> Condition {
    Condition::any()
        .add(Column::TxOrder.gt(position.tx_order))
        .add(
            Condition::all()
                .add(Column::TxOrder.eq(position.tx_order))
                .add(Column::Seq.gt(position.seq)),
        )
}

/// Up to `limit` events of `care_units` after `position`, in stream order.
pub async fn read_after<C: ConnectionTrait>(
    db: &C,
    care_units: &[String],
    position: Position,
    limit: u64,
) -> Result<Vec<entity::Model>, DbErr> {
    read_from(db, Some(care_units), position, limit).await
}

/// Up to `limit` events after `position` (of `care_units`, or of every unit), in stream
/// order, only of settled transactions.
async fn read_from<C: ConnectionTrait>(
    db: &C,
    care_units: Option<&[String]>,
    position: Position,
    limit: u64,
) -> Result<Vec<entity::Model>, DbErr> {
    let mut select = Entity::find().filter(after(position));
    if let Some(units) = care_units {
        select = select.filter(Column::CareUnitId.is_in(units.iter().cloned()));
    }
    if let Some(settled) = settled(db.get_database_backend()) {
        select = select.filter(settled);
    }
    let statement = select
        .order_by_asc(Column::TxOrder)
        .order_by_asc(Column::Seq)
        .limit(limit)
        .build(db.get_database_backend());
    Entity::find()
        .from_raw_sql(with_literal_limit(statement))
        .all(db)
        .await
}

/// Where the whole history stands now: a reader starting here sees only later changes.
pub async fn tail_of_all<C: ConnectionTrait>(db: &C) -> Result<Position, DbErr> {
    last_settled(db, None).await
}

/// A durable consumer of the history (the notifier, later the archive hand-off): it is
/// handed every event in commit order, once, and whatever it writes commits together with
/// its cursor, so a crash neither loses nor repeats an event.
#[async_trait::async_trait]
pub trait EventConsumer: Send + Sync + 'static {
    /// The consumer's name: the key of its cursor (at most 64 characters).
    const NAME: &'static str;

    /// Handles `events` (in commit order) inside `txn`, which then moves the cursor past them.
    /// An error rolls back both: the events are handed over again.
    async fn handle(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        events: &[entity::Model],
    ) -> Result<(), DbErr>;
}

/// Hands the next (at most `limit`) events after `consumer`'s cursor to it and moves the
/// cursor past them, in one transaction. Returns how many it handled. A consumer seen for the
/// first time starts at the end of the history: it hears of what happens from now on.
///
/// Consumers of the same name in several processes take turns: the cursor row is locked for
/// the transaction (PostgreSQL; SQLite has one writer at a time).
pub async fn consume<H: EventConsumer>(
    db: &sea_orm::DatabaseConnection,
    consumer: &H,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    use sea_orm::QuerySelect as _;
    let txn = homecare_core::db::begin_write(db).await?;
    let stored = cursor::Entity::find_by_id(H::NAME.to_owned())
        .lock_exclusive()
        .one(&*txn)
        .await?;
    let position = match stored {
        Some(row) => Position {
            tx_order: row.tx_order,
            seq: row.seq,
        },
        None => {
            let start = tail_of_all(&*txn).await?;
            cursor::Entity::insert(cursor::ActiveModel {
                name: Set(H::NAME.to_owned()),
                tx_order: Set(start.tx_order),
                seq: Set(start.seq),
                updated_at: Set(now),
            })
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(cursor::Column::Name)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&*txn)
            .await?;
            txn.commit().await?;
            // Another process may have made it first: take turns from the stored row.
            return Box::pin(consume(db, consumer, limit, now)).await;
        }
    };
    let events = read_from(&*txn, None, position, limit).await?;
    let Some(last) = events.last() else {
        txn.rollback().await?;
        return Ok(0);
    };
    consumer.handle(&txn, &events).await?;
    let next = Position::after(last);
    cursor::Entity::update(cursor::ActiveModel {
        name: Set(H::NAME.to_owned()),
        tx_order: Set(next.tx_order),
        seq: Set(next.seq),
        updated_at: Set(now),
    })
    .exec(&*txn)
    .await?;
    txn.commit().await?;
    Ok(events.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_their_token_and_bad_tokens_are_refused() {
        let position = Position {
            tx_order: 7_654_321,
            seq: 42,
        };
        assert_eq!(Position::from_token(&position.to_token()), Ok(position));
        for bad in ["", "djE6MTo", "not base64!", "djI6MToy"] {
            assert!(Position::from_token(bad).is_err(), "{bad}");
        }
    }
}
