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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
