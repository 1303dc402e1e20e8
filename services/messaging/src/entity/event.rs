//! One step of a thread's history, and the event log staff streams and the notifier read.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// Commit order (see `homecare_core::event_log`).
    pub tx_order: i64,
    pub thread_id: Uuid,
    pub patient_id: Uuid,
    /// The thread's unit after the step.
    pub care_unit_id: String,
    /// For a reassignment: the unit it left.
    pub from_care_unit_id: Option<String>,
    pub message_id: Option<Uuid>,
    /// A [`crate::thread::StepType`] in its stored form.
    pub event_type: String,
    /// `patient`, `proxy` or `staff`.
    pub actor_kind: String,
    /// The proxy id or staff subject; empty for the patient.
    pub actor_subject: String,
    pub actor_name: Option<String>,
    pub occurred_at: DateTimeUtc,
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
