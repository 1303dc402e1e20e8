//! A cancellation waiting to be written to the EPJ (see `crate::outbox`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "epj_outbox")]
pub struct Model {
    /// Also the idempotency key sent to the EPJ.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub appointment_id: Uuid,
    /// The visit's id in the EPJ (it never changes).
    pub epj_id: String,
    pub patient_id: Uuid,
    pub care_unit_id: String,
    /// What to do in the EPJ; only "cancel" so far.
    pub operation: String,
    /// The patient's reason, sent with the cancellation.
    pub reason: Option<String>,
    /// The caller's request id of the cancellation; unique per patient, so a request id
    /// reused on another visit is refused.
    pub request_id: Option<String>,
    /// Who cancelled: an [`crate::domain::ActorKind`] in its stored form.
    pub requested_by_kind: Option<String>,
    /// The proxy holder's name, when a proxy cancelled.
    pub requested_by_name: Option<String>,
    /// A [`homecare_outbox::RowState`] in its stored form.
    pub state: String,
    /// Attempts started, including one in flight.
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// Until when a worker holds the row.
    pub lease_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
