//! Cancellations end to end: the patient cancels, the rules hold at their boundaries, the EPJ
//! (a real HTTP server on loopback) gets each cancellation once whatever it does, and staff
//! see every change on their stream.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use homecare_appointments::cancellation::CutOff;
use homecare_proto::appointments::v1::{
    self as pb, ActorKind, AppointmentEventType as Event, AppointmentStatus, CancellationState,
    GetAppointmentRequest, ListAppointmentHistoryRequest, ListFailedEpjDeliveriesRequest,
    RetryEpjDeliveryRequest, ServiceType,
};
use homecare_tests::epj::{FakeEpj, slow};
use homecare_tests::people::{ASTRID, BJARNE};
use homecare_tests::{
    Backend, TestServer, authorized, error_metadata, error_reason, event_type, on_every_backend,
    test_now, violated_fields, visit, visit_at,
};
use serde_json::json;
use tonic::Code;
use wiremock::ResponseTemplate;

on_every_backend!(
    a_cancellation_reaches_the_epj_and_staff_see_it_within_a_second,
    a_retry_with_the_same_request_id_cancels_once,
    each_rule_refuses_at_its_boundary_and_stores_nothing,
    working_day_cut_off_skips_easter_and_follows_daylight_saving,
    bad_cancel_requests_name_every_wrong_field,
    only_the_patient_cancels_and_only_their_own_visits,
    an_epj_down_for_a_while_gets_every_cancellation_once,
    a_slow_epj_is_retried_until_it_answers_in_time,
    a_conflict_is_retried_and_a_refusal_is_shown_to_staff_who_retry_it,
    a_stale_plan_from_the_epj_does_not_undo_a_pending_cancellation,
    cancellations_racing_replans_are_all_answered_and_agree,
    epj_replans_reach_the_stream_and_a_client_resumes_where_it_left,
    a_stream_from_now_skips_changes_made_before_it_while_a_transaction_is_open,
    two_servers_deliver_each_cancellation_once,
    concurrent_changes_all_reach_the_stream_once,
    an_epj_that_never_answers_leaves_the_cancellation_standing_for_staff,
);

const UNIT: &str = "unit-a";
const SECOND: StdDuration = StdDuration::from_secs(1);

/// A server whose EPJ is `epj`.
async fn server_with(backend: Backend, epj: &FakeEpj) -> TestServer {
    TestServer::start_with(backend, |config| epj.configure(config)).await
}

/// Stores a visit and returns its id.
async fn planned(server: &TestServer, request: pb::UpsertAppointmentRequest) -> String {
    server
        .upsert(request)
        .await
        .appointment
        .expect("appointment")
        .id
}

fn state(appointment: &pb::Appointment) -> CancellationState {
    appointment
        .cancellation
        .as_ref()
        .map_or(CancellationState::Unspecified, pb::Cancellation::state)
}

async fn get(server: &TestServer, token: &str, patient_id: &str, id: &str) -> pb::Appointment {
    server
        .appointments()
        .get_appointment(authorized(
            token,
            GetAppointmentRequest {
                patient_id: patient_id.into(),
                appointment_id: id.into(),
            },
        ))
        .await
        .expect("get")
        .into_inner()
        .appointment
        .expect("appointment")
}

