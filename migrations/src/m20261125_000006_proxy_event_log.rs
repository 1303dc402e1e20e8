//! A proxy's history as an event log like the visits' (see `homecare_core::event_log`): the
//! order a reader can see an event in (`tx_order`), and the patient it concerns, so that a
//! consumer (the notifier) can tell whom to tell without reading the proxy again.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ProxyEvents {
    Table,
    Seq,
    ProxyId,
    TxOrder,
    PatientId,
}

#[derive(DeriveIden)]
enum Proxies {
    Table,
    Id,
    PatientId,
}

// The trait's signature elides SchemaManager's lifetime; matching it needs the elision.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // As for the visits' history: the writing transaction's id on PostgreSQL, 0 on SQLite
        // (one writer at a time: `seq` is commit order).
        let mut tx_order = ColumnDef::new(ProxyEvents::TxOrder);
        tx_order.big_integer().not_null();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            tx_order.default(Expr::cust("(pg_current_xact_id()::text::bigint)"));
        } else {
            tx_order.default(0);
        }
        // Null only until the update below fills it for the events written before it.
        let mut patient_id = ColumnDef::new(ProxyEvents::PatientId);
        patient_id.uuid().null();
        // SQLite adds one column per ALTER TABLE.
        for column in [&mut tx_order, &mut patient_id] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ProxyEvents::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .exec_stmt(
                Query::update()
                    .table(ProxyEvents::Table)
                    .value(
                        ProxyEvents::PatientId,
                        Expr::expr(
                            Query::select()
                                .column((Proxies::Table, Proxies::PatientId))
                                .from(Proxies::Table)
                                .and_where(
                                    Expr::col((Proxies::Table, Proxies::Id))
                                        .equals((ProxyEvents::Table, ProxyEvents::ProxyId)),
                                )
                                .take(),
                        ),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_proxy_events_order")
                    .table(ProxyEvents::Table)
                    .col(ProxyEvents::TxOrder)
                    .col(ProxyEvents::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_proxy_events_order")
                    .table(ProxyEvents::Table)
                    .to_owned(),
            )
            .await?;
        for column in [ProxyEvents::PatientId, ProxyEvents::TxOrder] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ProxyEvents::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
