//! A read of many patients' data by someone other than the patients, stored once, naming its
//! set of patients (see `crate::access_log`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_log_reads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub occurred_at: DateTimeUtc,
    /// `proxy`, `staff` or `system`.
    pub actor_kind: String,
    /// The staff subject, system account or proxy id; never an identity number.
    pub actor_subject: String,
    pub actor_name: Option<String>,
    pub proxy_id: Option<Uuid>,
    pub action: String,
    pub patient_set_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
