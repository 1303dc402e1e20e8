//! In-process wake-ups for stream readers when a visit changed, and what tells other server
//! processes of changes made here.
//!
//! A hint, not the data: readers always read the database, and poll it now and then too, for
//! changes committed by another server process that no signal reached them of.

use homecare_core::topic::{Broadcast, Topic};
use tokio::sync::watch;

/// Wakes whoever waits for changes to visits.
#[derive(Debug, Clone)]
pub struct ChangeFeed(Broadcast);

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl ChangeFeed {
    /// A feed no one listens to yet.
    pub fn new() -> Self {
        Self(Broadcast::new("visits"))
    }

    /// A visit changed in this process (after the commit): wake the stream readers, and tell
    /// other processes.
    pub fn visits_changed(&self) {
        self.0.changed_here();
    }

    /// Another process said a visit changed: wake the stream readers here.
    pub fn visits_changed_elsewhere(&self) {
        self.0.changed_elsewhere();
    }

    /// Notified on each change, made here or elsewhere.
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }

    /// Notified on each change made in this process: what other processes are to hear of.
    pub fn subscribe_made_here(&self) -> watch::Receiver<u64> {
        self.0.made_here()
    }
}

impl Topic for ChangeFeed {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn made_here(&self) -> watch::Receiver<u64> {
        self.0.made_here()
    }

    fn changed_elsewhere(&self) {
        self.0.changed_elsewhere();
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        self.0.changes()
    }
}
