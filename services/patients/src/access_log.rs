//! The access log: every read or change of a patient's data by anyone but the patient.
//!
//! A change writes its entry in its own transaction ([`record`]), so a change is never
//! without its entry. Reads go through [`ReadLog`], which stores each read as one journal
//! row naming every patient it touched, the rows of concurrent reads together in one
//! transaction, and answers each read only once its row is stored: no read is served
//! unlogged, and a busy server pays one commit for many reads. The journal is spread into
//! one entry per patient later, many reads per transaction ([`spread`]), and always before
//! the log is read ([`page`]): a staff read of a unit's day touches 300 patients, and
//! writing their 300 index entries in the reader's commit cost 300 scattered pages there.

use chrono::{DateTime, Utc};
use homecare_core::db::{begin_write, insert_in_chunks};
use homecare_core::paging::Cursor;
use homecare_core::status;
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use uuid::Uuid;

use crate::actor::Actor;
use crate::entity::access_log::{self, Column, Entity};
use crate::entity::access_log_journal;

/// What was done to a patient's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Visits were listed or read.
    ReadAppointments,
    /// A visit was created or changed.
    WriteAppointment,
    /// The patient's proxies were listed.
    ReadProxies,
    /// A proxy was made, changed or ended.
    WriteProxies,
    /// The access log itself was read.
    ReadAccessLog,
    /// The notices sent about the patient were listed.
    ReadNotifications,
    /// A failed notice about the patient was sent again.
    WriteNotifications,
    /// Message threads, messages or attachments about the patient were read.
    ReadMessages,
    /// A message about the patient was written, or a thread moved or closed.
    WriteMessages,
}

// The stored name is also what the patient's access log shows.
homecare_core::stored_enum!(Action, "access log action", {
    ReadAppointments => "appointments.read";
    WriteAppointment => "appointments.write";
    ReadProxies => "proxies.read";
    WriteProxies => "proxies.write";
    ReadAccessLog => "access_log.read";
    ReadNotifications => "notifications.read";
    WriteNotifications => "notifications.write";
    ReadMessages => "messages.read";
    WriteMessages => "messages.write";
});

/// Records that `actor` did `action` to `patient_id`'s data, unless the actor is the patient.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    actor: &Actor,
    patient_id: Uuid,
    action: Action,
    resource_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    record_many(db, actor, [(patient_id, resource_id)], action, now).await
}

/// Like [`record`] for several patients or records at once, in one statement.
pub async fn record_many<C: ConnectionTrait>(
    db: &C,
    actor: &Actor,
    touched: impl IntoIterator<Item = (Uuid, Option<String>)>,
    action: Action,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    insert_in_chunks(db, entries(actor, touched, action, now)).await
}

/// The rows recording that `actor` did `action` to `touched`; none when the actor is the
/// patient.
fn entries(
    actor: &Actor,
    touched: impl IntoIterator<Item = (Uuid, Option<String>)>,
    action: Action,
    now: DateTime<Utc>,
) -> Vec<access_log::ActiveModel> {
    if actor.via == crate::actor::Via::SelfService {
        return Vec::new();
    }
    let (kind, subject, name, proxy_id) = (
        actor.kind().as_stored(),
        actor.subject(),
        actor.name().map(str::to_owned),
        actor.proxy_id(),
    );
    touched
        .into_iter()
        .map(|(patient_id, resource_id)| access_log::ActiveModel {
            id: Set(homecare_core::ids::new_id(now)),
            patient_id: Set(patient_id),
            occurred_at: Set(now),
            actor_kind: Set(kind.to_owned()),
            actor_subject: Set(subject.clone()),
            actor_name: Set(name.clone()),
            proxy_id: Set(proxy_id),
            action: Set(action.as_stored().to_owned()),
            resource_id: Set(resource_id),
        })
        .collect()
}

/// `touched` with one entry per patient, in first-seen order, keeping the record's id only
/// when it was the patient's one record.
fn per_patient(
    touched: impl IntoIterator<Item = (Uuid, Option<String>)>,
) -> Vec<(Uuid, Option<String>)> {
    let mut merged: Vec<(Uuid, Option<String>)> = Vec::new();
    for (patient_id, resource_id) in touched {
        match merged.iter_mut().find(|(seen, _)| *seen == patient_id) {
            Some((_, kept)) => *kept = None,
            None => merged.push((patient_id, resource_id)),
        }
    }
    merged
}

