//! The access log: every read or change of a patient's data by anyone but the patient.
//!
//! A change writes its entry in its own transaction ([`record`]), so a change is never
//! without its entry. Reads go through [`ReadLog`], which stores the reads arriving together
//! in one transaction and answers each only once it is stored: no read is served unlogged,
//! and a busy server pays one commit for many reads.
//!
//! A read of a few patients is stored as one entry per patient. A read of many (a staff
//! read of a unit's day: 300 patients, again and again) is stored as one row naming its set
//! of patients, and the set once: it is keyed by a hash of its members, and its members are
//! written, indexed by patient, only the first time, after the read ([`spread`]), and always
//! before the log is read ([`page`]). Writing 300 entries per read, even spread later, was
//! the whole of a unit day's p99 above its target. A patient's log is the view
//! `access_log_entries` over both.

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
use crate::entity::access_log_entry::{self, Column, Entity};
use crate::entity::{
    access_log, access_log_patient_set, access_log_patient_set_member, access_log_read,
    access_log_unspread_set,
};

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

/// The row [`record`] stores; none when the actor is the patient.
pub fn entry(
    actor: &Actor,
    patient_id: Uuid,
    action: Action,
    resource_id: Option<String>,
    now: DateTime<Utc>,
) -> Option<access_log::ActiveModel> {
    entries(actor, [(patient_id, resource_id)], action, now).pop()
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
    /// The set it names, when it touched many patients (see [`SET_FROM`]).
    set: Option<PatientSet>,
}

/// Reads that touched at least this many patients are stored as one row naming their set of
/// patients; fewer as their entries. A set costs a row of its own and its members the first
/// time it is named, where a read of one patient (a proxy holder's list) is one entry.
const SET_FROM: usize = 8;

impl Read {
    /// The set a read of `touched` names, if it names one.
    fn set_of(touched: &[(Uuid, Option<String>)]) -> Option<PatientSet> {
        (touched.len() >= SET_FROM).then(|| PatientSet::of(touched))
    }

    /// Its entries, one per patient, with ids that follow its own (see [`entry_id`]).
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

    fn read_row(&self, set: &PatientSet) -> access_log_read::ActiveModel {
        access_log_read::ActiveModel {
            id: Set(self.id),
            occurred_at: Set(self.occurred_at),
            actor_kind: Set(self.actor_kind.clone()),
            actor_subject: Set(self.actor_subject.clone()),
            actor_name: Set(self.actor_name.clone()),
            proxy_id: Set(self.proxy_id),
            action: Set(self.action.clone()),
            patient_set_id: Set(set.id),
        }
    }
}

/// The patients a read of many touched, as stored: the same patients with the same records,
/// in the same order, are the same set.
struct PatientSet {
    id: Uuid,
    /// A JSON array of `[patient id, record id or null]`.
    touched: String,
}

impl PatientSet {
    fn of(touched: &[(Uuid, Option<String>)]) -> PatientSet {
        use sha2::Digest as _;
        let touched = serde_json::to_string(touched).unwrap_or_default();
        let hash = sha2::Sha256::digest(touched.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&hash[..16]);
        PatientSet {
            id: Uuid::new_v8(id),
            touched,
        }
    }

    fn members(touched: &str) -> Result<Vec<(Uuid, Option<String>)>, DbErr> {
        serde_json::from_str(touched)
            .map_err(|error| DbErr::Custom(format!("an unreadable set of patients: {error}")))
    }
}

/// Sets known to be stored, at most: past this the memory is cleared and filled again (a set
/// not known is offered again and found stored, at the cost of its members' text).
const KNOWN_SETS: usize = 10_000;

/// The ids of sets this process has seen stored, so that a read naming one sends only its id.
#[derive(Debug, Default)]
struct KnownSets(std::sync::Mutex<std::collections::HashSet<Uuid>>);

impl KnownSets {
    fn contains(&self, id: &Uuid) -> bool {
        self.0.lock().is_ok_and(|known| known.contains(id))
    }

    fn add(&self, ids: impl IntoIterator<Item = Uuid>) {
        if let Ok(mut known) = self.0.lock() {
            for id in ids {
                if known.len() >= KNOWN_SETS {
                    known.clear();
                }
                known.insert(id);
            }
        }
    }
}

