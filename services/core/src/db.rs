//! Storage helpers shared by every context.

use sea_orm::sea_query::{Alias, Expr, InsertStatement, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, EntityTrait, Iterable as _, QueryResult, QuerySelect, QueryTrait,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait, Value,
};

/// SQLite has one writer at a time. Writers of this process queue here, in order, instead of
/// in SQLite's busy handler, which sleeps and retries and so lets a writer wait for seconds
/// under load while others overtake it (measured: p99 800 ms for a cancellation at 64
/// concurrent callers, and the delivery worker starved).
static SQLITE_WRITER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A transaction that will write; on SQLite it also holds this process's writer turn.
/// Use it as a connection through `&*txn`.
#[derive(Debug)]
pub struct WriteTransaction {
    txn: DatabaseTransaction,
    _turn: Option<tokio::sync::MutexGuard<'static, ()>>,
}

impl std::ops::Deref for WriteTransaction {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl WriteTransaction {
    /// Commits, then lets the next writer go.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    /// Rolls back, then lets the next writer go.
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }
}

/// Begins a transaction that will write.
///
/// On SQLite it waits for this process's writer turn, then takes the write lock at BEGIN
/// (IMMEDIATE): a transaction that reads first and upgrades later can fail at once with
/// "database is locked" when another writer is active, where one that waits at BEGIN gets the
/// busy timeout (still needed for writers in other processes). PostgreSQL ignores the mode.
pub async fn begin_write(db: &DatabaseConnection) -> Result<WriteTransaction, DbErr> {
    let turn = if db.get_database_backend() == DbBackend::Sqlite {
        Some(SQLITE_WRITER.lock().await)
    } else {
        None
    };
    let txn = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    Ok(WriteTransaction { txn, _turn: turn })
}

/// The most rows per INSERT of [`insert_in_chunks`]: with a dozen columns, far below
/// SQLite's and PostgreSQL's limits on parameters.
const ROWS_PER_INSERT: usize = 512;

/// Inserts `rows` in statements of 512, 256, ... or 1 rows: any number of rows is a few
/// such statements, so each connection prepares (and keeps) at most ten distinct INSERTs of
/// a table rather than one per number of rows it meets (a statement of thousands of
/// parameters, prepared once and kept in the connection's cache, never to be seen again).
/// None for no rows.
pub async fn insert_in_chunks<A, C>(db: &C, rows: Vec<A>) -> Result<(), DbErr>
where
    A: ActiveModelTrait + Send,
    C: ConnectionTrait,
{
    let mut rows = rows.into_iter();
    let mut size = ROWS_PER_INSERT;
    while rows.len() > 0 {
        while size > rows.len() {
            size /= 2;
        }
        let chunk: Vec<A> = rows.by_ref().take(size).collect();
        <A::Entity as EntityTrait>::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// An INSERT of `row` once for each row of `source`, the name of a common table expression
/// of the statement it goes into: after a data-changing CTE, a row written only if that
/// change happened, in the same statement (PostgreSQL). The columns `row` leaves unset take
/// their defaults.
pub fn insert_for_each<A: ActiveModelTrait>(row: &A, source: &str) -> InsertStatement {
    let mut columns = Vec::new();
    let mut values = Vec::new();
    for column in <A::Entity as EntityTrait>::Column::iter() {
        if let ActiveValue::Set(value) | ActiveValue::Unchanged(value) = row.get(column) {
            columns.push(column);
            values.push(Expr::val(value));
        }
    }
    Query::insert()
        .into_table(<A::Entity as Default>::default())
        .columns(columns)
        .select_from(
            Query::select()
                .exprs(values)
                .from(Alias::new(source))
                .to_owned(),
        )
        .expect("as many values as columns")
        .to_owned()
}

/// The first row `select` finds, queried so that SQLite can keep its prepared statement (see
/// [`with_literal_limit`]); what sea-orm's `one()` does, minus the re-prepare.
pub async fn first_row<C, S>(db: &C, select: S) -> Result<Option<QueryResult>, DbErr>
where
    C: ConnectionTrait,
    S: QueryTrait + QuerySelect,
{
    let statement = with_literal_limit(select.limit(1).build(db.get_database_backend()));
    db.query_one_raw(statement).await
}

/// `statement` with its trailing `LIMIT ?` written as a literal, on SQLite.
///
/// SQLite plans `LIMIT ?` using the bound value and then marks the prepared statement to be
/// re-prepared whenever that parameter is bound again, so a cached list query is parsed anew
/// on every call (a fifth of the server's CPU on ListAppointments, measured with perf). The
/// limit is always a number the service computed, never text from a request. Other backends
/// and statements without a trailing bound limit are returned unchanged.
pub fn with_literal_limit(mut statement: Statement) -> Statement {
    if statement.db_backend != DbBackend::Sqlite || !statement.sql.ends_with(" LIMIT ?") {
        return statement;
    }
    let Some(values) = statement.values.as_mut() else {
        return statement;
    };
    let limit = match values.0.last() {
        Some(Value::BigUnsigned(Some(limit))) => *limit,
        Some(Value::Unsigned(Some(limit))) => u64::from(*limit),
        _ => return statement,
    };
    values.0.pop();
    statement.sql.truncate(statement.sql.len() - 1);
    statement.sql.push_str(&limit.to_string());
    statement
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_limit_becomes_a_literal_and_its_value_is_dropped() {
        let statement = Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT a FROM t WHERE b = ? LIMIT ?",
            [Value::from("x"), Value::BigUnsigned(Some(21))],
        );
        let rewritten = with_literal_limit(statement);
        assert_eq!(rewritten.sql, "SELECT a FROM t WHERE b = ? LIMIT 21");
        assert_eq!(rewritten.values.unwrap().0, vec![Value::from("x")]);
    }

    #[test]
    fn postgres_statements_are_left_alone() {
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT a FROM t LIMIT $1",
            [Value::BigUnsigned(Some(21))],
        );
        assert_eq!(with_literal_limit(statement.clone()), statement);
    }
}
