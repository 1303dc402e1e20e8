//! Telling the other server processes on the same PostgreSQL what changed here, at once:
//! `NOTIFY` after each commit that changed a visit or queued an EPJ delivery, `LISTEN` for
//! theirs. Their stream readers and workers then read the database now instead of at their
//! next poll (500 ms for streams, `epj.idle_poll_seconds` for the worker).
//!
//! Signals are hints: nothing is lost without them, and when the LISTEN connection is lost
//! every reader and worker here is woken once (it reads what it may have missed) and polling
//! carries on until the connection is back. SQLite has one process: nothing to do there.

use homecare_appointments::feed::ChangeFeed;
use homecare_core::shutdown::Shutdown;
use homecare_outbox::Wakeup;
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use uuid::Uuid;

/// The channels of one database schema (each test uses its own schema in one database, and
/// channels are per database).
struct Channels {
    visits: String,
    epj_outbox: String,
}

impl Channels {
    fn of(schema: Option<&str>) -> Self {
        let schema = schema.unwrap_or("public");
        Self {
            visits: format!("hc_visits_{schema}"),
            epj_outbox: format!("hc_epj_outbox_{schema}"),
        }
    }
}

/// Starts publishing this process's changes and listening for the others', on PostgreSQL.
pub fn start(
    db: &DatabaseConnection,
    database_url: &str,
    schema: Option<&str>,
    feed: &ChangeFeed,
    epj_outbox: &Wakeup,
    shutdown: &Shutdown,
) -> Vec<tokio::task::JoinHandle<()>> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Vec::new();
    }
    // A process hears its own NOTIFYs too; it knows them by this id and ignores them.
    let process = Uuid::new_v4().to_string();
    let channels = std::sync::Arc::new(Channels::of(schema));
    vec![
        tokio::spawn(publish(
            db.clone(),
            channels.clone(),
            process.clone(),
            feed.clone(),
            epj_outbox.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(listen(
            database_url.to_owned(),
            channels,
            process,
            feed.clone(),
            epj_outbox.clone(),
            shutdown.clone(),
        )),
    ]
}

/// Sends a NOTIFY for each change made here; changes that come faster than a NOTIFY takes are
/// told of together.
async fn publish(
    db: DatabaseConnection,
    channels: std::sync::Arc<Channels>,
    process: String,
    feed: ChangeFeed,
    epj_outbox: Wakeup,
    shutdown: Shutdown,
) {
    let mut visits = feed.subscribe_made_here();
    let mut queued = epj_outbox.subscribe_queued_here();
    loop {
        let channel = tokio::select! {
            changed = visits.changed() => match changed {
                Ok(()) => &channels.visits,
                Err(_) => return,
            },
            changed = queued.changed() => match changed {
                Ok(()) => &channels.epj_outbox,
                Err(_) => return,
            },
            () = shutdown.wait() => return,
        };
        let notify = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [channel.clone().into(), process.clone().into()],
        );
        if let Err(error) = db.execute_raw(notify).await {
            tracing::warn!(%error, "could not tell other server processes of a change");
        }
    }
}

/// Wakes readers and workers here when another process tells of a change.
async fn listen(
    database_url: String,
    channels: std::sync::Arc<Channels>,
    process: String,
    feed: ChangeFeed,
    epj_outbox: Wakeup,
    shutdown: Shutdown,
) {
    let wake_all = || {
        feed.visits_changed_elsewhere();
        epj_outbox.rows_queued_elsewhere();
    };
    loop {
        let connected = async {
            // A connection of its own, not one of the pool's: a LISTEN holds it for good.
            let mut listener = PgListener::connect(&database_url).await?;
            listener
                .listen_all([channels.visits.as_str(), channels.epj_outbox.as_str()])
                .await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            connected = connected => match connected {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "cannot LISTEN for other server processes' changes; polling meanwhile");
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                        () = shutdown.wait() => return,
                    }
                }
            },
            () = shutdown.wait() => return,
        };
        // Whatever was told while no one listened is read now.
        wake_all();
        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received,
                () = shutdown.wait() => return,
            };
            match received {
                Ok(Some(notification)) if notification.payload() != process => {
                    if notification.channel() == channels.visits {
                        feed.visits_changed_elsewhere();
                    } else {
                        epj_outbox.rows_queued_elsewhere();
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    tracing::warn!(
                        "lost the LISTEN connection; reading everything once and polling until \
                         it is back"
                    );
                    wake_all();
                }
                Err(error) => {
                    tracing::warn!(%error, "the LISTEN connection failed; reconnecting");
                    break;
                }
            }
        }
    }
}
