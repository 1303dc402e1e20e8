//! Finding a citizen's own patient id, with the answers remembered.
//!
//! Every patient call starts by resolving the logged-in person's identity number to their
//! patient id. A patient's id never changes once registered, so a found id stays true; only
//! found ids are remembered (a person may become a patient at any moment). Measured on
//! ListAppointments, this lookup was one of the two queries of every call.

use std::collections::HashMap;
use std::sync::Mutex;

use homecare_core::NationalIdentityNumber;
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use crate::store;

/// The most ids remembered: about 100 bytes each, so at most some 10 MB.
const CAPACITY: usize = 100_000;

/// Resolves identity numbers to patient ids, remembering what it found.
#[derive(Default)]
pub struct PatientDirectory {
    known: Mutex<HashMap<String, Uuid>>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Uuid>> {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
