//! The proxy store on a real SQLite database in memory: the rules storage enforces (overlap,
//! protected address, request ids, ended proxies) and the proxy history as an event log that a
//! durable consumer follows.

use std::sync::Mutex;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use homecare_core::NationalIdentityNumber;
use homecare_core::event_log::{Consumer, consume};
use homecare_core::identifier::CareUnitId;
use homecare_migrations::{Migrator, MigratorTrait as _};
use homecare_patients::actor::Via;
use homecare_patients::entity::proxy_event;
use homecare_patients::proxy::{self, Basis, NewProxy, ProxyError};
use homecare_patients::scope::{Scope, Scopes};
use homecare_patients::{Actor, store};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr};
use uuid::Uuid;

const ASTRID: &str = "15034012366";
const KARI: &str = "12046823441";
const OLA: &str = "30097134576";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}

fn pid(text: &str) -> NationalIdentityNumber {
    NationalIdentityNumber::parse(text).unwrap()
}

async fn database() -> DatabaseConnection {
    let mut options = ConnectOptions::new("sqlite::memory:");
    // One connection: each would have its own database in memory.
    options.max_connections(1).sqlx_logging(false);
    let db = Database::connect(options).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    db
}

fn patient() -> Actor {
    Actor {
        via: Via::SelfService,
    }
}

fn staff() -> Actor {
    Actor {
        via: Via::Staff {
            subject: "nurse-1".into(),
            name: Some("Nina Nurse".into()),
            care_units: vec![CareUnitId::parse("unit-a").unwrap()],
        },
    }
}

fn grant(patient_id: Uuid, holder: &str, request_id: &str) -> NewProxy {
    NewProxy {
        patient_id,
        holder: pid(holder),
        holder_name: "Kari Holder".into(),
        patient_name: "Astrid Patient".into(),
        scopes: [Scope::ReadVisits].into_iter().collect(),
        basis: Basis::GrantedByPatient,
        document_reference: None,
        valid_from: t0(),
        valid_to: None,
        request_id: homecare_core::identifier::RequestId::parse(request_id).unwrap(),
        request_fingerprint: format!("fingerprint-of-{request_id}"),
    }
}

#[tokio::test]
async fn a_holder_gets_one_open_proxy_per_patient_at_a_time() {
    let db = database().await;
    let astrid = store::find_or_register(&db, &pid(ASTRID), t0())
        .await
        .unwrap();
    let first = proxy::create(&db, &patient(), grant(astrid, KARI, "r1"), t0())
        .await
        .unwrap();

    let overlapping = proxy::create(&db, &patient(), grant(astrid, KARI, "r2"), t0()).await;
    assert!(
        matches!(overlapping, Err(ProxyError::Overlaps { existing }) if existing == first.id),
        "{overlapping:?}"
    );
    // Another holder is no overlap; nor is the same holder once the first proxy ended.
    proxy::create(&db, &patient(), grant(astrid, OLA, "r3"), t0())
        .await
        .unwrap();
    proxy::end(&db, &patient(), astrid, first.id, t0() + Duration::hours(1))
        .await
        .unwrap();
    let mut later = grant(astrid, KARI, "r4");
    later.valid_from = t0() + Duration::hours(2);
    proxy::create(&db, &patient(), later, t0() + Duration::hours(2))
        .await
        .unwrap();
    let usable = proxy::usable_by(&db, &pid(KARI), t0() + Duration::hours(3))
        .await
        .unwrap();
    assert_eq!(usable.len(), 1);
    assert_ne!(usable[0].model.id, first.id);
}

