//! What an idempotent request asked for, kept beside its `request_id`, so that the same id
//! sent again with other content is refused instead of answered with the first result.
//!
//! A fingerprint (SHA-256 of the request's content) rather than the content: it is compared,
//! never read, and holds no identity number or text. Rows from before have none, and any
//! repeat of their request id counts as a true repeat.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Appointments {
    Table,
    CancellationRequestFingerprint,
}

#[derive(DeriveIden)]
enum EpjOutbox {
    Table,
    PatientId,
    RequestId,
}

#[derive(DeriveIden)]
enum Proxies {
    Table,
    RequestFingerprint,
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
            .alter_table(
                Table::alter()
                    .table(Appointments::Table)
                    .add_column(
                        ColumnDef::new(Appointments::CancellationRequestFingerprint)
                            .string_len(64)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Proxies::Table)
                    .add_column(
                        ColumnDef::new(Proxies::RequestFingerprint)
                            .string_len(64)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // One request id, one cancellation per patient. The outbox row is written with every
        // cancellation anyway, so holding the id unique there costs a first cancellation no
        // query, and the visit's own update stays off every index.
        manager
            .alter_table(
                Table::alter()
                    .table(EpjOutbox::Table)
                    .add_column(ColumnDef::new(EpjOutbox::RequestId).string_len(64).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_epj_outbox_patient_request")
                    .table(EpjOutbox::Table)
                    .col(EpjOutbox::PatientId)
                    .col(EpjOutbox::RequestId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_epj_outbox_patient_request")
                    .table(EpjOutbox::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(EpjOutbox::Table)
                    .drop_column(EpjOutbox::RequestId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Proxies::Table)
                    .drop_column(Proxies::RequestFingerprint)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Appointments::Table)
                    .drop_column(Appointments::CancellationRequestFingerprint)
                    .to_owned(),
            )
            .await
    }
}
