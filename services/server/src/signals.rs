//! Telling the other server processes on the same PostgreSQL what changed here, at once:
//! `NOTIFY` after each commit that changed something of a [`Topic`] (a visit, an outbox's
//! rows), `LISTEN` for theirs. Their stream readers and workers then read the database now instead of at their
//! next poll (500 ms for streams, `epj.idle_poll_seconds` for the worker).
//!
//! Signals are hints for readers and workers: nothing is lost without them, and when the
//! LISTEN connection is lost every reader and worker here is woken once (it reads what it
//! may have missed) and polling carries on until the connection is back. For the answers kept
//! in memory they are more than hints: while no LISTEN connection stands, the shared
//! [`Coherence`] is faulted and every read goes to the database. SQLite has one process:
//! nothing to do there.

use std::collections::HashMap;
use std::sync::Arc;

use homecare_core::coherent::{Coherence, Fault};
use homecare_core::shutdown::Shutdown;
use homecare_core::topic::Topic;
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use uuid::Uuid;

/// The channel of `topic` in one database schema (each test uses its own schema in one
/// database, and channels are per database).
fn channel(topic: &str, schema: Option<&str>) -> String {
    format!("hc_{topic}_{}", schema.unwrap_or("public"))
}

/// Starts publishing this process's changes of each topic and listening for the others', on
/// PostgreSQL.
pub fn start(
    db: &DatabaseConnection,
    database_url: &str,
    schema: Option<&str>,
    topics: &[Arc<dyn Topic>],
    coherence: &Coherence,
    shutdown: &Shutdown,
) -> Vec<tokio::task::JoinHandle<()>> {
    if db.get_database_backend() != DatabaseBackend::Postgres || topics.is_empty() {
        return Vec::new();
    }
    // A process hears its own NOTIFYs too; it knows them by this id and ignores them.
    let process = Uuid::new_v4().to_string();
    let mut tasks: Vec<_> = topics
        .iter()
        .map(|topic| {
            tokio::spawn(publish(
                db.clone(),
                channel(topic.name(), schema),
                topic.made_here(),
                process.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    let by_channel = topics
        .iter()
        .map(|topic| (channel(topic.name(), schema), topic.clone()))
        .collect();
    tasks.push(tokio::spawn(listen(
        database_url.to_owned(),
        Arc::new(by_channel),
        process,
        coherence.clone(),
        shutdown.clone(),
    )));
    tasks
}

/// Sends a NOTIFY on `channel` for each change made here; changes that come faster than a
/// NOTIFY takes are told of together.
async fn publish(
    db: DatabaseConnection,
    channel: String,
    mut made_here: tokio::sync::watch::Receiver<u64>,
    process: String,
    shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            changed = made_here.changed() => if changed.is_err() {
                return;
            },
            () = shutdown.wait() => return,
        }
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
    topics: Arc<HashMap<String, Arc<dyn Topic>>>,
    process: String,
    coherence: Coherence,
    shutdown: Shutdown,
) {
    let wake_all = || {
        for topic in topics.values() {
            topic.changed_elsewhere();
        }
    };
    loop {
        let connected = async {
            // A connection of its own, not one of the pool's: a LISTEN holds it for good.
            let mut listener = PgListener::connect(&database_url).await?;
            listener
                .listen_all(topics.keys().map(String::as_str))
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
        // Whatever was told while no one listened is read now; kept answers are trusted
        // again from here on (those kept before the connection was lost are not).
        coherence.cleared(Fault::NotListening);
        tracing::info!("listening for other server processes' changes");
        wake_all();
        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received,
                () = shutdown.wait() => return,
            };
            match received {
                Ok(Some(notification)) if notification.payload() != process => {
                    if let Some(topic) = topics.get(notification.channel()) {
                        topic.changed_elsewhere();
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    coherence.fault(Fault::NotListening);
                    tracing::warn!(
                        "lost the LISTEN connection; reading everything once, polling and \
                         reading through the caches until it is back"
                    );
                    wake_all();
                    break;
                }
                Err(error) => {
                    coherence.fault(Fault::NotListening);
                    tracing::warn!(
                        %error,
                        "the LISTEN connection failed; reading through the caches until it is \
                         back"
                    );
                    break;
                }
            }
        }
    }
}
