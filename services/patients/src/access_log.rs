//! The access log: every read or change of a patient's data by anyone but the patient.
//!
//! A change writes its entry in its own transaction ([`record`]), so a change is never
//! without its entry. Reads go through [`ReadLog`], which writes the entries of concurrent
//! reads together in one transaction and answers each read only once its entry is stored:
//! no read is served unlogged, and a busy server pays one commit for many reads.

use chrono::{DateTime, Utc};
use homecare_core::db::begin_write;
use homecare_core::paging::Cursor;
use homecare_core::status;
use sea_orm::sea_query::Condition;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use uuid::Uuid;

use crate::actor::Actor;
use crate::entity::access_log::{self, Column, Entity};

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
    insert(db, entries(actor, touched, action, now)).await
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
        actor.kind(),
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

/// The most rows per INSERT: nine parameters each, far below SQLite's and PostgreSQL's
/// limits.
const ROWS_PER_STATEMENT: usize = 512;

/// Inserts `rows` in statements of 512, 256, ... or 1 rows: any number of rows is a few such
/// statements, so each connection prepares (and keeps) at most ten distinct INSERTs rather
/// than one per batch size it meets.
async fn insert<C: ConnectionTrait>(
    db: &C,
    rows: Vec<access_log::ActiveModel>,
) -> Result<(), DbErr> {
    let mut rows = rows.into_iter();
    let mut size = ROWS_PER_STATEMENT;
    while rows.len() > 0 {
        while size > rows.len() {
            size /= 2;
        }
        let chunk: Vec<_> = rows.by_ref().take(size).collect();
        Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
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
}

struct Pending {
    rows: Vec<access_log::ActiveModel>,
    stored: oneshot::Sender<Result<(), String>>,
}

/// Writers at once on PostgreSQL: while one transaction stores its batch, the reads that
/// arrive meanwhile are stored by another, instead of waiting for it (SQLite has one writer
/// at a time, so one writer task there).
const POSTGRES_WRITERS: usize = 4;

impl ReadLog {
    /// Starts the writers on `db`. They stop when the last handle is dropped.
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
        ReadLog { queue }
    }

    /// Records that `actor` did `action` to `touched` (nothing when the actor is the
    /// patient), returning once the entries are stored.
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
        let rows = entries(actor, per_patient(touched), action, now);
        if rows.is_empty() {
            return Ok(());
        }
        let (stored, written) = oneshot::channel();
        let unavailable = || status::unavailable("the access log cannot be written; try again");
        self.queue
            .send(Pending { rows, stored })
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

/// Takes every read waiting, stores their entries in one transaction, answers each; the
/// writers take turns at the queue, not at the database.
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
        let rows: Vec<_> = batch
            .iter_mut()
            .flat_map(|waiting| std::mem::take(&mut waiting.rows))
            .collect();
        let result = async {
            let txn = begin_write(&db).await?;
            insert(&*txn, rows).await?;
            txn.commit().await
        }
        .await
        .map_err(|error| error.to_string());
        for waiting in batch.drain(..) {
            let _ = waiting.stored.send(result.clone());
        }
    }
}

/// A page of a patient's access log, newest first, and the cursor after it.
pub async fn page<C: ConnectionTrait>(
    db: &C,
    patient_id: Uuid,
    after: Option<Cursor>,
    page_size: u64,
) -> Result<(Vec<access_log::Model>, Option<Cursor>), DbErr> {
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
