//! Connecting to SQLite or PostgreSQL, and migrating.

use std::time::Duration;

use homecare_migrations::{Migrator, MigratorTrait as _};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::ServerError;
use crate::config::Config;

/// A pooled PostgreSQL connection idle this long is pinged before it is handed out, so one
/// that the server, a proxy or a firewall dropped meanwhile is replaced rather than failing
/// its first statement. The pool's default pings on every checkout: one more round trip
/// for every statement or transaction of the service, on a busy server as well. A file
/// cannot hang up, so SQLite's connections are never pinged.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(10);

/// The pool for calls to the configured database. Creates the data directory for the
/// embedded SQLite default, and the SQLite file itself on first start.
pub async fn connect(config: &Config) -> Result<DatabaseConnection, ServerError> {
    let url = config.effective_database_url();
    if config.database_url.is_empty() {
        std::fs::create_dir_all(&config.data_dir).map_err(ServerError::DataDir)?;
    }
    pool(config, &url, config.database_max_connections).await
}

/// The pool for background work (see `Config::database_background_connections`), beside
/// `calls`. An in-memory SQLite database is one per connection pool, so there the background
/// shares the calls' pool.
pub async fn connect_background(
    config: &Config,
    calls: &DatabaseConnection,
) -> Result<DatabaseConnection, ServerError> {
    let url = config.effective_database_url();
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(calls.clone());
    }
    pool(config, &url, config.database_background_connections).await
}

async fn pool(
    config: &Config,
    url: &str,
    max_connections: u32,
) -> Result<DatabaseConnection, ServerError> {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false)
        .test_before_acquire_if_idle_for(PING_WHEN_IDLE_FOR)
        // Write-ahead logging lets readers go on while one writer commits.
        .map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5))
        });
    if let Some(schema) = &config.database_schema {
        options.set_schema_search_path(schema.clone());
    }
    Ok(Database::connect(options).await?)
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}
