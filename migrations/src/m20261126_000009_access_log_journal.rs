//! The journal of reads: a read by someone other than the patient is first stored as one
//! row naming every patient it touched, appended in the reader's batch before the answer is
//! sent, and spread into `access_log` (one row per patient) later, many reads per
//! transaction. Appending one row costs one page at the end of a table; spreading 200
//! patients' rows at once touched 200 pages of the patient index in every reader's commit.
//!
//! On PostgreSQL the access log also loses its foreign key to `patients`: checking it takes a
//! share lock on the patient's row for every entry, and with several writers on the same
//! patients (a unit's day read again and again, the spreader, cancellations) those locks
//! became multixacts that made a 400-entry insert take 150 ms, holding back the visits'
//! event log behind it (its readers wait for older transactions). Every entry is written
//! for a patient id the service has just resolved, and patients are never deleted. SQLite
//! keeps the key (dropping one means rebuilding the table; its check costs no lock there).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum AccessLogJournal {
    Table,
    Id,
    OccurredAt,
    ActorKind,
    ActorSubject,
    ActorName,
    ProxyId,
    Action,
    Touched,
}

// The trait's signature elides SchemaManager's lifetime; matching it needs the elision.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AccessLogJournal::Table)
                    .col(
                        ColumnDef::new(AccessLogJournal::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AccessLogJournal::OccurredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AccessLogJournal::ActorKind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AccessLogJournal::ActorSubject)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AccessLogJournal::ActorName).text().null())
                    .col(ColumnDef::new(AccessLogJournal::ProxyId).uuid().null())
                    .col(
                        ColumnDef::new(AccessLogJournal::Action)
                            .string_len(64)
                            .not_null(),
                    )
                    // The patients touched, each with the record's id when it was one record.
                    .col(ColumnDef::new(AccessLogJournal::Touched).text().not_null())
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE access_log DROP CONSTRAINT IF EXISTS fk_access_log_patient",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AccessLogJournal::Table).to_owned())
            .await
    }
}
