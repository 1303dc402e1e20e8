//! The worker that carries an outbox's rows to its sink.
//!
//! It wakes when rows are queued, when the next retry falls due, and every `idle_poll` (for
//! rows another server process queued or abandoned). Each claimed row gets one attempt; a
//! temporary failure is retried with exponential backoff and jitter (or after the receiver's
//! Retry-After, if longer) until `max_attempts`, a refusal parks the row at once.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use homecare_core::Clock;
use homecare_core::shutdown::Shutdown;
use sea_orm::DatabaseConnection;
use tokio::task::JoinSet;

use crate::rate::RateLimit;
use crate::sink::{Attempt, OutboxRow, Sink};
use crate::store::{self, Outcome};
use crate::wakeup::Wakeup;

/// How a worker paces itself.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Attempts before a row is parked.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles with each further one.
    pub retry_base: Duration,
    /// The longest wait between attempts.
    pub retry_cap: Duration,
    /// How long a claimed row is held; longer than one attempt can take.
    pub lease: Duration,
    /// Rows claimed and sent at once by one loop.
    pub batch_size: u64,
    /// Loops claiming and sending at the same time, when there is a backlog: the sink's
    /// concurrency is at most `batch_size × parallelism` sends.
    pub parallelism: usize,
    /// The longest sleep when nothing is due.
    pub idle_poll: Duration,
    /// Sends per second across every loop of this process (the receiver's limit); none when
    /// unset.
    pub rate_per_second: Option<NonZeroU32>,
}

/// The randomness of backoff: a fraction in `[0, 1]` per call. Injected so tests can fix it.
pub type Jitter = Arc<dyn Fn() -> f64 + Send + Sync>;

/// The system's randomness.
fn random_fraction() -> f64 {
    f64::from(getrandom::u32().unwrap_or(u32::MAX / 2)) / f64::from(u32::MAX)
}

/// Delivers one outbox to its sink.
pub struct Worker<S: Sink> {
    db: DatabaseConnection,
    sink: Arc<S>,
    clock: Arc<dyn Clock>,
    jitter: Jitter,
    wakeup: Wakeup,
    shutdown: Shutdown,
    rate: Option<RateLimit>,
    settings: Settings,
}

impl<S: Sink> std::fmt::Debug for Worker<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("sink", &S::NAME)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S: Sink> Worker<S> {
    /// A worker for `sink`'s outbox in `db`, scheduling by `clock` (the machine's), woken by
    /// `wakeup`, stopping on `shutdown`.
    pub fn new(
        db: DatabaseConnection,
        sink: Arc<S>,
        clock: Arc<dyn Clock>,
        wakeup: Wakeup,
        shutdown: Shutdown,
        settings: Settings,
    ) -> Self {
        Self {
            db,
            sink,
            clock,
            jitter: Arc::new(random_fraction),
            wakeup,
            shutdown,
            rate: settings.rate_per_second.map(RateLimit::per_second),
            settings,
        }
    }

    /// The same worker with `jitter` as its randomness.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Delivers until shutdown; then finishes the attempts in flight and returns.
    pub async fn run(self) {
        let this = Arc::new(self);
        let mut loops = JoinSet::new();
        for _ in 0..this.settings.parallelism.max(1) {
            loops.spawn(this.clone().deliver_loop());
        }
        while loops.join_next().await.is_some() {}
        tracing::info!(sink = S::NAME, "outbox worker stopped");
    }

    /// How long a loop waits after a batch that was not full before it claims again. Under a
    /// steady stream of new rows (a burst of cancellations, of notices) each claim would
    /// otherwise take the one or two rows queued since the last, and every row would pay for a
    /// claim and a record of its own, on the database the calls that queue them also need. A
    /// row that arrives while the loops are idle is claimed at once.
    const LINGER: Duration = Duration::from_millis(20);

