//! One message of a thread, sent or a draft.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub thread_id: Uuid,
    /// `patient`, `proxy` or `staff`.
    pub author_kind: String,
    /// The proxy id or staff subject; empty for the patient.
    pub author_subject: String,
    pub author_name: Option<String>,
    /// Who wrote it, as a fingerprint (see [`crate::participant::Participant::key`]).
    pub author_key: String,
    /// The text as sent.
    pub body: String,
    /// `draft` or `sent`.
    pub state: String,
    pub sent_at: Option<DateTimeUtc>,
    pub request_id: Option<String>,
    pub request_fingerprint: Option<String>,
    pub receipt_reference: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
