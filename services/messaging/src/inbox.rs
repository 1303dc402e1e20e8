//! The staff inbox: open threads of some units, cancellation requests waiting for an answer
//! first, then the others waiting for one, then the answered ones; each group oldest due
//! first. Paged by an opaque key over that order.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use homecare_core::identifier::CareUnitId;
use homecare_core::paging::{PagingError, QueryKey};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::entity::thread::{self, Column};
use crate::thread::Priority;

/// Where the next page of an inbox starts: after the thread with this place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxCursor {
    priority: i16,
    due_at: DateTime<Utc>,
    id: Uuid,
}

impl InboxCursor {
    /// Right after `thread`.
    pub fn after(thread: &thread::Model) -> Self {
        Self {
            priority: thread.priority,
            due_at: thread.due_at.unwrap_or(DateTime::<Utc>::MIN_UTC),
            id: thread.id,
        }
    }

    /// An opaque token for this place within `query`.
    pub fn encode(&self, query: &QueryKey) -> String {
        let plain = format!(
            "i1|{}|{}|{}|{}",
            self.priority,
            self.due_at.timestamp_micros(),
            self.id.as_simple(),
            query.as_str()
        );
        URL_SAFE_NO_PAD.encode(plain)
    }

    /// The place in `token`, which must have been issued for `query`; none for the first
    /// page.
    pub fn decode(token: &str, query: &QueryKey) -> Result<Option<Self>, PagingError> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = PagingError::InvalidToken;
        let plain =
            String::from_utf8(URL_SAFE_NO_PAD.decode(token).map_err(|_| bad)?).map_err(|_| bad)?;
        let mut parts = plain.splitn(5, '|');
        let (Some("i1"), Some(priority), Some(micros), Some(id), Some(token_query)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad);
        };
        if token_query != query.as_str() {
            return Err(bad);
        }
        Ok(Some(Self {
            priority: priority.parse().map_err(|_| bad)?,
            due_at: DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad)?).ok_or(bad)?,
            id: Uuid::parse_str(id).map_err(|_| bad)?,
        }))
    }
}

/// A page of the open threads of `units`, after `cursor`; the next cursor when there is more.
///
/// One query per unit, each a range of the inbox index read in order and stopped after a
/// page, merged here: a query over several units at once would sort every open thread of
/// them (measured: 29 ms for a unit of 25,000 threads on PostgreSQL, against well under 1 ms).
pub async fn page<C: ConnectionTrait>(
    db: &C,
    units: &[CareUnitId],
    cursor: Option<InboxCursor>,
    page_size: u64,
) -> Result<(Vec<thread::Model>, Option<InboxCursor>), DbErr> {
    let mut rows = Vec::new();
    for unit in units {
        let mut select = thread::Entity::find()
            .filter(Column::CareUnitId.eq(unit.as_str()))
            .filter(Column::Priority.lt(Priority::Closed as i16));
        if let Some(cursor) = cursor {
            select = select.filter(
                Expr::tuple([
                    Expr::col(Column::Priority),
                    Expr::col(Column::DueAt),
                    Expr::col(Column::Id),
                ])
                .gt(Expr::tuple([
                    Expr::value(cursor.priority),
                    Expr::value(cursor.due_at),
                    Expr::value(cursor.id),
                ])),
            );
        }
        rows.extend(
            select
                .order_by_asc(Column::Priority)
                .order_by_asc(Column::DueAt)
                .order_by_asc(Column::Id)
                .limit(page_size + 1)
                .all(db)
                .await?,
        );
    }
    rows.sort_by_key(|row| (row.priority, row.due_at, row.id));
    let next = if rows.len() as u64 > page_size {
        rows.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
        rows.last().map(InboxCursor::after)
    } else {
        None
    };
    Ok((rows, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_its_query() {
        let cursor = InboxCursor {
            priority: 1,
            due_at: DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        let mine = QueryKey::named("inbox").with("units", "frogner");
        let token = cursor.encode(&mine);
        assert_eq!(InboxCursor::decode(&token, &mine), Ok(Some(cursor)));
        let other = QueryKey::named("inbox").with("units", "sagene");
        assert_eq!(
            InboxCursor::decode(&token, &other),
            Err(PagingError::InvalidToken)
        );
        assert_eq!(
            InboxCursor::decode("garbage", &mine),
            Err(PagingError::InvalidToken)
        );
    }
}
