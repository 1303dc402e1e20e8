//! A set of patients whose members are not yet written (see `crate::access_log`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_log_unspread_sets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub set_id: Uuid,
    /// The members: a JSON array of `[patient id, record id or null]`.
    pub touched: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
