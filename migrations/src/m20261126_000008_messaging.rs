//! Secure messaging: threads (to one care unit, about one patient), their messages and
//! drafts, attachment metadata (the bytes live in the blob store), each participant's read
//! state, and the threads' history as an event log (see `homecare_core::event_log`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DatabaseBackend, Statement};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum MessageThreads {
    Table,
    Id,
    PatientId,
    CareUnitId,
    Subject,
    Sensitive,
    Kind,
    Priority,
    AppointmentId,
    PreviousThreadId,
    Status,
    StartedByKind,
    StartedBySubject,
    StartedByName,
    CreatedAt,
    ReceivedAt,
    DueAt,
    LastMessageAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    ThreadId,
    AuthorKind,
    AuthorSubject,
    AuthorName,
    AuthorKey,
    Body,
    State,
    SentAt,
    RequestId,
    RequestFingerprint,
    ReceiptReference,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MessageAttachments {
    Table,
    Id,
    OwnerKey,
    PatientId,
    ThreadId,
    MessageId,
    FileName,
    MediaType,
    SizeBytes,
    Sha256,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MessageReads {
    Table,
    ThreadId,
    ReaderKey,
    ReadThrough,
    MarkedUnread,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MessageEvents {
    Table,
    Seq,
    TxOrder,
    ThreadId,
    PatientId,
    CareUnitId,
    FromCareUnitId,
    MessageId,
    EventType,
    ActorKind,
    ActorSubject,
    ActorName,
    OccurredAt,
}

fn time(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn optional_time(name: impl IntoIden) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

fn text(name: impl IntoIden, length: u32) -> ColumnDef {
    ColumnDef::new(name)
        .string_len(length)
        .not_null()
        .to_owned()
}

async fn index<T: IntoIden + 'static, C: IntoIden + 'static>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    columns: Vec<C>,
) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(name).table(table);
    for column in columns {
        index.col(column);
    }
    manager.create_index(index.to_owned()).await
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
                    .table(MessageThreads::Table)
                    .col(
                        ColumnDef::new(MessageThreads::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(MessageThreads::PatientId).uuid().not_null())
                    .col(text(MessageThreads::CareUnitId, 64))
                    // At most 200 characters; up to four bytes each.
                    .col(text(MessageThreads::Subject, 800))
                    .col(
                        ColumnDef::new(MessageThreads::Sensitive)
                            .boolean()
                            .not_null(),
                    )
                    .col(text(MessageThreads::Kind, 32))
                    // The inbox's first sort key: cancellation requests waiting (0), other
                    // threads waiting (1), answered (2); closed (3) and drafts (4) are not in it.
                    .col(
                        ColumnDef::new(MessageThreads::Priority)
                            .small_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(MessageThreads::AppointmentId).uuid().null())
                    .col(
                        ColumnDef::new(MessageThreads::PreviousThreadId)
                            .uuid()
                            .null(),
                    )
                    .col(text(MessageThreads::Status, 16))
                    .col(text(MessageThreads::StartedByKind, 16))
                    .col(text(MessageThreads::StartedBySubject, 64))
                    .col(
                        ColumnDef::new(MessageThreads::StartedByName)
                            .string_len(800)
                            .null(),
                    )
                    .col(time(MessageThreads::CreatedAt))
                    .col(optional_time(MessageThreads::ReceivedAt))
                    .col(optional_time(MessageThreads::DueAt))
                    .col(time(MessageThreads::LastMessageAt))
                    .col(time(MessageThreads::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_message_threads_inbox",
            MessageThreads::Table,
            // The inbox is one range of it: a unit's open threads (priority below 3) in order.
            vec![
                MessageThreads::CareUnitId,
                MessageThreads::Priority,
                MessageThreads::DueAt,
                MessageThreads::Id,
            ],
        )
        .await?;
        index(
            manager,
            "idx_message_threads_patient",
            MessageThreads::Table,
            vec![
                MessageThreads::PatientId,
                MessageThreads::LastMessageAt,
                MessageThreads::Id,
            ],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(ColumnDef::new(Messages::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Messages::ThreadId).uuid().not_null())
                    .col(text(Messages::AuthorKind, 16))
                    .col(text(Messages::AuthorSubject, 64))
                    .col(ColumnDef::new(Messages::AuthorName).string_len(800).null())
                    // A fingerprint of who wrote it (never readable as an identity number):
                    // a draft is shown to this key only.
                    .col(text(Messages::AuthorKey, 64))
                    .col(ColumnDef::new(Messages::Body).text().not_null())
                    .col(text(Messages::State, 16))
                    .col(optional_time(Messages::SentAt))
                    .col(ColumnDef::new(Messages::RequestId).string_len(64).null())
                    .col(
                        ColumnDef::new(Messages::RequestFingerprint)
                            .string_len(64)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Messages::ReceiptReference)
                            .string_len(32)
                            .null(),
                    )
                    .col(time(Messages::CreatedAt))
                    .col(time(Messages::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_messages_thread")
                            .from(Messages::Table, Messages::ThreadId)
                            .to(MessageThreads::Table, MessageThreads::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_messages_thread",
            Messages::Table,
            vec![Messages::ThreadId, Messages::CreatedAt],
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_messages_request")
                    .table(Messages::Table)
                    .col(Messages::AuthorKey)
                    .col(Messages::RequestId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MessageAttachments::Table)
                    .col(
                        ColumnDef::new(MessageAttachments::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(text(MessageAttachments::OwnerKey, 64))
                    .col(ColumnDef::new(MessageAttachments::PatientId).uuid().null())
                    .col(ColumnDef::new(MessageAttachments::ThreadId).uuid().null())
                    .col(ColumnDef::new(MessageAttachments::MessageId).uuid().null())
                    .col(text(MessageAttachments::FileName, 800))
                    .col(text(MessageAttachments::MediaType, 100))
                    .col(
                        ColumnDef::new(MessageAttachments::SizeBytes)
                            .big_integer()
                            .not_null(),
                    )
                    .col(text(MessageAttachments::Sha256, 64))
                    .col(time(MessageAttachments::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_message_attachments_message",
            MessageAttachments::Table,
            vec![MessageAttachments::MessageId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(MessageReads::Table)
                    .col(ColumnDef::new(MessageReads::ThreadId).uuid().not_null())
                    .col(text(MessageReads::ReaderKey, 64))
                    .col(optional_time(MessageReads::ReadThrough))
                    .col(
                        ColumnDef::new(MessageReads::MarkedUnread)
                            .boolean()
                            .not_null(),
                    )
                    .col(time(MessageReads::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(MessageReads::ThreadId)
                            .col(MessageReads::ReaderKey),
                    )
                    .to_owned(),
            )
            .await?;

        // As for the visits' history: the writing transaction's id on PostgreSQL, 0 on SQLite
        // (one writer at a time: `seq` is commit order).
        let mut tx_order = ColumnDef::new(MessageEvents::TxOrder);
        tx_order.big_integer().not_null();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            tx_order.default(Expr::cust("(pg_current_xact_id()::text::bigint)"));
        } else {
            tx_order.default(0);
        }
        manager
            .create_table(
                Table::create()
                    .table(MessageEvents::Table)
                    .col(
                        ColumnDef::new(MessageEvents::Seq)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(tx_order)
                    .col(ColumnDef::new(MessageEvents::ThreadId).uuid().not_null())
                    .col(ColumnDef::new(MessageEvents::PatientId).uuid().not_null())
                    .col(text(MessageEvents::CareUnitId, 64))
                    .col(
                        ColumnDef::new(MessageEvents::FromCareUnitId)
                            .string_len(64)
                            .null(),
                    )
                    .col(ColumnDef::new(MessageEvents::MessageId).uuid().null())
                    .col(text(MessageEvents::EventType, 32))
                    .col(text(MessageEvents::ActorKind, 16))
                    .col(text(MessageEvents::ActorSubject, 64))
                    .col(
                        ColumnDef::new(MessageEvents::ActorName)
                            .string_len(800)
                            .null(),
                    )
                    .col(time(MessageEvents::OccurredAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_message_events_order",
            MessageEvents::Table,
            vec![MessageEvents::TxOrder, MessageEvents::Seq],
        )
        .await?;
        index(
            manager,
            "idx_message_events_unit",
            MessageEvents::Table,
            vec![
                MessageEvents::CareUnitId,
                MessageEvents::TxOrder,
                MessageEvents::Seq,
            ],
        )
        .await?;
        index(
            manager,
            "idx_message_events_thread",
            MessageEvents::Table,
            vec![MessageEvents::ThreadId, MessageEvents::Seq],
        )
        .await?;

        // The notifier of messages tells of every message from the first: its cursor starts
        // at the start of the new log, so none races the first messages.
        let backend = manager.get_database_backend();
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
                     VALUES ('notifications.messages', 0, 0, {now})"
                ),
                [chrono::Utc::now().into()],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DELETE FROM event_cursors WHERE name = 'notifications.messages'")
            .await?;
        for table in [
            MessageEvents::Table.into_iden(),
            MessageReads::Table.into_iden(),
            MessageAttachments::Table.into_iden(),
            Messages::Table.into_iden(),
            MessageThreads::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
