//! A person who receives home care from the municipality.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "patients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Identity number, to match the EPJ and the login. Never logged or returned.
    pub national_id: String,
    pub created_at: DateTimeUtc,
    /// The population register's or the EPJ's flag for a protected address: no new proxies.
    pub protected_address: bool,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patient")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("protected_address", &self.protected_address)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
