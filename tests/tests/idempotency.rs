//! AIP-155 request ids: a true repeat returns what the first request made; the same id with
//! other content is refused with `REQUEST_ID_REUSED` and changes nothing.

use chrono::Duration;
use homecare_proto::appointments::v1 as appointments;
use homecare_proto::patients::v1 as patients;
use homecare_tests::people::{ASTRID, KARI, OLA};
use homecare_tests::{
    Backend, TestServer, authorized, error_reason, grant_request, on_every_backend, visit,
};
use tonic::Code;

on_every_backend!(
    a_cancellation_request_id_reused_for_other_content_is_refused,
    a_grant_request_id_reused_for_other_content_is_refused,
);

fn assert_reused(status: &tonic::Status) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(error_reason(status).as_deref(), Some("REQUEST_ID_REUSED"));
}

async fn a_cancellation_request_id_reused_for_other_content_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server.planned_visit("v-1", ASTRID, "unit-a", 72).await;
    let second = server.planned_visit("v-2", ASTRID, "unit-a", 96).await;
    let patient_id = server.own_patient_id(ASTRID).await;
    let cancel = |appointment_id: &str, reason: &str| {
        authorized(
            &server.citizen_token(ASTRID),
            appointments::CancelAppointmentRequest {
                patient_id: patient_id.clone(),
                appointment_id: appointment_id.into(),
                reason: reason.into(),
                request_id: "cancel-1".into(),
            },
        )
    };
    let cancelled = server
        .appointments()
        .cancel_appointment(cancel(&first, "Hos datteren"))
        .await
        .expect("cancelled")
        .into_inner()
        .appointment
        .unwrap();

    // The same request again: the same answer, nothing more cancelled.
    let repeated = server
        .appointments()
        .cancel_appointment(cancel(&first, "Hos datteren"))
        .await
        .expect("a repeat is answered")
        .into_inner()
        .appointment
        .unwrap();
    assert_eq!(repeated.version, cancelled.version);

    let other_reason = server
        .appointments()
        .cancel_appointment(cancel(&first, "Hos tannlegen"))
        .await
        .expect_err("other content");
    assert_reused(&other_reason);
    let other_visit = server
        .appointments()
        .cancel_appointment(cancel(&second, "Hos datteren"))
        .await
        .expect_err("another visit");
    assert_reused(&other_visit);

    let still = server
        .appointment_seen_by(ASTRID, &patient_id, &second)
        .await
        .expect("get");
    assert_eq!(still.status(), appointments::AppointmentStatus::Planned);
    assert_eq!(server.count_rows("epj_outbox").await, 1);
    server.stop().await;
}

async fn a_grant_request_id_reused_for_other_content_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.upsert(visit("v-1", ASTRID, "unit-a", 72)).await;
    let patient_id = server.own_patient_id(ASTRID).await;
    let mut request = grant_request(&patient_id, KARI, &[patients::Scope::ReadVisits]);
    request.request_id = "grant-1".into();
    let granted = server
        .grant_with(ASTRID, request.clone())
        .await
        .expect("granted");

    // A retry a minute later, with the start still "now", is the same request.
    server
        .clock
        .set(homecare_tests::test_now() + Duration::minutes(1));
    let repeated = server
        .grant_with(ASTRID, request.clone())
        .await
        .expect("a repeat is answered");
    assert_eq!(repeated.id, granted.id);

    let mut other_holder = request.clone();
    other_holder.holder_national_id = OLA.into();
    assert_reused(
        &server
            .grant_with(ASTRID, other_holder)
            .await
            .expect_err("another holder"),
    );
    let mut more_scopes = request.clone();
    more_scopes
        .scopes
        .push(patients::Scope::CancelVisits.into());
    assert_reused(
        &server
            .grant_with(ASTRID, more_scopes)
            .await
            .expect_err("other scopes"),
    );
    assert_eq!(server.count_rows("proxies").await, 1);
    server.stop().await;
}
