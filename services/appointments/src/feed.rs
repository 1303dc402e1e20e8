//! In-process wake-ups for stream readers when a visit changed, and what tells other server
//! processes of changes made here.
//!
//! A hint, not the data: readers always read the database, and poll it now and then too, for
//! changes committed by another server process that no signal reached them of.

use std::sync::Arc;

use tokio::sync::watch;

/// Wakes whoever waits for changes to visits.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    changes: Arc<watch::Sender<u64>>,
    made_here: Arc<watch::Sender<u64>>,
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
            made_here: Arc::new(watch::Sender::new(0)),
        }
    }

    /// A visit changed in this process (after the commit): wake the stream readers, and tell
    /// other processes.
    pub fn visits_changed(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
        self.made_here
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Another process said a visit changed: wake the stream readers here.
    pub fn visits_changed_elsewhere(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Notified on each change, made here or elsewhere.
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Notified on each change made in this process: what other processes are to hear of.
    pub fn subscribe_made_here(&self) -> watch::Receiver<u64> {
        self.made_here.subscribe()
    }
}

impl homecare_core::topic::Topic for ChangeFeed {
    fn name(&self) -> &'static str {
        "visits"
    }

    fn made_here(&self) -> watch::Receiver<u64> {
        self.subscribe_made_here()
    }

    fn changed_elsewhere(&self) {
        self.visits_changed_elsewhere();
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.subscribe_changes())
    }
}
