//! Identifiers that callers send: checked once, the same way in every context. Text meant
//! for people to read is in [`crate::text`].

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
