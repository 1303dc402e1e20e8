//! Each patient's proxies kept in memory: every call by a proxy holder is checked against
//! them, and they change rarely (granted, changed, ended).
//!
//! Kept coherent with every commit (see `homecare_core::coherent`): a change made here drops
//! the patient's entry before it is answered ([`KeptProxies::changed`], by the service that
//! made it), a change made by another server process when the follower of `proxy_events`
//! reads its event, woken by the `proxies` topic's signal. Whether a proxy allows a call is
//! still decided at each call, at that instant, from the kept rows.

use std::sync::Arc;
use std::time::Duration;

use homecare_core::NationalIdentityNumber;
use homecare_core::coherent::{Coherence, CoherentCache};
use homecare_core::event_log::Follower;
use homecare_core::topic::Broadcast;
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use crate::entity::proxy_event;
use crate::proxy::{self, Held};

/// How long an entry is kept after it was read; dropped on any change anyway.
const TIME_TO_LIVE: Duration = Duration::from_secs(600);

/// Every proxy of each patient, in any state, kept in memory.
#[derive(Debug)]
pub struct KeptProxies {
    cache: CoherentCache<Uuid, Arc<Vec<Held>>>,
    topic: Broadcast,
}

impl KeptProxies {
    /// Keeps at most `max_bytes` of proxies, trusted while `coherence` is.
    pub fn new(max_bytes: u64, coherence: Coherence) -> Self {
        Self {
            cache: CoherentCache::new(
                "proxies",
                max_bytes,
                TIME_TO_LIVE,
                |held: &Arc<Vec<Held>>| weight(held),
                coherence,
            ),
            topic: Broadcast::new("proxies"),
        }
    }

    /// Every proxy, in any state, that `holder` holds for `patient_id`.
    pub async fn held_by<C: ConnectionTrait>(
        &self,
        db: &C,
        holder: &NationalIdentityNumber,
        patient_id: Uuid,
    ) -> Result<Vec<Held>, DbErr> {
        let all = match self.cache.get(&patient_id) {
            Some(all) => all,
            None => {
                let ticket = self.cache.ticket(&patient_id);
                let all = Arc::new(
                    proxy::of_patient(db, patient_id)
                        .await?
                        .into_iter()
                        .map(Held::read)
                        .collect::<Result<Vec<_>, _>>()?,
                );
                if let Some(ticket) = ticket {
                    self.cache.offer(patient_id, all.clone(), ticket);
                }
                all
            }
        };
        Ok(all
            .iter()
            .filter(|held| held.model.holder_national_id == holder.expose())
            .cloned()
            .collect())
    }

    /// The proxies of `patient_id` changed in this process (after the commit): drop what is
    /// kept of them, and tell other processes.
    pub fn changed(&self, patient_id: Uuid) {
        self.cache.invalidate(&patient_id);
        self.topic.changed_here();
    }

    /// The topic other processes are told of proxy changes on.
    pub fn topic(&self) -> &Broadcast {
        &self.topic
    }
}

/// About how many bytes a patient's kept proxies hold, for the cache's bound.
fn weight(held: &[Held]) -> u32 {
    let bytes: usize = held
        .iter()
        .map(|held| {
            let model = &held.model;
            std::mem::size_of::<Held>()
                + model.holder_national_id.len()
                + model.holder_name.len()
                + model.scopes.len()
                + 64
        })
        .sum();
    u32::try_from(bytes + 64).unwrap_or(u32::MAX)
}

/// Drops the kept proxies of every patient whose proxies another process changed.
#[derive(Debug, Clone)]
pub struct ProxyFollower(pub Arc<KeptProxies>);

impl Follower for ProxyFollower {
    type Log = proxy_event::Entity;

    fn changed(&self, events: &[proxy_event::Model]) {
        for event in events {
            match event.patient_id {
                Some(patient_id) => self.0.cache.invalidate(&patient_id),
                None => self.0.cache.invalidate_all(),
            }
        }
    }

    fn coherence(&self) -> &Coherence {
        self.0.cache.own_coherence()
    }
}
