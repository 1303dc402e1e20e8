//! Matching identity numbers and patient ids, with the answers remembered.
//!
//! Every patient call starts by finding whose the patient id in the request is: the caller's
//! own, or someone's they may hold a proxy for. A patient's id and identity number never
//! change once registered, so a found pair stays true; only found pairs are remembered (a
//! person may become a patient at any moment). Measured on ListAppointments, this lookup was
//! one of the two queries of every call, and for a proxy holder (who is rarely a patient
//! themself) one of three.

use std::time::Duration;

use homecare_core::NationalIdentityNumber;
use homecare_core::cache::Cache;
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use crate::store;

/// The most ids remembered in each direction unless told otherwise (see
/// [`PatientDirectory::with_capacity`]).
const CAPACITY: u64 = 20_000;

/// How long a pair is remembered: they never change, this only lets unused pairs go.
const TIME_TO_LIVE: Duration = Duration::from_secs(3600);

/// Resolves identity numbers to patient ids and back, remembering what it found.
pub struct PatientDirectory {
    known: Cache<String, Uuid>,
    owners: Cache<Uuid, String>,
}

impl Default for PatientDirectory {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl std::fmt::Debug for PatientDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatientDirectory").finish_non_exhaustive()
    }
}

impl PatientDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty directory remembering at most `capacity` ids in each direction (some 500
    /// bytes of memory each, measured with 100,000 citizens).
    pub fn with_capacity(capacity: u64) -> Self {
        Self {
            known: Cache::new("patient_ids", capacity, TIME_TO_LIVE),
            owners: Cache::new("patient_owners", capacity, TIME_TO_LIVE),
        }
    }

    /// The id of the patient with identity number `pid`, if the service knows them.
    pub async fn find_id<C: ConnectionTrait>(
        &self,
        db: &C,
        pid: &NationalIdentityNumber,
    ) -> Result<Option<Uuid>, DbErr> {
        if let Some(id) = self.known.get(pid.expose()) {
            return Ok(Some(id));
        }
        let found = store::find_id_by_national_id(db, pid).await?;
        if let Some(id) = found {
            self.known.insert(pid.expose().to_owned(), id);
        }
        Ok(found)
    }

    /// Whether the patient with id `patient_id` is the person `pid`; `None` when there is
    /// no such patient.
    pub async fn is_patient<C: ConnectionTrait>(
        &self,
        db: &C,
        patient_id: Uuid,
        pid: &NationalIdentityNumber,
    ) -> Result<Option<bool>, DbErr> {
        if let Some(owner) = self.owners.get(&patient_id) {
            return Ok(Some(owner == pid.expose()));
        }
        let Some(owner) = store::national_id_of(db, patient_id).await? else {
            return Ok(None);
        };
        let is_patient = owner == pid.expose();
        self.owners.insert(patient_id, owner);
        Ok(Some(is_patient))
    }
}
