//! Several server processes on one PostgreSQL: a change on one wakes the others at once
//! (LISTEN/NOTIFY), not at their next poll.

use std::time::Duration;

use homecare_proto::appointments::v1::AppointmentEventType as Event;
use homecare_tests::epj::FakeEpj;
use homecare_tests::people::ASTRID;
use homecare_tests::{Backend, TestServer, visit};

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
