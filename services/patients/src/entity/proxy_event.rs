//! One step in a proxy's history: granted, registered, changed or ended, and by whom.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "proxy_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// Commit order (see `homecare_core::event_log`).
    pub tx_order: i64,
    pub proxy_id: Uuid,
    /// The patient the proxy is for; set on every event (null only in a database migrated
    /// while a proxy was being deleted).
    pub patient_id: Option<Uuid>,
    pub occurred_at: DateTimeUtc,
    /// `granted`, `registered`, `changed` or `ended`.
    pub event_type: String,
    /// `patient`, `proxy`, `staff` or `system`.
    pub actor_kind: String,
    /// The staff subject, system account or proxy id; empty for the patient.
    pub actor_subject: String,
    pub actor_name: Option<String>,
    /// The proxy's scopes and end after the step.
    pub scopes: String,
    pub valid_to: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl homecare_core::event_log::LogEvent for Model {
    fn order(&self) -> (i64, i64) {
        (self.tx_order, self.seq)
    }
}

impl homecare_core::event_log::Log for Entity {
    fn tx_order() -> Column {
        Column::TxOrder
    }

    fn seq() -> Column {
        Column::Seq
    }
}
