//! Norwegian working days (Monday to Friday, except public holidays) and the days of the
//! municipality's time zone: the calendar every rule about days counts in (cancellation
//! cut-offs, a message's reply due date, quiet hours).
//!
//! The public holidays ("helligdager" and the two statutory days, 1 and 17 May) are fixed
//! dates and days counted from Easter Sunday, which `computus` computes. Christmas Eve and
//! New Year's Eve are not public holidays by law, so they are working days here.

use chrono::{DateTime, Datelike as _, Days, NaiveDate, TimeZone as _, Utc, Weekday};
use chrono_tz::Tz;

/// Days after Easter Sunday that are public holidays: Maundy Thursday, Good Friday, Easter
/// Sunday and Monday, Ascension Day, Whit Sunday and Whit Monday.
const EASTER_OFFSETS: [i64; 7] = [-3, -2, 0, 1, 39, 49, 50];
/// Fixed public holidays as (month, day): New Year's Day, Labour Day, Constitution Day,
/// Christmas Day and Boxing Day.
const FIXED_HOLIDAYS: [(u32, u32); 5] = [(1, 1), (5, 1), (5, 17), (12, 25), (12, 26)];

/// Whether `date` is a Norwegian public holiday.
pub fn is_public_holiday(date: NaiveDate) -> bool {
    if FIXED_HOLIDAYS.contains(&(date.month(), date.day())) {
        return true;
    }
    let Ok(easter) = computus::gregorian_naive(date.year()) else {
        return false;
    };
    let offset = (date - easter).num_days();
    EASTER_OFFSETS.contains(&offset)
}

/// Whether `date` is a working day: a weekday that is not a public holiday.
pub fn is_working_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !is_public_holiday(date)
}

/// The `n`th working day before `date` (`n` ≥ 1), or `None` off the end of the calendar.
pub fn working_days_before(date: NaiveDate, n: u32) -> Option<NaiveDate> {
    let mut day = date;
    let mut found = 0;
    while found < n {
        day = day.checked_sub_days(Days::new(1))?;
        if is_working_day(day) {
            found += 1;
        }
    }
    Some(day)
}

/// The `n`th working day after `date` (`n` ≥ 1), or `None` off the end of the calendar: with
/// 1, the first working day after a Friday is the Monday (or the Tuesday after Easter Monday).
pub fn working_days_after(date: NaiveDate, n: u32) -> Option<NaiveDate> {
    let mut day = date;
    let mut found = 0;
    while found < n {
        day = day.checked_add_days(Days::new(1))?;
        if is_working_day(day) {
            found += 1;
        }
    }
    Some(day)
}

/// The calendar day of `instant` in `time_zone`.
pub fn day_of(instant: DateTime<Utc>, time_zone: Tz) -> NaiveDate {
    instant.with_timezone(&time_zone).date_naive()
}

/// The first instant of `date` in `time_zone`.
pub fn start_of_day(date: NaiveDate, time_zone: Tz) -> DateTime<Utc> {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    // Midnight exists on every day in Norway (clocks change at 02:00 and 03:00); the
    // fallback keeps zones where it may not correct.
    time_zone
        .from_local_datetime(&midnight)
        .earliest()
        .unwrap_or_else(|| time_zone.from_utc_datetime(&midnight))
        .to_utc()
}

