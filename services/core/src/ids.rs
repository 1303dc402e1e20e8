//! Ids of the records this service makes: UUIDv7 whose time part is the instant the caller's
//! (injected) clock gave, so that ids follow the clock a test fixes, not the machine's. The
//! rest is random, and ids made in the same millisecond (or after the clock went back) still
//! increase, as RFC 9562's counter method keeps them.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use uuid::{ContextV7, Timestamp, Uuid};

/// One counter for the process, as `Uuid::now_v7` has.
static CONTEXT: Mutex<ContextV7> = Mutex::new(ContextV7::new());

/// A new id for a record made at `at`.
pub fn new_id(at: DateTime<Utc>) -> Uuid {
    let seconds = u64::try_from(at.timestamp()).unwrap_or_default();
    Uuid::new_v7(Timestamp::from_unix(
        &CONTEXT,
        seconds,
        at.timestamp_subsec_nanos(),
    ))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn ids_carry_the_clock_given_and_increase_within_it() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 7, 0, 0).unwrap();
        let ids: Vec<Uuid> = (0..1_000).map(|_| new_id(at)).collect();
        let (seconds, _) = ids[0].get_timestamp().unwrap().to_unix();
        assert_eq!(seconds, 1_796_108_400);
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "increasing");
        // A clock set back does not make an id that sorts before the ones already made.
        let earlier = new_id(at - chrono::Duration::days(1));
        assert!(earlier > ids[999]);
    }
}
