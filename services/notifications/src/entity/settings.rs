//! A citizen's notification settings.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub national_id: String,
    /// A [`crate::settings::Channels`] in its stored form.
    pub channels: String,
    /// E.164.
    pub phone_number: Option<String>,
    pub email_address: Option<String>,
    /// A [`crate::settings::Language`] in its stored form.
    pub language: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
