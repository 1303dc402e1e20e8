//! Patients, their home visits, and the access log.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Patients {
    Table,
    Id,
    NationalId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Appointments {
    Table,
    Id,
    EpjId,
    PatientId,
    CareUnitId,
    WindowStart,
    WindowEnd,
    ServiceType,
    Status,
    CitizenCancellable,
    EpjVersionId,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AccessLog {
    Table,
    Id,
    PatientId,
    OccurredAt,
    ActorKind,
    ActorSubject,
    Action,
    ResourceId,
}

// The trait's signature elides SchemaManager's lifetime; matching it needs the elision.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    // All or nothing on SQLite too, where migrations otherwise run outside a transaction.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Patients::Table)
                    .col(ColumnDef::new(Patients::Id).uuid().not_null().primary_key())
                    // Kept only to match the EPJ's and the login's identity; never returned.
                    .col(
                        ColumnDef::new(Patients::NationalId)
                            .string_len(11)
                            .not_null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(Patients::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Appointments::Table)
                    .col(
                        ColumnDef::new(Appointments::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Appointments::EpjId)
                            .string_len(128)
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Appointments::PatientId).uuid().not_null())
                    .col(
                        ColumnDef::new(Appointments::CareUnitId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Appointments::WindowStart)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Appointments::WindowEnd)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Appointments::ServiceType)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Appointments::Status)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Appointments::CitizenCancellable)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Appointments::EpjVersionId)
                            .string_len(64)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Appointments::Version)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Appointments::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Appointments::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_appointments_patient")
                            .from(Appointments::Table, Appointments::PatientId)
                            .to(Patients::Table, Patients::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .check(
                        Expr::col(Appointments::WindowEnd).gt(Expr::col(Appointments::WindowStart)),
                    )
                    .to_owned(),
            )
            .await?;

        // A patient's visits in time order, and a care unit's day: the two hot reads.
        manager
            .create_index(
                Index::create()
                    .name("idx_appointments_patient_window")
                    .table(Appointments::Table)
                    .col(Appointments::PatientId)
                    .col(Appointments::WindowStart)
                    .col(Appointments::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_appointments_unit_window")
                    .table(Appointments::Table)
                    .col(Appointments::CareUnitId)
                    .col(Appointments::WindowStart)
                    .col(Appointments::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AccessLog::Table)
                    .col(
                        ColumnDef::new(AccessLog::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AccessLog::PatientId).uuid().not_null())
                    .col(
                        ColumnDef::new(AccessLog::OccurredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AccessLog::ActorKind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AccessLog::ActorSubject)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AccessLog::Action).string_len(64).not_null())
                    .col(ColumnDef::new(AccessLog::ResourceId).string_len(128).null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_access_log_patient")
                            .from(AccessLog::Table, AccessLog::PatientId)
                            .to(Patients::Table, Patients::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_access_log_patient_time")
                    .table(AccessLog::Table)
                    .col(AccessLog::PatientId)
                    .col(AccessLog::OccurredAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AccessLog::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Appointments::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Patients::Table).to_owned())
            .await
    }
}
