//! Norwegian national identity numbers: fødselsnummer and D-number.
//!
//! Eleven digits: a birth date (DDMMYY, with 4 added to the first digit for a D-number), a
//! three-digit individual number whose range gives the century, and two check digits
//! (modulus 11). Written by hand because no maintained crate covers D-numbers, the century
//! rules and the check digits together; the unit tests below pin each rule.
//!
//! The national test registers use numbers that are valid except for their month: H-numbers
//! (the Skatteetaten test register's, month + 40) and Tenor's synthetic persons (month + 80).
//! They are accepted only under [`IdentityRules::accept_synthetic`], which a municipality's
//! test environment turns on (and the embedded development setup has on).
//!
//! From 2032 new numbers no longer encode the century in the individual number (and the
//! check digits change): [`century`] and the age rules that rest on the birth date here will
//! then need the birth date from the population register instead.
//!
//! An identity number is personal data: [`NationalIdentityNumber`] has no `Display`, and its
//! `Debug` prints a redaction, so it cannot reach a log line by accident.

use chrono::NaiveDate;

const FIRST_CHECK_WEIGHTS: [u32; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
const SECOND_CHECK_WEIGHTS: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

/// A national identity number whose format, date and check digits are valid.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NationalIdentityNumber {
    digits: String,
    kind: IdentityNumberKind,
    birth_date: NaiveDate,
    synthetic: bool,
}

/// Which identity numbers a server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdentityRules {
    /// Also the synthetic numbers of the national test registers (month + 40 or + 80).
    /// Never in production: those numbers are no one's, but a real person's record must
    /// not be reachable by a number made up to look like theirs.
    pub accept_synthetic: bool,
}

impl IdentityRules {
    /// Real numbers only.
    pub const PRODUCTION: IdentityRules = IdentityRules {
        accept_synthetic: false,
    };

    /// Parses `text` under these rules.
    pub fn parse(self, text: &str) -> Result<NationalIdentityNumber, IdentityNumberError> {
        NationalIdentityNumber::parse_under(text, self)
    }
}

/// Which kind of number it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdentityNumberKind {
    /// A fødselsnummer, given at birth or immigration.
    BirthNumber,
    /// A D-number, given to people who are not (yet) registered as residents.
    DNumber,
}

/// Why a text is not a valid identity number. Never carries the text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityNumberError {
    /// Not exactly eleven ASCII digits.
    #[error("must be exactly 11 digits")]
    Format,
    /// The first six digits are not a calendar date.
    #[error("does not start with a valid birth date")]
    BirthDate,
    /// A check digit does not match.
    #[error("has wrong check digits")]
    CheckDigits,
}

impl NationalIdentityNumber {
    /// Parses and validates a real identity number (not a test register's synthetic one).
    pub fn parse(text: &str) -> Result<Self, IdentityNumberError> {
        Self::parse_under(text, IdentityRules::PRODUCTION)
    }

    /// Parses and validates an identity number under `rules`.
    pub fn parse_under(text: &str, rules: IdentityRules) -> Result<Self, IdentityNumberError> {
        let bytes = text.as_bytes();
        if bytes.len() != 11 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(IdentityNumberError::Format);
        }
        let digits: Vec<u32> = bytes.iter().map(|b| u32::from(b - b'0')).collect();
        if check_digit(&digits[..9], &FIRST_CHECK_WEIGHTS) != Some(digits[9])
            || check_digit(&digits[..10], &SECOND_CHECK_WEIGHTS) != Some(digits[10])
        {
            return Err(IdentityNumberError::CheckDigits);
        }

        let (kind, day) = match digits[0] * 10 + digits[1] {
            day @ 1..=31 => (IdentityNumberKind::BirthNumber, day),
            day @ 41..=71 => (IdentityNumberKind::DNumber, day - 40),
            _ => return Err(IdentityNumberError::BirthDate),
        };
        let (month, synthetic) = match digits[2] * 10 + digits[3] {
            month @ 1..=12 => (month, false),
            month @ 41..=52 if rules.accept_synthetic => (month - 40, true),
            month @ 81..=92 if rules.accept_synthetic => (month - 80, true),
            _ => return Err(IdentityNumberError::BirthDate),
        };
        let two_digit_year = digits[4] * 10 + digits[5];
        let individual = digits[6] * 100 + digits[7] * 10 + digits[8];
        let year = century(individual, two_digit_year).ok_or(IdentityNumberError::BirthDate)?
            + two_digit_year;
        let year = i32::try_from(year).map_err(|_| IdentityNumberError::BirthDate)?;
        let birth_date =
            NaiveDate::from_ymd_opt(year, month, day).ok_or(IdentityNumberError::BirthDate)?;

