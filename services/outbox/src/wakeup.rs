//! Telling a worker that rows were queued, so it does not wait for its next poll.

use std::sync::Arc;

use tokio::sync::{Notify, watch};

/// Wakes an outbox's worker. A hint, not the data: the worker always reads the table, and
/// polls it now and then for rows another server process queued.
#[derive(Debug, Clone)]
pub struct Wakeup {
    /// The outbox's name, as other processes hear of it.
    name: &'static str,
    notify: Arc<Notify>,
    queued_here: Arc<watch::Sender<u64>>,
}

impl Wakeup {
    /// A wake-up of the outbox `name` (e.g. `epj_outbox`) no one waits on yet.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
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

impl homecare_core::topic::Topic for Wakeup {
    fn name(&self) -> &'static str {
        self.name
    }

    fn made_here(&self) -> watch::Receiver<u64> {
        self.subscribe_queued_here()
    }

    fn changed_elsewhere(&self) {
        self.rows_queued_elsewhere();
    }
}