/// Reads waiting for their entries to be stored, at most: beyond this, readers wait for room.
const QUEUE: usize = 4_096;

/// Writes the entries of reads, many per transaction (see the module documentation).
#[derive(Debug, Clone)]
pub struct ReadLog {
    queue: mpsc::Sender<Pending>,
    /// Held by every handle (never read): the spreader stops once the last is dropped.
    _alive: std::sync::Arc<()>,
}

struct Pending {
    read: Read,
    stored: oneshot::Sender<Result<(), String>>,
}

/// A read to store: who did what to which patients, when.
struct Read {
    /// Time-ordered; its entries' ids follow it (see [`entry_id`]).
    id: Uuid,
    occurred_at: DateTime<Utc>,
    actor_kind: String,
    actor_subject: String,
    actor_name: Option<String>,
    proxy_id: Option<Uuid>,
    action: String,
    /// One per patient (see [`per_patient`]).
    touched: Vec<(Uuid, Option<String>)>,
}

/// Reads that touched at least this many patients are stored as one journal row, spread
/// later; fewer as their entries at once. The journal saves a read of a unit's day 300
/// scattered index pages in the reader's commit, but for a read of one patient (a proxy
/// holder's list) it only adds work: a journal row written, deleted and written again as
/// the entry, where the entry alone is one row.
const JOURNAL_FROM: usize = 8;

impl Read {
    fn goes_through_journal(&self) -> bool {
        self.touched.len() >= JOURNAL_FROM
    }

    /// Its entries, with the ids spreading its journal row would give them.
    fn entries(&self) -> impl Iterator<Item = access_log::ActiveModel> + '_ {
        self.touched
            .iter()
            .zip(0u64..)
            .map(|((patient_id, resource_id), n)| access_log::ActiveModel {
                id: Set(entry_id(self.id, n)),
                patient_id: Set(*patient_id),
                occurred_at: Set(self.occurred_at),
                actor_kind: Set(self.actor_kind.clone()),
                actor_subject: Set(self.actor_subject.clone()),
                actor_name: Set(self.actor_name.clone()),
                proxy_id: Set(self.proxy_id),
                action: Set(self.action.clone()),
                resource_id: Set(resource_id.clone()),
            })
    }

    fn journal_row(&self) -> access_log_journal::ActiveModel {
        access_log_journal::ActiveModel {
            id: Set(self.id),
            occurred_at: Set(self.occurred_at),
            actor_kind: Set(self.actor_kind.clone()),
            actor_subject: Set(self.actor_subject.clone()),
            actor_name: Set(self.actor_name.clone()),
            proxy_id: Set(self.proxy_id),
            action: Set(self.action.clone()),
            touched: Set(self.touched_json()),
        }
    }

    fn from_journal(row: access_log_journal::Model) -> Result<Read, DbErr> {
        let touched = serde_json::from_str(&row.touched)
            .map_err(|error| DbErr::Custom(format!("an unreadable journal row: {error}")))?;
        Ok(Read {
            id: row.id,
            occurred_at: row.occurred_at,
            actor_kind: row.actor_kind,
            actor_subject: row.actor_subject,
            actor_name: row.actor_name,
            proxy_id: row.proxy_id,
            action: row.action,
            touched,
        })
    }

    fn touched_json(&self) -> String {
        serde_json::to_string(&self.touched).unwrap_or_default()
    }
}

/// Writers at once on PostgreSQL: while one transaction stores its batch, the reads that
/// arrive meanwhile are stored by another, instead of waiting for it (SQLite has one writer
/// at a time, so one writer task there).
const POSTGRES_WRITERS: usize = 4;

