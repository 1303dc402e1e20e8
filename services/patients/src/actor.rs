//! Resolving who acts, for whom, and by what right: once per call, in one place.

use homecare_core::caller::EPJ_INTEGRATION_ROLE;
use homecare_core::{Caller, status};
use sea_orm::ConnectionTrait;
use tonic::Status;
use uuid::Uuid;

use crate::directory::PatientDirectory;
use crate::store;

/// Who acts in a call, and by what right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// By what right the caller acts.
    pub via: Via,
}

/// The right by which a caller acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The patient themself.
    SelfService,
    /// Home-care staff, limited to the visits of their care units.
    Staff {
        /// The staff member's subject id.
        subject: String,
        /// The care units they work in.
        care_units: Vec<String>,
    },
    /// A system account such as the EPJ integration.
    System {
        /// The account's subject id.
        subject: String,
    },
}

impl Actor {
    /// The actor for a call about the patient with id `patient_id` (as the request carried
    /// it), and that patient's id.
    ///
    /// A citizen may act only for themself; any other patient id, and an id that does not
    /// exist, is NOT_FOUND, so a caller cannot learn which ids exist. Staff may address any
    /// existing patient; what they may see of them is limited by their care units.
    pub async fn for_patient<C: ConnectionTrait>(
        db: &C,
        directory: &PatientDirectory,
        caller: &Caller,
        patient_id: &str,
    ) -> Result<(Actor, Uuid), Status> {
        let patient_id = parse_patient_id(patient_id)?;
        match caller {
            Caller::Citizen { pid } => {
                let own_id = directory.find_id(db, pid).await.map_err(status::from_db)?;
                if own_id == Some(patient_id) {
                    Ok((
                        Actor {
                            via: Via::SelfService,
                        },
                        patient_id,
                    ))
                } else {
                    Err(status::not_found("patient"))
                }
            }
            Caller::Staff(_) => {
                let actor = Actor::staff(caller)?;
                if store::exists(db, patient_id)
                    .await
                    .map_err(status::from_db)?
                {
                    Ok((actor, patient_id))
                } else {
                    Err(status::not_found("patient"))
                }
            }
        }
    }

    /// The actor for a staff call that is not about one patient (a care unit's day).
    pub fn staff(caller: &Caller) -> Result<Actor, Status> {
        let staff = caller.require_staff()?;
        Ok(Actor {
            via: Via::Staff {
                subject: staff.subject.clone(),
                care_units: staff.care_units.clone(),
            },
        })
    }

    /// The actor for a call only the EPJ integration may make.
    pub fn epj_integration(caller: &Caller) -> Result<Actor, Status> {
        let staff = caller.require_staff_role(EPJ_INTEGRATION_ROLE)?;
        Ok(Actor {
            via: Via::System {
                subject: staff.subject.clone(),
            },
        })
    }

    /// The care units whose data the actor may see, or `None` when not limited by unit.
    pub fn visible_care_units(&self) -> Option<Vec<String>> {
        match &self.via {
            Via::SelfService | Via::System { .. } => None,
            Via::Staff { care_units, .. } => Some(care_units.clone()),
        }
    }

    /// Whether the actor may see data of `care_unit`: patients see their own regardless of
    /// unit, staff only their units' data.
    pub fn may_see_care_unit(&self, care_unit: &str) -> bool {
        match &self.via {
            Via::SelfService | Via::System { .. } => true,
            Via::Staff { care_units, .. } => care_units.iter().any(|unit| unit == care_unit),
        }
    }
}

/// A patient id from a request: a UUID, or INVALID_ARGUMENT naming `patient_id`.
pub fn parse_patient_id(text: &str) -> Result<Uuid, Status> {
    if text.is_empty() {
        return Err(status::invalid_argument("patient_id", "is required"));
    }
    Uuid::parse_str(text)
        .map_err(|_| status::invalid_argument("patient_id", "is not a valid patient id"))
}
