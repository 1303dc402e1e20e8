//! One entry of a visit's history (see `crate::events`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "appointment_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub tx_order: i64,
    pub appointment_id: Uuid,
    pub patient_id: Uuid,
    pub care_unit_id: String,
    pub occurred_at: DateTimeUtc,
    /// A [`crate::domain::EventType`] in its stored form.
    pub event_type: String,
    /// A [`crate::domain::ActorKind`] in its stored form.
    pub actor_kind: String,
    pub actor_subject: String,
    pub actor_name: Option<String>,
    pub version: i64,
    /// For a change by the EPJ: the status before, when it changed.
    pub previous_status: Option<String>,
    /// For a change by the EPJ: the window before, when it moved.
    pub previous_window_start: Option<DateTimeUtc>,
    pub previous_window_end: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
