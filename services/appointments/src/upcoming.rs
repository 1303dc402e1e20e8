//! A patient's upcoming visits as citizens see them, kept in memory: the health portal's
//! front page asks for them on every visit, and they change far less often than they are read.
//! The histories of their visits that citizens open are kept beside them, and dropped with
//! them: every change to a visit changes the patient's list.
//!
//! Kept coherent with every commit (see `homecare_core::coherent`): a change made here drops
//! the patient's entry before the change is answered ([`crate::feed::ChangeFeed`]), a change
//! made by another server process drops it when the follower of `appointment_events`
//! ([`UpcomingFollower`]) reads the event, which the cross-process signal wakes it for. What
//! staff see (other units filtered out, why a cancellation failed) is never served from here.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use homecare_core::coherent::{Coherence, CoherentCache, Grouped, Ticket};
use homecare_core::event_log::Follower;
use homecare_core::paging::Cursor;
use homecare_proto::appointments::v1 as pb;
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use crate::entity;
use crate::events;
use crate::store::{self, Page, PatientQuery};

/// The most upcoming visits kept for one patient; a patient with more is read from the
/// database each time (a plan of four visits a day for two months).
pub const MAX_KEPT_VISITS: usize = 250;

/// How long an entry is kept after it was read: it is dropped on any change anyway; this
/// only lets the memory of patients who left go.
const TIME_TO_LIVE: Duration = Duration::from_secs(600);

/// One kept visit: what orders and filters it, and the citizens' view of it.
#[derive(Debug, Clone)]
pub struct KeptVisit {
    /// The visit's id (the order's tie-break).
    pub id: Uuid,
    /// The window, which the filters compare.
    pub window_start: DateTime<Utc>,
    /// The window's end.
    pub window_end: DateTime<Utc>,
    /// As a citizen (the patient or a proxy holder) sees it, encoded as every list that
    /// holds it sends it. Kept only encoded: the structure took more memory than its bytes.
    pub citizen_view: pb::EncodedAppointment,
}

/// A patient's visits whose window ends at or after `from`, ordered by window start and id.
#[derive(Debug)]
pub struct Upcoming {
    from: DateTime<Utc>,
    visits: Vec<KeptVisit>,
}

impl Upcoming {
    /// Whether the entry holds every visit `query` can list: those ending at or after a
    /// time no earlier than the entry's.
    pub fn covers(&self, query: &PatientQuery) -> bool {
        query.care_units.is_none() && query.ends_at_or_after >= self.from
    }

    /// One page of `query` (which the entry [`Upcoming::covers`]), as the database would
    /// give it.
    pub fn page(
        &self,
        query: &PatientQuery,
        cursor: Option<Cursor>,
        page_size: u64,
    ) -> (Vec<pb::EncodedAppointment>, Option<Cursor>) {
        let page_size = usize::try_from(page_size).unwrap_or(usize::MAX);
        let mut matching = self
            .visits
            .iter()
            .filter(|visit| visit.window_end >= query.ends_at_or_after)
            .filter(|visit| {
                query
                    .starts_before
                    .is_none_or(|before| visit.window_start < before)
            })
            .filter(|visit| {
                cursor
                    .is_none_or(|cursor| (visit.window_start, visit.id) > (cursor.after, cursor.id))
            });
        let page: Vec<&KeptVisit> = matching.by_ref().take(page_size).collect();
        let next = match page.last() {
            Some(last) if matching.next().is_some() => Some(Cursor {
                after: last.window_start,
                id: last.id,
            }),
            _ => None,
        };
        (
            page.into_iter()
                .map(|visit| visit.citizen_view.clone())
                .collect(),
            next,
        )
    }

    /// The kept visit `id`, if it is one of these.
    pub fn find(&self, id: Uuid) -> Option<&KeptVisit> {
        self.visits.iter().find(|visit| visit.id == id)
    }

    /// About how many bytes the entry holds, for the cache's bound: the structures, the
    /// visits' encodings in their one allocation and its count (each with the allocator's
    /// own 16 bytes), and the cache's own entry.
    fn weight(&self) -> u32 {
        const ALLOCATION: usize = 16;
        const SHARED_COUNT: usize = 32;
        const CACHE_ENTRY: usize = 256;
        let encodings: usize = self
            .visits
            .iter()
            .map(|visit| visit.citizen_view.len())
            .sum::<usize>()
            + ALLOCATION
            + SHARED_COUNT
            + ALLOCATION;
        let fixed = std::mem::size_of::<Self>()
            + self.visits.capacity() * std::mem::size_of::<KeptVisit>()
            + ALLOCATION
            + CACHE_ENTRY;
        u32::try_from(fixed + encodings).unwrap_or(u32::MAX)
    }
}

/// A visit's history as citizens see it, oldest first.
pub type History = Arc<[pb::AppointmentEvent]>;

/// About how many bytes a kept history holds, counted as for [`Upcoming`].
fn history_weight(history: &History) -> u32 {
    const ALLOCATION: usize = 16;
    const CACHE_ENTRY: usize = 256;
    let text = |text: &String| text.capacity() + ALLOCATION;
    let strings: usize = history
        .iter()
        .map(|event| {
            text(&event.appointment_id)
                + text(&event.patient_id)
                + text(&event.care_unit_id)
                + text(&event.actor)
                + text(&event.actor_name)
        })
        .sum();
    let fixed = std::mem::size_of_val::<[pb::AppointmentEvent]>(history) + ALLOCATION + CACHE_ENTRY;
    u32::try_from(fixed + strings).unwrap_or(u32::MAX)
}

