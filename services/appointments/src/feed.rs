//! In-process wake-ups for stream readers when a visit changed.
//!
//! A hint, not the data: readers always read the database, and poll it now and then too, for
//! changes committed by another server process.

use std::sync::Arc;

use tokio::sync::watch;

/// Wakes whoever waits for changes to visits.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    changes: Arc<watch::Sender<u64>>,
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
        }
    }

    /// A visit changed: wake the stream readers.
    pub fn visits_changed(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Notified on each [`ChangeFeed::visits_changed`].
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
