//! The journal of reads: a read by someone other than the patient is first stored as one
//! row naming every patient it touched, appended in the reader's batch before the answer is
//! sent, and spread into `access_log` (one row per patient) later, many reads per
//! transaction. Appending one row costs one page at the end of a table; spreading 200
//! patients' rows at once touched 200 pages of the patient index in every reader's commit.

use sea_orm_migration::prelude::*;

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
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AccessLogJournal::Table).to_owned())
            .await
    }
}
