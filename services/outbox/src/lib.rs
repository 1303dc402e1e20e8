//! The transactional outbox: every effect outside the service (an EPJ write today; SMS,
//! e-mail and the archive hand-off next) is a row written in the same transaction as the
//! change it follows from, so nothing the service accepted is lost, and a worker carries the
//! rows out.
//!
//! One machinery for every outbox ([`Worker`] over the functions in [`store`]): claiming due
//! rows with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several processes never take
//! the same row; the in-process writer gate on SQLite), one attempt per claimed row, backoff
//! with injected randomness and the receiver's Retry-After, parking a row after a refusal or
//! too many attempts, listing parked rows and putting one back for staff, and a send rate held
//! across the process ([`RateLimit`]). A sink's concurrency is its worker's `batch_size ×
//! parallelism`.
//!
//! What differs per outbox is its [`Sink`]: its own table (the standard columns below plus
//! whatever it needs to send), how it sends one row, and what an outcome means for its own
//! domain (for the EPJ, the visit's cancellation state).
//!
//! A sink's table has these columns, with these meanings:
//! - `id` (UUID, primary key; also the idempotency key sent to the receiver),
//! - `state` (`pending`, `delivered` or `failed`: see [`RowState`]),
//! - `attempts` (attempts started, including one in flight),
//! - `next_attempt_at`, `lease_until` (until when a worker holds the row), `last_error`,
//! - `created_at`, `updated_at`.
//!
//! Outbox times are the machine's clock, not the business clock: they schedule work.

pub mod gauges;
mod rate;
mod sink;
pub mod store;
mod wakeup;
mod worker;

pub use rate::RateLimit;
pub use sink::{Attempt, OutboxRow, Sink};
pub use store::{Outcome, RowState};
pub use wakeup::Wakeup;
pub use worker::{Jitter, Settings, Worker, backoff};
