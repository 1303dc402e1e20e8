//! Which care units a patient belongs to, for the patients context: staff see a patient's
//! proxies when the patient has a visit in one of their units.

use homecare_patients::CareRelations;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::entity::{Column, Entity};

/// The care units of a patient's visits, past and planned.
#[derive(Debug, Clone)]
pub struct VisitCareUnits {
    db: DatabaseConnection,
}

impl VisitCareUnits {
    /// Over the visits in `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[tonic::async_trait]
impl CareRelations for VisitCareUnits {
    async fn care_units_of(&self, patient_id: Uuid) -> Result<Vec<String>, DbErr> {
        Entity::find()
            .select_only()
            .column(Column::CareUnitId)
            .distinct()
            .filter(Column::PatientId.eq(patient_id))
            .into_tuple()
            .all(&self.db)
            .await
    }
}
