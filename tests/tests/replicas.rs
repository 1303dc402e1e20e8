//! Several server processes on one PostgreSQL: a change on one wakes the others at once
//! (LISTEN/NOTIFY), not at their next poll, and what each keeps in memory (a patient's
//! upcoming visits, a patient's proxies) follows the others' changes.

use std::time::Duration;

use homecare_proto::appointments::v1::AppointmentEventType as Event;
use homecare_proto::appointments::v1::ListAppointmentsRequest;
use homecare_proto::patients::v1::{EndProxyRequest, Scope};
use homecare_tests::epj::FakeEpj;
use homecare_tests::people::{ASTRID, KARI};
use homecare_tests::{Backend, TestServer, authorized, visit};

/// Polls `probe` every 20 ms until it is true; false if `within` passes first.
async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    mut probe: impl FnMut() -> F,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The replica that writes to the EPJ sleeps a minute between polls; a cancellation made on
/// the other replica reaches the EPJ in seconds, so it was told, not polled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_on_one_replica_wakes_the_worker_on_another() {
    let Some(backend) = Backend::postgres() else {
        eprintln!(
            "skipped: set {} to run on PostgreSQL",
            homecare_tests::POSTGRES_URL_VAR
        );
        return;
    };
    let epj = FakeEpj::healthy().await;
    // The first replica has no EPJ: it queues, but never delivers.
    let front = TestServer::start(backend).await;
    let worker = front
        .start_beside(|config| {
            epj.configure(config);
            config.epj.idle_poll_seconds = 60;
        })
        .await;
    let id = front
        .upsert(visit("v-1", ASTRID, "unit-a", 48))
        .await
        .appointment
        .unwrap()
        .id;
    let patient = front.own_patient_id(ASTRID).await;
    // The worker has looked once at start and found nothing: now it sleeps for a minute.
    assert!(epj.updates_of("v-1").await.is_empty());
    let mut stream = worker.watch("unit-a", "").await;

    front.cancel(ASTRID, &patient, &id, "r-1").await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || epj
            .updates_of("v-1")
            .await
            .len()
            == 1)
        .await,
        "the other replica's worker was woken"
    );
    // Its stream heard of both the request (made on the first replica) and the confirmation.
    stream.until(Event::CancellationConfirmed, 1).await;
    worker.stop().await;
    front.stop().await;
}

