//! Reads stored once per read and once per set of patients, not once per patient.
//!
//! A staff read of a unit's day names the same 300 patients each time the day is read, and
//! each such read was stored as 300 entries, spread from its journal row after the answer:
//! some 150,000 entries per second under load, and the whole cost of a unit day's p99. Now a
//! read of many patients is one row in `access_log_reads` naming its set of patients
//! (`access_log_patient_sets`, keyed by a hash of the set); a set is stored once, and its
//! members (`access_log_patient_set_members`, indexed by patient) are written once, from
//! `access_log_unspread_sets`, after the read that first named it. A patient's log is the view
//! `access_log_entries`: their own entries in `access_log` (changes, and reads of a few
//! patients) and the reads of every set they are in.
//!
//! The journal's rows not yet spread become reads, each naming a set of its own (the set's
//! id is the read's), to be spread like any new set.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum AccessLogReads {
    Table,
    Id,
    OccurredAt,
    ActorKind,
    ActorSubject,
    ActorName,
    ProxyId,
    Action,
    PatientSetId,
}

#[derive(DeriveIden)]
enum AccessLogPatientSets {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum AccessLogPatientSetMembers {
    Table,
    SetId,
    PatientId,
    ResourceId,
}

#[derive(DeriveIden)]
enum AccessLogUnspreadSets {
    Table,
    SetId,
    Touched,
}

const ENTRIES_VIEW: &str = "
CREATE VIEW access_log_entries AS
SELECT id, patient_id, occurred_at, actor_kind, actor_subject, actor_name, proxy_id, action,
    resource_id
FROM access_log
UNION ALL
SELECT r.id, m.patient_id, r.occurred_at, r.actor_kind, r.actor_subject, r.actor_name,
    r.proxy_id, r.action, m.resource_id
FROM access_log_reads r
JOIN access_log_patient_set_members m ON m.set_id = r.patient_set_id";

const JOURNAL_TO_READS: [&str; 3] = [
    "INSERT INTO access_log_patient_sets (id) SELECT id FROM access_log_journal",
    "INSERT INTO access_log_unspread_sets (set_id, touched)
     SELECT id, touched FROM access_log_journal",
    "INSERT INTO access_log_reads
        (id, occurred_at, actor_kind, actor_subject, actor_name, proxy_id, action, patient_set_id)
     SELECT id, occurred_at, actor_kind, actor_subject, actor_name, proxy_id, action, id
     FROM access_log_journal",
];

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
                    .table(AccessLogPatientSets::Table)
                    .col(
                        ColumnDef::new(AccessLogPatientSets::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AccessLogPatientSetMembers::Table)
                    .col(
                        ColumnDef::new(AccessLogPatientSetMembers::SetId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AccessLogPatientSetMembers::PatientId)
                            .uuid()
                            .not_null(),
                    )
                    // The record's id when the read touched one record of the patient.
                    .col(
                        ColumnDef::new(AccessLogPatientSetMembers::ResourceId)
                            .string_len(256)
                            .null(),
                    )
                    // A patient's sets are what their log is read by.
                    .primary_key(
                        Index::create()
                            .col(AccessLogPatientSetMembers::PatientId)
                            .col(AccessLogPatientSetMembers::SetId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AccessLogUnspreadSets::Table)
                    .col(
                        ColumnDef::new(AccessLogUnspreadSets::SetId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    // The members: a JSON array of `[patient id, record id or null]`.
                    .col(
                        ColumnDef::new(AccessLogUnspreadSets::Touched)
                            .text()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AccessLogReads::Table)
                    .col(
                        ColumnDef::new(AccessLogReads::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AccessLogReads::OccurredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AccessLogReads::ActorKind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AccessLogReads::ActorSubject)
                            .string_len(256)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AccessLogReads::ActorName).text().null())
                    .col(ColumnDef::new(AccessLogReads::ProxyId).uuid().null())
                    .col(
                        ColumnDef::new(AccessLogReads::Action)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AccessLogReads::PatientSetId)
                            .uuid()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_access_log_reads_set")
                    .table(AccessLogReads::Table)
                    .col(AccessLogReads::PatientSetId)
                    .col(AccessLogReads::OccurredAt)
                    .col(AccessLogReads::Id)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for statement in JOURNAL_TO_READS {
            db.execute_unprepared(statement).await?;
        }
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("access_log_journal"))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(ENTRIES_VIEW).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP VIEW access_log_entries")
            .await?;
        for table in [
            AccessLogReads::Table.into_iden(),
            AccessLogUnspreadSets::Table.into_iden(),
            AccessLogPatientSetMembers::Table.into_iden(),
            AccessLogPatientSets::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        // The journal is back, empty: the reads stored since are gone with their tables.
        crate::m20261126_000009_access_log_journal::Migration
            .up(manager)
            .await
    }
}
