//! A visit's history says what the EPJ changed: a completed visit is its own kind of event,
//! and a change carries the status and window before.

use chrono::Duration;
use homecare_proto::appointments::v1 as appointments;
use homecare_tests::people::ASTRID;
use homecare_tests::{Backend, TestServer, on_every_backend, test_now, visit};

on_every_backend!(the_history_tells_a_moved_visit_from_a_completed_one);

async fn the_history_tells_a_moved_visit_from_a_completed_one(backend: Backend) {
    let server = TestServer::start(backend).await;
    let plan = visit("v-1", ASTRID, "unit-a", 24);
    let appointment_id = server.upsert(plan.clone()).await.appointment.unwrap().id;
    let patient_id = server.own_patient_id(ASTRID).await;
    let read = || server.history_seen_by(ASTRID, &patient_id, &appointment_id);
    let kinds = |history: &[appointments::AppointmentEvent]| {
        history
            .iter()
            .map(|event| event.r#type())
            .collect::<Vec<_>>()
    };
    // Read after each change (the citizen's history is kept between changes): each change
    // shows at once.
    assert_eq!(
        kinds(&read().await),
        [appointments::AppointmentEventType::Created]
    );
    let mut moved = plan.clone();
    let later = test_now() + Duration::hours(26);
    moved.window_start = Some(homecare_core::timestamp::to_proto(later));
    moved.window_end = Some(homecare_core::timestamp::to_proto(
        later + Duration::hours(1),
    ));
    server.upsert(moved.clone()).await;
    assert_eq!(
        kinds(&read().await),
        [
            appointments::AppointmentEventType::Created,
            appointments::AppointmentEventType::Changed,
        ]
    );
    let mut completed = moved.clone();
    completed.status = appointments::AppointmentStatus::Completed.into();
    server.upsert(completed).await;

    let history = read().await;
    assert_eq!(
        kinds(&history),
        [
            appointments::AppointmentEventType::Created,
            appointments::AppointmentEventType::Changed,
            appointments::AppointmentEventType::Completed,
        ]
    );
    assert_eq!(history[1].previous_window_start, plan.window_start);
    assert_eq!(
        history[1].previous_status(),
        appointments::AppointmentStatus::Unspecified,
        "the status did not change"
    );
    assert_eq!(
        history[2].previous_status(),
        appointments::AppointmentStatus::Planned
    );
    assert_eq!(
        history[2].previous_window_start, None,
        "the window did not move"
    );
    server.stop().await;
}
