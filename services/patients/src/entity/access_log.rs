//! One read or change of a patient's data by someone other than the patient.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub patient_id: Uuid,
    pub occurred_at: DateTimeUtc,
    /// `proxy`, `staff` or `system`.
    pub actor_kind: String,
    /// The staff subject, system account or proxy id; never an identity number.
    pub actor_subject: String,
    /// The proxy holder's or staff member's name, when known.
    pub actor_name: Option<String>,
    /// The proxy the holder acted under.
    pub proxy_id: Option<Uuid>,
    /// What was done, e.g. `appointments.read`.
    pub action: String,
    /// The record touched, when it is one record.
    pub resource_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
