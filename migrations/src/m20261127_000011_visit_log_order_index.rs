//! The visits' event log read in commit order without a scan of the whole log.
//!
//! Its readers that take every unit's events (the notifier's consumer, the followers that keep
//! citizens' visits current) read `(tx_order, seq)` after a position. The proxies' and the
//! messages' logs have had an index in that order from the start; the visits' had one only
//! behind `care_unit_id`, so each of those reads scanned and sorted the whole log. Building
//! the index holds off writes to the log for as long as it takes: seconds for millions of
//! events.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum AppointmentEvents {
    Table,
    TxOrder,
    Seq,
}

const INDEX: &str = "idx_appointment_events_order";

// The trait's signature elides SchemaManager's lifetime; matching it needs the elision.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(AppointmentEvents::Table)
                    .col(AppointmentEvents::TxOrder)
                    .col(AppointmentEvents::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(AppointmentEvents::Table)
                    .to_owned(),
            )
            .await
    }
}
