//! One notice: one recipient told of one event on one channel (or skipped).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub recipient_national_id: String,
    /// The patient it is about.
    pub patient_id: Uuid,
    /// Whether the recipient is told as someone acting for the patient.
    pub on_behalf: bool,
    /// A [`crate::kind::NoticeKind`] in its stored form.
    pub kind: String,
    /// A [`crate::kind::Channel`]; none when skipped before a channel was chosen.
    pub channel: Option<String>,
    /// A [`crate::kind::NoticeStatus`].
    pub status: String,
    /// A [`crate::kind::SkipReason`], when skipped.
    pub skip_reason: Option<String>,
    /// When what it tells of happens (the visit's start) or happened.
    pub subject_time: DateTimeUtc,
    /// The message that carries it.
    pub delivery_id: Option<Uuid>,
    /// The provider's error code, when it failed.
    pub error_code: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