/// How often the journal is spread into the log when no one reads the log.
const SPREAD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl ReadLog {
    /// Starts the writers and the spreader on `db`. They stop when the last handle is
    /// dropped.
    pub fn start(db: DatabaseConnection) -> ReadLog {
        let (queue, pending) = mpsc::channel(QUEUE);
        let writers = if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            POSTGRES_WRITERS
        } else {
            1
        };
        let pending = std::sync::Arc::new(tokio::sync::Mutex::new(pending));
        for _ in 0..writers {
            tokio::spawn(write_batches(db.clone(), pending.clone()));
        }
        let alive = std::sync::Arc::new(());
        tokio::spawn(spread_now_and_then(db, std::sync::Arc::downgrade(&alive)));
        ReadLog {
            queue,
            _alive: alive,
        }
    }

    /// Records that `actor` did `action` to `touched` (nothing when the actor is the
    /// patient), returning once the entry is stored.
    ///
    /// One entry per patient and call: what a patient needs to see is that someone read
    /// their visits, and when; the record's id is kept when the call read one record.
    pub async fn record(
        &self,
        actor: &Actor,
        touched: impl IntoIterator<Item = (Uuid, Option<String>)>,
        action: Action,
        now: DateTime<Utc>,
    ) -> Result<(), Status> {
        let touched = per_patient(touched);
        if actor.via == crate::actor::Via::SelfService || touched.is_empty() {
            return Ok(());
        }
        let read = Read {
            id: homecare_core::ids::new_id(now),
            occurred_at: now,
            actor_kind: actor.kind().as_stored().to_owned(),
            actor_subject: actor.subject(),
            actor_name: actor.name().map(str::to_owned),
            proxy_id: actor.proxy_id(),
            action: action.as_stored().to_owned(),
            touched,
        };
        let (stored, written) = oneshot::channel();
        let unavailable = || status::unavailable("the access log cannot be written; try again");
        self.queue
            .send(Pending { read, stored })
            .await
            .map_err(|_| unavailable())?;
        match written.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                tracing::error!(%error, "writing the access log failed");
                Err(unavailable())
            }
            Err(_) => Err(unavailable()),
        }
    }
}

/// Takes every read waiting, stores them together, answers each; the writers take turns at
/// the queue, not at the database.
async fn write_batches(
    db: DatabaseConnection,
    pending: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
) {
    let mut batch = Vec::new();
    loop {
        let received = pending.lock().await.recv_many(&mut batch, QUEUE).await;
        if received == 0 {
            return;
        }
        let reads: Vec<&Read> = batch.iter().map(|waiting| &waiting.read).collect();
        let result = if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            store_in_one_statement(&db, &reads).await
        } else {
            store_in_one_transaction(&db, &reads).await
        }
        .map_err(|error| error.to_string());
        for waiting in batch.drain(..) {
            let _ = waiting.stored.send(result.clone());
        }
    }
}

/// Stores `reads` (entries or journal rows) in one transaction.
async fn store_in_one_transaction(db: &DatabaseConnection, reads: &[&Read]) -> Result<(), DbErr> {
    let (through_journal, at_once): (Vec<&Read>, Vec<&Read>) =
        reads.iter().partition(|read| read.goes_through_journal());
    let txn = begin_write(db).await?;
    insert_in_chunks(
        &*txn,
        at_once.iter().flat_map(|read| read.entries()).collect(),
    )
    .await?;
    insert_in_chunks(
        &*txn,
        through_journal
            .iter()
            .map(|read| read.journal_row())
            .collect(),
    )
    .await?;
    txn.commit().await
}

/// [`store_in_one_transaction`] on PostgreSQL: the entries (`$1`) and journal rows (`$2`)
/// as JSON arrays of rows, written by one statement.
const STORE_STATEMENT: &str = "
WITH journal AS (
    INSERT INTO access_log_journal
        (id, occurred_at, actor_kind, actor_subject, actor_name, proxy_id, action, touched)
    SELECT (r ->> 0)::uuid, (r ->> 1)::timestamptz, r ->> 2, r ->> 3, r ->> 4,
        (r ->> 5)::uuid, r ->> 6, r ->> 7
    FROM json_array_elements($2::json) AS r
)
INSERT INTO access_log
    (id, patient_id, occurred_at, actor_kind, actor_subject, actor_name, proxy_id, action,
     resource_id)
SELECT (r ->> 0)::uuid, (r ->> 1)::uuid, (r ->> 2)::timestamptz, r ->> 3, r ->> 4, r ->> 5,
    (r ->> 6)::uuid, r ->> 7, r ->> 8
FROM json_array_elements($1::json) AS r";