async fn a_cancellation_reaches_the_epj_and_staff_see_it_within_a_second(backend: Backend) {
    let epj = FakeEpj::healthy().await;
    let server = server_with(backend, &epj).await;
    let id = planned(&server, visit("v-1", ASTRID, UNIT, 48)).await;
    let patient = server.own_patient_id(ASTRID).await;
    let mut stream = server.watch(UNIT, "").await;

    let answer = server
        .appointments()
        .cancel_appointment(authorized(
            &server.citizen_token(ASTRID),
            pb::CancelAppointmentRequest {
                patient_id: patient.clone(),
                appointment_id: id.clone(),
                reason: "  Jeg er hos datteren min  ".into(),
                request_id: "req-1".into(),
            },
        ))
        .await
        .expect("cancelled")
        .into_inner()
        .appointment
        .expect("appointment");
    assert_eq!(answer.status(), AppointmentStatus::Cancelled);
    assert_eq!(state(&answer), CancellationState::PendingEpj);
    let cancellation = answer.cancellation.as_ref().unwrap();
    assert_eq!(cancellation.reason, "Jeg er hos datteren min");
    assert_eq!(cancellation.requested_by(), ActorKind::Patient);

    // Staff learn of it within a second of the answer.
    let requested = stream.next_within(SECOND).await;
    assert_eq!(event_type(&requested), Event::CancellationRequested);
    assert_eq!(requested.appointment.as_ref().unwrap().id, id);
    let confirmed = stream.until(Event::CancellationConfirmed, 1).await;
    let confirmed = confirmed.last().unwrap();
    let event = confirmed.event.as_ref().unwrap();
    assert_eq!(event.actor_kind(), ActorKind::System);
    assert_eq!(event.patient_id, patient);
    assert_eq!(
        state(confirmed.appointment.as_ref().unwrap()),
        CancellationState::Confirmed
    );

    // The EPJ got one update: cancelled, via the patient portal, with the patient's words.
    let updates = epj.updates_of("v-1").await;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["status"], "cancelled");
    assert_eq!(
        updates[0]["cancelationReason"]["coding"][0]["code"],
        "pat-cpp"
    );
    assert_eq!(
        updates[0]["cancelationReason"]["text"],
        "Jeg er hos datteren min"
    );

    // The patient sees it confirmed, and the history tells who did what.
    let seen = get(&server, &server.citizen_token(ASTRID), &patient, &id).await;
    assert_eq!(state(&seen), CancellationState::Confirmed);
    let history = server
        .appointments()
        .list_appointment_history(authorized(
            &server.citizen_token(ASTRID),
            ListAppointmentHistoryRequest {
                patient_id: patient.clone(),
                appointment_id: id.clone(),
            },
        ))
        .await
        .expect("history")
        .into_inner()
        .events;
    let story: Vec<(Event, ActorKind, String)> = history
        .iter()
        .map(|e| (e.r#type(), e.actor_kind(), e.actor.clone()))
        .collect();
    assert_eq!(
        story,
        vec![
            (Event::Created, ActorKind::System, "epj-system".to_owned()),
            (
                Event::CancellationRequested,
                ActorKind::Patient,
                String::new()
            ),
            (
                Event::CancellationConfirmed,
                ActorKind::System,
                "epj-delivery".to_owned()
            ),
        ]
    );
    assert!(history.iter().all(|e| e.patient_id == patient));
    // The patient's own cancellation is not in their access log; the worker's write is.
    assert_eq!(
        server
            .count_rows("access_log_entries WHERE actor_kind = 'patient'")
            .await,
        0
    );
    assert_eq!(
        server
            .count_rows("access_log_entries WHERE actor_subject = 'epj-delivery'")
            .await,
        1
    );
    server.stop().await;
}

async fn a_retry_with_the_same_request_id_cancels_once(backend: Backend) {
    // No EPJ: the cancellation stays pending, so the retry meets the same state.
    let server = TestServer::start(backend).await;
    let id = planned(&server, visit("v-1", ASTRID, UNIT, 48)).await;
    let patient = server.own_patient_id(ASTRID).await;

    let first = server.cancel(ASTRID, &patient, &id, "req-1").await.unwrap();
    let again = server.cancel(ASTRID, &patient, &id, "req-1").await.unwrap();
    assert_eq!(first, again);
    assert_eq!(server.count_rows("epj_outbox").await, 1);
    assert_eq!(
        server
            .count_rows("appointment_events WHERE event_type = 'cancellation_requested'")
            .await,
        1
    );

    // Another request to cancel the cancelled visit is refused.
    let error = server
        .cancel(ASTRID, &patient, &id, "req-2")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&error).as_deref(), Some("NOT_PLANNED"));
    server.stop().await;
}

