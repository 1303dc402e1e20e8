//! Quiet hours: a daily span of local time (21:00 to 08:00 by default for SMS) in which no
//! message of a channel goes out; one that falls inside waits until the span ends.

use chrono::{DateTime, Days, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Tz;

/// A daily span of local time in one time zone. `start` after `end` crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: NaiveTime,
    end: NaiveTime,
    zone: Tz,
}

impl QuietHours {
    /// From `start` to `end` each day in `zone`; none when they are equal.
    pub fn new(start: NaiveTime, end: NaiveTime, zone: Tz) -> Option<Self> {
        (start != end).then_some(Self { start, end, zone })
    }

    /// Whether `at` is inside.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.zone).time();
        if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }

    /// `at`, or the end of the quiet span it falls in.
    pub fn next_allowed(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        if !self.contains(at) {
            return at;
        }
        let local = at.with_timezone(&self.zone);
        let mut day = local.date_naive();
        if local.time() >= self.end {
            day = day.checked_add_days(Days::new(1)).unwrap_or(day);
        }
        let end = day.and_time(self.end);
        // A local time skipped by a clock change is taken an hour later.
        self.zone
            .from_local_datetime(&end)
            .earliest()
            .or_else(|| {
                self.zone
                    .from_local_datetime(&(end + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map_or(at, |end| end.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oslo(text: &str) -> DateTime<Utc> {
        chrono_tz::Europe::Oslo
            .from_local_datetime(
                &chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap(),
            )
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn sms() -> QuietHours {
        QuietHours::new(
            NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            chrono_tz::Europe::Oslo,
        )
        .unwrap()
    }

    #[test]
    fn a_second_before_nine_goes_at_once_and_nine_waits_until_eight() {
        let quiet = sms();
        let before = oslo("2026-12-01 20:59:59");
        assert!(!quiet.contains(before));
        assert_eq!(quiet.next_allowed(before), before);
        assert_eq!(
            quiet.next_allowed(oslo("2026-12-01 21:00:00")),
            oslo("2026-12-02 08:00:00")
        );
        assert_eq!(
            quiet.next_allowed(oslo("2026-12-01 23:59:59")),
            oslo("2026-12-02 08:00:00")
        );
    }

    #[test]
    fn across_midnight_the_same_morning_is_the_end() {
        let quiet = sms();
        assert_eq!(
            quiet.next_allowed(oslo("2026-12-02 00:00:00")),
            oslo("2026-12-02 08:00:00")
        );
        assert_eq!(
            quiet.next_allowed(oslo("2026-12-02 07:59:59")),
            oslo("2026-12-02 08:00:00")
        );
        let eight = oslo("2026-12-02 08:00:00");
        assert_eq!(quiet.next_allowed(eight), eight);
        // Over the new year, and in summer time (UTC+2).
        assert_eq!(
            quiet.next_allowed(oslo("2026-12-31 22:00:00")),
            oslo("2027-01-01 08:00:00")
        );
        assert_eq!(
            quiet.next_allowed(oslo("2027-06-30 21:30:00")),
            oslo("2027-07-01 08:00:00")
        );
        // The night the clocks go forward.
        assert_eq!(
            quiet.next_allowed(oslo("2027-03-27 23:00:00")),
            oslo("2027-03-28 08:00:00")
        );
    }

    #[test]
    fn a_span_within_one_day_and_an_empty_span() {
        let lunch = QuietHours::new(
            NaiveTime::from_hms_opt(11, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(12, 0, 0).unwrap(),
            chrono_tz::Europe::Oslo,
        )
        .unwrap();
        assert_eq!(
            lunch.next_allowed(oslo("2026-12-01 11:30:00")),
            oslo("2026-12-01 12:00:00")
        );
        let ten_to_eleven = oslo("2026-12-01 10:59:00");
        assert_eq!(lunch.next_allowed(ten_to_eleven), ten_to_eleven);
        let noon = NaiveTime::from_hms_opt(12, 0, 0).unwrap();
        assert!(QuietHours::new(noon, noon, chrono_tz::Europe::Oslo).is_none());
    }
}
