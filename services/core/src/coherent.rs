//! Caches of what changes (a patient's upcoming visits, a patient's proxies), kept true to
//! every commit, made by this process or by another on the same database.
//!
//! A reader that misses reads the database and offers what it read, with the [`Ticket`] it
//! took *before* reading; a writer invalidates the keys it changed *after* committing. An
//! offer is refused when an invalidation of its key came in between, so a read that raced a
//! commit never leaves the older answer behind.
//!
//! Commits made by other processes arrive as invalidations from a follower of the event log
//! ([`crate::event_log::follow`]), woken by the cross-process signals. While those signals are
//! not heard (no LISTEN connection yet, the connection lost) or the follower cannot read the
//! log, the cache neither answers nor keeps anything: every read goes to the database, and
//! what was kept before is never served again (its generation has passed).

use std::hash::{BuildHasher as _, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::cache::CACHE_REQUESTS;

/// Whether kept answers can be trusted: no fault stands, and since when (a generation that
/// moves whenever a fault comes or goes).
#[derive(Debug, Clone)]
pub struct Coherence {
    inner: Arc<CoherenceState>,
}

#[derive(Debug)]
struct CoherenceState {
    faults: AtomicU32,
    generation: AtomicU64,
}

/// What can make kept answers untrustworthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Other processes' changes are not heard of (no LISTEN connection).
    NotListening = 1,
    /// The event log cannot be followed (the database refused a read).
    NotFollowing = 2,
}

impl Coherence {
    /// Trusted from the start: one process alone on its database (SQLite).
    pub fn trusted() -> Self {
        Self::with_faults(0)
    }

    /// Not trusted until [`Coherence::cleared`] of `fault` (PostgreSQL, until the LISTEN
    /// connection is up).
    pub fn faulted(fault: Fault) -> Self {
        Self::with_faults(fault as u32)
    }

