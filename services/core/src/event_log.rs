//! Histories as subscribable event logs: a table of events (a visit's history, a proxy's)
//! read in commit order, by streams that follow it live and by durable consumers (the
//! notifier, later the archive hand-off) that keep their place in `event_cursors`.
//!
//! A log's table has `seq` (its own order of insertion) and `tx_order` (on PostgreSQL the id
//! of the inserting transaction; 0 on SQLite, where `seq` is already commit order). On
//! PostgreSQL concurrent transactions take `seq` values in one order and commit in another,
//! so readers read in `(tx_order, seq)` order and only the events of transactions older than
//! every transaction still running: an event then never commits behind a position a reader
//! has already passed.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait as _, SimpleExpr};
use sea_orm::{
    ActiveValue::Set, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait as _,
};

use crate::db::{begin_write, first_row, with_literal_limit};

/// An event of a log: where it stands in commit order.
pub trait LogEvent {
    /// Its `tx_order` and `seq`.
    fn order(&self) -> (i64, i64);
}

/// A log's table: its events and the two ordering columns.
pub trait Log: EntityTrait<Model: LogEvent + sea_orm::FromQueryResult + Send + Sync> {
    /// The `tx_order` column.
    fn tx_order() -> Self::Column;
    /// The `seq` column.
    fn seq() -> Self::Column;
}

/// A place in a log: right after the event with this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    tx_order: i64,
    seq: i64,
}

impl Position {
    /// Right after `event`.
    pub fn after(event: &impl LogEvent) -> Self {
        let (tx_order, seq) = event.order();
        Self { tx_order, seq }
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
fn settled<L: Log>(backend: DatabaseBackend) -> Option<SimpleExpr> {
    (backend == DatabaseBackend::Postgres).then(|| {
        Expr::col(L::tx_order()).lt(Expr::cust(
            "pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
        ))
    })
}

/// After `position` in `(tx_order, seq)` order, as one row comparison: both backends then
/// seek an index in that order to the position and read on from there, where the same
/// condition spelled with OR is read by scanning every later event and sorting them.
fn after<L: Log>(position: Position) -> Condition {
    let columns = Expr::tuple([Expr::col(L::tx_order()), Expr::col(L::seq())]);
    let values = Expr::tuple([Expr::val(position.tx_order), Expr::val(position.seq)]);
    Condition::all().add(columns.gt(values))
}

/// Right after the last settled event of `log` that `filter` lets through; the start when
/// there is none. With an index on the filter's column and the order, one index lookup.
pub async fn last_settled<L: Log, C: ConnectionTrait>(
    db: &C,
    filter: Option<Condition>,
) -> Result<Position, DbErr> {
    let mut select = L::find();
    if let Some(filter) = filter {
        select = select.filter(filter);
    }
    if let Some(settled) = settled::<L>(db.get_database_backend()) {
        select = select.filter(settled);
    }
    let statement = select
        .order_by_desc(L::tx_order())
        .order_by_desc(L::seq())
        .limit(1)
        .build(db.get_database_backend());
    let last = L::find()
        .from_raw_sql(with_literal_limit(statement))
        .all(db)
        .await?;
    Ok(last.first().map(Position::after).unwrap_or_default())
}

/// Up to `limit` settled events of `log` after `position` that `filter` lets through, in
/// commit order.
pub async fn read_after<L: Log, C: ConnectionTrait>(
    db: &C,
    filter: Option<Condition>,
    position: Position,
    limit: u64,
) -> Result<Vec<L::Model>, DbErr> {
    let mut select = L::find().filter(after::<L>(position));
    if let Some(filter) = filter {
        select = select.filter(filter);
    }
    if let Some(settled) = settled::<L>(db.get_database_backend()) {
        select = select.filter(settled);
    }
    let statement = select
        .order_by_asc(L::tx_order())
        .order_by_asc(L::seq())
        .limit(limit)
        .build(db.get_database_backend());
    L::find()
        .from_raw_sql(with_literal_limit(statement))
        .all(db)
        .await
}

/// Up to `limit` events after `position` that `filter` lets through and that are committed
/// but not yet settled (PostgreSQL only; none on SQLite, where committed is settled). A
/// reader that starts "from now" at [`last_settled`] skips these: they were committed
/// before it started, while a transaction elsewhere that may still commit behind them was
/// open.
pub async fn committed_unsettled<L: Log, C: ConnectionTrait>(
    db: &C,
    filter: Condition,
    position: Position,
    limit: u64,
) -> Result<std::collections::HashSet<Position>, DbErr> {
    if settled::<L>(db.get_database_backend()).is_none() {
        return Ok(Default::default());
    }
    let statement = L::find()
        .filter(filter)
        .filter(after::<L>(position))
        .order_by_asc(L::tx_order())
        .order_by_asc(L::seq())
        .limit(limit)
        .build(db.get_database_backend());
    let events = L::find().from_raw_sql(statement).all(db).await?;
    Ok(events.iter().map(Position::after).collect())
}

/// Whether events after `position` that `filter` lets through are committed but not yet
/// readable, because an older transaction was still running (PostgreSQL only). A reader then
/// looks again shortly instead of waiting for the next wake-up.
pub async fn held_back<L: Log, C: ConnectionTrait>(
    db: &C,
    filter: Condition,
    position: Position,
) -> Result<bool, DbErr> {
    if settled::<L>(db.get_database_backend()).is_none() {
        return Ok(false);
    }
    let select = L::find().filter(filter).filter(after::<L>(position));
    Ok(first_row(db, select).await?.is_some())
}

/// The `event_cursors` table: where each durable consumer stands in its log.
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

/// A durable consumer of one log: it is handed every event in commit order, once, and
/// whatever it writes commits together with its cursor, so a crash neither loses nor repeats
/// an event.
#[async_trait::async_trait]
pub trait Consumer: Send + Sync + 'static {
    /// The log it reads.
    type Log: Log;

    /// The consumer's name: the key of its cursor (at most 64 characters), unique across
    /// logs (a notifier of visits and of proxies has two names).
    const NAME: &'static str;

    /// Handles `events` (in commit order) inside `txn`, which then moves the cursor past them.
    /// An error rolls back both: the events are handed over again.
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        events: &[<Self::Log as EntityTrait>::Model],
    ) -> Result<(), DbErr>;

