//! The history as a subscribable event log, on a real SQLite database in memory: a durable
//! consumer is handed each event once, in order, and its writes commit with its cursor.

use std::sync::Mutex;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use homecare_appointments::domain::{EventType, UpsertCommand};
use homecare_appointments::events;
use homecare_appointments::store;
use homecare_core::event_log::{Consumer, consume, cursor};
use homecare_migrations::{Migrator, MigratorTrait as _};
use homecare_patients::Actor;
use homecare_patients::actor::Via;
use homecare_proto::appointments::v1 as pb;
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait as _,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 7, 0, 0).unwrap()
}

async fn database() -> DatabaseConnection {
    let mut options = ConnectOptions::new("sqlite::memory:");
    // One connection: each would have its own database in memory.
    options.max_connections(1).sqlx_logging(false);
    let db = Database::connect(options).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    db
}

fn epj() -> Actor {
    Actor {
        via: Via::System {
            subject: "epj-system".into(),
        },
    }
}

/// The EPJ sends visit `epj_id` starting `hours` after t0, with `status`.
async fn plan(db: &DatabaseConnection, epj_id: &str, hours: i64, status: pb::AppointmentStatus) {
    let start = t0() + Duration::hours(hours);
    let request = pb::UpsertAppointmentRequest {
        epj_id: epj_id.into(),
        patient_national_id: "15034012366".into(),
        care_unit_id: "unit-a".into(),
        window_start: Some(homecare_core::timestamp::to_proto(start)),
        window_end: Some(homecare_core::timestamp::to_proto(
            start + Duration::hours(1),
        )),
        service_type: pb::ServiceType::HomeNursing.into(),
        status: status.into(),
        citizen_cancellable: true,
        epj_version_id: String::new(),
    };
    let command = UpsertCommand::parse(&request, homecare_core::IdentityRules::PRODUCTION).unwrap();
    store::upsert(db, &epj(), &command, t0()).await.unwrap();
}

/// Notes each event it is handed; fails on demand after writing (its write must not stay).
#[derive(Default)]
struct Notifier {
    seen: Mutex<Vec<(String, String)>>,
    fail: Mutex<bool>,
}

#[async_trait::async_trait]
impl Consumer for Notifier {
    type Log = events::entity::Entity;
    const NAME: &'static str = "test-notifier";

    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        events: &[events::entity::Model],
    ) -> Result<(), DbErr> {
        // A write of the consumer's own, in the same transaction as its cursor.
        cursor::Entity::insert(cursor::ActiveModel {
            name: sea_orm::Set(format!("written-{}", events[0].seq)),
            tx_order: sea_orm::Set(0),
            seq: sea_orm::Set(0),
            updated_at: sea_orm::Set(t0()),
        })
        .exec_without_returning(txn)
        .await?;
        if *self.fail.lock().unwrap() {
            return Err(DbErr::Custom("the consumer failed".into()));
        }
        let mut seen = self.seen.lock().unwrap();
        for event in events {
            seen.push((event.event_type.clone(), event.appointment_id.to_string()));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_new_consumer_hears_what_happens_from_now_on_each_event_once() {
    let db = database().await;
    plan(&db, "before", 48, pb::AppointmentStatus::Planned).await;
    let notifier = Notifier::default();
    assert_eq!(consume(&db, &notifier, 100, t0()).await.unwrap(), 0);

    plan(&db, "v-1", 24, pb::AppointmentStatus::Planned).await;
    plan(&db, "v-1", 26, pb::AppointmentStatus::Planned).await;
    plan(&db, "v-1", 26, pb::AppointmentStatus::Completed).await;
    assert_eq!(consume(&db, &notifier, 2, t0()).await.unwrap(), 2);
    assert_eq!(consume(&db, &notifier, 2, t0()).await.unwrap(), 1);
    assert_eq!(consume(&db, &notifier, 2, t0()).await.unwrap(), 0);
    let kinds: Vec<String> = notifier
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(kind, _)| kind.clone())
        .collect();
    assert_eq!(kinds, ["created", "changed", "completed"]);
}

#[tokio::test]
async fn a_failed_consumer_is_handed_the_same_events_again_and_its_writes_are_undone() {
    let db = database().await;
    let notifier = Notifier::default();
    consume(&db, &notifier, 100, t0()).await.unwrap();
    plan(&db, "v-1", 24, pb::AppointmentStatus::Planned).await;

    *notifier.fail.lock().unwrap() = true;
    assert!(consume(&db, &notifier, 100, t0()).await.is_err());
    let names: Vec<String> = cursor::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.name)
        .filter(|name| !name.starts_with("notifications."))
        .collect();
    assert_eq!(
        names,
        [Notifier::NAME],
        "the failed consumer's write was rolled back"
    );

    *notifier.fail.lock().unwrap() = false;
    assert_eq!(consume(&db, &notifier, 100, t0()).await.unwrap(), 1);
    assert_eq!(notifier.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_change_event_says_what_changed() {
    let db = database().await;
    plan(&db, "v-1", 24, pb::AppointmentStatus::Planned).await;
    plan(&db, "v-1", 27, pb::AppointmentStatus::Planned).await;
    plan(&db, "v-1", 27, pb::AppointmentStatus::Cancelled).await;
    let history = events::entity::Entity::find().all(&db).await.unwrap();
    let moved = &history[1];
    assert_eq!(moved.event_type, EventType::Changed.as_stored());
    assert_eq!(
        moved.previous_window_start,
        Some(t0() + Duration::hours(24))
    );
    assert_eq!(moved.previous_status, None, "the status did not change");
    let cancelled = &history[2];
    assert_eq!(cancelled.previous_status.as_deref(), Some("planned"));
    assert_eq!(
        cancelled.previous_window_start, None,
        "the window did not move"
    );
}

#[tokio::test]
async fn a_running_consumer_hears_of_a_change_when_woken_and_stops_on_shutdown() {
    let db = database().await;
    let notifier = std::sync::Arc::new(Notifier::default());
    let feed = homecare_appointments::feed::ChangeFeed::default();
    let shutdown = homecare_core::shutdown::Shutdown::new();
    // The poll is an hour: only the wake-up can bring the event in time.
    let runner = homecare_core::event_log::run_consumer(
        db.clone(),
        notifier.clone(),
        feed.subscribe_changes(),
        std::sync::Arc::new(homecare_core::SystemClock),
        std::time::Duration::from_secs(3600),
        shutdown.clone(),
    );
    // The consumer's cursor exists once it has run: from then on it hears of every change.
    let started = std::time::Instant::now();
    while cursor::Entity::find_by_id(Notifier::NAME.to_owned())
        .one(&db)
        .await
        .unwrap()
        .is_none()
    {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        tokio::task::yield_now().await;
    }
    plan(&db, "v-1", 24, pb::AppointmentStatus::Planned).await;
    feed.visits_changed(std::iter::empty());
    let heard = std::time::Instant::now();
    while notifier.seen.lock().unwrap().is_empty() {
        assert!(
            heard.elapsed() < std::time::Duration::from_secs(10),
            "not woken"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(notifier.seen.lock().unwrap()[0].0, "created");
    shutdown.trigger();
    runner.await.unwrap();
}
