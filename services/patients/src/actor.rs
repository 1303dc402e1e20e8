//! Resolving who acts, for whom, and by what right: once per call, in one place.
//!
//! Every service gets an [`Actor`] from [`Actors`] and never looks at the caller's token
//! itself. A citizen passes the terms-of-use gate first; then acts as the patient, or as the
//! holder of a proxy that allows the call at this instant ([`crate::scope::authorize`]).

use std::sync::Arc;

use homecare_core::caller::EPJ_INTEGRATION_ROLE;
use homecare_core::identifier::CareUnitId;
use homecare_core::{Caller, Clock, NationalIdentityNumber};
use homecare_proto::common::v1 as common;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::directory::PatientDirectory;
use crate::kept_proxies::KeptProxies;

/// Who acted or wrote: the one kind every history, the access log and messaging record,
/// shown as `homecare.common.v1.ActorKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// The patient themself.
    Patient,
    /// A person acting for the patient under a proxy or a guardianship.
    Proxy,
    /// Home-care staff.
    Staff,
    /// A system account: the EPJ integration, or this service's delivery worker.
    System,
}

homecare_core::stored_enum!(ActorKind, "actor kind", common::ActorKind, {
    Patient => "patient", Patient;
    Proxy => "proxy", Proxy;
    Staff => "staff", Staff;
    System => "system", System;
});

/// What [`Actors::new`] keeps of proxies unless told otherwise (one process alone).
const DEFAULT_KEPT_PROXY_BYTES: u64 = 8 * 1024 * 1024;
use crate::error::AccessError;
use crate::proxy;
use crate::scope::{self, ProxyRefusal, Scope, Scopes};
use crate::terms::TermsGate;

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
    /// A person acting for the patient under a proxy or a guardianship.
    Proxy {
        /// The proxy acted under.
        proxy_id: Uuid,
        /// The holder's name as the proxy gives it.
        holder_name: String,
        /// What the proxy allows.
        scopes: Scopes,
    },
    /// Home-care staff, limited to the visits of their care units.
    Staff {
        /// The staff member's subject id.
        subject: String,
        /// Their name, when their token carries one.
        name: Option<String>,
        /// The care units they work in.
        care_units: Vec<CareUnitId>,
    },
    /// A system account such as the EPJ integration.
    System {
        /// The account's subject id.
        subject: String,
    },
}

/// What a call needs of a citizen who is not the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A valid proxy with this scope.
    Scope(Scope),
    /// Nothing a proxy can give: only the patient themself (granting proxies).
    PatientThemself,
}

impl Actor {
    /// The actor for a staff call that is not about one patient (a care unit's day).
    pub fn staff(caller: &Caller) -> Result<Actor, AccessError> {
        let staff = caller.require_staff()?;
        Ok(Actor {
            via: Via::Staff {
                subject: staff.subject.clone(),
                name: staff.name.clone(),
                care_units: staff.care_units.clone(),
            },
        })
    }

    /// The actor for a call only the EPJ integration may make.
    pub fn epj_integration(caller: &Caller) -> Result<Actor, AccessError> {
        let staff = caller.require_staff_role(EPJ_INTEGRATION_ROLE)?;
        Ok(Actor {
            via: Via::System {
                subject: staff.subject.clone(),
            },
        })
    }

    /// The holder of `proxy`, acting under it.
    pub fn holder_of(proxy: &crate::entity::proxy::Model) -> Result<Actor, AccessError> {
        Ok(Actor {
            via: Via::Proxy {
                proxy_id: proxy.id,
                holder_name: proxy.holder_name.clone(),
                scopes: Scopes::from_stored(&proxy.scopes)
                    .map_err(|error| AccessError::Corrupt(error.to_string()))?,
            },
        })
    }

    /// Which kind of actor this is, as histories, the access log and messages record it.
    pub fn kind(&self) -> ActorKind {
        match &self.via {
            Via::SelfService => ActorKind::Patient,
            Via::Proxy { .. } => ActorKind::Proxy,
            Via::Staff { .. } => ActorKind::Staff,
            Via::System { .. } => ActorKind::System,
        }
    }

    /// Who the actor is, as stored: the staff subject, the system account or the proxy id;
    /// empty for the patient. Never an identity number.
    pub fn subject(&self) -> String {
        match &self.via {
            Via::SelfService => String::new(),
            Via::Proxy { proxy_id, .. } => proxy_id.to_string(),
            Via::Staff { subject, .. } | Via::System { subject } => subject.clone(),
        }
    }