    /// What [`Consumer::handle`] wrote has committed: tell whoever waits for it.
    fn committed(&self) {}
}

/// Hands the next (at most `limit`) events after `consumer`'s cursor to it and moves the
/// cursor past them, in one transaction. Returns how many it handled. A consumer seen for the
/// first time starts at the end of the log: it hears of what happens from now on.
///
/// Consumers of the same name in several processes take turns: the cursor row is locked for
/// the transaction (PostgreSQL; SQLite has one writer at a time).
pub async fn consume<H: Consumer>(
    db: &DatabaseConnection,
    consumer: &H,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let txn = begin_write(db).await?;
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
            let start = last_settled::<H::Log, _>(&*txn, None).await?;
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
    let events = read_after::<H::Log, _>(&*txn, None, position, limit).await?;
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
    consumer.committed();
    Ok(events.len())
}

/// Runs `consumer` until `shutdown`: it hands over every event there is, then waits for
/// `woken` (a topic's changes, made here or told by another process; when its sender is gone,
/// only polling is left), for `poll` (changes no one told of), or for a second after a failure (which is logged; the events are handed over
/// again). `clock` stamps the cursor.
pub fn run_consumer<H: Consumer>(
    db: DatabaseConnection,
    consumer: std::sync::Arc<H>,
    mut woken: tokio::sync::watch::Receiver<u64>,
    clock: std::sync::Arc<dyn crate::Clock>,
    poll: std::time::Duration,
    shutdown: crate::shutdown::Shutdown,
) -> tokio::task::JoinHandle<()> {
    // Events per transaction, at most. A consumer's fixed cost per transaction (a pooled
    // connection, the cursor, then a statement per kind of read and write) is paid per batch:
    // measured with the visit notifier at 64 writers on PostgreSQL, batches capped at 100
    // took about 100 ms each (900 events/s), where uncapped they grew to 450 events in some
    // 300 ms (1,500/s). Few enough that a batch's transaction, which holds back the event
    // logs' readers while it holds an id, stays short.
    const BATCH: u64 = 500;
    // A wake-up can come before its events are readable: they wait behind an older
    // transaction still running (PostgreSQL). Then look again soon, not after `poll`.
    const HELD_BACK_RETRY: std::time::Duration = std::time::Duration::from_millis(20);
    tokio::spawn(async move {
        loop {
            let next_wait = async {
                if consume(&db, &*consumer, BATCH, clock.now()).await? as u64 >= BATCH {
                    return Ok(None);
                }
                let held_back = consumer_held_back::<H>(&db).await?;
                Ok::<_, DbErr>(Some(if held_back { HELD_BACK_RETRY } else { poll }))
            };
            let wait = match next_wait.await {
                Ok(None) => continue,
                Ok(Some(wait)) => wait,
                Err(error) => {
                    tracing::warn!(consumer = H::NAME, %error, "an event consumer failed; trying again");
                    std::time::Duration::from_secs(1)
                }
            };
            if !wait_for_wakeup(&mut woken, wait, &shutdown).await {
                return;
            }
        }
    })
}

/// Whether events after `H`'s cursor are committed but held back behind an older transaction
/// (see [`held_back`]); never on SQLite.
async fn consumer_held_back<H: Consumer>(db: &DatabaseConnection) -> Result<bool, DbErr> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(false);
    }
    let Some(cursor) = cursor::Entity::find_by_id(H::NAME.to_owned())
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let position = Position {
        tx_order: cursor.tx_order,
        seq: cursor.seq,
    };
    held_back::<H::Log, _>(db, Condition::all(), position).await
}

