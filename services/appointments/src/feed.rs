//! In-process wake-ups: stream readers when a visit changed, the delivery worker when a
//! cancellation was queued, and both when the server stops.
//!
//! These are hints, not the data: readers and the worker always read the database, and poll
//! it now and then too, for changes committed by another server process.

use std::sync::Arc;

use tokio::sync::{Notify, watch};

/// Wakes whoever waits for changes.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    changes: Arc<watch::Sender<u64>>,
    outbox: Arc<Notify>,
    closing: Arc<watch::Sender<bool>>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl ChangeFeed {
    /// A feed no one listens to yet.
    pub fn new() -> Self {
        Self {
            changes: Arc::new(watch::Sender::new(0)),
            outbox: Arc::new(Notify::new()),
            closing: Arc::new(watch::Sender::new(false)),
        }
    }

    /// A visit changed: wake the stream readers.
    pub fn visits_changed(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// A row was queued for the EPJ: wake the delivery worker.
    pub fn outbox_filled(&self) {
        self.outbox.notify_one();
    }

    /// The server is stopping: streams end and the worker finishes what it holds.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Notified on each [`ChangeFeed::visits_changed`].
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Completes after the next [`ChangeFeed::outbox_filled`] (or at once if one came since
    /// the last wait).
    pub async fn outbox_wait(&self) {
        self.outbox.notified().await;
    }

    /// Notified on [`ChangeFeed::close`].
    pub fn subscribe_closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }
}
