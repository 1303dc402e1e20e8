//! Cancellations: their state on the visit, every visit's history (which is also the change
//! stream staff tools follow), and the outbox that carries cancellations to the EPJ.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Appointments {
    Table,
    Id,
    CancellationState,
    CancellationReason,
    CancellationRequestId,
    CancellationRequestedAt,
    CancellationRequestedBy,
    CancellationFailureReason,
}

#[derive(DeriveIden)]
enum AppointmentEvents {
    Table,
    Seq,
    TxOrder,
    AppointmentId,
    PatientId,
    CareUnitId,
    OccurredAt,
    EventType,
    ActorKind,
    ActorSubject,
    Version,
}

#[derive(DeriveIden)]
enum EpjOutbox {
    Table,
    Id,
    AppointmentId,
    EpjId,
    PatientId,
    CareUnitId,
    Operation,
    Reason,
    State,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    LastError,
    CreatedAt,
    UpdatedAt,
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
            ColumnDef::new(Appointments::CancellationState)
                .string_len(32)
                .null()
                .to_owned(),
            ColumnDef::new(Appointments::CancellationReason)
                .string_len(2000)
                .null()
                .to_owned(),
            ColumnDef::new(Appointments::CancellationRequestId)
                .string_len(64)
                .null()
                .to_owned(),
            ColumnDef::new(Appointments::CancellationRequestedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Appointments::CancellationRequestedBy)
                .string_len(32)
                .null()
                .to_owned(),
            ColumnDef::new(Appointments::CancellationFailureReason)
                .string_len(1000)
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Appointments::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }

        // The order in which a reader can see events. SQLite has one writer at a time, so
        // `seq` is already commit order and `tx_order` stays 0. On PostgreSQL concurrent
        // transactions take `seq` values in one order and commit in another; `tx_order` is the
        // writing transaction's id, and readers only read events of transactions older than
        // every transaction still running (see `events::read_after`), in (tx_order, seq) order,
        // so a later commit never lands behind a reader's position.
        let mut tx_order = ColumnDef::new(AppointmentEvents::TxOrder);
        tx_order.big_integer().not_null();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            tx_order.default(Expr::cust("(pg_current_xact_id()::text::bigint)"));
        } else {
            tx_order.default(0);
        }
        manager
            .create_table(
                Table::create()
                    .table(AppointmentEvents::Table)
                    .col(
                        ColumnDef::new(AppointmentEvents::Seq)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(&mut tx_order)
                    .col(
                        ColumnDef::new(AppointmentEvents::AppointmentId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AppointmentEvents::PatientId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AppointmentEvents::CareUnitId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AppointmentEvents::OccurredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AppointmentEvents::EventType)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AppointmentEvents::ActorKind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AppointmentEvents::ActorSubject)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AppointmentEvents::Version)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_appointment_events_appointment")
                            .from(AppointmentEvents::Table, AppointmentEvents::AppointmentId)
                            .to(Appointments::Table, Appointments::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_appointment_events_appointment")
                    .table(AppointmentEvents::Table)
                    .col(AppointmentEvents::AppointmentId)
                    .col(AppointmentEvents::Seq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_appointment_events_unit_order")
                    .table(AppointmentEvents::Table)
                    .col(AppointmentEvents::CareUnitId)
                    .col(AppointmentEvents::TxOrder)
                    .col(AppointmentEvents::Seq)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(EpjOutbox::Table)
                    // Also the idempotency key sent to the EPJ.
                    .col(
                        ColumnDef::new(EpjOutbox::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(EpjOutbox::AppointmentId).uuid().not_null())
                    .col(ColumnDef::new(EpjOutbox::EpjId).string_len(128).not_null())
                    .col(ColumnDef::new(EpjOutbox::PatientId).uuid().not_null())
                    .col(
                        ColumnDef::new(EpjOutbox::CareUnitId)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EpjOutbox::Operation)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(EpjOutbox::Reason).string_len(2000).null())
                    .col(ColumnDef::new(EpjOutbox::State).string_len(16).not_null())
                    .col(ColumnDef::new(EpjOutbox::Attempts).integer().not_null())
                    .col(
                        ColumnDef::new(EpjOutbox::NextAttemptAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EpjOutbox::LeaseUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(EpjOutbox::LastError).string_len(1000).null())
                    .col(
                        ColumnDef::new(EpjOutbox::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EpjOutbox::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_epj_outbox_appointment")
                            .from(EpjOutbox::Table, EpjOutbox::AppointmentId)
                            .to(Appointments::Table, Appointments::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        // The worker's claim: due rows in order.
        manager
            .create_index(
                Index::create()
                    .name("idx_epj_outbox_due")
                    .table(EpjOutbox::Table)
                    .col(EpjOutbox::State)
                    .col(EpjOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        // Staff's list of failed deliveries per unit.
        manager
            .create_index(
                Index::create()
                    .name("idx_epj_outbox_unit_state")
                    .table(EpjOutbox::Table)
                    .col(EpjOutbox::CareUnitId)
                    .col(EpjOutbox::State)
                    .col(EpjOutbox::CreatedAt)
                    .col(EpjOutbox::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EpjOutbox::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AppointmentEvents::Table).to_owned())
            .await?;
        for column in [
            Appointments::CancellationFailureReason,
            Appointments::CancellationRequestedBy,
            Appointments::CancellationRequestedAt,
            Appointments::CancellationRequestId,
            Appointments::CancellationReason,
            Appointments::CancellationState,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Appointments::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