/// Writers at once on PostgreSQL: while one transaction stores its batch, the reads that
/// arrive meanwhile are stored by another, instead of waiting for it (SQLite has one writer
/// at a time, so one writer task there).
const POSTGRES_WRITERS: usize = 4;

/// How often new sets' members are written when no one reads the log.
const SPREAD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl ReadLog {
    /// Starts the writers on `db` (a call waits for its read's entry) and the spreader on
    /// `background`. They stop when the last handle is dropped.
    pub fn start(db: DatabaseConnection, background: DatabaseConnection) -> ReadLog {
        let (queue, pending) = mpsc::channel(QUEUE);
        let writers = if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            POSTGRES_WRITERS
        } else {
            1
        };
        let pending = std::sync::Arc::new(tokio::sync::Mutex::new(pending));
        let known = std::sync::Arc::new(KnownSets::default());
        for _ in 0..writers {
            tokio::spawn(write_batches(db.clone(), pending.clone(), known.clone()));
        }
        let alive = std::sync::Arc::new(());
        tokio::spawn(spread_now_and_then(
            background,
            std::sync::Arc::downgrade(&alive),
        ));
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
            set: Read::set_of(&touched),
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
    known: std::sync::Arc<KnownSets>,
) {
    let mut batch = Vec::new();
    loop {
        let received = pending.lock().await.recv_many(&mut batch, QUEUE).await;
        if received == 0 {
            return;
        }
        let reads: Vec<&Read> = batch.iter().map(|waiting| &waiting.read).collect();
        let stored = if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            store_in_one_statement(&db, &reads, &known).await
        } else {
            store_in_one_transaction(&db, &reads, &known).await
        };
        if stored.is_ok() {
            known.add(reads.iter().filter_map(|read| Some(read.set.as_ref()?.id)));
        }
        let result = stored.map_err(|error| error.to_string());
        for waiting in batch.drain(..) {
            let _ = waiting.stored.send(result.clone());
        }
    }
}

/// The sets named by `reads` that `known` does not hold, each once.
fn sets_to_offer<'a>(reads: &[&'a Read], known: &KnownSets) -> Vec<&'a PatientSet> {
    let mut offered: Vec<&PatientSet> = Vec::new();
    for set in reads.iter().filter_map(|read| read.set.as_ref()) {
        if !known.contains(&set.id) && !offered.iter().any(|seen| seen.id == set.id) {
            offered.push(set);
        }
    }
    offered
}

/// Stores `reads` (entries, or reads naming a set and the sets not stored before) in one
/// transaction.
async fn store_in_one_transaction(
    db: &DatabaseConnection,
    reads: &[&Read],
    known: &KnownSets,
) -> Result<(), DbErr> {
    let txn = begin_write(db).await?;
    let offered = sets_to_offer(reads, known);
    let stored: std::collections::HashSet<Uuid> = if offered.is_empty() {
        Default::default()
    } else {
        access_log_patient_set::Entity::find()
            .filter(access_log_patient_set::Column::Id.is_in(offered.iter().map(|set| set.id)))
            .into_tuple::<Uuid>()
            .all(&*txn)
            .await?
            .into_iter()
            .collect()
    };
    let new: Vec<&PatientSet> = offered
        .into_iter()
        .filter(|set| !stored.contains(&set.id))
        .collect();
    insert_in_chunks(
        &*txn,
        new.iter()
            .map(|set| access_log_patient_set::ActiveModel { id: Set(set.id) })
            .collect(),
    )
    .await?;
    insert_in_chunks(
        &*txn,
        new.iter()
            .map(|set| access_log_unspread_set::ActiveModel {
                set_id: Set(set.id),
                touched: Set(set.touched.clone()),
            })
            .collect(),
    )
    .await?;
    insert_in_chunks(
        &*txn,
        reads
            .iter()
            .filter_map(|read| Some(read.read_row(read.set.as_ref()?)))
            .collect(),
    )
    .await?;
    insert_in_chunks(
        &*txn,
        reads
            .iter()
            .filter(|read| read.set.is_none())
            .flat_map(|read| read.entries())
            .collect(),
    )
    .await?;
    txn.commit().await
}

