//! The worker that carries queued cancellations to the EPJ.
//!
//! It wakes when a cancellation is queued, when the next retry falls due, and every
//! `idle_poll` (for rows another server process queued or abandoned). Each claimed row gets
//! one attempt; a temporary failure is retried with exponential backoff and jitter (or after
//! the EPJ's Retry-After, if longer) until `max_attempts`, a refusal fails the row at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use homecare_core::{Clock, SystemClock};
use homecare_epj::{Cancellation, Epj, EpjError, RequestedBy};
use sea_orm::DatabaseConnection;
use tokio::task::JoinSet;

use crate::domain::ActorKind;
use crate::feed::ChangeFeed;
use crate::outbox::{self, Outcome};

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Attempts before a row is failed for good.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles with each further one.
    pub retry_base: Duration,
    /// The longest wait between attempts.
    pub retry_cap: Duration,
    /// How long a claimed row is held; longer than one attempt can take.
    pub lease: Duration,
    /// Rows claimed and sent at once by one loop.
    pub batch_size: u64,
    /// Loops claiming and sending at the same time, when there is a backlog.
    pub parallelism: usize,
    /// The longest sleep when nothing is due.
    pub idle_poll: Duration,
}

/// Delivers the EPJ outbox.
pub struct DeliveryWorker {
    db: DatabaseConnection,
    epj: Arc<dyn Epj>,
    business_clock: Arc<dyn Clock>,
    feed: ChangeFeed,
    settings: DeliverySettings,
}