    /// The actor's name to show, when known.
    pub fn name(&self) -> Option<&str> {
        match &self.via {
            Via::Proxy { holder_name, .. } => Some(holder_name),
            Via::Staff { name, .. } => name.as_deref(),
            Via::SelfService | Via::System { .. } => None,
        }
    }

    /// The proxy the actor acts under, if any.
    pub fn proxy_id(&self) -> Option<Uuid> {
        match &self.via {
            Via::Proxy { proxy_id, .. } => Some(*proxy_id),
            _ => None,
        }
    }

    /// Whether the actor is a citizen (the patient or a proxy holder) rather than staff or
    /// a system.
    pub fn is_citizen(&self) -> bool {
        matches!(self.via, Via::SelfService | Via::Proxy { .. })
    }

    /// The care units whose data the actor may see, or `None` when not limited by unit.
    pub fn visible_care_units(&self) -> Option<Vec<CareUnitId>> {
        match &self.via {
            Via::SelfService | Via::Proxy { .. } | Via::System { .. } => None,
            Via::Staff { care_units, .. } => Some(care_units.clone()),
        }
    }

    /// Whether the actor may see data of `care_unit`: patients and their proxies see the
    /// patient's data regardless of unit, staff only their units' data.
    pub fn may_see_care_unit(&self, care_unit: &str) -> bool {
        match &self.via {
            Via::SelfService | Via::Proxy { .. } | Via::System { .. } => true,
            Via::Staff { care_units, .. } => care_units.iter().any(|unit| unit == care_unit),
        }
    }
}

/// Which care units a patient is known to; staff reach a patient only through one of them.
/// Implemented by the appointments context (the units of the patient's visits).
#[tonic::async_trait]
pub trait CareRelations: Send + Sync + 'static {
    /// The care units with visits of `patient_id`; none for a patient who does not exist.
    async fn care_units_of(&self, patient_id: Uuid) -> Result<Vec<String>, sea_orm::DbErr>;
}

/// Resolves callers to actors: the one place that decides who may act for whom.
pub struct Actors {
    db: DatabaseConnection,
    directory: PatientDirectory,
    terms: TermsGate,
    care: Arc<dyn CareRelations>,
    clock: Arc<dyn Clock>,
    identity_rules: homecare_core::IdentityRules,
    proxies: Arc<KeptProxies>,
}

impl std::fmt::Debug for Actors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actors")
            .field("terms", &self.terms.policy())
            .finish_non_exhaustive()
    }
}

