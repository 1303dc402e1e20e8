//! Who is told of what: the durable consumers of the visits', the proxies' and the message
//! threads' histories.
//!
//! Each event is mapped to at most one kind of notice and a set of recipients, and the
//! notices are written in the transaction that moves the consumer's cursor
//! ([`homecare_core::event_log::consume`]). Adding a kind of notice is one arm here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use homecare_appointments::domain::{ActorKind, AppointmentStatus, EventType as VisitEvent};
use homecare_appointments::entity as visit;
use homecare_appointments::events::entity as visit_event;
use homecare_core::event_log::Consumer;
use homecare_messaging::entity::event as message_event;
use homecare_messaging::thread::StepType;
use homecare_outbox::Wakeup;
use homecare_patients::entity::{patient, proxy, proxy_event};
use homecare_patients::proxy::{EventType as ProxyEvent, terms_of};
use homecare_patients::scope::{self, ProxyTerms, Scope};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryTrait,
};
use uuid::Uuid;

use crate::entity::follow;
use crate::kind::{Channel, NoticeKind};
use crate::queue::{self, Route, Tell, Timing};

/// What the consumers share: when messages may go, and whom to wake.
#[derive(Clone)]
pub struct Notifier {
    /// When messages may go.
    pub timing: Timing,
    /// A visit added this far ahead (or less) is told of.
    pub added_horizon: Duration,
    /// The SMS worker's wake-up.
    pub sms: Wakeup,
    /// The e-mail worker's wake-up.
    pub email: Wakeup,
    /// The business clock.
    pub clock: Arc<dyn homecare_core::Clock>,
}

impl Notifier {
    async fn enqueue(&self, txn: &DatabaseTransaction, tells: &[Tell]) -> Result<(), DbErr> {
        if tells.is_empty() {
            return Ok(());
        }
        // The workers are woken once this commits (`Consumer::committed`): before, they
        // would find nothing.
        queue::enqueue(txn, tells, &self.timing, self.clock.now()).await
    }

    fn wake(&self, channels: &[Channel]) {
        for channel in channels {
            match channel {
                Channel::Sms => self.sms.rows_queued(),
                Channel::Email => self.email.rows_queued(),
            }
        }
    }
}

/// The patient's own identity number, by patient id.
async fn national_ids<C: ConnectionTrait>(
    db: &C,
    patients: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, String>, DbErr> {
    Ok(patient::Entity::find()
        .filter(patient::Column::Id.is_in(patients))
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.id, row.national_id))
        .collect())
}

/// The proxy holders who asked for notices about some patients, with the terms of their
/// proxies: read once per batch of events.
struct Followers {
    /// Per patient, the holders who asked.
    asked: HashMap<Uuid, Vec<String>>,
    /// Per patient and holder, the terms of every proxy between them.
    terms: HashMap<(Uuid, String), Vec<ProxyTerms>>,
}

impl Followers {
    async fn of<C: ConnectionTrait>(
        db: &C,
        patients: impl IntoIterator<Item = Uuid>,
    ) -> Result<Self, DbErr> {
        let patients: Vec<Uuid> = patients.into_iter().collect();
        let mut asked: HashMap<Uuid, Vec<String>> = HashMap::new();
        for row in follow::Entity::find()
            .filter(follow::Column::PatientId.is_in(patients.clone()))
            .filter(follow::Column::Enabled.eq(true))
            .all(db)
            .await?
        {
            asked
                .entry(row.patient_id)
                .or_default()
                .push(row.holder_national_id);
        }
        let mut terms: HashMap<(Uuid, String), Vec<ProxyTerms>> = HashMap::new();
        if !asked.is_empty() {
            for proxy in proxy::Entity::find()
                .filter(proxy::Column::PatientId.is_in(asked.keys().copied()))
                .all(db)
                .await?
            {
                terms
                    .entry((proxy.patient_id, proxy.holder_national_id.clone()))
                    .or_default()
                    .push(terms_of(&proxy)?);
            }
        }
        Ok(Self { asked, terms })
    }