/// The citizen `pid`'s list of their own visits on `server`: (visit id, version) pairs.
async fn listed(server: &TestServer, pid: &str, patient_id: &str) -> Vec<(String, i64)> {
    server
        .appointments()
        .list_appointments(authorized(
            &server.citizen_token(pid),
            ListAppointmentsRequest {
                patient_id: patient_id.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .appointments
        .into_iter()
        .map(|visit| (visit.id, visit.version))
        .collect()
}

/// Each replica keeps a patient's upcoming visits in memory; a change made on one replica
/// reaches the patient's list on the other, and a visit added there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_replica_reaches_the_patients_list_on_another() {
    let Some(backend) = Backend::postgres() else {
        eprintln!(
            "skipped: set {} to run on PostgreSQL",
            homecare_tests::POSTGRES_URL_VAR
        );
        return;
    };
    let first = TestServer::start(backend).await;
    let second = first.start_beside(|_| {}).await;
    let id = first.planned_visit("v-1", ASTRID, "unit-a", 48).await;
    let patient = first.own_patient_id(ASTRID).await;
    // Read twice on the second: the second answer comes from what it keeps.
    assert_eq!(listed(&second, ASTRID, &patient).await, [(id.clone(), 1)]);
    assert_eq!(listed(&second, ASTRID, &patient).await, [(id.clone(), 1)]);

    first.upsert(visit("v-1", ASTRID, "unit-a", 50)).await;
    assert!(
        eventually(Duration::from_secs(10), async || listed(
            &second, ASTRID, &patient
        )
        .await
            == [(id.clone(), 2)])
        .await,
        "the second replica lists the moved visit"
    );
    let added = first.planned_visit("v-2", ASTRID, "unit-a", 60).await;
    assert!(
        eventually(Duration::from_secs(10), async || listed(
            &second, ASTRID, &patient
        )
        .await
        .iter()
        .any(|(listed, _)| *listed == added))
        .await,
        "the second replica lists the added visit"
    );
    // On the replica that made the change, the next call sees it: no waiting at all.
    let moved = first.upsert(visit("v-2", ASTRID, "unit-a", 61)).await;
    let version = moved.appointment.unwrap().version;
    assert!(
        listed(&first, ASTRID, &patient)
            .await
            .contains(&(added.clone(), version))
    );
    second.stop().await;
    first.stop().await;
}

/// A proxy ended on one replica refuses its holder on the other, which had just let the
/// holder read under it (and kept the patient's proxies in memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_ended_on_one_replica_refuses_its_holder_on_another() {
    let Some(backend) = Backend::postgres() else {
        eprintln!(
            "skipped: set {} to run on PostgreSQL",
            homecare_tests::POSTGRES_URL_VAR
        );
        return;
    };
    let first = TestServer::start(backend).await;
    let second = first.start_beside(|_| {}).await;
    first.planned_visit("v-1", ASTRID, "unit-a", 48).await;
    let patient = first.own_patient_id(ASTRID).await;
    first.accept_terms(KARI).await.unwrap();
    let proxy = first
        .grant(ASTRID, &patient, KARI, &[Scope::ReadVisits])
        .await
        .unwrap();
    let holders_list = async || {
        second
            .appointments()
            .list_appointments(authorized(
                &second.citizen_token(KARI),
                ListAppointmentsRequest {
                    patient_id: patient.clone(),
                    ..Default::default()
                },
            ))
            .await
    };
    assert_eq!(
        holders_list()
            .await
            .unwrap()
            .into_inner()
            .appointments
            .len(),
        1
    );
    assert!(holders_list().await.is_ok());

    first
        .patients()
        .end_proxy(authorized(
            &first.citizen_token(ASTRID),
            EndProxyRequest {
                patient_id: patient.clone(),
                proxy_id: proxy.id.clone(),
            },
        ))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || {
            holders_list()
                .await
                .is_err_and(|status| status.code() == tonic::Code::PermissionDenied)
        })
        .await,
        "the second replica refuses the holder of the ended proxy"
    );
    second.stop().await;
    first.stop().await;
}

/// While a replica's LISTEN connection is down it hears of no change; it reads through what
/// it keeps instead, and says so. Here its connection is killed, a visit changes on the other
/// replica, and the change is listed there at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_listen_connection_reads_through() {
    let Some(backend) = Backend::postgres() else {
        eprintln!(
            "skipped: set {} to run on PostgreSQL",
            homecare_tests::POSTGRES_URL_VAR
        );
        return;
    };
    let first = TestServer::start(backend).await;
    let second = first.start_beside(|_| {}).await;
    let id = first.planned_visit("v-1", ASTRID, "unit-a", 48).await;
    let patient = first.own_patient_id(ASTRID).await;
    assert_eq!(listed(&second, ASTRID, &patient).await, [(id.clone(), 1)]);
    // Both replicas' LISTEN connections (their channels name this test's schema) go; each
    // reconnects by itself.
    let schema = first.config.database_schema.clone().expect("a schema");
    let killed = first
        .count_rows(&format!(
            "(SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN%{schema}%' AND pid <> pg_backend_pid()) AS killed"
        ))
        .await;
    assert!(killed >= 2, "{killed} LISTEN connections ended");
    first.upsert(visit("v-1", ASTRID, "unit-a", 50)).await;
    assert!(
        eventually(Duration::from_secs(10), async || listed(
            &second, ASTRID, &patient
        )
        .await
            == [(id.clone(), 2)])
        .await,
        "the second replica lists the moved visit"
    );
    second.stop().await;
    first.stop().await;
}
