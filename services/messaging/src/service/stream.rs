//! A staff client's inbox stream: the history steps of their units' threads from a position
//! on, live.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use homecare_core::event_log::{self, Position};
use homecare_core::identifier::CareUnitId;
use homecare_core::status;
use homecare_core::topic::Broadcast;
use homecare_proto::messaging::v1 as pb;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tonic::Status;
use uuid::Uuid;

use super::convert::event_to_proto;
use super::{MessagingApi, ServerStream};
use crate::entity::{event, thread};
use crate::history;
use crate::participant::Participant;

/// How often a stream looks for events no wake-up told it of, by default.
const STREAM_POLL: Duration = Duration::from_millis(500);
/// How soon a stream looks again at events held back behind a running transaction.
const HELD_BACK_RETRY: Duration = Duration::from_millis(20);
/// Events read per query.
const STREAM_BATCH: u64 = 100;

/// Wakes inbox streams when a thread changed; the topic other processes hear of.
#[derive(Debug, Clone)]
pub struct InboxFeed {
    topic: Broadcast,
    poll: Duration,
}

impl Default for InboxFeed {
    fn default() -> Self {
        Self::new(STREAM_POLL)
    }
}

impl InboxFeed {
    /// A feed no one listens to yet, whose streams look for unannounced steps every `poll`
    /// (steps of a process whose signal was lost).
    pub fn new(poll: Duration) -> Self {
        Self {
            topic: Broadcast::new("messages"),
            poll,
        }
    }

    /// A thread changed in this process, after the commit.
    pub fn messages_changed(&self) {
        self.topic.changed_here();
    }

    /// The topic, for the signals between processes.
    pub fn topic(&self) -> Broadcast {
        self.topic.clone()
    }
}

/// Starts the stream of `units` for `by`, after `resume_token` (or from now).
pub(super) async fn watch(
    api: MessagingApi,
    by: Participant,
    units: Vec<CareUnitId>,
    resume_token: &str,
) -> Result<ServerStream<pb::WatchInboxResponse>, Status> {
    let (position, before_start) = if resume_token.is_empty() {
        // "From now": steps committed before this call are not sent, also those not yet
        // readable in order because a transaction elsewhere is still open.
        let db = api.desk.db();
        let tail = event_log::last_settled::<event::Entity, _>(db, Some(history::of_units(&units)))
            .await
            .map_err(status::from_db)?;
        let before = event_log::committed_unsettled::<event::Entity, _>(
            db,
            history::of_units(&units),
            tail,
            1_000,
        )
        .await
        .map_err(status::from_db)?;
        (tail, before)
    } else {
        let position = Position::from_token(resume_token)
            .map_err(|reason| status::invalid_argument("resume_token", reason))?;
        (position, HashSet::new())
    };
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    let watcher = Watcher {
        api,
        by,
        units,
        sender,
        before_start,
    };
    tokio::spawn(watcher.run(position));
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
        receiver,
    )))
}

struct Watcher {
    api: MessagingApi,
    by: Participant,
    units: Vec<CareUnitId>,
    sender: tokio::sync::mpsc::Sender<Result<pb::WatchInboxResponse, Status>>,
    /// Steps after the start committed before the stream began: passed over, not sent.
    before_start: HashSet<Position>,
}

impl Watcher {
    async fn run(self, mut position: Position) {
        let mut changes = self.api.feed.topic.subscribe();
        let shutdown = self.api.shutdown.clone();
        let filter = history::of_units(&self.units);
        loop {
            if shutdown.is_triggered() {
                let _ = self
                    .sender
                    .send(Err(Status::unavailable(
                        "the server is stopping; reconnect with the last resume_token",
                    )))
                    .await;
                return;
            }
            // Marked seen before reading, so a change committed during the read wakes us.
            changes.borrow_and_update();
            let mut batch = match event_log::read_after::<event::Entity, _>(
                self.api.desk.db(),
                Some(filter.clone()),
                position,
                STREAM_BATCH,
            )
            .await
            {
                Ok(batch) => batch,
                Err(error) => {
                    let _ = self.sender.send(Err(status::from_db(error))).await;
                    return;
                }
            };
            if let Some(last) = batch.last().map(Position::after) {
                batch.retain(|step| !self.before_start.contains(&Position::after(step)));
                if batch.is_empty() {
                    position = last;
                    continue;
                }
            }
            if batch.is_empty() {
                let held_back = event_log::held_back::<event::Entity, _>(
                    self.api.desk.db(),
                    filter.clone(),
                    position,
                )
                .await
                .unwrap_or(false);
                let wait = if held_back {
                    HELD_BACK_RETRY
                } else {
                    self.api.feed.poll
                };
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.wait() => {}
                    () = self.sender.closed() => return,
                }
                continue;
            }
            match self.send_batch(&batch).await {
                Ok(Some(last)) => position = last,
                Ok(None) => return,
                Err(error) => {
                    let _ = self.sender.send(Err(error)).await;
                    return;
                }
            }
        }
    }

    /// Sends `batch` with the threads as they are now, logging the reads. `None` when the
    /// client has gone.
    async fn send_batch(&self, batch: &[event::Model]) -> Result<Option<Position>, Status> {
        let threads: HashMap<Uuid, thread::Model> = thread::Entity::find()
            .filter(thread::Column::Id.is_in(batch.iter().map(|step| step.thread_id)))
            .all(self.api.desk.db())
            .await
            .map_err(status::from_db)?
            .into_iter()
            .map(|thread| (thread.id, thread))
            .collect();
        self.api.log_reads(&self.by, threads.values()).await?;
        let mut position = None;
        for step in batch {
            let here = Position::after(step);
            let message = pb::WatchInboxResponse {
                event: Some(event_to_proto(
                    step,
                    threads.get(&step.thread_id),
                    self.api.desk.zone(),
                )?),
                resume_token: here.to_token(),
            };
            if self.sender.send(Ok(message)).await.is_err() {
                return Ok(None);
            }
            position = Some(here);
        }
        Ok(position)
    }
}
