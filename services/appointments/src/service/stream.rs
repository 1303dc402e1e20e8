//! A staff client's change stream: the events of their units from a position on, live.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use homecare_core::status;
use homecare_patients::Actor;
use homecare_proto::appointments::v1 as pb;
use tonic::Status;

use super::AppointmentApi;
use super::convert::{event_to_proto, to_proto};
use crate::events::{self, Position};
use crate::{entity, store};
use homecare_core::identifier::CareUnitId;
use uuid::Uuid;

/// How often a change stream looks for changes no wake-up told it of: those committed by
/// another server process.
const STREAM_POLL: Duration = Duration::from_millis(500);
/// How soon a change stream looks again at events held back behind a running transaction.
const HELD_BACK_RETRY: Duration = Duration::from_millis(20);
/// Events read per query by a change stream.
const STREAM_BATCH: u64 = 100;

/// Feeds one staff client's change stream.
pub(super) struct ChangeWatcher {
    pub(super) api: AppointmentApi,
    pub(super) actor: Actor,
    pub(super) units: Vec<CareUnitId>,
    pub(super) sender: tokio::sync::mpsc::Sender<Result<pb::WatchCareUnitChangesResponse, Status>>,
    /// Events after the start committed before the stream began: passed over, not sent.
    pub(super) before_start: HashSet<Position>,
}

impl ChangeWatcher {
    pub(super) async fn run(self, mut position: Position) {
        let mut changes = self.api.feed.subscribe_changes();
        let shutdown = self.api.shutdown.clone();
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
            let mut batch =
                match events::read_after(&self.api.db, &self.units, position, STREAM_BATCH).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        let _ = self.sender.send(Err(status::from_db(error))).await;
                        return;
                    }
                };
            if let Some(last) = batch.last().map(Position::after) {
                batch.retain(|event| !self.before_start.contains(&Position::after(event)));
                if batch.is_empty() {
                    position = last;
                    continue;
                }
            }
            if batch.is_empty() {
                let held_back = events::held_back(&self.api.db, &self.units, position)
                    .await
                    .unwrap_or(false);
                let wait = if held_back {
                    HELD_BACK_RETRY
                } else {
                    STREAM_POLL
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

    /// Sends `batch` with the visits as they are now, logging the reads. `None` when the
    /// client has gone.
    async fn send_batch(
        &self,
        batch: &[events::entity::Model],
    ) -> Result<Option<Position>, Status> {
        let db = &self.api.db;
        let visits = store::find_many(db, batch.iter().map(|event| event.appointment_id))
            .await
            .map_err(status::from_db)?;
        self.api
            .log_reads(&self.actor, &visits, self.api.clock.now())
            .await?;
        let visits: HashMap<Uuid, entity::Model> =
            visits.into_iter().map(|visit| (visit.id, visit)).collect();
        let mut position = None;
        for event in batch {
            let here = Position::after(event);
            let message = pb::WatchCareUnitChangesResponse {
                event: Some(event_to_proto(event)?),
                appointment: visits
                    .get(&event.appointment_id)
                    .map(|visit| to_proto(visit, true))
                    .transpose()?,
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