    /// One claim-send-record loop. Loops sleep while there is nothing to do; a loop that
    /// claims a full batch wakes another, so a backlog is worked off in parallel.
    async fn deliver_loop(self: Arc<Self>) {
        loop {
            if self.shutdown.is_triggered() {
                break;
            }
            let now = self.clock.now();
            let lease_until =
                now + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
            let claimed = store::claim_in::<S::Entity>(
                &self.db,
                S::PARTITION,
                now,
                lease_until,
                self.batch_size(),
            )
            .await;
            let rows = match claimed {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(sink = S::NAME, %error, "could not claim outbox rows; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = self.shutdown.wait() => {}
                    }
                    continue;
                }
            };
            if rows.is_empty() {
                let wait = self.idle_wait().await;
                tokio::select! {
                    () = self.wakeup.wait() => {}
                    () = tokio::time::sleep(wait) => {}
                    () = self.shutdown.wait() => {}
                }
                continue;
            }
            let full = rows.len() as u64 >= self.batch_size();
            if full {
                self.wakeup.rows_queued();
            }
            // Attempts run to the end even when the server is stopping, so none is left
            // unrecorded; the lease covers a process that dies meanwhile.
            let batch = Arc::new(self.sink.prepare(&rows).await);
            let mut attempts = JoinSet::new();
            for row in rows {
                let worker = self.clone();
                let batch = batch.clone();
                attempts.spawn(async move {
                    let outcome = worker.attempt(&row, &batch).await;
                    (row, outcome)
                });
            }
            let mut outcomes = Vec::with_capacity(attempts.len());
            while let Some(done) = attempts.join_next().await {
                match done {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(error) => {
                        tracing::error!(sink = S::NAME, %error, "an outbox delivery task failed");
                    }
                }
            }
            let recorded = store::record(&self.db, &*self.sink, outcomes, self.clock.now()).await;
            // The rows stay leased and are tried again when the lease ends; a sink sees an
            // earlier delivery (the idempotency key) and does not deliver twice.
            if let Err(error) = recorded {
                tracing::warn!(sink = S::NAME, %error, "could not record outbox outcomes");
            }
            if !full {
                // Rows are arriving one by one: let a few gather rather than claim each alone.
                tokio::select! {
                    () = tokio::time::sleep(Self::LINGER) => {}
                    () = self.shutdown.wait() => {}
                }
            }
        }
    }

    /// Rows claimed at once: with a rate limit, no more than one second's worth, so that a
    /// claimed row waits for its turn well within its lease.
    fn batch_size(&self) -> u64 {
        match self.settings.rate_per_second {
            Some(rate) => self.settings.batch_size.min(u64::from(rate.get())).max(1),
            None => self.settings.batch_size.max(1),
        }
    }

    /// How long to sleep when nothing is due: until the next retry, at most `idle_poll`.
    async fn idle_wait(&self) -> Duration {
        match store::next_due_in::<S::Entity>(&self.db, S::PARTITION).await {
            Ok(Some(due)) => (due - self.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(self.settings.idle_poll),
            _ => self.settings.idle_poll,
        }
    }

    /// One attempt at one row, and what follows from it.
    async fn attempt(&self, row: &S::Row, batch: &S::Batch) -> Outcome {
        if let Some(rate) = &self.rate {
            rate.take().await;
        }
        let attempt = self.sink.send(row, batch).await;
        let outcome = self.outcome(row, attempt, self.clock.now());
        let kind = match &outcome {
            Outcome::Delivered | Outcome::Recorded => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Deferred { .. } => "deferred",
            Outcome::Parked { .. } => "failed",
        };
        metrics::counter!(crate::gauges::ATTEMPTS, "sink" => S::NAME, "outcome" => kind)
            .increment(1);
        // The error texts stay out of the log: a receiver may echo personal data in them.
        tracing::info!(
            sink = S::NAME,
            delivery_id = %row.id(),
            attempt = row.attempts(),
            outcome = kind,
            "outbox delivery attempt"
        );
        outcome
    }

    fn outcome(&self, row: &S::Row, attempt: Attempt, now: DateTime<Utc>) -> Outcome {
        match attempt {
            Attempt::Delivered => Outcome::Delivered,
            Attempt::Recorded => Outcome::Recorded,
            Attempt::Deferred { reason, until } => Outcome::Deferred { reason, until },
            Attempt::Refused { reason } => Outcome::Parked {
                error: reason,
                refused: true,
            },
            Attempt::Temporary {
                reason,
                retry_after,
            } => {
                let attempts = u32::try_from(row.attempts()).unwrap_or(u32::MAX);
                if attempts >= self.settings.max_attempts {
                    return Outcome::Parked {
                        error: format!("gave up after {attempts} attempts; last: {reason}"),
                        refused: false,
                    };
                }
                let wait = backoff(
                    attempts,
                    self.settings.retry_base,
                    self.settings.retry_cap,
                    (self.jitter)(),
                )
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
/// which a random half is taken off ("equal jitter", `fraction` in `[0, 1]`), so workers that
/// failed together do not retry together.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, fraction: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    let full = base.saturating_mul(1 << doublings).min(cap);
    let half = full / 2;
    half + half.mul_f64(fraction.clamp(0.0, 1.0))
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
            assert_eq!(backoff(attempt, base, cap, 0.0), full / 2, "{attempt}");
            assert_eq!(backoff(attempt, base, cap, 1.0), full, "{attempt}");
            let middle = backoff(attempt, base, cap, 0.5);
            assert!(middle > full / 2 && middle < full, "{attempt}: {middle:?}");
        }
    }

    #[test]
    fn the_system_randomness_varies() {
        let fractions: std::collections::HashSet<u64> =
            (0..20).map(|_| random_fraction().to_bits()).collect();
        assert!(fractions.len() > 1);
        assert!(
            (0..100)
                .map(|_| random_fraction())
                .all(|f| (0.0..=1.0).contains(&f))
        );
    }
}