/// Waits until `woken` changes or `wait` passes (with no one left to wake it, only `wait`
/// counts); false when `shutdown` came first.
async fn wait_for_wakeup(
    woken: &mut tokio::sync::watch::Receiver<u64>,
    wait: std::time::Duration,
    shutdown: &crate::shutdown::Shutdown,
) -> bool {
    let woken_up = async {
        if woken.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = woken_up => true,
        () = tokio::time::sleep(wait) => true,
        () = shutdown.wait() => false,
    }
}

/// On PostgreSQL, the oldest transaction still running: every event with a smaller
/// `tx_order` that will ever commit has committed. `None` on SQLite, where all is settled.
async fn settled_horizon<C: ConnectionTrait>(db: &C) -> Result<Option<i64>, DbErr> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(None);
    }
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no snapshot horizon".into()))?;
    Ok(Some(row.try_get::<i64>("", "horizon")?))
}

/// Up to `limit` committed events of `log` after `position`, settled or not, in
/// `(tx_order, seq)` order: what an invalidating reader must hear of at once, even while
/// an older transaction holds back the settled order.
async fn read_committed_after<L: Log, C: ConnectionTrait>(
    db: &C,
    position: Position,
    limit: u64,
) -> Result<Vec<L::Model>, DbErr> {
    let statement = L::find()
        .filter(after::<L>(position))
        .order_by_asc(L::tx_order())
        .order_by_asc(L::seq())
        .limit(limit)
        .build(db.get_database_backend());
    L::find()
        .from_raw_sql(with_literal_limit(statement))
        .all(db)
        .await
}

/// How a follower of a log tells its cache what changed.
pub trait Follower: Send + Sync + 'static {
    /// The log it follows.
    type Log: Log;

    /// Events committed (by any process) after the follower started; an event may be handed
    /// over more than once.
    fn changed(&self, events: &[<Self::Log as EntityTrait>::Model]);

    /// Whether what it keeps can be trusted: faulted while the log cannot be read, and
    /// everything kept before a fault is dropped.
    fn coherence(&self) -> &crate::coherent::Coherence;
}

/// Follows `follower`'s log from its end on, not durably (nothing is stored: a restart
/// begins with an empty cache), until `shutdown`. It reads on each wake-up of `woken`
/// (changes told by other processes), every `poll`, and again soon while events are held
/// back behind an older transaction; every committed event is handed over as soon as it is
/// readable, even before it is settled.
pub fn follow<F: Follower>(
    db: DatabaseConnection,
    follower: std::sync::Arc<F>,
    mut woken: tokio::sync::watch::Receiver<u64>,
    poll: std::time::Duration,
    shutdown: crate::shutdown::Shutdown,
) -> tokio::task::JoinHandle<()> {
    use crate::coherent::Fault;
    const BATCH: u64 = 500;
    const HELD_BACK_RETRY: std::time::Duration = std::time::Duration::from_millis(20);
    const AFTER_FAILURE: std::time::Duration = std::time::Duration::from_secs(1);
    tokio::spawn(async move {
        let mut settled_at: Option<Position> = None;
        loop {
            woken.borrow_and_update();
            let read = async {
                let position = match settled_at {
                    Some(position) => position,
                    None => last_settled::<F::Log, _>(&db, None).await?,
                };
                let horizon = settled_horizon(&db).await?;
                let mut scanned = position;
                let mut settled = position;
                let mut held_back = false;
                loop {
                    let events = read_committed_after::<F::Log, _>(&db, scanned, BATCH).await?;
                    follower.changed(&events);
                    for event in &events {
                        let here = Position::after(event);
                        match horizon {
                            Some(horizon) if event.order().0 >= horizon => held_back = true,
                            _ if !held_back => settled = here,
                            _ => {}
                        }
                        scanned = here;
                    }
                    if (events.len() as u64) < BATCH {
                        return Ok::<_, DbErr>((settled, held_back));
                    }
                }
            };
            let wait = match read.await {
                Ok((settled, held_back)) => {
                    settled_at = Some(settled);
                    if follower.coherence().has(Fault::NotFollowing) {
                        follower.coherence().cleared(Fault::NotFollowing);
                        tracing::info!(
                            log = sea_orm::EntityName::table_name(&F::Log::default()),
                            "following the log again; its cache is in use"
                        );
                    }
                    if held_back { HELD_BACK_RETRY } else { poll }
                }
                Err(error) => {
                    if !follower.coherence().has(Fault::NotFollowing) {
                        tracing::warn!(log = sea_orm::EntityName::table_name(&F::Log::default()), %error, "cannot follow the log; its cache is bypassed until it can");
                    }
                    follower.coherence().fault(Fault::NotFollowing);
                    AFTER_FAILURE
                }
            };
            if !wait_for_wakeup(&mut woken, wait, &shutdown).await {
                return;
            }
        }
    })
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
