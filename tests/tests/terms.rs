//! The terms of use: nothing before acceptance, one day's wait to the second, versions.

use chrono::Duration;
use homecare_proto::appointments::v1::ListAppointmentsRequest;
use homecare_proto::patients::v1::{
    AcceptTermsRequest, GetTermsStatusRequest, ListRepresentedPatientsRequest,
};
use homecare_tests::people::{ASTRID, NEWCOMER};
use homecare_tests::{
    Backend, TestServer, authorized, error_metadata, error_reason, on_every_backend, test_now,
    violated_fields, visit,
};
use tonic::Code;

on_every_backend!(
    a_newcomer_can_use_the_service_one_day_after_accepting_not_a_second_earlier,
    a_wrong_terms_version_is_refused_and_changes_nothing,
    new_terms_must_be_accepted_but_do_not_make_anyone_wait_again,
);

async fn list_represented(server: &TestServer, pid: &str) -> Result<usize, tonic::Status> {
    server
        .patients()
        .list_represented_patients(authorized(
            &server.citizen_token(pid),
            ListRepresentedPatientsRequest {},
        ))
        .await
        .map(|response| response.into_inner().patients.len())
}

async fn a_newcomer_can_use_the_service_one_day_after_accepting_not_a_second_earlier(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let visit = server
        .upsert(visit("v-1", NEWCOMER, "unit-a", 48))
        .await
        .appointment
        .expect("visit");
    let list_visits = || async {
        server
            .appointments()
            .list_appointments(authorized(
                &server.citizen_token(NEWCOMER),
                ListAppointmentsRequest {
                    patient_id: visit.patient_id.clone(),
                    ..Default::default()
                },
            ))
            .await
    };

    let refused = list_represented(&server, NEWCOMER).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        error_reason(&refused).as_deref(),
        Some("TERMS_NOT_ACCEPTED")
    );
    assert_eq!(
        error_metadata(&refused, "terms_version").as_deref(),
        Some("1")
    );
    let refused = list_visits().await.unwrap_err();
    assert_eq!(
        error_reason(&refused).as_deref(),
        Some("TERMS_NOT_ACCEPTED")
    );

    let accepted = server.accept_terms(NEWCOMER).await.expect("accepted");
    let opens = test_now() + Duration::days(1);
    assert_eq!(accepted.accepted_version, "1");
    assert!(!accepted.available);
    assert_eq!(
        accepted.available_time,
        Some(homecare_core::timestamp::to_proto(opens))
    );

    server.clock.set(opens - Duration::seconds(1));
    for refused in [
        list_represented(&server, NEWCOMER).await.unwrap_err(),
        list_visits().await.unwrap_err(),
    ] {
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert_eq!(
            error_reason(&refused).as_deref(),
            Some("TERMS_NOT_YET_AVAILABLE")
        );
        assert_eq!(
            error_metadata(&refused, "available_time").as_deref(),
            Some("2026-12-02T07:00:00.000000Z")
        );
        assert!(refused.message().contains("2026-12-02T07:00:00Z"));
    }

    server.clock.set(opens);
    assert_eq!(list_represented(&server, NEWCOMER).await.expect("open"), 1);
    let visits = list_visits().await.expect("open").into_inner().appointments;
    assert_eq!(visits.len(), 1);
    let status = server
        .patients()
        .get_terms_status(authorized(
            &server.citizen_token(NEWCOMER),
            GetTermsStatusRequest {},
        ))
        .await
        .expect("status")
        .into_inner()
        .terms
        .expect("terms");
    assert!(status.available);
    server.stop().await;
}

async fn a_wrong_terms_version_is_refused_and_changes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let before = server.count_rows("terms_acceptances").await;
    for version in ["", "2"] {
        let refused = server
            .patients()
            .accept_terms(authorized(
                &server.citizen_token(NEWCOMER),
                AcceptTermsRequest {
                    terms_version: version.into(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&refused), ["terms_version"]);
    }
    assert_eq!(server.count_rows("terms_acceptances").await, before);
    // Staff accept no terms, and cannot accept them for anyone.
    let staff = server
        .patients()
        .accept_terms(authorized(
            &server.nurse_token("nurse-1", &["unit-a"]),
            AcceptTermsRequest {
                terms_version: "1".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(staff.code(), Code::PermissionDenied);
    server.stop().await;
}

async fn new_terms_must_be_accepted_but_do_not_make_anyone_wait_again(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.upsert(visit("v-1", ASTRID, "unit-a", 48)).await;
    assert_eq!(list_represented(&server, ASTRID).await.expect("in"), 1);

    // The municipality publishes version 2: a server configured with it asks again.
    let updated = server
        .start_beside(|config| config.terms.version = "2".into())
        .await;
    updated.clock.set(test_now() + Duration::days(30));
    let refused = list_represented(&updated, ASTRID).await.unwrap_err();
    assert_eq!(
        error_reason(&refused).as_deref(),
        Some("TERMS_NOT_ACCEPTED")
    );
    assert_eq!(
        error_metadata(&refused, "terms_version").as_deref(),
        Some("2")
    );

    let accepted = updated.accept_terms(ASTRID).await.expect("accepted");
    assert!(accepted.available, "no second wait for someone already in");
    assert_eq!(list_represented(&updated, ASTRID).await.expect("in"), 1);
    updated.stop().await;
    server.stop().await;
}
