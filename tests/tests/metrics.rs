//! What an operator scrapes from `/metrics`: the numbers move with the calls made, outbox
//! backlogs and the pool are there, and no identity number is.
//!
//! One test in its own binary: the metrics recorder is one per process, so nothing else here
//! moves the numbers it counts.

use std::time::{Duration, Instant};

use homecare_proto::appointments::v1 as appointments;
use homecare_tests::people::ASTRID;
use homecare_tests::{Backend, TestServer, authorized};

/// The value of the sample of `metric` whose labels include each of `labels`, if any.
fn sample(scrape: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            line.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && labels
                    .iter()
                    .all(|(name, value)| line.contains(&format!("{name}=\"{value}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

async fn scrape(address: std::net::SocketAddr) -> String {
    let response = reqwest::get(format!("http://{address}/metrics"))
        .await
        .expect("scrape");
    assert!(response.status().is_success());
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.expect("body")
}

const LIST: [(&str, &str); 2] = [
    ("service", "homecare.appointments.v1.AppointmentService"),
    ("method", "ListAppointments"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_numbers_an_operator_scrapes_move_with_the_calls_made() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let backend = Backend::postgres().unwrap_or(Backend::Sqlite);
    let server = TestServer::start_with(backend, |config| {
        config.metrics.listen_addr = Some(port);
        config.metrics.sample_seconds = 1;
    })
    .await;
    let appointment_id = server.planned_visit("v-1", ASTRID, "unit-a", 72).await;
    let patient_id = server.own_patient_id(ASTRID).await;
    let before = scrape(port).await;
    let count = |scrape: &str, metric: &str, labels: &[(&str, &str)]| {
        sample(scrape, metric, labels).unwrap_or(0.0)
    };

    for _ in 0..3 {
        server
            .appointments()
            .list_appointments(authorized(
                &server.citizen_token(ASTRID),
                appointments::ListAppointmentsRequest {
                    patient_id: patient_id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list");
    }
    let refused = server
        .appointments()
        .list_appointments(authorized(
            &server.citizen_token(ASTRID),
            appointments::ListAppointmentsRequest {
                patient_id: "not-an-id".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("a bad id");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    // No EPJ is configured: the cancellation waits in the outbox.
    server
        .cancel(ASTRID, &patient_id, &appointment_id, "r-1")
        .await
        .expect("cancel");

    let after = scrape(port).await;
    let ok = [LIST[0], LIST[1], ("code", "OK")];
    let invalid = [LIST[0], LIST[1], ("code", "INVALID_ARGUMENT")];
    let requests = "homecare_rpc_requests_total";
    assert_eq!(
        count(&after, requests, &ok) - count(&before, requests, &ok),
        3.0
    );
    assert_eq!(
        count(&after, requests, &invalid) - count(&before, requests, &invalid),
        1.0
    );
    let timed = "homecare_rpc_duration_seconds_count";
    assert_eq!(
        count(&after, timed, &LIST) - count(&before, timed, &LIST),
        4.0
    );
    // The citizen passed the terms gate before; each list found them in its cache.
    let gate_hits = [("cache", "terms_gate"), ("result", "hit")];
    let cached = "homecare_cache_requests_total";
    assert!(count(&after, cached, &gate_hits) - count(&before, cached, &gate_hits) >= 3.0);
    for pool in ["calls", "background"] {
        assert!(
            sample(
                &after,
                "homecare_db_pool_connections",
                &[("pool", pool), ("state", "idle")]
            )
            .is_some(),
            "{after}"
        );
    }

    // The backlog is sampled every second: the waiting cancellation shows within a few.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut latest = after;
    while sample(&latest, "homecare_outbox_backlog", &[("sink", "epj")]) != Some(1.0) {
        assert!(Instant::now() < deadline, "no backlog of 1 in:\n{latest}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        latest = scrape(port).await;
    }
    assert_eq!(
        sample(&latest, "homecare_outbox_parked", &[("sink", "epj")]),
        Some(0.0)
    );
    for private in [
        ASTRID,
        patient_id.as_str(),
        appointment_id.as_str(),
        "not-an-id",
    ] {
        assert!(!latest.contains(private), "{private} in the metrics");
    }
    server.stop().await;
}