async fn each_rule_refuses_at_its_boundary_and_stores_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let patient = server
        .own_patient_id_after(&visit("v-seed", ASTRID, UNIT, 200))
        .await;
    let now = test_now();
    let cut_off = now + Duration::hours(24);

    // Exactly at the 24-hour cut-off: too late, and the deadline is in the details.
    let at_deadline = planned(&server, visit_at("v-edge", ASTRID, UNIT, cut_off)).await;
    let error = server
        .cancel(ASTRID, &patient, &at_deadline, "r-1")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert_eq!(
        error_reason(&error).as_deref(),
        Some("CANCELLATION_DEADLINE_PASSED")
    );
    let deadline: DateTime<Utc> = error_metadata(&error, "deadline")
        .expect("deadline")
        .parse()
        .expect("RFC 3339");
    assert_eq!(deadline, now);

    // One second later is in time.
    let in_time = planned(
        &server,
        visit_at("v-in-time", ASTRID, UNIT, cut_off + Duration::seconds(1)),
    )
    .await;
    server
        .cancel(ASTRID, &patient, &in_time, "r-2")
        .await
        .unwrap();

    // A critical visit: the portal is told to send the patient to the phone.
    let mut medication = visit("v-med", ASTRID, UNIT, 72);
    medication.service_type = ServiceType::Medication.into();
    medication.citizen_cancellable = false;
    let medication = planned(&server, medication).await;
    let error = server
        .cancel(ASTRID, &patient, &medication, "r-3")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert_eq!(
        error_reason(&error).as_deref(),
        Some("NOT_CITIZEN_CANCELLABLE")
    );
    assert_eq!(
        error_metadata(&error, "action").as_deref(),
        Some("CALL_CARE_SERVICE")
    );

    // A visit under way and a visit carried out.
    let started = planned(&server, visit_at("v-started", ASTRID, UNIT, now)).await;
    let error = server
        .cancel(ASTRID, &patient, &started, "r-4")
        .await
        .unwrap_err();
    assert_eq!(error_reason(&error).as_deref(), Some("ALREADY_STARTED"));
    let mut done = visit("v-done", ASTRID, UNIT, 72);
    done.status = AppointmentStatus::Completed.into();
    let done = planned(&server, done).await;
    let error = server
        .cancel(ASTRID, &patient, &done, "r-5")
        .await
        .unwrap_err();
    assert_eq!(error_reason(&error).as_deref(), Some("NOT_PLANNED"));

    // Only the one in time was cancelled.
    assert_eq!(server.count_rows("epj_outbox").await, 1);
    assert_eq!(
        server
            .count_rows("appointments WHERE status = 'cancelled'")
            .await,
        1
    );
    server.stop().await;
}

async fn working_day_cut_off_skips_easter_and_follows_daylight_saving(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.cancellation.default = CutOff::WorkingDays(1);
    })
    .await;
    let patient = server
        .own_patient_id_after(&visit("v-seed", ASTRID, UNIT, 200))
        .await;
    let at = |text: &str| -> DateTime<Utc> { text.parse().unwrap() };

    // Tuesday 30 March 2027, after Easter: the working day before is Wednesday 24 March, so
    // the deadline is its end, 23:00Z (winter time).
    let after_easter_1 = planned(
        &server,
        visit_at("v-e1", ASTRID, UNIT, at("2027-03-30T06:00:00Z")),
    )
    .await;
    let after_easter_2 = planned(
        &server,
        visit_at("v-e2", ASTRID, UNIT, at("2027-03-30T06:00:00Z")),
    )
    .await;
    server.clock.set(at("2027-03-24T22:59:59Z"));
    server
        .cancel(ASTRID, &patient, &after_easter_1, "r-1")
        .await
        .unwrap();
    server.clock.set(at("2027-03-24T23:00:00Z"));
    let error = server
        .cancel(ASTRID, &patient, &after_easter_2, "r-2")
        .await
        .unwrap_err();
    assert_eq!(
        error_metadata(&error, "deadline").as_deref(),
        Some("2027-03-24T23:00:00.000000Z")
    );

    // Wednesday 31 March, after clocks went forward: Tuesday ends at 22:00Z (summer time).
    let summer_1 = planned(
        &server,
        visit_at("v-s1", ASTRID, UNIT, at("2027-03-31T06:00:00Z")),
    )
    .await;
    let summer_2 = planned(
        &server,
        visit_at("v-s2", ASTRID, UNIT, at("2027-03-31T06:00:00Z")),
    )
    .await;
    server.clock.set(at("2027-03-30T21:59:59Z"));
    server
        .cancel(ASTRID, &patient, &summer_1, "r-3")
        .await
        .unwrap();
    server.clock.set(at("2027-03-30T22:00:00Z"));
    let error = server
        .cancel(ASTRID, &patient, &summer_2, "r-4")
        .await
        .unwrap_err();
    assert_eq!(
        error_metadata(&error, "deadline").as_deref(),
        Some("2027-03-30T22:00:00.000000Z")
    );
    server.stop().await;
}