    /// The patient and every holder who asked for the patient's notices and whose proxy
    /// gives `scope` (to see what the notice is about) at `at`: (identity number, acting for
    /// the patient).
    fn of_patient(
        &self,
        patient_id: Uuid,
        patient_national_id: &str,
        scope: Scope,
        at: DateTime<Utc>,
    ) -> Vec<(String, bool)> {
        let mut recipients = vec![(patient_national_id.to_owned(), false)];
        for holder in self.asked.get(&patient_id).into_iter().flatten() {
            let terms = self
                .terms
                .get(&(patient_id, holder.clone()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            if scope::authorize(terms, scope, at).is_ok() {
                recipients.push((holder.clone(), true));
            }
        }
        recipients
    }
}

/// The kind of notice a visit's event gives, if any, and the time it tells of.
pub fn visit_notice(
    event: &visit_event::Model,
    visit: &visit::Model,
    added_horizon: Duration,
) -> Option<NoticeKind> {
    let event_type = VisitEvent::from_stored(&event.event_type).ok()?;
    let by_care_service = matches!(
        ActorKind::from_stored(&event.actor_kind),
        Ok(ActorKind::Staff | ActorKind::System)
    );
    match event_type {
        VisitEvent::Completed => Some(NoticeKind::VisitCompleted),
        VisitEvent::CancellationConfirmed => Some(NoticeKind::CancellationConfirmed),
        VisitEvent::CancellationFailed => Some(NoticeKind::CancellationFailed),
        VisitEvent::Created => {
            let horizon = chrono::Duration::from_std(added_horizon).unwrap_or_default();
            (visit.window_start > event.occurred_at
                && visit.window_start <= event.occurred_at + horizon)
                .then_some(NoticeKind::VisitAdded)
        }
        VisitEvent::Changed if by_care_service && visit.window_end > event.occurred_at => {
            let cancelled_now = event.previous_status.is_some()
                && matches!(
                    AppointmentStatus::from_stored(&visit.status),
                    Ok(AppointmentStatus::Cancelled)
                )
                && visit.cancellation_state.is_none();
            if cancelled_now {
                Some(NoticeKind::VisitCancelled)
            } else if event.previous_window_start.is_some() {
                Some(NoticeKind::VisitChanged)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Tells of visits: completed, moved or cancelled by the care service, added at short
/// notice, a cancellation confirmed or failed.
pub struct VisitNotifier(pub Notifier);

#[async_trait::async_trait]
impl Consumer for VisitNotifier {
    type Log = visit_event::Entity;
    const NAME: &'static str = "notifications.visits";

    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        events: &[visit_event::Model],
    ) -> Result<(), DbErr> {
        // By position, as a unit's day is read: sea-orm's derived reader was about 1 % of
        // the server's time while notices were made.
        let select = visit::Entity::find()
            .filter(visit::Column::Id.is_in(events.iter().map(|event| event.appointment_id)))
            .build(txn.get_database_backend());
        let visits: HashMap<Uuid, visit::Model> =
            visit::rows::visits(&txn.query_all_raw(select).await?)?
                .into_iter()
                .map(|visit| (visit.id, visit))
                .collect();
        let owners = national_ids(txn, events.iter().map(|event| event.patient_id)).await?;
        let followers = Followers::of(txn, owners.keys().copied()).await?;
        let mut tells = Vec::new();
        for event in events {
            let (Some(visit), Some(owner)) = (
                visits.get(&event.appointment_id),
                owners.get(&event.patient_id),
            ) else {
                continue;
            };
            let Some(kind) = visit_notice(event, visit, self.0.added_horizon) else {
                continue;
            };
            for (recipient, on_behalf) in followers.of_patient(
                event.patient_id,
                owner,
                Scope::ReadVisits,
                event.occurred_at,
            ) {
                tells.push(Tell {
                    recipient,
                    patient_id: event.patient_id,
                    on_behalf,
                    kind,
                    subject_time: visit.window_start,
                    route: Route::AsChosen,
                });
            }
        }
        self.0.enqueue(txn, &tells).await
    }

    fn committed(&self) {
        self.0.wake(&[Channel::Sms, Channel::Email]);
    }
}

/// Tells of proxies: granted, registered, changed, ended.
pub struct ProxyNotifier(pub Notifier);

#[async_trait::async_trait]
impl Consumer for ProxyNotifier {
    type Log = proxy_event::Entity;
    const NAME: &'static str = "notifications.proxies";

    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        events: &[proxy_event::Model],
    ) -> Result<(), DbErr> {
        let proxies: HashMap<Uuid, proxy::Model> = proxy::Entity::find()
            .filter(proxy::Column::Id.is_in(events.iter().map(|event| event.proxy_id)))
            .all(txn)
            .await?
            .into_iter()
            .map(|proxy| (proxy.id, proxy))
            .collect();
        let owners = national_ids(txn, proxies.values().map(|proxy| proxy.patient_id)).await?;
        let mut tells = Vec::new();
        for event in events {
            let Some(proxy) = proxies.get(&event.proxy_id) else {
                continue;
            };
            let Ok(event_type) = ProxyEvent::from_stored(&event.event_type) else {
                continue;
            };
            let by_staff = event.actor_kind == "staff";
            let (to_holder, to_patient) = match event_type {
                ProxyEvent::Granted => (Some(NoticeKind::ProxyGranted), None),
                ProxyEvent::Registered => (
                    Some(NoticeKind::ProxyGranted),
                    Some(NoticeKind::ProxyRegistered),
                ),
                ProxyEvent::Changed => (Some(NoticeKind::ProxyChanged), None),
                ProxyEvent::Ended => (
                    Some(NoticeKind::ProxyEnded),
                    by_staff.then_some(NoticeKind::ProxyEnded),
                ),
            };
            let tell = |recipient: &str, on_behalf: bool, kind: NoticeKind| Tell {
                recipient: recipient.to_owned(),
                patient_id: proxy.patient_id,
                on_behalf,
                kind,
                subject_time: event.occurred_at,
                route: Route::AsChosen,
            };
            if let Some(kind) = to_holder {
                tells.push(tell(&proxy.holder_national_id, true, kind));
            }
            if let (Some(kind), Some(owner)) = (to_patient, owners.get(&proxy.patient_id)) {
                tells.push(tell(owner, false, kind));
            }
        }
        self.0.enqueue(txn, &tells).await
    }

    fn committed(&self) {
        self.0.wake(&[Channel::Sms, Channel::Email]);
    }
}

/// Tells of messages: the care service answered (to the patient and the holders who follow
/// the patient with the messaging scope), and a receipt by e-mail to whoever wrote.
pub struct MessageNotifier(pub Notifier);

#[async_trait::async_trait]
impl Consumer for MessageNotifier {
    type Log = message_event::Entity;
    const NAME: &'static str = "notifications.messages";

    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        events: &[message_event::Model],
    ) -> Result<(), DbErr> {
        let owners = national_ids(txn, events.iter().map(|event| event.patient_id)).await?;
        let followers = Followers::of(txn, owners.keys().copied()).await?;
        // Proxy holders who wrote, by proxy id.
        let writers: HashMap<String, String> = proxy::Entity::find()
            .filter(
                proxy::Column::Id.is_in(
                    events
                        .iter()
                        .filter(|event| event.actor_kind == ActorKind::Proxy.as_stored())
                        .filter_map(|event| Uuid::parse_str(&event.actor_subject).ok()),
                ),
            )
            .all(txn)
            .await?
            .into_iter()
            .map(|proxy| (proxy.id.to_string(), proxy.holder_national_id))
            .collect();
        let mut tells = Vec::new();
        for event in events {
            let Some(owner) = owners.get(&event.patient_id) else {
                continue;
            };
            let tell = |recipient: &str, on_behalf: bool, kind: NoticeKind, route: Route| Tell {
                recipient: recipient.to_owned(),
                patient_id: event.patient_id,
                on_behalf,
                kind,
                subject_time: event.occurred_at,
                route,
            };
            match StepType::from_stored(&event.event_type) {
                Ok(StepType::StaffReplied) => {
                    for (recipient, on_behalf) in followers.of_patient(
                        event.patient_id,
                        owner,
                        Scope::Messaging,
                        event.occurred_at,
                    ) {
                        tells.push(tell(
                            &recipient,
                            on_behalf,
                            NoticeKind::MessageReply,
                            Route::AsChosen,
                        ));
                    }
                }
                Ok(StepType::ThreadStarted | StepType::CitizenReplied) => {
                    let writer = if event.actor_kind == ActorKind::Proxy.as_stored() {
                        writers
                            .get(&event.actor_subject)
                            .map(|holder| (holder, true))
                    } else {
                        Some((owner, false))
                    };
                    if let Some((recipient, on_behalf)) = writer {
                        tells.push(tell(
                            recipient,
                            on_behalf,
                            NoticeKind::MessageReceived,
                            Route::EmailWhereKnown,
                        ));
                    }
                }
                _ => {}
            }
        }
        self.0.enqueue(txn, &tells).await
    }

    fn committed(&self) {
        self.0.wake(&[Channel::Sms, Channel::Email]);
    }
}
