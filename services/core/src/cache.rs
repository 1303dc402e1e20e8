//! Bounded, expiring caches of answers that do not change (a patient's id for an identity
//! number, a verified token's caller, a citizen who is through the terms gate), each with a
//! name and a count of hits and misses for operators.

use std::hash::Hash;
use std::time::Duration;

/// Cache lookups, by cache and result (`hit`, `miss`).
pub const CACHE_REQUESTS: &str = "homecare_cache_requests_total";

/// A named cache of at most `capacity` entries, each kept at most `time_to_live`.
pub struct Cache<K, V> {
    name: &'static str,
    entries: moka::sync::Cache<K, V>,
}

impl<K, V> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty cache named `name` (a metric label: letters and `_`).
    pub fn new(name: &'static str, capacity: u64, time_to_live: Duration) -> Self {
        metrics::describe_counter!(CACHE_REQUESTS, "Cache lookups, by cache and result");
        Self {
            name,
            entries: moka::sync::Cache::builder()
                .name(name)
                .max_capacity(capacity)
                .time_to_live(time_to_live)
                .build(),
        }
    }

    /// The entry for `key`, if kept.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = self.entries.get(key);
        let result = if found.is_some() { "hit" } else { "miss" };
        metrics::counter!(CACHE_REQUESTS, "cache" => self.name, "result" => result).increment(1);
        found
    }

    /// Keeps `value` for `key`.
    pub fn insert(&self, key: K, value: V) {
        self.entries.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_within_the_bound() {
        let cache: Cache<u32, u32> = Cache::new("test", 100, Duration::from_secs(60));
        for key in 0..1_000 {
            cache.insert(key, key * 2);
        }
        cache.entries.run_pending_tasks();
        assert!(cache.entries.entry_count() <= 100);
        cache.insert(7, 14);
        assert_eq!(cache.get(&7), Some(14));
        assert_eq!(cache.get(&1_001), None);
    }
}
