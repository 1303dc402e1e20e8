//! Notifications: each citizen's settings, proxy holders' choice per patient, the notices
//! (one per recipient, event and channel: the history a citizen and staff see) and the
//! outbox of messages that carry them (one message may carry several merged notices).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DatabaseBackend, Statement};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum NotificationSettings {
    Table,
    NationalId,
    Channels,
    PhoneNumber,
    EmailAddress,
    Language,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum NotificationFollows {
    Table,
    HolderNationalId,
    PatientId,
    Enabled,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum NoticeDeliveries {
    Table,
    Id,
    RecipientNationalId,
    Channel,
    ProviderId,
    State,
    Attempts,
    NextAttemptAt,
    LeaseUntil,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Notices {
    Table,
    Id,
    RecipientNationalId,
    PatientId,
    OnBehalf,
    Kind,
    Channel,
    Status,
    SkipReason,
    SubjectTime,
    DeliveryId,
    ErrorCode,
    CreatedAt,
    UpdatedAt,
}

fn time(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
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
                    .table(NotificationSettings::Table)
                    .col(
                        ColumnDef::new(NotificationSettings::NationalId)
                            .string_len(11)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(NotificationSettings::Channels)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(NotificationSettings::PhoneNumber)
                            .string_len(32)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(NotificationSettings::EmailAddress)
                            .string_len(254)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(NotificationSettings::Language)
                            .string_len(8)
                            .not_null(),
                    )
                    .col(time(NotificationSettings::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(NotificationFollows::Table)
                    .col(
                        ColumnDef::new(NotificationFollows::HolderNationalId)
                            .string_len(11)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(NotificationFollows::PatientId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(NotificationFollows::Enabled)
                            .boolean()
                            .not_null(),
                    )
                    .col(time(NotificationFollows::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(NotificationFollows::HolderNationalId)
                            .col(NotificationFollows::PatientId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_notification_follows_patient")
                    .table(NotificationFollows::Table)
                    .col(NotificationFollows::PatientId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(NoticeDeliveries::Table)
                    // Also the Message-ID of an e-mail.
                    .col(
                        ColumnDef::new(NoticeDeliveries::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(NoticeDeliveries::RecipientNationalId)
                            .string_len(11)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(NoticeDeliveries::Channel)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(NoticeDeliveries::ProviderId)
                            .string_len(64)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(NoticeDeliveries::State)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(NoticeDeliveries::Attempts)
                            .integer()
                            .not_null(),
                    )
                    .col(time(NoticeDeliveries::NextAttemptAt))
                    .col(
                        ColumnDef::new(NoticeDeliveries::LeaseUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(NoticeDeliveries::LastError)
                            .string_len(1000)
                            .null(),
                    )
                    .col(time(NoticeDeliveries::CreatedAt))
                    .col(time(NoticeDeliveries::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "idx_notice_deliveries_due",
                vec![NoticeDeliveries::State, NoticeDeliveries::NextAttemptAt],
            ),
            (
                "idx_notice_deliveries_recipient",
                vec![
                    NoticeDeliveries::RecipientNationalId,
                    NoticeDeliveries::Channel,
                    NoticeDeliveries::CreatedAt,
                ],
            ),
            (
                "idx_notice_deliveries_provider",
                vec![NoticeDeliveries::ProviderId],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(NoticeDeliveries::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Notices::Table)
                    .col(ColumnDef::new(Notices::Id).uuid().not_null().primary_key())
                    .col(
                        ColumnDef::new(Notices::RecipientNationalId)
                            .string_len(11)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Notices::PatientId).uuid().not_null())
                    .col(ColumnDef::new(Notices::OnBehalf).boolean().not_null())
                    .col(ColumnDef::new(Notices::Kind).string_len(32).not_null())
                    .col(ColumnDef::new(Notices::Channel).string_len(16).null())
                    .col(ColumnDef::new(Notices::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Notices::SkipReason).string_len(16).null())
                    .col(time(Notices::SubjectTime))
                    .col(ColumnDef::new(Notices::DeliveryId).uuid().null())
                    .col(ColumnDef::new(Notices::ErrorCode).string_len(32).null())
                    .col(time(Notices::CreatedAt))
                    .col(time(Notices::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_notices_delivery")
                            .from(Notices::Table, Notices::DeliveryId)
                            .to(NoticeDeliveries::Table, NoticeDeliveries::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "idx_notices_recipient",
                vec![
                    Notices::RecipientNationalId,
                    Notices::CreatedAt,
                    Notices::Id,
                ],
            ),
            (
                "idx_notices_patient",
                vec![Notices::PatientId, Notices::CreatedAt, Notices::Id],
            ),
            ("idx_notices_delivery", vec![Notices::DeliveryId]),
        ] {
            let mut index = Index::create();
            index.name(name).table(Notices::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }

        // The notifiers tell of what happens from now on, not of the history before them;
        // their cursors start at the end of each log now, so none races the first events.
        let backend = manager.get_database_backend();
        for (consumer, log) in [
            ("notifications.visits", "appointment_events"),
            ("notifications.proxies", "proxy_events"),
        ] {
            let last = |column: &str| {
                format!(
                    "COALESCE((SELECT {column} FROM {log} ORDER BY tx_order DESC, seq DESC \
                     LIMIT 1), 0)"
                )
            };
            let now = if backend == DatabaseBackend::Postgres {
                "$1"
            } else {
                "?"
            };
            manager
                .get_connection()
                .execute_raw(Statement::from_sql_and_values(
                    backend,
                    format!(
                        "INSERT INTO event_cursors (name, tx_order, seq, updated_at) \
                         SELECT '{consumer}', {}, {}, {now}",
                        last("tx_order"),
                        last("seq")
                    ),
                    [chrono::Utc::now().into()],
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DELETE FROM event_cursors WHERE name IN \
                 ('notifications.visits', 'notifications.proxies')",
            )
            .await?;
        for table in [
            Notices::Table.into_iden(),
            NoticeDeliveries::Table.into_iden(),
            NotificationFollows::Table.into_iden(),
            NotificationSettings::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
