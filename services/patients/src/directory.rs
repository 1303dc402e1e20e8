//! Matching identity numbers and patient ids, with the answers remembered.
//!
//! Every patient call starts by finding whose the patient id in the request is: the caller's
//! own, or someone's they may hold a proxy for. A patient's id and identity number never
//! change once registered, so a found pair stays true; only found pairs are remembered (a
//! person may become a patient at any moment). Measured on ListAppointments, this lookup was
//! one of the two queries of every call, and for a proxy holder (who is rarely a patient
//! themself) one of three.

use std::collections::HashMap;
use std::sync::Mutex;

use homecare_core::NationalIdentityNumber;
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use crate::store;

/// The most ids remembered: about 100 bytes each, so at most some 10 MB.
const CAPACITY: usize = 100_000;

/// Resolves identity numbers to patient ids and back, remembering what it found.
#[derive(Default)]
pub struct PatientDirectory {
    known: Mutex<HashMap<String, Uuid>>,
    owners: Mutex<HashMap<Uuid, String>>,
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

    /// The id of the patient with identity number `pid`, if the service knows them.
    pub async fn find_id<C: ConnectionTrait>(
        &self,
        db: &C,
        pid: &NationalIdentityNumber,
    ) -> Result<Option<Uuid>, DbErr> {
        if let Some(id) = self.lock().get(pid.expose()) {
            return Ok(Some(*id));
        }
        let found = store::find_id_by_national_id(db, pid).await?;
        if let Some(id) = found {
            let mut known = self.lock();
            if known.len() >= CAPACITY {
                known.clear();
            }
            known.insert(pid.expose().to_owned(), id);
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
        if let Some(owner) = lock(&self.owners).get(&patient_id) {
            return Ok(Some(owner == pid.expose()));
        }
        let Some(owner) = store::national_id_of(db, patient_id).await? else {
            return Ok(None);
        };
        let is_patient = owner == pid.expose();
        let mut owners = lock(&self.owners);
        if owners.len() >= CAPACITY {
            owners.clear();
        }
        owners.insert(patient_id, owner);
        Ok(Some(is_patient))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Uuid>> {
        lock(&self.known)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
