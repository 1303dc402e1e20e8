//! A home visit as stored. The table is defined in `homecare-migrations`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "appointments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub epj_id: String,
    pub patient_id: Uuid,
    pub care_unit_id: String,
    pub window_start: DateTimeUtc,
    pub window_end: DateTimeUtc,
    /// A [`crate::domain::ServiceType`] in its stored form.
    pub service_type: String,
    /// A [`crate::domain::AppointmentStatus`] in its stored form.
    pub status: String,
    pub citizen_cancellable: bool,
    pub epj_version_id: Option<String>,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// A [`crate::domain::CancellationState`] in its stored form, once someone cancelled
    /// through this service.
    pub cancellation_state: Option<String>,
    /// The patient's reason.
    pub cancellation_reason: Option<String>,
    /// The request id of the cancellation, for answering a retry of it.
    pub cancellation_request_id: Option<String>,
    /// What that request asked for (see `homecare_core::idempotency`), so that the id sent
    /// again with other content is refused.
    pub cancellation_request_fingerprint: Option<String>,
    pub cancellation_requested_at: Option<DateTimeUtc>,
    /// A [`crate::domain::ActorKind`] in its stored form.
    pub cancellation_requested_by: Option<String>,
    /// The proxy holder's name, when a proxy cancelled.
    pub cancellation_requested_by_name: Option<String>,
    /// Why the EPJ did not register it, for staff.
    pub cancellation_failure_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