async fn bad_cancel_requests_name_every_wrong_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let patient = server
        .own_patient_id_after(&visit("v-1", ASTRID, UNIT, 48))
        .await;
    let error = server
        .appointments()
        .cancel_appointment(authorized(
            &server.citizen_token(ASTRID),
            pb::CancelAppointmentRequest {
                patient_id: patient,
                appointment_id: "not-a-uuid".into(),
                reason: "x".repeat(501),
                request_id: "has space".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&error),
        vec!["appointment_id", "request_id", "reason"]
    );
    assert_eq!(server.count_rows("epj_outbox").await, 0);
    server.stop().await;
}

async fn only_the_patient_cancels_and_only_their_own_visits(backend: Backend) {
    let server = TestServer::start(backend).await;
    let astrids = planned(&server, visit("v-a", ASTRID, UNIT, 48)).await;
    let bjarnes = planned(&server, visit("v-b", BJARNE, UNIT, 48)).await;
    let astrid = server.own_patient_id(ASTRID).await;
    let bjarne = server.own_patient_id(BJARNE).await;

    // Bjarne's visit under Astrid's id, and Astrid's id used by Bjarne: both NOT_FOUND.
    let error = server
        .cancel(ASTRID, &astrid, &bjarnes, "r-1")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = server
        .cancel(BJARNE, &astrid, &astrids, "r-2")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    // Staff cancel in the EPJ, not here.
    let error = server
        .appointments()
        .cancel_appointment(authorized(
            &server.nurse_token("nurse-1", &[UNIT]),
            pb::CancelAppointmentRequest {
                patient_id: bjarne.clone(),
                appointment_id: bjarnes.clone(),
                reason: String::new(),
                request_id: "r-3".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    assert_eq!(server.count_rows("epj_outbox").await, 0);
    server.stop().await;
}

async fn an_epj_down_for_a_while_gets_every_cancellation_once(backend: Backend) {
    let epj = FakeEpj::healthy().await;
    epj.first_answer("GET", 6, ResponseTemplate::new(503)).await;
    let server = server_with(backend, &epj).await;
    let patient = server
        .own_patient_id_after(&visit("v-seed", ASTRID, UNIT, 200))
        .await;
    let mut stream = server.watch(UNIT, "").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(planned(&server, visit(&format!("v-{n}"), ASTRID, UNIT, 48 + n)).await);
    }
    for (n, id) in ids.iter().enumerate() {
        server
            .cancel(ASTRID, &patient, id, &format!("r-{n}"))
            .await
            .unwrap();
    }

    stream.until(Event::CancellationConfirmed, 3).await;
    for n in 0..3 {
        assert_eq!(epj.updates_of(&format!("v-{n}")).await.len(), 1, "v-{n}");
    }
    assert_eq!(
        server
            .count_rows("epj_outbox WHERE state = 'delivered'")
            .await,
        3
    );
    server.stop().await;
}

async fn a_slow_epj_is_retried_until_it_answers_in_time(backend: Backend) {
    let epj = FakeEpj::healthy().await;
    // Two reads answered after the client's one-second timeout.
    epj.first_answer("GET", 2, slow(StdDuration::from_millis(1500)))
        .await;
    let server = server_with(backend, &epj).await;
    let id = planned(&server, visit("v-1", ASTRID, UNIT, 48)).await;
    let patient = server.own_patient_id(ASTRID).await;
    let mut stream = server.watch(UNIT, "").await;
    server.cancel(ASTRID, &patient, &id, "r-1").await.unwrap();

    stream.until(Event::CancellationConfirmed, 1).await;
    assert_eq!(epj.updates_of("v-1").await.len(), 1);
    let attempts = server.count_rows("epj_outbox WHERE attempts = 3").await;
    assert_eq!(attempts, 1, "two timed-out attempts and one that worked");
    server.stop().await;
}

async fn a_conflict_is_retried_and_a_refusal_is_shown_to_staff_who_retry_it(backend: Backend) {
    let epj = FakeEpj::healthy().await;
    epj.first_answer("PUT", 1, ResponseTemplate::new(409)).await;
    let server = server_with(backend, &epj).await;
    let patient = server
        .own_patient_id_after(&visit("v-seed", ASTRID, UNIT, 200))
        .await;
    let nurse = server.nurse_token("nurse-1", &[UNIT]);
    let mut stream = server.watch(UNIT, "").await;

    // 409: tried again, and registered.
    let conflicted = planned(&server, visit("v-409", ASTRID, UNIT, 48)).await;
    server
        .cancel(ASTRID, &patient, &conflicted, "r-1")
        .await
        .unwrap();
    stream.until(Event::CancellationConfirmed, 1).await;

    // 400: refused for good. The visit is planned again; staff see why, the patient only
    // that it failed.
    epj.first_answer(
        "PUT",
        1,
        ResponseTemplate::new(400).set_body_json(json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "business-rule",
                       "diagnostics": "Besøket er låst for endringer"}],
        })),
    )
    .await;
    let refused = planned(&server, visit("v-400", ASTRID, UNIT, 50)).await;
    server
        .cancel(ASTRID, &patient, &refused, "r-2")
        .await
        .unwrap();
    stream.until(Event::CancellationFailed, 1).await;

    let for_patient = get(&server, &server.citizen_token(ASTRID), &patient, &refused).await;
    assert_eq!(for_patient.status(), AppointmentStatus::Planned);
    assert_eq!(state(&for_patient), CancellationState::Failed);
    assert_eq!(
        for_patient.cancellation.as_ref().unwrap().failure_reason,
        ""
    );
    let for_staff = get(&server, &nurse, &patient, &refused).await;
    assert_eq!(
        for_staff.cancellation.as_ref().unwrap().failure_reason,
        "HTTP 400: Besøket er låst for endringer"
    );

    let failed = server
        .appointments()
        .list_failed_epj_deliveries(authorized(
            &nurse,
            ListFailedEpjDeliveriesRequest::default(),
        ))
        .await
        .expect("list failed")
        .into_inner()
        .deliveries;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].appointment_id, refused);
    assert_eq!(
        failed[0].last_error,
        "HTTP 400: Besøket er låst for endringer"
    );
    // Another unit's nurse neither sees nor retries it.
    let stranger = server.nurse_token("nurse-2", &["unit-b"]);
    let error = server
        .appointments()
        .retry_epj_delivery(authorized(
            &stranger,
            RetryEpjDeliveryRequest {
                delivery_id: failed[0].id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    // The EPJ was fixed; staff retry, and it goes through.
    let retried = server
        .appointments()
        .retry_epj_delivery(authorized(
            &nurse,
            RetryEpjDeliveryRequest {
                delivery_id: failed[0].id.clone(),
            },
        ))
        .await
        .expect("retry")
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(retried.state(), pb::EpjDeliveryState::Pending);
    let seen = stream.until(Event::CancellationConfirmed, 1).await;
    assert!(
        seen.iter()
            .any(|c| event_type(c) == Event::CancellationRetried)
    );
    let for_patient = get(&server, &server.citizen_token(ASTRID), &patient, &refused).await;
    assert_eq!(for_patient.status(), AppointmentStatus::Cancelled);
    assert_eq!(state(&for_patient), CancellationState::Confirmed);
    assert_eq!(
        epj.updates_of("v-400").await.len(),
        2,
        "the refused one and the retry"
    );
    server.stop().await;
}

/// The patient's portal sends one cancellation eight times at once (a retry racing the
/// original) while the EPJ moves the visit sixteen times in parallel: every call is answered
/// OK, the visit is cancelled once (one event, one row for the EPJ) and keeps the window of
/// the last change, and the history chains every version with nothing written over unseen.
async fn cancellations_racing_replans_are_all_answered_and_agree(backend: Backend) {
    let server = TestServer::start(backend).await;
    let id = planned(&server, visit("v-1", ASTRID, UNIT, 48)).await;
    let patient = server.own_patient_id(ASTRID).await;
    let mut cancels = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut client = server.appointments();
        let request = authorized(
            &server.citizen_token(ASTRID),
            pb::CancelAppointmentRequest {
                patient_id: patient.clone(),
                appointment_id: id.clone(),
                reason: "Hos datteren".into(),
                request_id: "req-1".into(),
            },
        );
        cancels.spawn(async move { client.cancel_appointment(request).await });
    }
    let replans = server.upsert_all_at_once(
        (0..16)
            .map(|n| visit("v-1", ASTRID, UNIT, 49 + n))
            .collect(),
    );
    let (cancelled, replanned) = tokio::join!(cancels.join_all(), replans);

    let mut window_of = std::collections::HashMap::new();
    window_of.insert(
        1,
        visit("v-1", ASTRID, UNIT, 48).window_start.expect("window"),
    );
    let mut cancellation_versions = std::collections::HashSet::new();
    for answer in cancelled {
        let appointment = answer
            .expect("every cancellation is answered OK")
            .into_inner()
            .appointment
            .expect("appointment");
        assert_eq!(appointment.status(), AppointmentStatus::Cancelled);
        assert_eq!(state(&appointment), CancellationState::PendingEpj);
        cancellation_versions.insert(appointment.version);
    }
    for answer in replanned {
        let answer = answer.expect("every replan is answered OK");
        let appointment = answer.appointment.expect("appointment");
        if answer.changed {
            window_of.insert(
                appointment.version,
                appointment.window_start.expect("window"),
            );
        }
    }
    let stored = get(&server, &server.citizen_token(ASTRID), &patient, &id).await;
    assert_eq!(stored.status(), AppointmentStatus::Cancelled);
    assert_eq!(state(&stored), CancellationState::PendingEpj);
    let history = server.history_seen_by(ASTRID, &patient, &id).await;
    assert_eq!(
        history.last().map(|event| event.version),
        Some(stored.version)
    );
    assert_eq!(
        history
            .iter()
            .filter(|event| event.r#type() == Event::CancellationRequested)
            .count(),
        1
    );
    let cancelled_at = history
        .iter()
        .find(|event| event.r#type() == Event::CancellationRequested)
        .expect("the cancellation's event")
        .version;
    // The call that cancelled answers with that version; its repeats with the visit as they
    // found it, cancelled once, perhaps moved since.
    assert_eq!(cancellation_versions.iter().min(), Some(&cancelled_at));
    // The cancellation kept the window of the version before it.
    if let Some(before) = window_of.get(&(cancelled_at - 1)).cloned() {
        window_of.insert(cancelled_at, before);
    }
    homecare_tests::assert_history_chains(&history, &window_of);
    if let Some(last) = window_of.get(&stored.version) {
        assert_eq!(Some(last), stored.window_start.as_ref());
    }
    assert_eq!(server.count_rows("epj_outbox").await, 1);
    server.stop().await;
}

async fn a_stale_plan_from_the_epj_does_not_undo_a_pending_cancellation(backend: Backend) {
    let server = TestServer::start(backend).await;
    let id = planned(&server, visit("v-1", ASTRID, UNIT, 48)).await;
    let patient = server.own_patient_id(ASTRID).await;
    server.cancel(ASTRID, &patient, &id, "r-1").await.unwrap();

    // The EPJ, not yet reached, sends its plan with a new time but still "planned".
    let mut replanned = visit("v-1", ASTRID, UNIT, 49);
    replanned.status = AppointmentStatus::Planned.into();
    let stored = server.upsert(replanned).await.appointment.unwrap();
    assert_eq!(stored.status(), AppointmentStatus::Cancelled);
    assert_eq!(state(&stored), CancellationState::PendingEpj);
    assert_eq!(
        stored.window_start,
        visit("x", ASTRID, UNIT, 49).window_start,
        "the rest of the plan is taken"
    );
    server.stop().await;
}

/// A stream without a resume token starts with the next change, also when a change made
/// just before it cannot yet be read in order (on PostgreSQL, while an older transaction
/// is still open elsewhere, as other clients' transactions often are).
async fn a_stream_from_now_skips_changes_made_before_it_while_a_transaction_is_open(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let open = server.hold_a_transaction_open().await;
    planned(&server, visit("v-1", ASTRID, UNIT, 48)).await;
    let mut stream = server.watch(UNIT, "").await;
    server.upsert(visit("v-1", ASTRID, UNIT, 50)).await;
    if let Some(open) = open {
        // Ends only now: the change above is readable from here on.
        open.rollback().await.expect("rollback");
    }
    let first = stream.next_within(SECOND).await;
    assert_eq!(
        event_type(&first),
        Event::Changed,
        "not the creation before it"
    );
    server.stop().await;
}

async fn epj_replans_reach_the_stream_and_a_client_resumes_where_it_left(backend: Backend) {
    let server = TestServer::start(backend).await;
    planned(&server, visit("v-1", ASTRID, UNIT, 48)).await;
    let mut stream = server.watch(UNIT, "").await;

    // Staff replan in the EPJ: a new time, then a cancellation from the EPJ's side.
    server.upsert(visit("v-1", ASTRID, UNIT, 50)).await;
    let mut cancelled = visit("v-1", ASTRID, UNIT, 50);
    cancelled.status = AppointmentStatus::Cancelled.into();
    server.upsert(cancelled).await;
    let moved = stream.next_within(SECOND).await;
    assert_eq!(event_type(&moved), Event::Changed);
    let cancelled = stream.next_within(SECOND).await;
    assert_eq!(event_type(&cancelled), Event::Changed);
    assert_eq!(
        cancelled.appointment.as_ref().unwrap().status(),
        AppointmentStatus::Cancelled
    );
    drop(stream);

    // While the client is away: one more visit, one change elsewhere it must not see.
    server.upsert(visit("v-2", BJARNE, UNIT, 60)).await;
    server.upsert(visit("v-3", BJARNE, "unit-b", 60)).await;
    let mut resumed = server.watch(UNIT, &moved.resume_token).await;
    let again = resumed.next_within(SECOND).await;
    assert_eq!(
        again.event, cancelled.event,
        "resumes right after the last one seen"
    );
    let missed = resumed.next_within(SECOND).await;
    assert_eq!(event_type(&missed), Event::Created);
    assert_eq!(missed.appointment.as_ref().unwrap().epj_id, "v-2");

    // A resume token that is not one is refused.
    let error = server
        .appointments()
        .watch_care_unit_changes(authorized(
            &server.nurse_token("nurse-1", &[UNIT]),
            pb::WatchCareUnitChangesRequest {
                care_unit_id: UNIT.into(),
                resume_token: "garbage".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&error), vec!["resume_token"]);
    // Streams are read by staff, and each read is in the access log.
    assert!(
        server
            .count_rows("access_log_entries WHERE actor_subject = 'nurse-watch'")
            .await
            >= 3
    );
    server.stop().await;
}

async fn two_servers_deliver_each_cancellation_once(backend: Backend) {
    let epj = FakeEpj::healthy().await;
    let first = server_with(backend, &epj).await;
    let second = first.start_beside(|_| {}).await;
    let patient = first
        .own_patient_id_after(&visit("v-seed", ASTRID, UNIT, 200))
        .await;
    let mut stream = first.watch(UNIT, "").await;
    let count = 20;
    for n in 0..count {
        let id = planned(&first, visit(&format!("v-{n}"), ASTRID, UNIT, 48 + n)).await;
        // Half the cancellations arrive at each server.
        let server = if n % 2 == 0 { &first } else { &second };
        server
            .cancel(ASTRID, &patient, &id, &format!("r-{n}"))
            .await
            .unwrap();
    }

    stream
        .until(
            Event::CancellationConfirmed,
            usize::try_from(count).unwrap(),
        )
        .await;
    for n in 0..count {
        assert_eq!(epj.updates_of(&format!("v-{n}")).await.len(), 1, "v-{n}");
    }
    second.stop().await;
    first.stop().await;
}

async fn concurrent_changes_all_reach_the_stream_once(backend: Backend) {
    // Concurrent writers commit in another order than they numbered their events; a reader
    // must neither skip one that commits late nor see one twice.
    let server = TestServer::start(backend).await;
    let mut stream = server.watch(UNIT, "").await;
    let count = 60;
    let mut writers = tokio::task::JoinSet::new();
    for n in 0..count {
        let mut client = server.appointments();
        let token = server.epj_token();
        writers.spawn(async move {
            client
                .upsert_appointment(authorized(
                    &token,
                    visit(
                        &format!("v-{n}"),
                        if n % 2 == 0 { ASTRID } else { BJARNE },
                        UNIT,
                        48,
                    ),
                ))
                .await
                .expect("upsert");
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }
    let seen = stream.until(Event::Created, count).await;
    let mut ids: Vec<String> = seen
        .iter()
        .map(|change| change.appointment.as_ref().unwrap().epj_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count);
    assert_eq!(seen.len(), count, "no change was sent twice");

    // A client resuming after the first change gets exactly the others.
    let mut resumed = server.watch(UNIT, &seen[0].resume_token).await;
    let rest = resumed.until(Event::Created, count - 1).await;
    let rest_events: Vec<_> = rest.iter().map(|change| change.event.clone()).collect();
    let expected: Vec<_> = seen[1..]
        .iter()
        .map(|change| change.event.clone())
        .collect();
    assert_eq!(rest_events, expected);
    server.stop().await;
}

async fn an_epj_that_never_answers_leaves_the_cancellation_standing_for_staff(backend: Backend) {
    let epj = FakeEpj::healthy().await;
    epj.first_answer("GET", 100, ResponseTemplate::new(503))
        .await;
    let server = TestServer::start_with(backend, |config| {
        epj.configure(config);
        config.epj.max_attempts = 3;
    })
    .await;
    let id = planned(&server, visit("v-1", ASTRID, UNIT, 48)).await;
    let patient = server.own_patient_id(ASTRID).await;
    let mut stream = server.watch(UNIT, "").await;
    server.cancel(ASTRID, &patient, &id, "r-1").await.unwrap();
    stream.until(Event::CancellationFailed, 1).await;

    // The patient did cancel: the visit stays cancelled, and staff are told to act.
    let for_staff = get(
        &server,
        &server.nurse_token("nurse-1", &[UNIT]),
        &patient,
        &id,
    )
    .await;
    assert_eq!(for_staff.status(), AppointmentStatus::Cancelled);
    assert_eq!(state(&for_staff), CancellationState::Failed);
    assert_eq!(
        for_staff.cancellation.as_ref().unwrap().failure_reason,
        "gave up after 3 attempts; last: HTTP 503"
    );
    assert!(epj.updates_of("v-1").await.is_empty());
    server.stop().await;
}
