//! What an outbox delivers to, and what delivering means for its domain.

use std::time::Duration;

use sea_orm::{DatabaseTransaction, DbErr, EntityTrait};
use uuid::Uuid;

/// A row of an outbox table: the standard columns the machinery reads.
pub trait OutboxRow: Clone + Send + Sync + 'static {
    /// The row's id, also the idempotency key sent to the receiver.
    fn id(&self) -> Uuid;
    /// Attempts started, including the one about to be made.
    fn attempts(&self) -> i32;
    /// When the row was queued: parked rows are listed oldest first.
    fn created_at(&self) -> chrono::DateTime<chrono::Utc>;
    /// Until when the worker that claimed it holds it (as the claim stored it).
    fn lease_until(&self) -> Option<chrono::DateTime<chrono::Utc>>;
}

/// How one attempt to send a row ended, as the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver took it.
    Delivered,
    /// The receiver took it, and the sink has already recorded that itself (the row
    /// delivered, its lease cleared, its domain told), together with what it had to store
    /// the moment the receiver answered: the worker writes nothing more for it.
    Recorded,
    /// It may work later: a timeout, a 5xx, a 429; try again after at least `retry_after`
    /// when the receiver said so.
    Temporary {
        /// What went wrong, for staff (never logged: a receiver may echo personal data).
        reason: String,
        /// The receiver's Retry-After.
        retry_after: Option<Duration>,
    },
    /// The receiver refused it for good: park the row at once.
    Refused {
        /// Why, for staff.
        reason: String,
    },
    /// Not sent, and not to be sent before `until`: a rule of the sink's own (quiet hours)
    /// holds it. No attempt is counted, so the row stays as it was queued (what joins an
    /// unsent row still joins it). `reason` marks the row, so that the rule can be judged
    /// again should it change (see [`crate::store::reopen`]).
    Deferred {
        /// Why, for staff; also the mark that [`crate::store::reopen`] looks for.
        reason: &'static str,
        /// The earliest the rule lets it go.
        until: chrono::DateTime<chrono::Utc>,
    },
}

/// One outbox: its table, how a row is sent, and what the outcome does to the sink's own
/// domain, in the same transaction that records the outcome.
#[async_trait::async_trait]
pub trait Sink: Send + Sync + 'static {
    /// The outbox table (with the standard columns, see the crate's documentation).
    type Entity: EntityTrait<Model = Self::Row>;
    /// A row of it.
    type Row: OutboxRow + sea_orm::FromQueryResult;

    /// The sink's name in logs and metrics, e.g. `epj`.
    const NAME: &'static str;

    /// The sink's rows, when it shares its table with other sinks (one per channel).
    const PARTITION: Option<crate::store::Partition> = None;

    /// What a batch of claimed rows needs for sending, read once for the batch rather than
    /// once per row (their recipients, say): `()` when there is nothing.
    type Batch: Send + Sync + 'static;

    /// Reads what `rows`, just claimed, need for sending. Called outside any transaction;
    /// a failure belongs in the batch, for [`Sink::send`] to report per row.
    async fn prepare(&self, rows: &[Self::Row]) -> Self::Batch;

    /// Sends one row once, with what [`Sink::prepare`] read for its batch. Called outside
    /// any transaction.
    async fn send(&self, row: &Self::Row, batch: &Self::Batch) -> Attempt;

    /// The receiver took `rows`: apply that to the domain. Returns how many domain records
    /// changed (for [`Sink::changed`]).
    async fn on_delivered(
        &self,
        txn: &DatabaseTransaction,
        rows: &[Self::Row],
    ) -> Result<usize, DbErr>;

    /// `row` was parked: refused by the receiver (`refused`) or out of attempts. Returns
    /// whether a domain record changed.
    async fn on_parked(
        &self,
        txn: &DatabaseTransaction,
        row: &Self::Row,
        error: &str,
        refused: bool,
    ) -> Result<bool, DbErr>;

    /// After a batch's outcomes committed and changed domain records: `rows` are those whose
    /// outcome was applied to the domain (wake readers, drop what was kept of those records).
    fn changed(&self, rows: &[Self::Row]) {
        let _ = rows;
    }
}