impl Actors {
    /// A resolver over `db`, with the terms gate `terms`, staff's reach given by `care`, at
    /// the time `clock` tells.
    pub fn new(
        db: DatabaseConnection,
        terms: TermsGate,
        care: Arc<dyn CareRelations>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            db,
            directory: PatientDirectory::new(),
            terms,
            care,
            clock,
            identity_rules: homecare_core::IdentityRules::PRODUCTION,
            proxies: Arc::new(KeptProxies::new(
                DEFAULT_KEPT_PROXY_BYTES,
                homecare_core::coherent::Coherence::trusted(),
            )),
        }
    }

    /// The same, remembering at most `capacity` identity numbers and patient ids.
    pub fn with_directory_capacity(mut self, capacity: u64) -> Self {
        self.directory = PatientDirectory::with_capacity(capacity);
        self
    }

    /// The same, checking holders against `proxies` (shared with their follower).
    pub fn with_kept_proxies(mut self, proxies: Arc<KeptProxies>) -> Self {
        self.proxies = proxies;
        self
    }

    /// The patients' proxies kept in memory: whoever changes a proxy tells them.
    pub fn kept_proxies(&self) -> &Arc<KeptProxies> {
        &self.proxies
    }

    /// The same, accepting identity numbers under `rules`.
    pub fn with_identity_rules(mut self, rules: homecare_core::IdentityRules) -> Self {
        self.identity_rules = rules;
        self
    }

    /// Which identity numbers this server accepts in requests.
    pub fn identity_rules(&self) -> homecare_core::IdentityRules {
        self.identity_rules
    }

    /// The terms gate.
    pub fn terms(&self) -> &TermsGate {
        &self.terms
    }

    /// The calling citizen, once past the terms gate; PERMISSION_DENIED for staff.
    pub async fn citizen<'a>(
        &self,
        caller: &'a Caller,
    ) -> Result<&'a NationalIdentityNumber, AccessError> {
        let pid = caller.require_citizen()?;
        self.terms.require(&self.db, pid, self.clock.now()).await?;
        Ok(pid)
    }

    /// The patient id of the citizen `pid` themself, if they are a patient.
    pub async fn own_patient_id(
        &self,
        pid: &NationalIdentityNumber,
    ) -> Result<Option<Uuid>, AccessError> {
        Ok(self.directory.find_id(&self.db, pid).await?)
    }

    /// The actor for a call about the patient with id `patient_id` (as the request carried
    /// it) that needs `need`, and that patient's id.
    ///
    /// A citizen acts as the patient, or under a proxy that allows `need` now. A patient id
    /// the citizen holds no proxy for, and one that does not exist, are both NOT_FOUND, so
    /// ids cannot be probed; a proxy that is ended, expired, not yet valid or lacks the scope
    /// is PERMISSION_DENIED with the reason (its holder knows the patient). Staff reach a
    /// patient with a visit in one of their care units; any other is NOT_FOUND, and what they
    /// see of a patient is still limited to their units.
    pub async fn for_patient(
        &self,
        caller: &Caller,
        patient_id: &str,
        need: Need,
    ) -> Result<(Actor, Uuid), AccessError> {
        let patient_id = parse_patient_id(patient_id)?;
        match caller {
            Caller::Citizen { .. } => {
                let pid = self.citizen(caller).await?;
                match self.directory.is_patient(&self.db, patient_id, pid).await? {
                    None => return Err(AccessError::PatientNotFound),
                    Some(true) => {
                        return Ok((
                            Actor {
                                via: Via::SelfService,
                            },
                            patient_id,
                        ));
                    }
                    Some(false) => {}
                }
                let held = self.proxies.held_by(&self.db, pid, patient_id).await?;
                let scope = match need {
                    Need::Scope(scope) => scope,
                    Need::PatientThemself if held.is_empty() => {
                        return Err(AccessError::PatientNotFound);
                    }
                    Need::PatientThemself => return Err(AccessError::PatientOnly),
                };
                match scope::authorize(&held, scope, self.clock.now()) {
                    Ok(proxy) => Ok((Actor::holder_of(&proxy.model)?, patient_id)),
                    Err(ProxyRefusal::NoProxy) => Err(AccessError::PatientNotFound),
                    Err(refusal) => Err(AccessError::Proxy(refusal)),
                }
            }
            Caller::Staff(_) => {
                // Staff reach a patient through a care unit they work in. A patient of other
                // units answers exactly as one that does not exist, so ids cannot be probed
                // across units.
                let actor = Actor::staff(caller)?;
                let units = self.care.care_units_of(patient_id).await?;
                if units.iter().any(|unit| actor.may_see_care_unit(unit)) {
                    Ok((actor, patient_id))
                } else {
                    Err(AccessError::PatientNotFound)
                }
            }
        }
    }

    /// The actor ending proxy `proxy_id` of the patient `patient_id` (as the request carried
    /// it), and that patient's id: the patient themself, the proxy's own holder (whatever the
    /// proxy's state: a holder can always give it up), or staff of one of the patient's care
    /// units. A holder asking about another proxy, or another patient's, gets NOT_FOUND for
    /// the proxy.
    pub async fn for_ending_proxy(
        &self,
        caller: &Caller,
        patient_id: &str,
        proxy_id: Uuid,
    ) -> Result<(Actor, Uuid), AccessError> {
        let Caller::Citizen { .. } = caller else {
            return self
                .for_patient(caller, patient_id, Need::PatientThemself)
                .await;
        };
        let patient_id = parse_patient_id(patient_id)?;
        let pid = self.citizen(caller).await?;
        if self.own_patient_id(pid).await? == Some(patient_id) {
            let patient = Actor {
                via: Via::SelfService,
            };
            return Ok((patient, patient_id));
        }
        let held = proxy::find_held(&self.db, pid, proxy_id)
            .await?
            .filter(|held| held.patient_id == patient_id)
            .ok_or(AccessError::ProxyNotFound)?;
        Ok((Actor::holder_of(&held)?, patient_id))
    }
}

/// A patient id from a request: a UUID, or INVALID_ARGUMENT naming `patient_id`.
pub fn parse_patient_id(text: &str) -> Result<Uuid, AccessError> {
    homecare_core::identifier::parse_id(text, "patient id").map_err(AccessError::InvalidPatientId)
}
