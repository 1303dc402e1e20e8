//! A proxy ("fullmakt"): a person allowed to act for a patient, within scopes and a window.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "proxies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub patient_id: Uuid,
    /// The holder's identity number. Never logged or returned.
    pub holder_national_id: String,
    pub holder_name: String,
    pub patient_name: String,
    /// Scope names separated by commas (see `scope::Scopes`).
    pub scopes: String,
    /// `granted_by_patient`, `paper_form` or `guardianship`.
    pub basis: String,
    pub document_reference: Option<String>,
    pub valid_from: DateTimeUtc,
    pub valid_to: Option<DateTimeUtc>,
    pub ended_at: Option<DateTimeUtc>,
    pub request_id: String,
    /// What the granting or registering request asked for (see
    /// `homecare_core::idempotency`); `None` for proxies made before it was kept.
    pub request_fingerprint: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("id", &self.id)
            .field("patient_id", &self.patient_id)
            .field("scopes", &self.scopes)
            .field("basis", &self.basis)
            .field("valid_from", &self.valid_from)
            .field("valid_to", &self.valid_to)
            .field("ended_at", &self.ended_at)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
