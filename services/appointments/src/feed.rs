//! What happens when visits changed: the kept upcoming visits of their patients are dropped,
//! stream readers here are woken, and other server processes are told.
//!
//! The wake-ups are hints, not the data: readers always read the database, and poll it now
//! and then too, for changes committed by another server process that no signal reached them
//! of. Dropping kept visits is not a hint: it happens before the change is answered.

use std::sync::Arc;

use homecare_core::coherent::Coherence;
use homecare_core::topic::{Broadcast, Topic};
use tokio::sync::watch;
use uuid::Uuid;

use crate::upcoming::UpcomingVisits;

/// Wakes whoever waits for changes to visits, and drops what is kept of them.
#[derive(Debug, Clone)]
pub struct ChangeFeed(Broadcast, Arc<UpcomingVisits>);

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new(Arc::new(UpcomingVisits::new(
            16 * 1024 * 1024,
            Coherence::trusted(),
        )))
    }
}

impl ChangeFeed {
    /// A feed no one listens to yet, keeping `upcoming`.
    pub fn new(upcoming: Arc<UpcomingVisits>) -> Self {
        Self(Broadcast::new("visits"), upcoming)
    }

    /// The patients' upcoming visits kept in memory.
    pub fn upcoming(&self) -> &Arc<UpcomingVisits> {
        &self.1
    }

    /// Visits of `patients` changed in this process (after the commit): drop what is kept of
    /// them, wake the stream readers, and tell other processes.
    pub fn visits_changed(&self, patients: impl IntoIterator<Item = Uuid>) {
        for patient in patients {
            self.1.changed(patient);
        }
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

    /// Notified on each change another process told of.
    pub fn subscribe_elsewhere(&self) -> watch::Receiver<u64> {
        self.0.elsewhere()
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
