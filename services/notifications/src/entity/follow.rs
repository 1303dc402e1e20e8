//! Whether a proxy holder wants notices about a patient they represent.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_follows")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub holder_national_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub patient_id: Uuid,
    pub enabled: bool,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
