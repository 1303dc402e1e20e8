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