/// What is kept, each changing with its patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Upcoming(Uuid),
    History { patient: Uuid, appointment: Uuid },
}

impl Grouped for Key {
    type Group = Uuid;
    fn group(&self) -> &Uuid {
        match self {
            Key::Upcoming(patient) | Key::History { patient, .. } => patient,
        }
    }
}

#[derive(Debug, Clone)]
enum Kept {
    Upcoming(Arc<Upcoming>),
    History(History),
}

/// The patients' upcoming visits kept in memory; see the module documentation.
#[derive(Debug)]
pub struct UpcomingVisits {
    cache: CoherentCache<Key, Kept>,
}

impl UpcomingVisits {
    /// Keeps at most `max_bytes` of visits, trusted while `coherence` is.
    pub fn new(max_bytes: u64, coherence: Coherence) -> Self {
        Self {
            cache: CoherentCache::new(
                "upcoming_visits",
                max_bytes,
                TIME_TO_LIVE,
                |kept: &Kept| match kept {
                    Kept::Upcoming(upcoming) => upcoming.weight(),
                    Kept::History(history) => history_weight(history),
                },
                coherence,
            ),
        }
    }

    /// The patient's kept upcoming visits, if they can be trusted.
    pub fn get(&self, patient_id: Uuid) -> Option<Arc<Upcoming>> {
        match self.cache.get(&Key::Upcoming(patient_id))? {
            Kept::Upcoming(upcoming) => Some(upcoming),
            Kept::History(_) => None,
        }
    }

    /// The kept history of the patient's visit `appointment_id`, if it can be trusted.
    pub fn history(&self, patient_id: Uuid, appointment_id: Uuid) -> Option<History> {
        let key = Key::History {
            patient: patient_id,
            appointment: appointment_id,
        };
        match self.cache.get(&key)? {
            Kept::History(history) => Some(history),
            Kept::Upcoming(_) => None,
        }
    }

    /// Reads the history of the patient's visit `appointment_id` as citizens see it and
    /// keeps it (unless a change raced the read); `None` when the patient has no such visit.
    pub async fn load_history<C: ConnectionTrait>(
        &self,
        db: &C,
        patient_id: Uuid,
        appointment_id: Uuid,
        citizen_view: impl Fn(&events::entity::Model) -> Result<pb::AppointmentEvent, DbErr>,
    ) -> Result<Option<History>, DbErr> {
        let key = Key::History {
            patient: patient_id,
            appointment: appointment_id,
        };
        let ticket: Option<Ticket> = self.cache.ticket(&key);
        if store::find_for_patient(db, patient_id, appointment_id)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let history: History = events::history(db, appointment_id)
            .await?
            .iter()
            .map(citizen_view)
            .collect::<Result<_, _>>()?;
        if let Some(ticket) = ticket {
            self.cache
                .offer(key, Kept::History(history.clone()), ticket);
        }
        Ok(Some(history))
    }

    /// Reads the patient's visits ending at or after `now` and keeps them (unless they are
    /// more than [`MAX_KEPT_VISITS`] or a change raced the read); `None` when there are too
    /// many to keep.
    pub async fn load<C: ConnectionTrait>(
        &self,
        db: &C,
        patient_id: Uuid,
        now: DateTime<Utc>,
        citizen_view: impl Fn(&entity::Model) -> Result<pb::Appointment, DbErr>,
    ) -> Result<Option<Arc<Upcoming>>, DbErr> {
        let ticket: Option<Ticket> = self.cache.ticket(&Key::Upcoming(patient_id));
        let query = PatientQuery {
            patient_id,
            ends_at_or_after: now,
            starts_before: None,
            care_units: None,
        };
        let Page { appointments, next } =
            store::list_for_patient(db, query, None, MAX_KEPT_VISITS as u64).await?;
        if next.is_some() {
            return Ok(None);
        }
        let views = appointments
            .iter()
            .map(citizen_view)
            .collect::<Result<Vec<_>, DbErr>>()?;
        let visits = appointments
            .iter()
            .zip(pb::EncodedAppointment::each_of(&views))
            .map(|(model, citizen_view)| KeptVisit {
                id: model.id,
                window_start: model.window_start,
                window_end: model.window_end,
                citizen_view,
            })
            .collect();
        let upcoming = Arc::new(Upcoming { from: now, visits });
        if let Some(ticket) = ticket {
            self.cache.offer(
                Key::Upcoming(patient_id),
                Kept::Upcoming(upcoming.clone()),
                ticket,
            );
        }
        Ok(Some(upcoming))
    }

    /// The patient's visits changed (after the commit): their list and every history.
    pub fn changed(&self, patient_id: Uuid) {
        self.cache.invalidate(&patient_id);
    }

    /// Patients' lists and histories kept now.
    pub fn len(&self) -> u64 {
        self.cache.len()
    }

    /// Whether no patient's visits are kept.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    fn coherence(&self) -> &Coherence {
        self.cache.own_coherence()
    }
}

/// Drops the kept visits of every patient whose visits another process changed.
#[derive(Debug, Clone)]
pub struct UpcomingFollower(pub Arc<UpcomingVisits>);

impl Follower for UpcomingFollower {
    type Log = events::entity::Entity;

    fn changed(&self, events: &[events::entity::Model]) {
        for event in events {
            self.0.changed(event.patient_id);
        }
    }

    fn coherence(&self) -> &Coherence {
        self.0.coherence()
    }
}
