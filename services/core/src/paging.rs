//! AIP-158 pagination: page sizes and opaque keyset page tokens.
//!
//! A token carries the position after the last item of the page (the sort key and the id)
//! and a description of the query it belongs to, so a token reused with other filters is
//! refused instead of silently skipping or repeating items.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The page size used when the request leaves it at 0.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// The largest page size served; larger requests are clamped to it, as AIP-158 asks.
pub const MAX_PAGE_SIZE: u64 = 200;

/// Why a page size or token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    /// A negative page size.
    #[error("must not be negative")]
    NegativePageSize,
    /// A token this service did not issue, or issued for another query.
    #[error("is not a token from a previous call with the same filters")]
    InvalidToken,
}

/// The number of items to return for a requested `page_size`.
pub fn page_size(requested: i32) -> Result<u64, PagingError> {
    match u64::try_from(requested) {
        Err(_) => Err(PagingError::NegativePageSize),
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(size) => Ok(size.min(MAX_PAGE_SIZE)),
    }
}

/// The position after which the next page starts: items are ordered by (`after`, `id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The sort key of the last item served.
    pub after: DateTime<Utc>,
    /// The id of the last item served, to break ties.
    pub id: Uuid,
}

/// What a page token is bound to: the list (for lists whose keys could be mistaken for
/// another's) and each filter as the request sent it, so that a token is refused with any
/// other filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryKey(String);

impl QueryKey {
    /// The key of the list `name`.
    pub fn named(name: &'static str) -> Self {
        Self(name.to_owned())
    }

    /// The same key bound to `filter` = `value` too.
    pub fn with(mut self, filter: &'static str, value: impl std::fmt::Display) -> Self {
        use std::fmt::Write as _;
        if !self.0.is_empty() {
            self.0.push('|');
        }
        let _ = write!(self.0, "{filter}={value}");
        self
    }

    /// The key as text, for tokens that carry it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Cursor {
    /// An opaque token for this cursor within the query described by `query`.
    pub fn encode(&self, query: &QueryKey) -> String {
        let query = query.as_str();
        let plain = format!(
            "1|{}|{}|{}",
            self.after.timestamp_micros(),
            self.id.as_simple(),
            query
        );
        URL_SAFE_NO_PAD.encode(plain)
    }

    /// The cursor in `token`, which must have been issued for `query`. An empty token is the
    /// first page.
    pub fn decode(token: &str, query: &QueryKey) -> Result<Option<Self>, PagingError> {
        let query = query.as_str();
        if token.is_empty() {
            return Ok(None);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| PagingError::InvalidToken)?;
        let plain = String::from_utf8(bytes).map_err(|_| PagingError::InvalidToken)?;
        let mut parts = plain.splitn(4, '|');
        let (Some("1"), Some(micros), Some(id), Some(token_query)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PagingError::InvalidToken);
        };
        if token_query != query {
            return Err(PagingError::InvalidToken);
        }
        let micros: i64 = micros.parse().map_err(|_| PagingError::InvalidToken)?;
        Ok(Some(Cursor {
            after: DateTime::from_timestamp_micros(micros).ok_or(PagingError::InvalidToken)?,
            id: Uuid::parse_str(id).map_err(|_| PagingError::InvalidToken)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_defaults_clamps_and_refuses_negative() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(7), Ok(7));
        assert_eq!(page_size(10_000), Ok(MAX_PAGE_SIZE));
        assert_eq!(page_size(-1), Err(PagingError::NegativePageSize));
    }

    fn of_patient(patient: &str) -> QueryKey {
        QueryKey::default().with("patient", patient)
    }

    #[test]
    fn token_round_trips_for_the_same_query() {
        let cursor = Cursor {
            after: DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        let token = cursor.encode(&of_patient("a"));
        assert_eq!(Cursor::decode(&token, &of_patient("a")), Ok(Some(cursor)));
    }

    #[test]
    fn token_from_another_query_or_garbage_is_refused() {
        let cursor = Cursor {
            after: Utc::now(),
            id: Uuid::now_v7(),
        };
        let token = cursor.encode(&of_patient("a"));
        for other in [
            of_patient("b"),
            of_patient("a").with("unit", "x"),
            QueryKey::named("access-log").with("patient", "a"),
        ] {
            assert_eq!(
                Cursor::decode(&token, &other),
                Err(PagingError::InvalidToken),
                "{other:?}"
            );
        }
        assert_eq!(
            Cursor::decode("not a token", &of_patient("a")),
            Err(PagingError::InvalidToken)
        );
    }

    #[test]
    fn tokens_keep_the_form_issued_before_query_keys_were_typed() {
        let cursor = Cursor {
            after: DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap(),
            id: Uuid::nil(),
        };
        let key = QueryKey::default()
            .with("patient", "p")
            .with("start", -1)
            .with("end", -1);
        let plain = format!(
            "1|1790000000123456|{}|patient=p|start=-1|end=-1",
            Uuid::nil().as_simple()
        );
        assert_eq!(cursor.encode(&key), URL_SAFE_NO_PAD.encode(plain));
    }

    #[test]
    fn empty_token_is_the_first_page() {
        assert_eq!(Cursor::decode("", &QueryKey::named("anything")), Ok(None));
    }
}