/// The first instant after `date` in `time_zone`: the start of the next day, or the end of
/// time at the end of the calendar.
pub fn end_of_day(date: NaiveDate, time_zone: Tz) -> DateTime<Utc> {
    date.checked_add_days(Days::new(1))
        .map_or(DateTime::<Utc>::MAX_UTC, |next| {
            start_of_day(next, time_zone)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_holidays_of_2027_are_the_official_ones() {
        // From the Norwegian calendar for 2027 (Easter Sunday is 28 March).
        let expected = [
            date(2027, 1, 1),
            date(2027, 3, 25),
            date(2027, 3, 26),
            date(2027, 3, 28),
            date(2027, 3, 29),
            date(2027, 5, 1),
            date(2027, 5, 6),
            date(2027, 5, 16),
            date(2027, 5, 17),
            date(2027, 12, 25),
            date(2027, 12, 26),
        ];
        let found: Vec<NaiveDate> = date(2027, 1, 1)
            .iter_days()
            .take_while(|day| day.year() == 2027)
            .filter(|day| is_public_holiday(*day))
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn easter_moves_with_the_moon() {
        // Easter Sunday: 5 April 2026, 16 April 2028.
        assert!(is_public_holiday(date(2026, 4, 2)));
        assert!(is_public_holiday(date(2026, 4, 6)));
        assert!(!is_public_holiday(date(2026, 4, 7)));
        assert!(is_public_holiday(date(2028, 4, 13)));
        assert!(is_public_holiday(date(2028, 5, 25)), "Ascension Day 2028");
    }

    #[test]
    fn weekends_and_holidays_are_not_working_days() {
        assert!(is_working_day(date(2026, 12, 1)), "a Tuesday");
        assert!(!is_working_day(date(2026, 12, 5)), "a Saturday");
        assert!(!is_working_day(date(2026, 12, 6)), "a Sunday");
        assert!(
            !is_working_day(date(2026, 12, 25)),
            "Christmas Day, a Friday"
        );
        assert!(
            is_working_day(date(2026, 12, 24)),
            "Christmas Eve is not a public holiday"
        );
    }

    #[test]
    fn counting_back_skips_weekends_and_holidays() {
        // Monday 7 Dec 2026 → Friday 4 Dec.
        assert_eq!(
            working_days_before(date(2026, 12, 7), 1),
            Some(date(2026, 12, 4))
        );
        // Tuesday 30 March 2027, after Easter → Wednesday 24 March (Thu 25 to Mon 29 are off).
        assert_eq!(
            working_days_before(date(2027, 3, 30), 1),
            Some(date(2027, 3, 24))
        );
        assert_eq!(
            working_days_before(date(2027, 3, 30), 2),
            Some(date(2027, 3, 23))
        );
        // Monday 28 Dec 2026 → Thursday 24 Dec (25 and 26 are holidays, 27 a Sunday).
        assert_eq!(
            working_days_before(date(2026, 12, 28), 1),
            Some(date(2026, 12, 24))
        );
    }

    #[test]
    fn counting_forward_skips_weekends_and_holidays() {
        // Friday 4 Dec 2026 → Monday 7 Dec.
        assert_eq!(
            working_days_after(date(2026, 12, 4), 1),
            Some(date(2026, 12, 7))
        );
        // Wednesday 24 March 2027, before Easter → Tuesday 30 March (Thu 25 to Mon 29 off).
        assert_eq!(
            working_days_after(date(2027, 3, 24), 1),
            Some(date(2027, 3, 30))
        );
        // Thursday 24 Dec 2026 → Monday 28 Dec; two working days → Tuesday 29 Dec.
        assert_eq!(
            working_days_after(date(2026, 12, 24), 1),
            Some(date(2026, 12, 28))
        );
        assert_eq!(
            working_days_after(date(2026, 12, 24), 2),
            Some(date(2026, 12, 29))
        );
        // Counting forward and back are inverse on working days.
        let monday = date(2026, 12, 7);
        assert_eq!(
            working_days_before(working_days_after(monday, 3).unwrap(), 3),
            Some(monday)
        );
    }

    #[test]
    fn days_are_counted_in_the_municipality_s_time_zone() {
        let oslo = chrono_tz::Europe::Oslo;
        // 23:30 UTC on 1 Dec is 00:30 on 2 Dec in Oslo (winter, UTC+1).
        let late = Utc.with_ymd_and_hms(2026, 12, 1, 23, 30, 0).unwrap();
        assert_eq!(day_of(late, oslo), date(2026, 12, 2));
        assert_eq!(
            start_of_day(date(2026, 12, 2), oslo),
            Utc.with_ymd_and_hms(2026, 12, 1, 23, 0, 0).unwrap()
        );
        // The day the clocks go forward (29 March 2026) is 23 hours long.
        let spring = date(2026, 3, 29);
        assert_eq!(
            (end_of_day(spring, oslo) - start_of_day(spring, oslo)).num_hours(),
            23
        );
    }
}
