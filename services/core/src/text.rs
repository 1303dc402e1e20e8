//! Text that people send for other people to read: names, archive references, a
//! cancellation's reason.
//!
//! Someone else will see it (a patient in their access log, staff in their tools), so it must
//! read as what it is. Invisible format characters and bidirectional controls (U+202E turns
//! "Kari" into a name that reads backwards; U+200B hides inside one) are refused, not
//! stripped: a caller who sends them learns so. Text is stored in Unicode NFC, so "å" typed as
//! "a" + combining ring and as one character is the same name. Every letter of every script
//! stays welcome: Norwegian, Sami (č, đ, ŋ, š, ŧ, ž) and the rest.

use unicode_normalization::UnicodeNormalization as _;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

/// The longest display name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Why a text is refused. Never carries the text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty, or only spaces.
    #[error("is required")]
    Empty,
    /// Longer than allowed.
    #[error("must be at most {0} characters")]
    TooLong(usize),
    /// A control character (a line break in a one-line text).
    #[error("must not contain control characters")]
    Control,
    /// A character that is invisible or changes the direction of the text around it.
    #[error("must not contain invisible or direction-changing characters")]
    Invisible,
}

/// Whether `c` is invisible or steers the display of its neighbours: format characters
/// (bidirectional embeddings, overrides and isolates, zero-width spaces and joiners, the
/// byte-order mark, tags), line and paragraph separators, private-use and unassigned code
/// points, and letters and marks that render as nothing.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
            | GeneralCategory::Unassigned
    ) || matches!(
        c,
        // Combining grapheme joiner, Hangul fillers: classified as marks or letters, shown
        // as nothing.
        '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}'
    )
}

fn check_characters(text: &str, allowed_controls: &[char]) -> Result<(), TextError> {
    for c in text.chars() {
        if c.is_control() && !allowed_controls.contains(&c) {
            return Err(TextError::Control);
        }
        if is_invisible(c) {
            return Err(TextError::Invisible);
        }
    }
    Ok(())
}

/// A person's name (or another one-line label people read) as a caller gives it: trimmed,
/// in NFC, 1 to `max_chars` characters, one line, nothing invisible.
pub fn parse_line(text: &str, max_chars: usize) -> Result<String, TextError> {
    let text: String = text.trim().nfc().collect();
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    if text.chars().count() > max_chars {
        return Err(TextError::TooLong(max_chars));
    }
    check_characters(&text, &[])?;
    Ok(text)
}

/// A person's name: [`parse_line`] of at most [`MAX_NAME_CHARS`].
pub fn parse_display_name(text: &str) -> Result<String, TextError> {
    parse_line(text, MAX_NAME_CHARS)
}

/// A free text of several lines (a reason, later a message): trimmed, in NFC, at most
/// `max_chars` characters, line breaks and tabs allowed, nothing else invisible. Empty is
/// `None`.
pub fn parse_optional_text(text: &str, max_chars: usize) -> Result<Option<String>, TextError> {
    let text: String = text.trim().nfc().collect();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > max_chars {
        return Err(TextError::TooLong(max_chars));
    }
    check_characters(&text, &['\n', '\r', '\t'])?;
    Ok(Some(text))
}

/// A message's text, checked but kept exactly as sent (a message is stored as its author
/// wrote it): not empty or only spaces, at most `max_chars` characters, line breaks and tabs
/// allowed, nothing invisible.
pub fn check_message_text(text: &str, max_chars: usize) -> Result<(), TextError> {
    if text.trim().is_empty() {
        return Err(TextError::Empty);
    }
    if text.chars().count() > max_chars {
        return Err(TextError::TooLong(max_chars));
    }
    check_characters(text, &['\n', '\r', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_text_is_checked_and_kept_as_sent() {
        assert_eq!(check_message_text("  Hei!\n\nMvh Kari  ", 20), Ok(()));
        assert_eq!(check_message_text(" \n\t ", 20), Err(TextError::Empty));
        assert_eq!(
            check_message_text(&"ø".repeat(21), 20),
            Err(TextError::TooLong(20))
        );
        assert_eq!(check_message_text(&"ø".repeat(20), 20), Ok(()));
        assert_eq!(
            check_message_text("Hei\u{202E}draH", 20),
            Err(TextError::Invisible)
        );
        assert_eq!(check_message_text("Hei\u{7}", 20), Err(TextError::Control));
    }

    #[test]
    fn names_are_one_trimmed_line() {
        assert_eq!(
            parse_display_name("  Kari Nordmann "),
            Ok("Kari Nordmann".into())
        );
        assert_eq!(parse_display_name("   "), Err(TextError::Empty));
        assert_eq!(
            parse_display_name("Kari\nNordmann"),
            Err(TextError::Control)
        );
        assert!(parse_display_name(&"æ".repeat(201)).is_err());
        assert!(parse_display_name(&"æ".repeat(200)).is_ok());
    }

    #[test]
    fn letters_of_every_script_are_kept() {
        for name in [
            "Åse Ødegård",
            "Máret Ŋuolga Čeavčča-Šiđđa Ŧuđe Žárko",
            "José Müller-Łukasiewicz",
            "محمد علي",
            "אברהם",
            "Nguyễn Thị Ánh",
            "李小龍",
        ] {
            assert_eq!(parse_display_name(name).as_deref(), Ok(name), "{name}");
        }
    }

    #[test]
    fn direction_controls_and_invisible_characters_are_refused() {
        for c in [
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200E}',
            '\u{200F}',
            '\u{061C}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{E0041}',
            '\u{2028}',
            '\u{2029}',
            '\u{E000}',
            '\u{3164}',
            '\u{034F}',
        ] {
            let name = format!("Kari{c}Nordmann");
            assert_eq!(
                parse_display_name(&name),
                Err(TextError::Invisible),
                "U+{:04X}",
                u32::from(c)
            );
            assert_eq!(
                parse_optional_text(&format!("Hos {c}datteren"), 500),
                Err(TextError::Invisible),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn names_are_stored_composed() {
        let decomposed = "A\u{030A}se";
        assert_eq!(parse_display_name(decomposed), Ok("Åse".into()));
    }

    #[test]
    fn free_text_keeps_its_lines() {
        assert_eq!(
            parse_optional_text(" Hos datteren\nTilbake fredag\t(ca.) ", 500),
            Ok(Some("Hos datteren\nTilbake fredag\t(ca.)".into()))
        );
        assert_eq!(parse_optional_text("  ", 500), Ok(None));
        assert_eq!(
            parse_optional_text("a\u{0007}", 500),
            Err(TextError::Control)
        );
        assert_eq!(
            parse_optional_text(&"x".repeat(501), 500),
            Err(TextError::TooLong(500))
        );
    }
}