    fn with_faults(faults: u32) -> Self {
        Self {
            inner: Arc::new(CoherenceState {
                faults: AtomicU32::new(faults),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// `fault` stands: nothing kept until now is served again.
    pub fn fault(&self, fault: Fault) {
        self.inner.faults.fetch_or(fault as u32, Ordering::SeqCst);
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// `fault` is over. What was kept before it is still not served: its generation passed.
    pub fn cleared(&self, fault: Fault) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner
            .faults
            .fetch_and(!(fault as u32), Ordering::SeqCst);
    }

    /// Nothing kept until now is served again.
    pub fn next_generation(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether `fault` stands.
    pub fn has(&self, fault: Fault) -> bool {
        self.inner.faults.load(Ordering::SeqCst) & fault as u32 != 0
    }

    /// The generation now, or `None` while a fault stands.
    fn generation(&self) -> Option<u64> {
        let generation = self.inner.generation.load(Ordering::SeqCst);
        (self.inner.faults.load(Ordering::SeqCst) == 0).then_some(generation)
    }
}

/// A key of a [`CoherentCache`] and the group it changes with: invalidating a group drops
/// every key in it (a patient's upcoming visits and each of their visits' histories, say).
pub trait Grouped: Hash + Eq {
    /// What is invalidated.
    type Group: Hash;
    /// The group this key belongs to.
    fn group(&self) -> &Self::Group;
}

/// A key that is its own group.
impl Grouped for uuid::Uuid {
    type Group = Self;
    fn group(&self) -> &Self {
        self
    }
}

/// Taken before reading what will be offered to the cache; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    shared: u64,
    own: u64,
    epoch: u64,
}

#[derive(Clone)]
struct Kept<V> {
    value: V,
    stamp: Ticket,
}

/// Invalidations are counted per shard of groups: an answer is served only while its shard saw
/// none since it was read. More shards, fewer answers lost to another group's change.
const SHARDS: usize = 4096;

/// A bounded cache of answers that change, kept coherent with commits (see the module
/// documentation).
///
/// Every answer carries the [`Ticket`] taken before it was read: the generations of the
/// shared and the cache's own [`Coherence`] and the invalidation count of its group's shard.
/// It is served only while all three are unchanged, so an invalidation (or a fault) that
/// comes at any moment after the ticket, even before the answer is offered, keeps it from
/// ever being served.
pub struct CoherentCache<K, V> {
    name: &'static str,
    entries: moka::sync::Cache<K, Kept<V>>,
    epochs: Box<[AtomicU64]>,
    hasher: std::collections::hash_map::RandomState,
    shared: Coherence,
    own: Coherence,
}

impl<K, V> std::fmt::Debug for CoherentCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoherentCache")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<K, V> CoherentCache<K, V>
where
    K: Grouped + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty cache named `name` (a metric label) of at most `max_bytes` as `weigh` counts
    /// them, each answer kept at most `time_to_live`, trusted while `shared` is. Its follower
    /// reports on [`CoherentCache::own_coherence`], which starts faulted until it follows.
    pub fn new(
        name: &'static str,
        max_bytes: u64,
        time_to_live: Duration,
        weigh: fn(&V) -> u32,
        shared: Coherence,
    ) -> Self {
        metrics::describe_counter!(CACHE_REQUESTS, "Cache lookups, by cache and result");
        Self {
            name,
            entries: moka::sync::Cache::builder()
                .name(name)
                .max_capacity(max_bytes)
                .weigher(move |_key: &K, kept: &Kept<V>| weigh(&kept.value))
                .time_to_live(time_to_live)
                .build(),
            epochs: (0..SHARDS).map(|_| AtomicU64::new(0)).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            shared,
            own: Coherence::faulted(Fault::NotFollowing),
        }
    }

    /// What the follower of this cache's log reports on.
    pub fn own_coherence(&self) -> &Coherence {
        &self.own
    }

    /// The invalidation count of the shard of everything `group` names.
    fn epoch(&self, group: &(impl Hash + ?Sized)) -> &AtomicU64 {
        let shard = self.hasher.hash_one(group) as usize % SHARDS;
        &self.epochs[shard]
    }

    /// The ticket for `key`'s shard now; `None` while a fault stands.
    fn stamp(&self, key: &K) -> Option<Ticket> {
        let epoch = self.epoch(key.group()).load(Ordering::SeqCst);
        Some(Ticket {
            shared: self.shared.generation()?,
            own: self.own.generation()?,
            epoch,
        })
    }

    /// The kept answer for `key`, if there is one that can be trusted.
    pub fn get(&self, key: &K) -> Option<V> {
        let found = self.stamp(key).and_then(|now| {
            self.entries
                .get(key)
                .filter(|kept| kept.stamp == now)
                .map(|kept| kept.value)
        });
        let result = if found.is_some() { "hit" } else { "miss" };
        metrics::counter!(CACHE_REQUESTS, "cache" => self.name, "result" => result).increment(1);
        found
    }

    /// Taken before reading the answer for `key` from the database; `None` when nothing
    /// read now may be kept.
    pub fn ticket(&self, key: &K) -> Option<Ticket> {
        self.stamp(key)
    }

    /// Offers `value`, read after `ticket` was taken, as the answer for `key`. It is served
    /// only while nothing about the key changed since the ticket.
    pub fn offer(&self, key: K, value: V, ticket: Ticket) {
        if self.stamp(&key) == Some(ticket) {
            self.entries.insert(
                key,
                Kept {
                    value,
                    stamp: ticket,
                },
            );
        }
    }

    /// What `group` names changed (after the commit): what was kept for any of its keys is
    /// not served again, and reads that began before are not kept.
    pub fn invalidate(&self, group: &K::Group) {
        self.epoch(group).fetch_add(1, Ordering::SeqCst);
    }

    /// Everything may have changed.
    pub fn invalidate_all(&self) {
        self.own.next_generation();
    }

    /// Answers kept now (after pending evictions), for tests and metrics.
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Grouped for u32 {
        type Group = Self;
        fn group(&self) -> &Self {
            self
        }
    }

    /// A record of a patient: kept per record, changed per patient.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    struct Record {
        patient: u32,
        record: u32,
    }

    impl Grouped for Record {
        type Group = u32;
        fn group(&self) -> &u32 {
            &self.patient
        }
    }

    #[test]
    fn a_change_to_a_group_drops_every_key_in_it_and_no_other_group() {
        let cache: CoherentCache<Record, u32> = cache();
        let keys: Vec<Record> = (0..50)
            .flat_map(|patient| (0..3).map(move |record| Record { patient, record }))
            .collect();
        for key in &keys {
            let ticket = cache.ticket(key).unwrap();
            cache.offer(*key, key.record, ticket);
        }
        cache.invalidate(&7);
        for record in 0..3 {
            assert_eq!(cache.get(&Record { patient: 7, record }), None);
        }
        let served = keys.iter().filter(|key| cache.get(key).is_some()).count();
        // The other 49 patients' 147 records, less those sharing 7's shard.
        assert!(served >= 141, "{served} of 147 still served");
    }

    fn cache<K: Grouped + Send + Sync + 'static>() -> CoherentCache<K, u32> {
        let cache = CoherentCache::new(
            "test",
            1024,
            Duration::from_secs(60),
            |_| 1,
            Coherence::trusted(),
        );
        cache.own_coherence().cleared(Fault::NotFollowing);
        cache
    }

    #[test]
    fn an_answer_read_before_a_change_is_never_served_after_it() {
        let cache = cache();
        let ticket = cache.ticket(&1).unwrap();
        // The change commits (and invalidates) while the old answer is being read.
        cache.invalidate(&1);
        cache.offer(1, 10, ticket);
        assert_eq!(cache.get(&1), None);
        // Read again after the change: kept and served.
        let ticket = cache.ticket(&1).unwrap();
        cache.offer(1, 11, ticket);
        assert_eq!(cache.get(&1), Some(11));
        // Offered first, invalidated after: not served either.
        cache.invalidate(&1);
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn nothing_is_kept_or_served_while_a_fault_stands_nor_what_was_kept_before_it() {
        let shared = Coherence::faulted(Fault::NotListening);
        let cache: CoherentCache<u32, u32> =
            CoherentCache::new("test", 1024, Duration::from_secs(60), |_| 1, shared.clone());
        cache.own_coherence().cleared(Fault::NotFollowing);
        assert_eq!(cache.ticket(&1), None);
        shared.cleared(Fault::NotListening);
        let ticket = cache.ticket(&1).unwrap();
        cache.offer(1, 10, ticket);
        assert_eq!(cache.get(&1), Some(10));
        // Lost and back: what was kept before the loss is not served again.
        shared.fault(Fault::NotListening);
        assert_eq!(cache.get(&1), None);
        shared.cleared(Fault::NotListening);
        assert_eq!(cache.get(&1), None);
        // A follower that cannot read its log faults this cache alone.
        let ticket = cache.ticket(&1).unwrap();
        cache.offer(1, 12, ticket);
        cache.own_coherence().fault(Fault::NotFollowing);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.ticket(&2), None);
    }

    #[test]
    fn a_change_to_one_key_leaves_the_others_served() {
        let cache = cache();
        for key in 0..100 {
            let ticket = cache.ticket(&key).unwrap();
            cache.offer(key, key * 2, ticket);
        }
        cache.invalidate(&7);
        let served = (0..100).filter(|key| cache.get(key).is_some()).count();
        assert_eq!(cache.get(&7), None);
        // Only keys sharing 7's shard are lost with it.
        assert!(served >= 97, "{served} of 100 still served");
        cache.invalidate_all();
        assert!((0..100).all(|key| cache.get(&key).is_none()));
    }
}
