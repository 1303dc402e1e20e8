//! One read or change of a patient's data by someone other than the patient, as the patient's
//! log shows it: the view `access_log_entries`, over the entries stored one per patient
//! (`access_log`) and the reads stored once per set of patients (see `crate::access_log`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_log_entries")]
pub struct Model {
    /// The entry's id, or the read's (a read is in each of its patients' logs once).
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