        Ok(Self {
            digits: text.to_owned(),
            kind,
            birth_date,
            synthetic,
        })
    }

    /// The eleven digits, for storage and for the EPJ. Never log them.
    pub fn expose(&self) -> &str {
        &self.digits
    }

    /// Whether this is a fødselsnummer or a D-number.
    pub fn kind(&self) -> IdentityNumberKind {
        self.kind
    }

    /// Whether this is a test register's synthetic number.
    pub fn is_synthetic(&self) -> bool {
        self.synthetic
    }

    /// The birth date the number encodes.
    pub fn birth_date(&self) -> NaiveDate {
        self.birth_date
    }

    /// The person's age in whole years on `date`: a birthday counts from its first day, and
    /// someone born on 29 February turns a year older on 1 March in common years.
    pub fn age_on(&self, date: NaiveDate) -> u32 {
        date.years_since(self.birth_date).unwrap_or(0)
    }

    /// The fødselsnummer of someone born on `birth_date` with `individual` number (0-999, in
    /// the range the population register uses for the birth year), if the check digits
    /// exist for it (about one individual number in eleven has none). For test people and
    /// load data: the result is valid, but belongs to whoever has it.
    pub fn synthesize(birth_date: NaiveDate, individual: u32) -> Option<Self> {
        Self::synthesize_with_month_offset(birth_date, individual, 0)
    }

    /// Like [`NationalIdentityNumber::synthesize`], a synthetic person of the Tenor test
    /// register (month + 80): accepted only under [`IdentityRules::accept_synthetic`].
    pub fn synthesize_test_person(birth_date: NaiveDate, individual: u32) -> Option<Self> {
        Self::synthesize_with_month_offset(birth_date, individual, 80)
    }

    fn synthesize_with_month_offset(
        birth_date: NaiveDate,
        individual: u32,
        month_offset: u32,
    ) -> Option<Self> {
        use chrono::Datelike as _;
        let first_nine = format!(
            "{:02}{:02}{:02}{:03}",
            birth_date.day(),
            birth_date.month() + month_offset,
            birth_date.year().rem_euclid(100),
            individual
        );
        let mut digits: Vec<u32> = first_nine.bytes().map(|b| u32::from(b - b'0')).collect();
        digits.push(check_digit(&digits, &FIRST_CHECK_WEIGHTS)?);
        digits.push(check_digit(&digits, &SECOND_CHECK_WEIGHTS)?);
        let text: String = digits.iter().map(u32::to_string).collect();
        let rules = IdentityRules {
            accept_synthetic: month_offset > 0,
        };
        Self::parse_under(&text, rules)
            .ok()
            .filter(|number| number.birth_date == birth_date)
    }
}

impl std::fmt::Debug for NationalIdentityNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NationalIdentityNumber(<redacted>)")
    }
}

/// Modulus-11 check digit over `digits` with `weights`; `None` when the remainder makes the
/// number impossible (a check digit of 10).
fn check_digit(digits: &[u32], weights: &[u32]) -> Option<u32> {
    let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        digit => Some(digit),
    }
}