/// Stores `reads` with one statement outside a transaction block (one statement is one
/// transaction): one round trip for any number of reads, where a transaction of INSERTs in
/// chunks took four to seven, each parsed and executed by a server busy with the reads.
async fn store_in_one_statement(db: &DatabaseConnection, reads: &[&Read]) -> Result<(), DbErr> {
    use serde_json::{Value, json};
    let (mut entries, mut journal) = (Vec::<Value>::new(), Vec::<Value>::new());
    for read in reads {
        // Microseconds, as PostgreSQL keeps them and as a bound timestamp is cut.
        let at = read
            .occurred_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        if read.goes_through_journal() {
            journal.push(json!([
                read.id,
                at,
                read.actor_kind,
                read.actor_subject,
                read.actor_name,
                read.proxy_id,
                read.action,
                read.touched_json(),
            ]));
        } else {
            entries.extend(read.touched.iter().zip(0u64..).map(
                |((patient_id, resource_id), n)| {
                    json!([
                        entry_id(read.id, n),
                        patient_id,
                        at,
                        read.actor_kind,
                        read.actor_subject,
                        read.actor_name,
                        read.proxy_id,
                        read.action,
                        resource_id,
                    ])
                },
            ));
        }
    }
    let statement = sea_orm::Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        STORE_STATEMENT,
        [
            Value::Array(entries).to_string().into(),
            Value::Array(journal).to_string().into(),
        ],
    );
    db.execute_raw(statement).await.map(|_| ())
}

/// Journal rows spread per transaction, at most.
const SPREAD_BATCH: u64 = 200;

/// Journal text spread per transaction, about (a row is taken while the rows before it hold
/// less): some 200 entries, since each is 40 to 60 bytes of JSON. Enough that a patient's
/// index page is written once for many entries and that reads of one patient each (a proxy
/// holder's list) are not spread a few per transaction; few enough that the transaction
/// holds SQLite's one writer (and the reads waiting to store their journal rows) only
/// briefly. Measured with the rows per transaction capped at 10 instead: a proxy holder's
/// list cost +222 % against the patient's own on PostgreSQL, against +85 % unspread.
const SPREAD_BYTES: i64 = 10_000;

/// Rows are sized by `octet_length`, which both databases read from the row's header (and
/// PostgreSQL without decompressing it): `length` counts characters, so it reads the whole
/// text of every candidate (measured on SQLite: a unit day's reads fell from 192–286 to 62
/// per second, the one writer held while 200 rows of 15 KB were read).
///
/// Spreads journal rows, oldest first, into one entry per patient (some [`SPREAD_BYTES`]
/// of journal), removing them from the journal in the same transaction (so each is spread once,
/// also with several server processes: a row another process is spreading is waited for,
/// then found gone). Returns whether journal rows may be left behind.
///
/// `Waiting::ForOthers` waits for rows another process is spreading (a reader of the log
/// needs all of them spread); `Waiting::No` skips them (the background spreader).
///
/// On PostgreSQL every open transaction with an id holds back the readers of the event logs
/// (they read only past transactions that have all ended), so there the whole spread is one
/// statement, committed without waiting for the disk: its transaction lasts as long as the
/// statement's own work, not four round trips and a flush on a busy machine (measured: a change reached another replica's staff stream in
/// p99 139–161 ms while the four-trip spreader worked through a backlog).
pub async fn spread(db: &DatabaseConnection, waiting: Waiting) -> Result<bool, DbErr> {
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        spread_in_one_statement(db, waiting).await
    } else {
        spread_row_by_row(db, waiting).await
    }
}

/// The id of a read's `n`th entry (from 0): the read's own id, time-ordered, with `n` added
/// to its last 48 bits (modulo 2^48), so entries sort in the order of the reads. Written
/// also as SQL in [`SPREAD_STATEMENT`]; both backends give the same ids.
fn entry_id(read_id: Uuid, n: u64) -> Uuid {
    const LOW: u128 = (1 << 48) - 1;
    let id = read_id.as_u128();
    Uuid::from_u128((id & !LOW) | ((id & LOW) + u128::from(n)) & LOW)
}

