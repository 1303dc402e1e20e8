//! Something that changes in one server process and that the others should hear of at once
//! (visits changed, outbox rows queued): the server carries each topic between processes
//! (LISTEN/NOTIFY on PostgreSQL) without knowing what it is about.

use tokio::sync::watch;

/// A kind of change that other processes are told of. A hint, not the data: whoever is woken
/// reads the database.
pub trait Topic: Send + Sync + 'static {
    /// A short name, unique among topics, of letters, digits and `_`: part of the channel.
    fn name(&self) -> &'static str;

    /// Notified on each change made in this process: what other processes are to hear of.
    fn made_here(&self) -> watch::Receiver<u64>;

    /// Another process made such a change: wake whoever waits here.
    fn changed_elsewhere(&self);

    /// Notified on each change, made here or elsewhere, for readers in other capabilities
    /// (a durable consumer of the log the topic is about); none when the topic offers none.
    fn changes(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// A topic whose readers are woken on each change, made here or elsewhere: a change feed
/// (visits changed, messages written).
#[derive(Debug, Clone)]
pub struct Broadcast {
    name: &'static str,
    changes: std::sync::Arc<watch::Sender<u64>>,
    made_here: std::sync::Arc<watch::Sender<u64>>,
    elsewhere: std::sync::Arc<watch::Sender<u64>>,
}

impl Broadcast {
    /// A feed of the topic `name` no one listens to yet.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            changes: std::sync::Arc::new(watch::Sender::new(0)),
            made_here: std::sync::Arc::new(watch::Sender::new(0)),
            elsewhere: std::sync::Arc::new(watch::Sender::new(0)),
        }
    }

    /// Something changed in this process (after the commit): wake the readers here, and
    /// tell other processes.
    pub fn changed_here(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
        self.made_here
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Notified on each change, made here or elsewhere.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Notified on each change another process told of (and when the signals between
    /// processes were lost or are back: whatever was missed is to be read).
    pub fn elsewhere(&self) -> watch::Receiver<u64> {
        self.elsewhere.subscribe()
    }
}

impl Topic for Broadcast {
    fn name(&self) -> &'static str {
        self.name
    }

    fn made_here(&self) -> watch::Receiver<u64> {
        self.made_here.subscribe()
    }

    fn changed_elsewhere(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
        self.elsewhere
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.subscribe())
    }
}