#[tokio::test]
async fn a_request_id_returns_its_proxy_and_refuses_another_request() {
    let db = database().await;
    let astrid = store::find_or_register(&db, &pid(ASTRID), t0())
        .await
        .unwrap();
    let made = proxy::create(&db, &patient(), grant(astrid, KARI, "r1"), t0())
        .await
        .unwrap();
    let again = proxy::create(&db, &patient(), grant(astrid, KARI, "r1"), t0())
        .await
        .unwrap();
    assert_eq!(again.id, made.id);

    let mut other = grant(astrid, OLA, "r1");
    other.request_fingerprint = grant(astrid, OLA, "other").request_fingerprint;
    let reused = proxy::create(&db, &patient(), other, t0()).await;
    assert!(
        matches!(reused, Err(ProxyError::RequestIdReused)),
        "{reused:?}"
    );
    assert_eq!(proxy::of_patient(&db, astrid).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_protected_address_gets_no_new_proxy_and_an_ended_proxy_no_change() {
    let db = database().await;
    let astrid = proxy::set_protected_address(&db, &pid(ASTRID), false, t0())
        .await
        .unwrap();
    let made = proxy::create(&db, &patient(), grant(astrid, KARI, "r1"), t0())
        .await
        .unwrap();
    proxy::set_protected_address(&db, &pid(ASTRID), true, t0())
        .await
        .unwrap();
    let refused = proxy::create(&db, &staff(), grant(astrid, OLA, "r2"), t0()).await;
    assert!(
        matches!(refused, Err(ProxyError::ProtectedAddress)),
        "{refused:?}"
    );

    proxy::end(&db, &patient(), astrid, made.id, t0())
        .await
        .unwrap();
    let changed = proxy::change(
        &db,
        &patient(),
        astrid,
        made.id,
        Some(Scopes::all()),
        None,
        t0(),
    )
    .await;
    assert!(matches!(changed, Err(ProxyError::Ended)), "{changed:?}");
    // Another patient's proxy is not found through this patient.
    let kari = store::find_or_register(&db, &pid(KARI), t0())
        .await
        .unwrap();
    let elsewhere = proxy::end(&db, &patient(), kari, made.id, t0()).await;
    assert!(
        matches!(elsewhere, Err(ProxyError::NotFound)),
        "{elsewhere:?}"
    );
}

/// What a consumer is told of one proxy event: (proxy, patient, type, actor kind).
type Heard = (Uuid, Option<Uuid>, String, String);

/// Notes each proxy event it is handed.
#[derive(Default)]
struct Notifier {
    heard: Mutex<Vec<Heard>>,
}

#[async_trait::async_trait]
impl Consumer for Notifier {
    type Log = proxy_event::Entity;
    const NAME: &'static str = "test-proxy-notifier";

    async fn handle(
        &self,
        _txn: &DatabaseTransaction,
        events: &[proxy_event::Model],
    ) -> Result<(), DbErr> {
        let mut heard = self.heard.lock().unwrap();
        for event in events {
            heard.push((
                event.proxy_id,
                event.patient_id,
                event.event_type.clone(),
                event.actor_kind.clone(),
            ));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_consumer_of_the_proxy_log_hears_each_step_once_in_order_with_its_patient() {
    let db = database().await;
    let astrid = store::find_or_register(&db, &pid(ASTRID), t0())
        .await
        .unwrap();
    let before = proxy::create(&db, &patient(), grant(astrid, OLA, "before"), t0())
        .await
        .unwrap();
    let notifier = Notifier::default();
    // A new consumer starts at the end: what happened before it is not news.
    assert_eq!(consume(&db, &notifier, 10, t0()).await.unwrap(), 0);

    let mut registered = grant(astrid, KARI, "r1");
    registered.basis = Basis::PaperForm;
    let made = proxy::create(&db, &staff(), registered, t0())
        .await
        .unwrap();
    proxy::change(
        &db,
        &patient(),
        astrid,
        made.id,
        Some(Scopes::all()),
        None,
        t0(),
    )
    .await
    .unwrap();
    proxy::end(&db, &staff(), astrid, made.id, t0())
        .await
        .unwrap();

    assert_eq!(consume(&db, &notifier, 2, t0()).await.unwrap(), 2);
    assert_eq!(consume(&db, &notifier, 2, t0()).await.unwrap(), 1);
    assert_eq!(consume(&db, &notifier, 2, t0()).await.unwrap(), 0);
    let heard = notifier.heard.lock().unwrap().clone();
    let expected = [
        ("registered", "staff"),
        ("changed", "patient"),
        ("ended", "staff"),
    ];
    assert_eq!(heard.len(), expected.len());
    for (event, (event_type, actor_kind)) in heard.iter().zip(expected) {
        assert_eq!(event.0, made.id);
        assert_ne!(event.0, before.id);
        assert_eq!(event.1, Some(astrid));
        assert_eq!(
            (event.2.as_str(), event.3.as_str()),
            (event_type, actor_kind)
        );
    }
}
