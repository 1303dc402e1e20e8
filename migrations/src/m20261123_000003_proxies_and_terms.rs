//! Proxies ("fullmakt") and their history, acceptances of the terms of use, the protected
//! address flag, and who acted in the access log, the visit history and the EPJ outbox.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Patients {
    Table,
    Id,
    ProtectedAddress,
}

#[derive(DeriveIden)]
enum TermsAcceptances {
    Table,
    Id,
    NationalId,
    TermsVersion,
    AcceptedAt,
    AvailableFrom,
}

#[derive(DeriveIden)]
enum Proxies {
    Table,
    Id,
    PatientId,
    HolderNationalId,
    HolderName,
    PatientName,
    Scopes,
    Basis,
    DocumentReference,
    ValidFrom,
    ValidTo,
    EndedAt,
    RequestId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ProxyEvents {
    Table,
    Seq,
    ProxyId,
    OccurredAt,
    EventType,
    ActorKind,
    ActorSubject,
    ActorName,
    Scopes,
    ValidTo,
}

#[derive(DeriveIden)]
enum AccessLog {
    Table,
    ActorName,
    ProxyId,
}

#[derive(DeriveIden)]
enum Appointments {
    Table,
    CancellationRequestedByName,
}

#[derive(DeriveIden)]
enum AppointmentEvents {
    Table,
    ActorName,
}

#[derive(DeriveIden)]
enum EpjOutbox {
    Table,
    RequestedByKind,
    RequestedByName,
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
        let added: [(DynIden, ColumnDef); 7] = [
            (
                Appointments::Table.into_iden(),
                ColumnDef::new(Appointments::CancellationRequestedByName)
                    .string_len(200)
                    .null()
                    .to_owned(),
            ),
            (
                Patients::Table.into_iden(),
                ColumnDef::new(Patients::ProtectedAddress)
                    .boolean()
                    .not_null()
                    .default(false)
                    .to_owned(),
            ),
            (
                AccessLog::Table.into_iden(),
                ColumnDef::new(AccessLog::ActorName)
                    .string_len(200)
                    .null()
                    .to_owned(),
            ),
            (
                AccessLog::Table.into_iden(),
                ColumnDef::new(AccessLog::ProxyId).uuid().null().to_owned(),
            ),
            (
                AppointmentEvents::Table.into_iden(),
                ColumnDef::new(AppointmentEvents::ActorName)
                    .string_len(200)
                    .null()
                    .to_owned(),
            ),
            (
                EpjOutbox::Table.into_iden(),
                ColumnDef::new(EpjOutbox::RequestedByKind)
                    .string_len(32)
                    .null()
                    .to_owned(),
            ),
            (
                EpjOutbox::Table.into_iden(),
                ColumnDef::new(EpjOutbox::RequestedByName)
                    .string_len(200)
                    .null()
                    .to_owned(),
            ),
        ];
        for (table, mut column) in added {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(TermsAcceptances::Table)
                    .col(
                        ColumnDef::new(TermsAcceptances::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TermsAcceptances::NationalId)
                            .string_len(11)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TermsAcceptances::TermsVersion)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TermsAcceptances::AcceptedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TermsAcceptances::AvailableFrom)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // One acceptance per person and version; two accepting at once meet here.
        manager
            .create_index(
                Index::create()
                    .name("idx_terms_acceptances_person_version")
                    .table(TermsAcceptances::Table)
                    .col(TermsAcceptances::NationalId)
                    .col(TermsAcceptances::TermsVersion)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Proxies::Table)
                    .col(ColumnDef::new(Proxies::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Proxies::PatientId).uuid().not_null())
                    .col(
                        ColumnDef::new(Proxies::HolderNationalId)
                            .string_len(11)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Proxies::HolderName)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Proxies::PatientName)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Proxies::Scopes).string_len(200).not_null())
                    .col(ColumnDef::new(Proxies::Basis).string_len(32).not_null())
                    .col(
                        ColumnDef::new(Proxies::DocumentReference)
                            .string_len(128)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Proxies::ValidFrom)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Proxies::ValidTo)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Proxies::EndedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Proxies::RequestId).string_len(64).not_null())
                    .col(
                        ColumnDef::new(Proxies::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Proxies::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_proxies_patient")
                            .from(Proxies::Table, Proxies::PatientId)
                            .to(Patients::Table, Patients::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Every call a holder makes looks up their proxies for one patient.
        manager
            .create_index(
                Index::create()
                    .name("idx_proxies_holder_patient")
                    .table(Proxies::Table)
                    .col(Proxies::HolderNationalId)
                    .col(Proxies::PatientId)
                    .to_owned(),
            )
            .await?;
        // A repeated grant (same request id) finds the first.
        manager
            .create_index(
                Index::create()
                    .name("idx_proxies_patient_request")
                    .table(Proxies::Table)
                    .col(Proxies::PatientId)
                    .col(Proxies::RequestId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ProxyEvents::Table)
                    .col(
                        ColumnDef::new(ProxyEvents::Seq)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ProxyEvents::ProxyId).uuid().not_null())
                    .col(
                        ColumnDef::new(ProxyEvents::OccurredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ProxyEvents::EventType)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ProxyEvents::ActorKind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ProxyEvents::ActorSubject)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ProxyEvents::ActorName)
                            .string_len(200)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(ProxyEvents::Scopes)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ProxyEvents::ValidTo)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_proxy_events_proxy")
                            .from(ProxyEvents::Table, ProxyEvents::ProxyId)
                            .to(Proxies::Table, Proxies::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_proxy_events_proxy")
                    .table(ProxyEvents::Table)
                    .col(ProxyEvents::ProxyId)
                    .col(ProxyEvents::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ProxyEvents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Proxies::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(TermsAcceptances::Table).to_owned())
            .await?;
        let dropped: [(DynIden, DynIden); 7] = [
            (
                Appointments::Table.into_iden(),
                Appointments::CancellationRequestedByName.into_iden(),
            ),
            (
                EpjOutbox::Table.into_iden(),
                EpjOutbox::RequestedByName.into_iden(),
            ),
            (
                EpjOutbox::Table.into_iden(),
                EpjOutbox::RequestedByKind.into_iden(),
            ),
            (
                AppointmentEvents::Table.into_iden(),
                AppointmentEvents::ActorName.into_iden(),
            ),
            (AccessLog::Table.into_iden(), AccessLog::ProxyId.into_iden()),
            (
                AccessLog::Table.into_iden(),
                AccessLog::ActorName.into_iden(),
            ),
            (
                Patients::Table.into_iden(),
                Patients::ProtectedAddress.into_iden(),
            ),
        ];
        for (table, column) in dropped {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
