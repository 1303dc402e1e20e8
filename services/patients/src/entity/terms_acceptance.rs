//! A citizen's acceptance of one version of the terms of use.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "terms_acceptances")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The citizen's identity number. Never logged or returned.
    pub national_id: String,
    pub terms_version: String,
    pub accepted_at: DateTimeUtc,
    /// From when the citizen can use the service on this acceptance.
    pub available_from: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TermsAcceptance")
            .field("terms_version", &self.terms_version)
            .field("accepted_at", &self.accepted_at)
            .field("available_from", &self.available_from)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
