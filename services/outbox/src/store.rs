//! The outbox's storage, generic over a sink's table: claim, record outcomes, park, put back,
//! list parked rows. Every function reads and writes only the standard columns (see the
//! crate's documentation); the sink's own columns travel in its rows untouched.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use homecare_core::db::begin_write;
use homecare_core::paging::Cursor;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait as _, Statement,
};
use uuid::Uuid;

use crate::sink::{OutboxRow, Sink};

/// Where a row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    /// Waiting for its next attempt (or in one, while leased).
    Pending,
    /// The receiver took it.
    Delivered,
    /// Parked: refused, or out of attempts. Listed for staff, who may put it back.
    Failed,
}

impl RowState {
    /// The form kept in the `state` column.
    pub fn as_stored(self) -> &'static str {
        match self {
            RowState::Pending => "pending",
            RowState::Delivered => "delivered",
            RowState::Failed => "failed",
        }
    }

    /// Reads the `state` column.
    pub fn from_stored(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(RowState::Pending),
            "delivered" => Some(RowState::Delivered),
            "failed" => Some(RowState::Failed),
            _ => None,
        }
    }
}

/// What the worker decided after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver took it.
    Delivered,
    /// The receiver took it and the sink recorded it (see [`crate::Attempt::Recorded`]).
    Recorded,
    /// Try again at `next_attempt_at`.
    Retry {
        /// What went wrong.
        error: String,
        /// When to try next.
        next_attempt_at: DateTime<Utc>,
    },
    /// Not yet: due again at `until`, the attempt not counted (see
    /// [`crate::Attempt::Deferred`]).
    Deferred {
        /// Why, kept in `last_error`.
        reason: &'static str,
        /// When it is due again.
        until: DateTime<Utc>,
    },
    /// Park it: the receiver refused (`refused`), or attempts ran out.
    Parked {
        /// Why, for staff.
        error: String,
        /// True when the receiver refused it, false when it never answered.
        refused: bool,
    },
}

/// A standard column of a sink's table.
fn column<E: EntityTrait>(name: &str) -> E::Column {
    E::Column::from_str(name).unwrap_or_else(|_| {
        panic!(
            "outbox table {} lacks the standard column {name}",
            E::default().table_name()
        )
    })
}

/// The rows of a table that one sink delivers, when several sinks share a table (one per
/// channel): those whose `column` holds `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// A column of the table.
    pub column: &'static str,
    /// The value that marks the sink's rows.
    pub value: &'static str,
}