impl std::fmt::Debug for DeliveryWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryWorker")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl DeliveryWorker {
    /// A worker for the outbox in `db`. History entries are stamped by `business_clock`;
    /// scheduling uses the machine's clock.
    pub fn new(
        db: DatabaseConnection,
        epj: Arc<dyn Epj>,
        business_clock: Arc<dyn Clock>,
        feed: ChangeFeed,
        settings: DeliverySettings,
    ) -> Self {
        Self {
            db,
            epj,
            business_clock,
            feed,
            settings,
        }
    }

    /// Delivers until the feed closes; then finishes the attempts in flight and returns.
    pub async fn run(self) {
        let this = Arc::new(self);
        let mut loops = JoinSet::new();
        for _ in 0..this.settings.parallelism.max(1) {
            loops.spawn(this.clone().deliver_loop());
        }
        while loops.join_next().await.is_some() {}
        tracing::info!("EPJ delivery worker stopped");
    }

    /// One claim-send-record loop. Loops sleep while there is nothing to do; a loop that
    /// claims a full batch wakes another, so a backlog is worked off in parallel.
    async fn deliver_loop(self: Arc<Self>) {
        let mut closing = self.feed.subscribe_closing();
        loop {
            if *closing.borrow_and_update() {
                break;
            }
            let now = SystemClock.now();
            let lease_until =
                now + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
            let claimed = outbox::claim(&self.db, now, lease_until, self.settings.batch_size).await;
            let rows = match claimed {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(%error, "could not claim EPJ deliveries; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = closing.changed() => {}
                    }
                    continue;
                }
            };
            if rows.is_empty() {
                let wait = self.idle_wait().await;
                tokio::select! {
                    () = self.feed.outbox_wait() => {}
                    () = tokio::time::sleep(wait) => {}
                    _ = closing.changed() => {}
                }
                continue;
            }
            if rows.len() as u64 >= self.settings.batch_size {
                self.feed.outbox_filled();
            }
            // Attempts run to the end even when the server is stopping, so none is left
            // unrecorded; the lease covers a process that dies meanwhile.
            let mut attempts = JoinSet::new();
            for row in rows {
                let worker = self.clone();
                attempts.spawn(async move {
                    let outcome = worker.attempt(&row).await;
                    (row, outcome)
                });
            }
            let mut outcomes = Vec::with_capacity(attempts.len());
            while let Some(done) = attempts.join_next().await {
                match done {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(error) => tracing::error!(%error, "an EPJ delivery task failed"),
                }
            }
            let recorded = outbox::record_batch(
                &self.db,
                outcomes,
                SystemClock.now(),
                self.business_clock.now(),
            )
            .await;
            match recorded {
                Ok(0) => {}
                Ok(_) => self.feed.visits_changed(),
                // The rows stay leased and are tried again when the lease ends; the EPJ
                // client sees a visit it already cancelled and does not write it twice.
                Err(error) => tracing::warn!(%error, "could not record EPJ deliveries"),
            }
        }
    }

    /// How long to sleep when nothing is due: until the next retry, at most `idle_poll`.
    async fn idle_wait(&self) -> Duration {
        match outbox::next_due(&self.db).await {
            Ok(Some(due)) => (due - SystemClock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(self.settings.idle_poll),
            _ => self.settings.idle_poll,
        }
    }

    /// One attempt at one row, and how it ended.
    async fn attempt(&self, row: &outbox::entity::Model) -> Outcome {
        let cancellation = Cancellation {
            epj_id: row.epj_id.clone(),
            reason: row.reason.clone(),
            idempotency_key: row.id.to_string(),
            requested_by: match (row.requested_by_kind.as_deref(), &row.requested_by_name) {
                (Some(kind), Some(name)) if kind == ActorKind::Proxy.as_stored() => {
                    RequestedBy::Proxy { name: name.clone() }
                }
                _ => RequestedBy::Patient,
            },
        };
        let result = self.epj.cancel_appointment(&cancellation).await;
        let outcome = self.outcome(row, result, SystemClock.now());
        let kind = match &outcome {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
        };
        // The error texts stay out of the log: an EPJ may echo patient data in them.
        tracing::info!(
            delivery_id = %row.id,
            appointment_id = %row.appointment_id,
            attempt = row.attempts,
            outcome = kind,
            "EPJ delivery attempt"
        );
        outcome
    }

    fn outcome(
        &self,
        row: &outbox::entity::Model,
        result: Result<homecare_epj::Registered, EpjError>,
        now: DateTime<Utc>,
    ) -> Outcome {
        match result {
            // The EPJ's new version is not kept: every attempt reads the current one first,
            // and the EPJ sends it with its next upsert.
            Ok(_registered) => Outcome::Delivered,
            Err(EpjError::Refused { reason }) => Outcome::Failed {
                error: reason,
                refused: true,
            },
            Err(EpjError::Temporary {
                reason,
                retry_after,
            }) => {
                let attempts = u32::try_from(row.attempts).unwrap_or(u32::MAX);
                if attempts >= self.settings.max_attempts {
                    return Outcome::Failed {
                        error: format!("gave up after {attempts} attempts; last: {reason}"),
                        refused: false,
                    };
                }
                let wait = backoff(attempts, self.settings.retry_base, self.settings.retry_cap)
                    .max(retry_after.unwrap_or(Duration::ZERO));
                Outcome::Retry {
                    error: reason,
                    next_attempt_at: now + chrono::Duration::from_std(wait).unwrap_or_default(),
                }
            }
        }
    }
}

/// The wait after `attempt` failed attempts: `base` doubled per attempt, at most `cap`, of
/// which a random half is taken off ("equal jitter"), so workers that failed together do
/// not retry together.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    let full = base.saturating_mul(1 << doublings).min(cap);
    let half = full / 2;
    let fraction = getrandom::u32().unwrap_or(u32::MAX / 2) as f64 / f64::from(u32::MAX);
    half + half.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        let base = Duration::from_secs(2);
        let cap = Duration::from_secs(600);
        for (attempt, full) in [(1, 2), (2, 4), (3, 8), (9, 512), (10, 600), (40, 600)] {
            let full = Duration::from_secs(full);
            for _ in 0..50 {
                let wait = backoff(attempt, base, cap);
                assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
            }
        }
    }

    #[test]
    fn backoff_is_jittered() {
        let waits: std::collections::HashSet<Duration> = (0..20)
            .map(|_| backoff(5, Duration::from_secs(2), Duration::from_secs(600)))
            .collect();
        assert!(waits.len() > 1);
    }
}