/// [`spread`] on PostgreSQL: takes up to [`SPREAD_BATCH`] journal rows (`{lock}` is how it
/// treats rows another transaction holds), keeps those that start before [`SPREAD_BYTES`]
/// are reached (as [`chosen`]), deletes them and inserts their entries. Ids as [`entry_id`].
const SPREAD_STATEMENT: &str = "
WITH candidates AS (
    SELECT id, octet_length(touched) AS bytes
    FROM access_log_journal ORDER BY id LIMIT $1 {lock}
), chosen AS (
    SELECT id FROM (
        SELECT id, sum(bytes) OVER (ORDER BY id) - bytes AS before FROM candidates
    ) running WHERE before < $2
), taken AS (
    DELETE FROM access_log_journal WHERE id IN (SELECT id FROM chosen)
    RETURNING id, occurred_at, actor_kind, actor_subject, actor_name, proxy_id, action, touched
)
INSERT INTO access_log
    (id, patient_id, occurred_at, actor_kind, actor_subject, actor_name, proxy_id, action,
     resource_id)
SELECT
    (left(taken.id::text, 24) || lpad(to_hex(
        (('x' || lpad(right(taken.id::text, 12), 16, '0'))::bit(64)::bigint + entry.n - 1)
        % 281474976710656), 12, '0'))::uuid,
    (entry.touched ->> 0)::uuid,
    taken.occurred_at, taken.actor_kind, taken.actor_subject, taken.actor_name,
    taken.proxy_id, taken.action,
    entry.touched ->> 1
FROM taken, jsonb_array_elements(taken.touched::jsonb) WITH ORDINALITY AS entry(touched, n)";

async fn spread_in_one_statement(db: &DatabaseConnection, waiting: Waiting) -> Result<bool, DbErr> {
    let lock = match waiting {
        Waiting::ForOthers => "FOR UPDATE",
        Waiting::No => "FOR UPDATE SKIP LOCKED",
    };
    let statement = sea_orm::Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        SPREAD_STATEMENT.replace("{lock}", lock),
        [SPREAD_BATCH.into(), SPREAD_BYTES.into()],
    );
    let txn = db.begin().await?;
    // The transaction's id is released as soon as its commit is written, not once it is
    // flushed: nothing is lost by it, since a spread lost in a crash is a spread undone (its
    // journal rows come back with it, and are spread again to the same entry ids).
    txn.execute_unprepared("SET LOCAL synchronous_commit = off")
        .await?;
    let spread = txn.execute_raw(statement).await?.rows_affected();
    txn.commit().await?;
    // Whether some were spread; a run that finds nothing ends the loop.
    Ok(spread > 0)
}

/// The first of `candidates` (journal ids and their text's length, oldest first) to spread
/// in one transaction: each while the ones before it hold less than [`SPREAD_BYTES`].
fn chosen(candidates: &[(Uuid, i64)]) -> Vec<Uuid> {
    let mut before = 0;
    candidates
        .iter()
        .take_while(|(_, bytes)| {
            let take = before < SPREAD_BYTES;
            before += bytes;
            take
        })
        .map(|(id, _)| *id)
        .collect()
}

/// [`spread`] on SQLite, in one transaction under the one writer.
async fn spread_row_by_row(db: &DatabaseConnection, waiting: Waiting) -> Result<bool, DbErr> {
    use access_log_journal::Column as Journal;
    let txn = begin_write(db).await?;
    let select = access_log_journal::Entity::find()
        .select_only()
        .column(Journal::Id)
        .column_as(Expr::cust("octet_length(touched)"), "bytes")
        .order_by_asc(Journal::Id)
        .limit(SPREAD_BATCH);
    let select = match waiting {
        Waiting::ForOthers => select.lock_exclusive(),
        Waiting::No => select.lock_with_behavior(
            sea_orm::sea_query::LockType::Update,
            sea_orm::sea_query::LockBehavior::SkipLocked,
        ),
    };
    let candidates: Vec<(Uuid, i64)> = select.into_tuple().all(&*txn).await?;
    if candidates.is_empty() {
        txn.rollback().await?;
        return Ok(false);
    }
    let spread = chosen(&candidates);
    let journal = access_log_journal::Entity::find()
        .filter(Journal::Id.is_in(spread.clone()))
        .order_by_asc(Journal::Id)
        .all(&*txn)
        .await?;
    let mut rows = Vec::new();
    for row in journal {
        rows.extend(Read::from_journal(row)?.entries());
    }
    let left_behind = spread.len() < candidates.len() || candidates.len() as u64 == SPREAD_BATCH;
    access_log_journal::Entity::delete_many()
        .filter(Journal::Id.is_in(spread))
        .exec(&*txn)
        .await?;
    insert_in_chunks(&*txn, rows).await?;
    txn.commit().await?;
    Ok(left_behind)
}

