//! The gRPC face of this context: `homecare.patients.v1.PatientService`.

use homecare_core::{Caller, status};
use homecare_proto::patients::v1 as pb;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use std::sync::Arc;

use crate::directory::PatientDirectory;

/// Implements `homecare.patients.v1.PatientService`.
#[derive(Debug, Clone)]
pub struct PatientApi {
    db: DatabaseConnection,
    directory: Arc<PatientDirectory>,
}

impl PatientApi {
    /// A service over `db`.
    pub fn new(db: DatabaseConnection, directory: Arc<PatientDirectory>) -> Self {
        Self { db, directory }
    }
}

#[tonic::async_trait]
impl pb::patient_service_server::PatientService for PatientApi {
    #[tracing::instrument(skip_all)]
    async fn list_represented_patients(
        &self,
        request: Request<pb::ListRepresentedPatientsRequest>,
    ) -> Result<Response<pb::ListRepresentedPatientsResponse>, Status> {
        let pid = Caller::from_request(&request)?.require_citizen()?;
        let own_id = self
            .directory
            .find_id(&self.db, pid)
            .await
            .map_err(status::from_db)?;
        let patients = own_id
            .map(|id| pb::RepresentedPatient {
                patient_id: id.to_string(),
                relation: pb::Relation::Self_.into(),
            })
            .into_iter()
            .collect();
        Ok(Response::new(pb::ListRepresentedPatientsResponse {
            patients,
        }))
    }
}
