//! An outbox's state for operators, as metrics: sampled from the table, so that a backlog is
//! seen even where no worker runs (no receiver configured, or every worker stuck).

use std::time::Duration;

use homecare_core::Clock;
use homecare_core::shutdown::Shutdown;
use sea_orm::{DatabaseConnection, EntityTrait};

use crate::store;

/// Rows waiting for an attempt, per sink.
pub const BACKLOG: &str = "homecare_outbox_backlog";
/// Seconds the oldest due row has waited, per sink (0 when none is due).
pub const OLDEST_DUE_SECONDS: &str = "homecare_outbox_oldest_due_seconds";
/// Rows parked for staff, per sink.
pub const PARKED: &str = "homecare_outbox_parked";
/// Attempts made, per sink and outcome (`delivered`, `retry`, `failed`).
pub const ATTEMPTS: &str = "homecare_outbox_attempts_total";

/// Samples the outbox `E` (named `sink`) every `every` until `shutdown`.
pub fn sample_every<E: EntityTrait>(
    sink: &'static str,
    db: DatabaseConnection,
    clock: std::sync::Arc<dyn Clock>,
    every: Duration,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    metrics::describe_gauge!(BACKLOG, "Outbox rows waiting for an attempt");
    metrics::describe_gauge!(
        OLDEST_DUE_SECONDS,
        metrics::Unit::Seconds,
        "How long the oldest due outbox row has waited"
    );
    metrics::describe_gauge!(PARKED, "Outbox rows parked for staff");
    metrics::describe_counter!(ATTEMPTS, "Outbox delivery attempts, by outcome");
    tokio::spawn(async move {
        loop {
            let now = clock.now();
            match store::backlog::<E, _>(&db, now).await {
                Ok(backlog) => {
                    metrics::gauge!(BACKLOG, "sink" => sink).set(backlog.pending as f64);
                    metrics::gauge!(PARKED, "sink" => sink).set(backlog.parked as f64);
                    let waited = backlog
                        .oldest_due
                        .and_then(|due| (now - due).to_std().ok())
                        .unwrap_or_default();
                    metrics::gauge!(OLDEST_DUE_SECONDS, "sink" => sink).set(waited.as_secs_f64());
                }
                Err(error) => tracing::warn!(sink, %error, "could not sample the outbox"),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.wait() => break,
            }
        }
    })
}
