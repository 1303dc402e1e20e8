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

/// A caller's idempotency key (`request_id`): an identifier of at most
/// [`RequestId::MAX_LEN`] characters. A repeat of it returns the first request's result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// The longest request id accepted.
    pub const MAX_LEN: usize = 64;

    /// Checks a request id as sent.
    pub fn parse(text: &str) -> Result<RequestId, IdentifierError> {
        parse_identifier(text, Self::MAX_LEN).map(RequestId)
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id, for storage.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A care unit's id, as the EPJ and the staff identity provider name units (`nord`,
/// `sone-3`): an identifier of at most [`CareUnitId::MAX_LEN`] characters, checked where it
/// comes in (a request, a staff token's claim, a visit from the EPJ).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CareUnitId(String);

impl CareUnitId {
    /// The longest care unit id accepted.
    pub const MAX_LEN: usize = 64;

    /// Checks a care unit id as sent.
    pub fn parse(text: &str) -> Result<CareUnitId, IdentifierError> {
        parse_identifier(text, Self::MAX_LEN).map(CareUnitId)
    }

    /// An optional care unit id as sent: empty is none (in a staff request, all of the
    /// caller's units).
    pub fn parse_optional(text: &str) -> Result<Option<CareUnitId>, IdentifierError> {
        if text.is_empty() {
            Ok(None)
        } else {
            Self::parse(text).map(Some)
        }
    }

    /// A care unit id read back from storage, where only checked ids are written.
    pub fn stored(text: String) -> CareUnitId {
        CareUnitId(text)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id, for storage.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for CareUnitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for CareUnitId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl From<CareUnitId> for sea_orm::Value {
    fn from(unit: CareUnitId) -> Self {
        unit.0.into()
    }
}

/// Why an id this service gave out (a patient's, a visit's, a proxy's) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty.
    #[error("is required")]
    Empty,
    /// Not one of our ids; `what` is the kind (`id`, `patient id`).
    #[error("is not a valid {0}")]
    Invalid(&'static str),
}

/// Reads an id this service gave out: a UUID. `what` names the kind of id in the refusal
/// (`id`, `patient id`), never the text sent.
pub fn parse_id(text: &str, what: &'static str) -> Result<uuid::Uuid, IdError> {
    if text.is_empty() {
        return Err(IdError::Empty);
    }
    uuid::Uuid::parse_str(text).map_err(|_| IdError::Invalid(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_short_identifiers() {
        assert_eq!(RequestId::parse("cancel-1").unwrap().as_str(), "cancel-1");
        assert_eq!(RequestId::parse(""), Err(IdentifierError::Empty));
        assert_eq!(
            RequestId::parse(&"x".repeat(65)),
            Err(IdentifierError::TooLong(64))
        );
        assert_eq!(RequestId::parse("a b"), Err(IdentifierError::Character));
    }

    #[test]
    fn ids_are_uuids_and_a_refusal_never_repeats_the_text() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(parse_id(&id.to_string(), "id"), Ok(id));
        assert_eq!(parse_id("", "id"), Err(IdError::Empty));
        let refused = parse_id("15034012366", "patient id").unwrap_err();
        assert_eq!(refused.to_string(), "is not a valid patient id");
    }
}
