//! What is known of an attachment; its bytes are in the blob store under `sha256`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message_attachments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Who uploaded it (see [`crate::participant::Participant::key`]).
    pub owner_key: String,
    /// The patient a citizen uploaded it for.
    pub patient_id: Option<Uuid>,
    /// The thread staff uploaded it for.
    pub thread_id: Option<Uuid>,
    /// The message that carries it, once one does.
    pub message_id: Option<Uuid>,
    pub file_name: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
