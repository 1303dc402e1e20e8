//! The outbox of messages: one row per SMS or e-mail, carrying one or more notices of one
//! recipient. The standard outbox columns (see `homecare_outbox`) plus the recipient, the
//! channel and the provider's id once it took the message.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notice_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub recipient_national_id: String,
    /// A [`crate::kind::Channel`] in its stored form.
    pub channel: String,
    /// The provider's id of the message, once it took it.
    pub provider_id: Option<String>,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub lease_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl homecare_outbox::OutboxRow for Model {
    fn id(&self) -> Uuid {
        self.id
    }

    fn attempts(&self) -> i32 {
        self.attempts
    }

    fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.created_at
    }

    fn lease_until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.lease_until
    }
}
