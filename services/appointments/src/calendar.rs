//! Norwegian working days: Monday to Friday, except public holidays.
//!
//! The public holidays ("helligdager" and the two statutory days, 1 and 17 May) are fixed
//! dates and days counted from Easter Sunday, which `computus` computes. Christmas Eve and
//! New Year's Eve are not public holidays by law, so they are working days here.

use chrono::{Datelike as _, Days, NaiveDate, Weekday};

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
}
