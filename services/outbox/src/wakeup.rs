//! Telling a worker that rows were queued, so it does not wait for its next poll.

use std::sync::Arc;

use tokio::sync::{Notify, watch};

/// Wakes an outbox's worker. A hint, not the data: the worker always reads the table, and
/// polls it now and then for rows another server process queued.
#[derive(Debug, Clone)]
pub struct Wakeup {
    notify: Arc<Notify>,
    queued_here: Arc<watch::Sender<u64>>,
}

impl Default for Wakeup {
    fn default() -> Self {
        Self::new()
    }
}

impl Wakeup {
    /// A wake-up no one waits on yet.
    pub fn new() -> Self {
        Self {
            notify: Arc::new(Notify::new()),
            queued_here: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Rows were queued (or put back) in this process: wake one waiting delivery loop, and
    /// tell other processes.
    pub fn rows_queued(&self) {
        self.notify.notify_one();
        self.queued_here
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Another process queued rows: wake one waiting delivery loop here.
    pub fn rows_queued_elsewhere(&self) {
        self.notify.notify_one();
    }

    /// Completes after the next wake-up (or at once if one came since the last wait).
    pub async fn wait(&self) {
        self.notify.notified().await;
    }

    /// Notified on each [`Wakeup::rows_queued`] in this process: what other processes are to
    /// hear of.
    pub fn subscribe_queued_here(&self) -> watch::Receiver<u64> {
        self.queued_here.subscribe()
    }
}
