//! Who takes part in a thread: the patient, a proxy holder writing for them, or staff of the
//! thread's unit. Resolved once per call, through `Actors` for citizens.

use homecare_core::idempotency::fingerprint;
use homecare_patients::ActorKind;
use homecare_patients::{Actor, Via};

/// A caller taking part in messaging.
#[derive(Debug, Clone)]
pub struct Participant {
    /// Who acts, and by what right.
    pub actor: Actor,
    /// Who they are as a person, as a fingerprint that cannot be read back: the author of a
    /// draft and the owner of an upload and a read state. The same person has the same key
    /// whether they write for themself or for someone they are a proxy for.
    pub key: String,
}

impl Participant {
    /// The citizen with identity number `pid`, acting as `actor`.
    pub fn citizen(actor: Actor, pid: &str) -> Self {
        Self {
            actor,
            key: fingerprint(["citizen", pid]),
        }
    }

    /// A staff member, acting as `actor`.
    pub fn staff(actor: Actor) -> Self {
        let key = fingerprint(["staff", &actor.subject()]);
        Self { actor, key }
    }

    /// Whether they are on the care service's side.
    pub fn is_staff(&self) -> bool {
        matches!(self.actor.via, Via::Staff { .. } | Via::System { .. })
    }

    /// How their messages are recorded: a system account writes for the care service, as
    /// staff.
    pub fn author_kind(&self) -> ActorKind {
        match self.actor.kind() {
            ActorKind::System => ActorKind::Staff,
            kind => kind,
        }
    }

    /// Whether they may see the threads of `care_unit`.
    pub fn reaches_unit(&self, care_unit: &str) -> bool {
        self.actor.may_see_care_unit(care_unit)
    }
}