/// Whether [`spread`] waits for journal rows another process is spreading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Wait for them: every row is spread when it returns.
    ForOthers,
    /// Skip them.
    No,
}

/// Spreads the whole journal: what [`page`] does before reading the log.
pub async fn spread_all(db: &DatabaseConnection) -> Result<(), DbErr> {
    spread_until_done(db, Waiting::ForOthers).await
}

async fn spread_until_done(db: &DatabaseConnection, waiting: Waiting) -> Result<(), DbErr> {
    while spread(db, waiting).await? {
        // Readers waiting to store their journal rows go first (the writer gate is fair).
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Spreads the journal every [`SPREAD_EVERY`], until no [`ReadLog`] handle is left.
async fn spread_now_and_then(db: DatabaseConnection, alive: std::sync::Weak<()>) {
    loop {
        if let Err(error) = spread_until_done(&db, Waiting::No).await {
            tracing::warn!(%error, "spreading the access log's journal failed; trying again");
        }
        if alive.upgrade().is_none() {
            return;
        }
        tokio::time::sleep(SPREAD_EVERY).await;
    }
}

/// A page of a patient's access log, newest first, and the cursor after it; the journal is
/// spread first, so every read stored so far is in it.
pub async fn page(
    db: &DatabaseConnection,
    patient_id: Uuid,
    after: Option<Cursor>,
    page_size: u64,
) -> Result<(Vec<access_log::Model>, Option<Cursor>), DbErr> {
    spread_all(db).await?;
    let mut select = Entity::find()
        .filter(Column::PatientId.eq(patient_id))
        .order_by_desc(Column::OccurredAt)
        .order_by_desc(Column::Id)
        .limit(page_size + 1);
    if let Some(cursor) = after {
        select = select.filter(
            Condition::any()
                .add(Column::OccurredAt.lt(cursor.after))
                .add(
                    Condition::all()
                        .add(Column::OccurredAt.eq(cursor.after))
                        .add(Column::Id.lt(cursor.id)),
                ),
        );
    }
    let mut rows = select.all(db).await?;
    let next = if rows.len() as u64 > page_size {
        rows.truncate(page_size as usize);
        rows.last().map(|row| Cursor {
            after: row.occurred_at,
            id: row.id,
        })
    } else {
        None
    };
    Ok((rows, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_takes_rows_until_the_ones_before_hold_enough() {
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        let sized = |bytes: [i64; 4]| ids.iter().copied().zip(bytes).collect::<Vec<_>>();
        // One read bigger than the whole allowance is still spread, alone.
        assert_eq!(chosen(&sized([40_000, 50, 50, 50])), ids[..1]);
        assert_eq!(chosen(&sized([4_000, 5_000, 2_000, 50])), ids[..3]);
        assert_eq!(chosen(&sized([50; 4])), ids);
    }

    #[test]
    fn a_reads_entries_follow_its_id_and_stay_in_its_last_48_bits() {
        let read = Uuid::parse_str("0190f3a1-7c2e-7abc-9def-fffffffffffe").unwrap();
        assert_eq!(entry_id(read, 0), read);
        assert_eq!(
            entry_id(read, 1).to_string(),
            "0190f3a1-7c2e-7abc-9def-ffffffffffff"
        );
        // Past the end it wraps within the low bits rather than carrying into the time.
        assert_eq!(
            entry_id(read, 3).to_string(),
            "0190f3a1-7c2e-7abc-9def-000000000001"
        );
        let later = Uuid::parse_str("0190f3a1-7c2e-7abc-9def-000000000100").unwrap();
        assert!(entry_id(later, 0) < entry_id(later, 1));
    }

    #[test]
    fn a_read_is_one_entry_per_patient_naming_the_record_only_when_it_was_one() {
        let (astrid, bjarne) = (Uuid::now_v7(), Uuid::now_v7());
        let touched = [
            (astrid, Some("v1".to_owned())),
            (bjarne, Some("v9".to_owned())),
            (astrid, Some("v2".to_owned())),
        ];
        assert_eq!(
            per_patient(touched),
            [(astrid, None), (bjarne, Some("v9".to_owned()))]
        );
    }
}
