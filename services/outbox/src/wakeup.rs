//! Telling a worker that rows were queued, so it does not wait for its next poll.

use std::sync::Arc;

use tokio::sync::Notify;

/// Wakes an outbox's worker. A hint, not the data: the worker always reads the table, and
/// polls it now and then for rows another server process queued.
#[derive(Debug, Clone, Default)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    /// A wake-up no one waits on yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows were queued (or put back): wake one waiting delivery loop.
    pub fn rows_queued(&self) {
        self.0.notify_one();
    }

    /// Completes after the next [`Wakeup::rows_queued`] (or at once if one came since the
    /// last wait).
    pub async fn wait(&self) {
        self.0.notified().await;
    }
}
