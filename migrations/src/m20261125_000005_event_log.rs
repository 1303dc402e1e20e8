//! The history as a subscribable event log: what an event of the EPJ changed (the visit's
//! status and window before), so that a consumer can tell a moved visit, a completed one and
//! one cancelled by the care service apart without reading the visit again; and where each
//! durable consumer stands (`event_cursors`), moved in the same transaction as what it writes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum EventCursors {
    Table,
    Name,
    TxOrder,
    Seq,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AppointmentEvents {
    Table,
    PreviousStatus,
    PreviousWindowStart,
    PreviousWindowEnd,
}

// The trait's signature elides SchemaManager's lifetime; matching it needs the elision.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        let columns = [
            ColumnDef::new(AppointmentEvents::PreviousStatus)
                .string_len(32)
                .null()
                .to_owned(),
            ColumnDef::new(AppointmentEvents::PreviousWindowStart)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(AppointmentEvents::PreviousWindowEnd)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(AppointmentEvents::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(EventCursors::Table)
                    .col(
                        ColumnDef::new(EventCursors::Name)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(EventCursors::TxOrder)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(EventCursors::Seq).big_integer().not_null())
                    .col(
                        ColumnDef::new(EventCursors::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EventCursors::Table).to_owned())
            .await?;
        for column in [
            AppointmentEvents::PreviousWindowEnd,
            AppointmentEvents::PreviousWindowStart,
            AppointmentEvents::PreviousStatus,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AppointmentEvents::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