/// Takes up to `limit` due rows for one attempt each, holding them until `lease_until`.
///
/// Each claimed row's `attempts` already counts the attempt about to be made, so a worker that
/// dies mid-attempt still uses one up.
pub async fn claim<E: EntityTrait>(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<E::Model>, DbErr> {
    claim_in::<E>(db, None, now, lease_until, limit).await
}

/// [`claim`] within one sink's `partition` of the table.
pub async fn claim_in<E: EntityTrait>(
    db: &DatabaseConnection,
    partition: Option<Partition>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<E::Model>, DbErr> {
    let table = E::default().table_name();
    // The partition is the sink's own constant, checked to be a column of the table.
    let partition = match partition {
        Some(Partition {
            column: name,
            value,
        }) => {
            let name = sea_orm::IdenStatic::as_str(&column::<E>(name));
            format!(" AND {name} = '{}'", value.replace('\'', "''"))
        }
        None => String::new(),
    };
    let backend = db.get_database_backend();
    // Named, not `*`: with `RETURNING *`, sqlx's SQLite driver panicked (column index out
    // of bounds) once a later migration had added columns to a table.
    let columns = <E::Column as sea_orm::Iterable>::iter()
        .map(|column| sea_orm::IdenStatic::as_str(&column).to_owned())
        .collect::<Vec<_>>()
        .join(", ");
    let pending = RowState::Pending.as_stored();
    let sql = match backend {
        DatabaseBackend::Postgres => format!(
            "UPDATE {table} SET lease_until = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id IN (SELECT id FROM {table} \
                 WHERE state = '{pending}' AND next_attempt_at <= $2{partition} \
                 AND (lease_until IS NULL OR lease_until <= $2) \
                 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING {columns}"
        ),
        _ => format!(
            "UPDATE {table} SET lease_until = ?1, attempts = attempts + 1, updated_at = ?2 \
             WHERE id IN (SELECT id FROM {table} \
                 WHERE state = '{pending}' AND next_attempt_at <= ?2{partition} \
                 AND (lease_until IS NULL OR lease_until <= ?2) \
                 ORDER BY next_attempt_at LIMIT ?3) \
             RETURNING {columns}"
        ),
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let statement = Statement::from_sql_and_values(
        backend,
        sql,
        [lease_until.into(), now.into(), limit.into()],
    );
    if backend == DatabaseBackend::Sqlite {
        // SQLite: through this process's writer gate, like every other write, instead of
        // SQLite's busy handler.
        let txn = begin_write(db).await?;
        let rows = E::find().from_raw_sql(statement).all(&*txn).await?;
        txn.commit().await?;
        Ok(rows)
    } else {
        E::find().from_raw_sql(statement).all(db).await
    }
}

/// The earliest instant at which some pending row can be claimed, if any is pending: for
/// each row the later of its next attempt and its lease, the earliest of those over all rows.
///
/// Not merely the first row by `next_attempt_at`: when that row is leased by a process that
/// died, every other due row would wait for the dead lease.
pub async fn next_due<E: EntityTrait>(
    db: &DatabaseConnection,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    next_due_in::<E>(db, None).await
}

/// [`next_due`] within one sink's `partition` of the table.
pub async fn next_due_in<E: EntityTrait>(
    db: &DatabaseConnection,
    partition: Option<Partition>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let mut select = E::find();
    if let Some(partition) = partition {
        select = select.filter(column::<E>(partition.column).eq(partition.value));
    }
    let due: Option<Option<DateTime<Utc>>> = select
        .select_only()
        .expr_as(
            Expr::cust(
                "MIN(CASE WHEN lease_until > next_attempt_at THEN lease_until \
                 ELSE next_attempt_at END)",
            ),
            "due",
        )
        .filter(column::<E>("state").eq(RowState::Pending.as_stored()))
        .into_tuple()
        .one(db)
        .await?;
    Ok(due.flatten())
}

/// An UPDATE of the outbox `E` that marks rows delivered and frees their lease, as of `now`:
/// the caller adds which rows, and a sink that records its own deliveries (see
/// [`crate::Attempt::Recorded`]) adds its own columns to the same write.
pub fn mark_delivered<E: EntityTrait>(now: DateTime<Utc>) -> sea_orm::UpdateMany<E> {
    E::update_many()
        .col_expr(column::<E>("state"), RowState::Delivered.as_stored().into())
        .col_expr(
            column::<E>("lease_until"),
            Option::<DateTime<Utc>>::None.into(),
        )
        .col_expr(column::<E>("updated_at"), now.into())
}

/// The claim's lease, the reason and the time that deferred rows share.
type DeferredBy = (Option<DateTime<Utc>>, &'static str, DateTime<Utc>);

/// Records how the attempts on a batch of rows ended, and what that means for the sink's
/// domain, in one transaction (one commit for the batch, not one per row). Returns how many
/// domain records changed; the sink hears of them, and of the rows whose outcome was
/// applied, after the commit.
///
/// An outcome applies only while the row still holds the lease its claim stored: a row whose
/// lease ran out and was claimed again (a later lease) is recorded by its new holder, and a
/// row already recorded has none. The rows are found by their ids alone: a condition on the
/// row's state would let PostgreSQL's planner scan every pending row through the due index
/// instead, once per batch, which it did while a backlog of 20,000 was worked off with
/// statistics from before the backlog.
pub async fn record<S: Sink>(
    db: &DatabaseConnection,
    sink: &S,
    outcomes: Vec<(S::Row, Outcome)>,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    // Delivered rows by the lease they were claimed with: one claim, one lease, one UPDATE.
    let mut delivered: Vec<(Option<DateTime<Utc>>, Vec<Uuid>)> = Vec::new();
    let mut retries = Vec::new();
    let mut parked = Vec::new();
    // Deferred rows by claim, reason and time: a night's notices held for quiet hours are
    // one UPDATE per batch, not one per row.
    let mut deferred: Vec<(DeferredBy, Vec<Uuid>)> = Vec::new();
    for (row, outcome) in outcomes {
        match outcome {
            Outcome::Delivered => {
                let lease = row.lease_until();
                match delivered.iter_mut().find(|(held, _)| *held == lease) {
                    Some((_, ids)) => ids.push(row.id()),
                    None => delivered.push((lease, vec![row.id()])),
                }
            }
            Outcome::Retry {
                error,
                next_attempt_at,
            } => retries.push((row, error, next_attempt_at)),
            Outcome::Parked { error, refused } => parked.push((row, error, refused)),
            Outcome::Deferred { reason, until } => {
                let key = (row.lease_until(), reason, until);
                match deferred.iter_mut().find(|(held, _)| *held == key) {
                    Some((_, ids)) => ids.push(row.id()),
                    None => deferred.push((key, vec![row.id()])),
                }
            }
            Outcome::Recorded => {}
        }
    }
    if delivered.is_empty() && retries.is_empty() && parked.is_empty() && deferred.is_empty() {
        // Every row was recorded by its sink.
        return Ok(0);
    }
    let txn = begin_write(db).await?;
    let mut changed = 0;
    let mut applied = Vec::new();
    for (lease, ids) in delivered {
        let Some(lease) = lease else { continue };
        let rows = mark_delivered::<S::Entity>(now)
            .filter(column::<S::Entity>("id").is_in(ids))
            .filter(column::<S::Entity>("lease_until").eq(lease))
            .exec_with_returning(&*txn)
            .await?;
        if !rows.is_empty() {
            changed += sink.on_delivered(&txn, &rows).await?;
            applied.extend(rows);
        }
    }
    for (row, error, next_attempt_at) in retries {
        let Some(lease) = row.lease_until() else {
            continue;
        };
        S::Entity::update_many()
            .col_expr(
                column::<S::Entity>("lease_until"),
                Option::<DateTime<Utc>>::None.into(),
            )
            .col_expr(column::<S::Entity>("updated_at"), now.into())
            .col_expr(
                column::<S::Entity>("next_attempt_at"),
                next_attempt_at.into(),
            )
            .col_expr(column::<S::Entity>("last_error"), error.into())
            .filter(column::<S::Entity>("id").eq(row.id()))
            .filter(column::<S::Entity>("lease_until").eq(lease))
            .exec(&*txn)
            .await?;
    }
    for ((lease, reason, until), ids) in deferred {
        let Some(lease) = lease else { continue };
        S::Entity::update_many()
            .col_expr(
                column::<S::Entity>("lease_until"),
                Option::<DateTime<Utc>>::None.into(),
            )
            .col_expr(column::<S::Entity>("updated_at"), now.into())
            .col_expr(column::<S::Entity>("next_attempt_at"), until.into())
            .col_expr(column::<S::Entity>("last_error"), reason.into())
            // The claim counted an attempt that was not made.
            .col_expr(
                column::<S::Entity>("attempts"),
                Expr::cust("CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END"),
            )
            .filter(column::<S::Entity>("id").is_in(ids))
            .filter(column::<S::Entity>("lease_until").eq(lease))
            .exec(&*txn)
            .await?;
    }
    for (row, error, refused) in parked {
        let Some(lease) = row.lease_until() else {
            continue;
        };
        let result = S::Entity::update_many()
            .col_expr(
                column::<S::Entity>("state"),
                RowState::Failed.as_stored().into(),
            )
            .col_expr(
                column::<S::Entity>("lease_until"),
                Option::<DateTime<Utc>>::None.into(),
            )
            .col_expr(column::<S::Entity>("updated_at"), now.into())
            .col_expr(column::<S::Entity>("last_error"), error.clone().into())
            .filter(column::<S::Entity>("id").eq(row.id()))
            .filter(column::<S::Entity>("lease_until").eq(lease))
            .exec(&*txn)
            .await?;
        // No longer held by this claim (taken over, or recorded): nothing to record.
        if result.rows_affected > 0 && sink.on_parked(&txn, &row, &error, refused).await? {
            changed += 1;
            applied.push(row);
        }
    }
    txn.commit().await?;
    if changed > 0 {
        sink.changed(&applied);
    }
    Ok(changed)
}

/// Makes the pending rows of `partition` that were deferred for `reason` (see
/// [`crate::Attempt::Deferred`]) due at `now`, so that the rule that held them is judged
/// again, as it is in force now (after a restart with other quiet hours, say), when they are
/// next claimed; a row still held by a claim is left to its holder. Returns how many.
pub async fn reopen<E: EntityTrait>(
    db: &DatabaseConnection,
    partition: Option<Partition>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let mut update = E::update_many()
        .col_expr(column::<E>("next_attempt_at"), now.into())
        .col_expr(column::<E>("updated_at"), now.into())
        .filter(column::<E>("state").eq(RowState::Pending.as_stored()))
        .filter(column::<E>("last_error").eq(reason))
        .filter(column::<E>("next_attempt_at").gt(now))
        .filter(
            Condition::any()
                .add(column::<E>("lease_until").is_null())
                .add(column::<E>("lease_until").lte(now)),
        );
    if let Some(partition) = partition {
        update = update.filter(column::<E>(partition.column).eq(partition.value));
    }
    let txn = begin_write(db).await?;
    let reopened = update.exec(&*txn).await?.rows_affected;
    txn.commit().await?;
    Ok(reopened)
}

/// The row `id` of the outbox `E`, if it exists.
pub async fn find<E: EntityTrait, C: ConnectionTrait>(
    db: &C,
    id: Uuid,
) -> Result<Option<E::Model>, DbErr> {
    E::find().filter(column::<E>("id").eq(id)).one(db).await
}

/// Puts a parked row back in line with a fresh count of attempts, due at `now`; `None` when
/// the row is not parked (pending or delivered).
pub async fn unpark<E: EntityTrait, C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<E::Model>, DbErr> {
    let mut rows = E::update_many()
        .col_expr(column::<E>("state"), RowState::Pending.as_stored().into())
        .col_expr(column::<E>("attempts"), 0.into())
        .col_expr(column::<E>("next_attempt_at"), now.into())
        .col_expr(
            column::<E>("lease_until"),
            Option::<DateTime<Utc>>::None.into(),
        )
        .col_expr(column::<E>("updated_at"), now.into())
        .filter(column::<E>("id").eq(id))
        .filter(column::<E>("state").eq(RowState::Failed.as_stored()))
        .exec_with_returning(db)
        .await?;
    Ok(rows.pop())
}

/// One page of parked rows that match `filter` (the sink's own restriction, such as the
/// caller's care units), oldest first.
pub async fn parked_page<E, C>(
    db: &C,
    filter: Condition,
    cursor: Option<Cursor>,
    page_size: u64,
) -> Result<(Vec<E::Model>, Option<Cursor>), DbErr>
where
    E: EntityTrait,
    E::Model: OutboxRow,
    C: ConnectionTrait,
{
    let created_at = column::<E>("created_at");
    let id = column::<E>("id");
    let mut select = E::find()
        .filter(filter)
        .filter(column::<E>("state").eq(RowState::Failed.as_stored()));
    if let Some(cursor) = cursor {
        select = select.filter(
            Condition::any().add(created_at.gt(cursor.after)).add(
                Condition::all()
                    .add(created_at.eq(cursor.after))
                    .add(id.gt(cursor.id)),
            ),
        );
    }
    let statement = select
        .order_by_asc(created_at)
        .order_by_asc(id)
        .limit(page_size + 1)
        .build(db.get_database_backend());
    let mut rows = E::find()
        .from_raw_sql(homecare_core::db::with_literal_limit(statement))
        .all(db)
        .await?;
    let has_more = rows.len() as u64 > page_size;
    rows.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
    let next = match rows.last() {
        Some(last) if has_more => Some(Cursor {
            after: last.created_at(),
            id: last.id(),
        }),
        _ => None,
    };
    Ok((rows, next))
}

/// How an outbox stands, for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Rows waiting for an attempt (or in one).
    pub pending: u64,
    /// Rows parked for staff.
    pub parked: u64,
    /// The earliest `next_attempt_at` of a pending row that is due by now: how long the
    /// oldest due row has waited.
    pub oldest_due: Option<DateTime<Utc>>,
}

/// Counts the pending and parked rows of the outbox `E`, and finds the oldest due one.
pub async fn backlog<E: EntityTrait, C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
) -> Result<Backlog, DbErr> {
    let pending = RowState::Pending.as_stored();
    let parked = RowState::Failed.as_stored();
    let rows: Vec<(String, i64, Option<DateTime<Utc>>)> = E::find()
        .select_only()
        .column(column::<E>("state"))
        .expr_as(Expr::cust("COUNT(*)"), "count")
        .expr_as(Expr::cust("MIN(next_attempt_at)"), "oldest")
        .filter(column::<E>("state").is_in([pending, parked]))
        .group_by(column::<E>("state"))
        .into_tuple()
        .all(db)
        .await?;
    let mut backlog = Backlog::default();
    for (state, count, oldest) in rows {
        let count = u64::try_from(count).unwrap_or_default();
        if state == pending {
            backlog.pending = count;
            backlog.oldest_due = oldest.filter(|due| *due <= now);
        } else {
            backlog.parked = count;
        }
    }
    Ok(backlog)
}