/// The century from the individual number's range, as the population register assigns them.
/// Holds for numbers given before 2032; see the module's documentation.
fn century(individual: u32, two_digit_year: u32) -> Option<u32> {
    match individual {
        0..=499 => Some(1900),
        500..=749 if two_digit_year >= 54 => Some(1800),
        500..=999 if two_digit_year <= 39 => Some(2000),
        900..=999 if two_digit_year >= 40 => Some(1900),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_counts_whole_years_from_the_birthday() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let person = NationalIdentityNumber::synthesize(date(2008, 12, 1), 512).unwrap();
        assert_eq!(person.age_on(date(2026, 11, 30)), 17);
        assert_eq!(person.age_on(date(2026, 12, 1)), 18);
        let leapling = NationalIdentityNumber::synthesize(date(2008, 2, 29), 512).unwrap();
        assert_eq!(leapling.age_on(date(2026, 2, 28)), 17);
        assert_eq!(leapling.age_on(date(2026, 3, 1)), 18);
        assert_eq!(person.age_on(date(2000, 1, 1)), 0, "before birth");
    }

    #[test]
    fn synthesized_numbers_parse_to_their_birth_date() {
        let born = NaiveDate::from_ymd_opt(1961, 5, 17).unwrap();
        let found = (0..500)
            .filter_map(|individual| NationalIdentityNumber::synthesize(born, individual))
            .collect::<Vec<_>>();
        assert!(
            found.len() > 400,
            "most individual numbers have check digits"
        );
        for number in found {
            let parsed = NationalIdentityNumber::parse(number.expose()).unwrap();
            assert_eq!(parsed.birth_date(), born);
        }
        // 1961 with individual number 600 lies in no century range.
        assert!(NationalIdentityNumber::synthesize(born, 600).is_none());
    }

    /// Builds a valid number from a date part and an individual number by computing its check
    /// digits, so the tests state their intent rather than magic numbers.
    fn with_check_digits(first_nine: &str) -> String {
        try_check_digits(first_nine).expect("check digits defined")
    }

    /// `first_nine` with its check digits, if it has them.
    fn try_check_digits(first_nine: &str) -> Option<String> {
        let digits: Vec<u32> = first_nine.bytes().map(|b| u32::from(b - b'0')).collect();
        let k1 = check_digit(&digits, &FIRST_CHECK_WEIGHTS)?;
        let mut ten = digits.clone();
        ten.push(k1);
        let k2 = check_digit(&ten, &SECOND_CHECK_WEIGHTS)?;
        Some(format!("{first_nine}{k1}{k2}"))
    }

    #[test]
    fn known_valid_birth_number_parses_with_its_birth_date() {
        // Born 1 January 2007 (individual number 501, so the 2000s).
        let number = NationalIdentityNumber::parse("01010750160").expect("valid");
        assert_eq!(number.kind(), IdentityNumberKind::BirthNumber);
        assert_eq!(
            number.birth_date(),
            NaiveDate::from_ymd_opt(2007, 1, 1).unwrap()
        );
    }

    #[test]
    fn d_number_has_four_added_to_the_first_digit() {
        let text = with_check_digits("410185124");
        let number = NationalIdentityNumber::parse(&text).expect("valid D-number");
        assert_eq!(number.kind(), IdentityNumberKind::DNumber);
        assert_eq!(
            number.birth_date(),
            NaiveDate::from_ymd_opt(1985, 1, 1).unwrap()
        );
    }

    #[test]
    fn century_follows_the_individual_number() {
        let cases = [
            ("150340123", 1940),
            ("150340999", 1940),
            ("150320500", 2020),
            ("150360600", 1860),
            ("150399499", 1999),
        ];
        for (first_nine, year) in cases {
            let text = with_check_digits(first_nine);
            let number = NationalIdentityNumber::parse(&text).expect("valid number");
            assert_eq!(
                number.birth_date().format("%Y").to_string(),
                year.to_string()
            );
        }
    }

    #[test]
    fn wrong_check_digit_is_refused() {
        assert_eq!(
            NationalIdentityNumber::parse("01010750161"),
            Err(IdentityNumberError::CheckDigits)
        );
    }

    #[test]
    fn wrong_length_or_letters_are_refused() {
        for text in [
            "",
            "0101075016",
            "010107501600",
            "0101075016a",
            " 1010750160",
        ] {
            assert_eq!(
                NationalIdentityNumber::parse(text),
                Err(IdentityNumberError::Format),
                "{text:?}"
            );
        }
    }

    #[test]
    fn impossible_date_is_refused_even_with_matching_check_digits() {
        let text = with_check_digits("310285123");
        assert_eq!(
            NationalIdentityNumber::parse(&text),
            Err(IdentityNumberError::BirthDate)
        );
    }

    /// A number with the date part `first_six` and the first individual number in 100-499
    /// (the 1900s) that has check digits.
    fn any_with_date(first_six: &str) -> String {
        (100..500)
            .find_map(|individual| try_check_digits(&format!("{first_six}{individual}")))
            .expect("some individual number has check digits")
    }

    #[test]
    fn synthetic_numbers_of_the_test_registers_only_under_their_rule() {
        let testing = IdentityRules {
            accept_synthetic: true,
        };
        // 15 March 1940: an H-number (month + 40) and a Tenor number (month + 80).
        for first_six in ["154340", "158340"] {
            let text = any_with_date(first_six);
            assert_eq!(
                NationalIdentityNumber::parse(&text),
                Err(IdentityNumberError::BirthDate),
                "{first_six} in production"
            );
            let number = testing.parse(&text).expect("a test register's number");
            assert!(number.is_synthetic());
            assert_eq!(
                number.birth_date(),
                NaiveDate::from_ymd_opt(1940, 3, 15).unwrap()
            );
        }
        // A D-number of a synthetic person, and months that are still impossible.
        let d_number = testing.parse(&any_with_date("558340")).unwrap();
        assert_eq!(d_number.kind(), IdentityNumberKind::DNumber);
        for first_six in ["155340", "159340", "152340"] {
            assert_eq!(
                testing.parse(&any_with_date(first_six)),
                Err(IdentityNumberError::BirthDate),
                "{first_six}"
            );
        }
        let real = testing.parse("01010750160").unwrap();
        assert!(!real.is_synthetic());
        let born = NaiveDate::from_ymd_opt(1940, 3, 15).unwrap();
        let made = (0..500)
            .find_map(|individual| NationalIdentityNumber::synthesize_test_person(born, individual))
            .unwrap();
        assert!(made.is_synthetic());
        assert_eq!(&made.expose()[2..4], "83");
    }

    #[test]
    fn debug_output_never_shows_the_digits() {
        let number = NationalIdentityNumber::parse("01010750160").unwrap();
        assert!(!format!("{number:?}").contains("0101"));
    }
}