/// [`store_in_one_transaction`] on PostgreSQL: the entries (`$1`), the reads naming a set
/// (`$2`) and the sets offered (`$3`, of which those not yet stored are stored and left to
/// spread), as JSON arrays of rows, written by one statement. A set two writers offer at
/// once is stored by the first; the second waits for its commit and leaves it.
const STORE_STATEMENT: &str = "
WITH new_sets AS (
    INSERT INTO access_log_patient_sets (id)
    SELECT (s ->> 0)::uuid FROM json_array_elements($3::json) AS s
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), unspread AS (
    INSERT INTO access_log_unspread_sets (set_id, touched)
    SELECT new_sets.id, s ->> 1
    FROM new_sets JOIN json_array_elements($3::json) AS s ON (s ->> 0)::uuid = new_sets.id
), reads AS (
    INSERT INTO access_log_reads
        (id, occurred_at, actor_kind, actor_subject, actor_name, proxy_id, action,
         patient_set_id)
    SELECT (r ->> 0)::uuid, (r ->> 1)::timestamptz, r ->> 2, r ->> 3, r ->> 4,
        (r ->> 5)::uuid, r ->> 6, (r ->> 7)::uuid
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
async fn store_in_one_statement(
    db: &DatabaseConnection,
    reads: &[&Read],
    known: &KnownSets,
) -> Result<(), DbErr> {
    use serde_json::{Value, json};
    let (mut entries, mut set_reads) = (Vec::<Value>::new(), Vec::<Value>::new());
    for read in reads {
        // Microseconds, as PostgreSQL keeps them and as a bound timestamp is cut.
        let at = read
            .occurred_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        if let Some(set) = &read.set {
            set_reads.push(json!([
                read.id,
                at,
                read.actor_kind,
                read.actor_subject,
                read.actor_name,
                read.proxy_id,
                read.action,
                set.id,
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
    let offered: Vec<Value> = sets_to_offer(reads, known)
        .into_iter()
        .map(|set| json!([set.id, set.touched]))
        .collect();
    let statement = sea_orm::Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        STORE_STATEMENT,
        [
            Value::Array(entries).to_string().into(),
            Value::Array(set_reads).to_string().into(),
            Value::Array(offered).to_string().into(),
        ],
    );
    db.execute_raw(statement).await.map(|_| ())
}

/// New sets spread per transaction, at most.
const SPREAD_BATCH: u64 = 200;

/// Members' text spread per transaction, about (a set is taken while the sets before it hold
/// less): some 200 members, since each is 40 to 60 bytes of JSON. Enough that a patient's
/// index page is written once for many members; few enough that the transaction holds
/// SQLite's one writer (and the reads waiting to be stored) only briefly.
const SPREAD_BYTES: i64 = 10_000;

/// Sets are sized by `octet_length`, which both databases read from the row's header (and
/// PostgreSQL without decompressing it): `length` counts characters, so it reads the whole
/// text of every candidate (measured on SQLite: a unit day's reads fell from 192–286 to 62
/// per second, the one writer held while 200 rows of 15 KB were read).
///
/// Writes the members of new sets (some [`SPREAD_BYTES`] of them), removing the sets from
/// `access_log_unspread_sets` in the same transaction (so each is spread once, also with
/// several server processes: a set another process is spreading is waited for, then found
/// gone). Returns whether sets may be left unspread.
///
/// `Waiting::ForOthers` waits for sets another process is spreading (a reader of the log
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
/// to its last 48 bits (modulo 2^48), so entries sort in the order of the reads.
fn entry_id(read_id: Uuid, n: u64) -> Uuid {
    const LOW: u128 = (1 << 48) - 1;
    let id = read_id.as_u128();
    Uuid::from_u128((id & !LOW) | ((id & LOW) + u128::from(n)) & LOW)
}

/// [`spread`] on PostgreSQL: takes up to [`SPREAD_BATCH`] new sets (`{lock}` is how it
/// treats sets another transaction holds), keeps those that start before [`SPREAD_BYTES`]
/// are reached (as [`chosen`]), removes them and inserts their members.
const SPREAD_STATEMENT: &str = "
WITH candidates AS (
    SELECT set_id, octet_length(touched) AS bytes
    FROM access_log_unspread_sets ORDER BY set_id LIMIT $1 {lock}
), chosen AS (
    SELECT set_id FROM (
        SELECT set_id, sum(bytes) OVER (ORDER BY set_id) - bytes AS before FROM candidates
    ) running WHERE before < $2
), taken AS (
    DELETE FROM access_log_unspread_sets WHERE set_id IN (SELECT set_id FROM chosen)
    RETURNING set_id, touched
)
INSERT INTO access_log_patient_set_members (set_id, patient_id, resource_id)
SELECT taken.set_id, (member ->> 0)::uuid, member ->> 1
FROM taken, jsonb_array_elements(taken.touched::jsonb) AS member
ON CONFLICT DO NOTHING";

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
    // sets come back unspread with it, and are spread again).
    txn.execute_unprepared("SET LOCAL synchronous_commit = off")
        .await?;
    let spread = txn.execute_raw(statement).await?.rows_affected();
    txn.commit().await?;
    // Whether some were spread; a run that finds nothing ends the loop.
    Ok(spread > 0)
}

/// The first of `candidates` (set ids and their members' text's length) to spread in one
/// transaction: each while the ones before it hold less than [`SPREAD_BYTES`].
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
    use access_log_unspread_set::Column as Unspread;
    let txn = begin_write(db).await?;
    let select = access_log_unspread_set::Entity::find()
        .select_only()
        .column(Unspread::SetId)
        .column_as(Expr::cust("octet_length(touched)"), "bytes")
        .order_by_asc(Unspread::SetId)
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
    let sets = access_log_unspread_set::Entity::find()
        .filter(Unspread::SetId.is_in(spread.clone()))
        .all(&*txn)
        .await?;
    let mut members = Vec::new();
    for set in sets {
        members.extend(PatientSet::members(&set.touched)?.into_iter().map(
            |(patient_id, resource_id)| access_log_patient_set_member::ActiveModel {
                set_id: Set(set.set_id),
                patient_id: Set(patient_id),
                resource_id: Set(resource_id),
            },
        ));
    }
    let left_behind = spread.len() < candidates.len() || candidates.len() as u64 == SPREAD_BATCH;
    access_log_unspread_set::Entity::delete_many()
        .filter(Unspread::SetId.is_in(spread))
        .exec(&*txn)
        .await?;
    insert_in_chunks(&*txn, members).await?;
    txn.commit().await?;
    Ok(left_behind)
}

/// Whether [`spread`] waits for sets another process is spreading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Wait for them: every row is spread when it returns.
    ForOthers,
    /// Skip them.
    No,
}

/// Spreads every new set: what [`page`] does before reading the log.
pub async fn spread_all(db: &DatabaseConnection) -> Result<(), DbErr> {
    spread_until_done(db, Waiting::ForOthers).await
}

async fn spread_until_done(db: &DatabaseConnection, waiting: Waiting) -> Result<(), DbErr> {
    while spread(db, waiting).await? {
        // Reads waiting to be stored go first (the writer gate is fair).
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// Spreads new sets every [`SPREAD_EVERY`], until no [`ReadLog`] handle is left.
async fn spread_now_and_then(db: DatabaseConnection, alive: std::sync::Weak<()>) {
    loop {
        if let Err(error) = spread_until_done(&db, Waiting::No).await {
            tracing::warn!(%error, "writing the members of the access log's new sets failed; trying again");
        }
        if alive.upgrade().is_none() {
            return;
        }
        tokio::time::sleep(SPREAD_EVERY).await;
    }
}

/// A page of a patient's access log, newest first, and the cursor after it; new sets are
/// spread first, so every read stored so far is in it.
pub async fn page(
    db: &DatabaseConnection,
    patient_id: Uuid,
    after: Option<Cursor>,
    page_size: u64,
) -> Result<(Vec<access_log_entry::Model>, Option<Cursor>), DbErr> {
    spread_all(db).await?;
    let mut rows = if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        newest_on_postgres(db, patient_id, after, page_size + 1).await?
    } else {
        newest_through_the_view(db, patient_id, after, page_size + 1).await?
    };
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

/// The newest `limit` entries of a patient's log after `after`, as the view
/// `access_log_entries` has them. The reads of a set are all read and sorted (SQLite has no
/// `LATERAL`): the cost grows with the reads of the patient's sets, not with the page.
async fn newest_through_the_view(
    db: &DatabaseConnection,
    patient_id: Uuid,
    after: Option<Cursor>,
    limit: u64,
) -> Result<Vec<access_log_entry::Model>, DbErr> {
    let mut select = Entity::find()
        .filter(Column::PatientId.eq(patient_id))
        .order_by_desc(Column::OccurredAt)
        .order_by_desc(Column::Id)
        .limit(limit);
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
    select.all(db).await
}

/// [`newest_through_the_view`] on PostgreSQL, where a unit's day read all shift long puts
/// thousands of reads a day in one set: the newest `$4` of each of the patient's sets are
/// taken from the index on (set, time, id), so a page costs the patient's sets times the
/// page, whatever the number of reads. `{after}` is the cursor's condition, or nothing.
const NEWEST_ON_POSTGRES: &str = "
(SELECT id, patient_id, occurred_at, actor_kind, actor_subject, actor_name, proxy_id, action,
    resource_id
 FROM access_log
 WHERE patient_id = $1 {after}
 ORDER BY occurred_at DESC, id DESC LIMIT $4)
UNION ALL
(SELECT r.id, m.patient_id, r.occurred_at, r.actor_kind, r.actor_subject, r.actor_name,
    r.proxy_id, r.action, m.resource_id
 FROM access_log_patient_set_members m
 CROSS JOIN LATERAL (
    SELECT * FROM access_log_reads
    WHERE patient_set_id = m.set_id {after}
    ORDER BY occurred_at DESC, id DESC LIMIT $4
 ) r
 WHERE m.patient_id = $1)
ORDER BY occurred_at DESC, id DESC LIMIT $4";

async fn newest_on_postgres(
    db: &DatabaseConnection,
    patient_id: Uuid,
    after: Option<Cursor>,
    limit: u64,
) -> Result<Vec<access_log_entry::Model>, DbErr> {
    // Without a cursor, its parameters are still bound (PostgreSQL needs their types) and
    // never compared.
    let (condition, cursor) = match after {
        Some(cursor) => ("AND (occurred_at, id) < ($2, $3)", cursor),
        None => (
            "AND $2::timestamptz IS NOT NULL AND $3::uuid IS NOT NULL",
            Cursor {
                after: DateTime::<Utc>::UNIX_EPOCH,
                id: Uuid::nil(),
            },
        ),
    };
    let statement = sea_orm::Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        NEWEST_ON_POSTGRES.replace("{after}", condition),
        [
            patient_id.into(),
            cursor.after.into(),
            cursor.id.into(),
            limit.into(),
        ],
    );
    Entity::find().from_raw_sql(statement).all(db).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract lists every action a log entry can hold, and only those: a client that
    /// shows them to the patient must know each one.
    #[test]
    fn patients_proto_lists_every_action_and_no_other() {
        let proto = include_str!("../../../proto/homecare/patients/v1/patients.proto");
        let entry = &proto[proto
            .find("message AccessLogEntry")
            .expect("the entry's message")..];
        let field = entry.find("string action = 6;").expect("the action field");
        let comment_start = entry[..field]
            .rfind("string proxy_id = 5;")
            .expect("the field before");
        let mut documented: Vec<&str> = entry[comment_start..field]
            .split('"')
            .skip(1)
            .step_by(2)
            .collect();
        documented.sort_unstable();
        let mut actions: Vec<&str> = Action::ALL
            .iter()
            .map(|action| action.as_stored())
            .collect();
        actions.sort_unstable();
        assert_eq!(documented, actions);
    }

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
    fn a_set_is_named_by_its_members_and_their_records() {
        let (astrid, bjarne) = (Uuid::now_v7(), Uuid::now_v7());
        let day = [(astrid, None), (bjarne, Some("v9".to_owned()))];
        let set = PatientSet::of(&day);
        assert_eq!(set.id, PatientSet::of(&day).id);
        assert_eq!(PatientSet::members(&set.touched).unwrap(), day);
        // Another record of the same patients is another set.
        let replanned = [(astrid, None), (bjarne, Some("v10".to_owned()))];
        assert_ne!(set.id, PatientSet::of(&replanned).id);
        assert_eq!(set.id.get_version_num(), 8);
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
