//! Identifiers and names that callers send: checked once, the same way in every context.

/// Why an identifier is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// Empty.
    #[error("is required")]
    Empty,
    /// Longer than allowed.
    #[error("must be at most {0} characters")]
    TooLong(usize),
    /// A character outside the allowed set.
    #[error("may contain only letters A-Z, digits, '-', '.' and '_'")]
    Character,
}

/// Checks an identifier that is sent on to other systems (a FHIR id, a unit code): 1 to
/// `max_len` characters of `[A-Za-z0-9._-]`, so it is safe in a URL path and a log line.
pub fn parse_identifier(text: &str, max_len: usize) -> Result<String, IdentifierError> {
    if text.is_empty() {
        return Err(IdentifierError::Empty);
    }
    if text.len() > max_len {
        return Err(IdentifierError::TooLong(max_len));
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(IdentifierError::Character);
    }
    Ok(text.to_owned())
}

/// The longest display name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A person's name as a caller gives it: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no
/// control characters (a name is one line).
pub fn parse_display_name(text: &str) -> Result<String, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is required");
    }
    if text.chars().count() > MAX_NAME_CHARS {
        return Err("must be at most 200 characters");
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_trimmed_line() {
        assert_eq!(
            parse_display_name("  Kari Nordmann "),
            Ok("Kari Nordmann".into())
        );
        assert!(parse_display_name("   ").is_err());
        assert!(parse_display_name("Kari\nNordmann").is_err());
        assert!(parse_display_name(&"æ".repeat(201)).is_err());
        assert!(parse_display_name(&"æ".repeat(200)).is_ok());
    }
}
