//! A conversation about one patient with one care unit.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message_threads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub patient_id: Uuid,
    pub care_unit_id: String,
    pub subject: String,
    pub sensitive: bool,
    /// A [`crate::thread::ThreadKind`] in its stored form.
    pub kind: String,
    /// The inbox's first sort key (a [`crate::thread::Priority`]).
    pub priority: i16,
    pub appointment_id: Option<Uuid>,
    pub previous_thread_id: Option<Uuid>,
    /// A [`crate::thread::ThreadStatus`] in its stored form.
    pub status: String,
    /// `patient` or `proxy`.
    pub started_by_kind: String,
    /// The proxy id, or empty for the patient.
    pub started_by_subject: String,
    pub started_by_name: Option<String>,
    pub created_at: DateTimeUtc,
    /// When its first message was received (unset for a draft).
    pub received_at: Option<DateTimeUtc>,
    /// When the care service's answer is due, while it waits for one.
    pub due_at: Option<DateTimeUtc>,
    pub last_message_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
