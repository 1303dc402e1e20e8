//! A read by someone other than the patient, as first stored: one row naming every patient
//! it touched, spread into `access_log` later (see `crate::access_log`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_log_journal")]
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
    /// The patients touched: a JSON array of `[patient id, record id or null]`.
    pub touched: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
