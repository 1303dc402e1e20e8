//! What a token must carry: every claim the service relies on, checked before anything
//! happens; and development tokens only where they belong.

use homecare_proto::appointments::v1 as appointments;
use homecare_proto::patients::v1::ListRepresentedPatientsRequest;
use homecare_server::dev_keys::{DevKey, TokenMinter};
use homecare_tests::people::ASTRID;
use homecare_tests::{
    Backend, TestServer, authorized, error_metadata, error_reason, on_every_backend, visit,
};
use serde_json::{Value, json};
use tonic::Code;

on_every_backend!(
    a_citizen_token_without_a_claim_we_rely_on_is_refused_and_changes_nothing,
    a_staff_token_without_a_claim_we_rely_on_is_refused_and_changes_nothing,
    tokens_issued_or_valid_only_in_the_future_are_refused,
    a_staff_name_claim_with_direction_controls_is_refused,
    a_staff_care_unit_claim_that_is_not_a_unit_id_is_refused,
    staff_cannot_tell_a_patient_of_another_unit_from_one_that_does_not_exist,
    text_others_read_refuses_invisible_characters_and_is_stored_composed,
);

/// `claims` signed with the server's development key.
fn signed(server: &TestServer, claims: &Value) -> String {
    DevKey::load(&server.config.dev_key_path())
        .expect("server key")
        .sign(claims)
        .expect("sign")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn citizen_claims(server: &TestServer) -> Value {
    json!({
        "iss": server.config.auth.citizen.issuer,
        "aud": server.config.auth.citizen.audience,
        "sub": "pseudonym-1",
        "pid": ASTRID,
        "acr": "idporten-loa-high",
        "iat": now(),
        "exp": now() + 600,
    })
}

fn epj_claims(server: &TestServer) -> Value {
    json!({
        "iss": server.config.auth.staff.issuer,
        "aud": server.config.auth.staff.audience,
        "sub": "epj-system",
        "roles": [homecare_core::caller::EPJ_INTEGRATION_ROLE],
        "iat": now(),
        "exp": now() + 600,
    })
}

fn without(mut claims: Value, claim: &str) -> Value {
    claims.as_object_mut().expect("object").remove(claim);
    claims
}

fn with(mut claims: Value, claim: &str, value: Value) -> Value {
    claims
        .as_object_mut()
        .expect("object")
        .insert(claim.into(), value);
    claims
}

fn assert_refused(status: &tonic::Status, reason: &str) {
    assert_eq!(status.code(), Code::Unauthenticated, "{reason}: {status:?}");
    assert_eq!(error_reason(status).as_deref(), Some(reason), "{status:?}");
}

async fn a_citizen_token_without_a_claim_we_rely_on_is_refused_and_changes_nothing(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let appointment_id = server.planned_visit("v-claims", ASTRID, "unit-a", 72).await;
    let patient_id = server.own_patient_id(ASTRID).await;
    let cancel = |token: &str| {
        authorized(
            token,
            appointments::CancelAppointmentRequest {
                patient_id: patient_id.clone(),
                appointment_id: appointment_id.clone(),
                reason: String::new(),
                request_id: uuid::Uuid::new_v4().to_string(),
            },
        )
    };

    let mut cases: Vec<(String, Value)> = ["aud", "exp", "iss", "pid", "acr"]
        .into_iter()
        .map(|claim| (claim.to_owned(), without(citizen_claims(&server), claim)))
        .collect();
    // Present but empty is as good as absent.
    cases.push((
        "pid".into(),
        with(citizen_claims(&server), "pid", json!("")),
    ));
    cases.push((
        "iss".into(),
        with(citizen_claims(&server), "iss", json!("")),
    ));
    for (claim, claims) in cases {
        let status = server
            .appointments()
            .cancel_appointment(cancel(&signed(&server, &claims)))
            .await
            .expect_err("refused");
        assert_refused(&status, &format!("MISSING_CLAIM_{}", claim.to_uppercase()));
        assert_eq!(error_metadata(&status, "claim").as_deref(), Some(&*claim));
    }

    let still = server
        .appointment_seen_by(ASTRID, &patient_id, &appointment_id)
        .await
        .expect("get");
    assert_eq!(still.status(), appointments::AppointmentStatus::Planned);
    assert!(still.cancellation.is_none());
    assert_eq!(server.count_rows("epj_outbox").await, 0);

    // The same claims, complete, are accepted: the refusals above were about the claim.
    server
        .appointments()
        .cancel_appointment(cancel(&signed(&server, &citizen_claims(&server))))
        .await
        .expect("a complete token cancels");
    assert_eq!(server.count_rows("epj_outbox").await, 1);
    server.stop().await;
}

async fn a_staff_token_without_a_claim_we_rely_on_is_refused_and_changes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let upsert = |token: &str| authorized(token, visit("v-staff-claims", ASTRID, "unit-a", 72));
    let mut cases: Vec<(String, Value)> = ["aud", "exp", "iss", "sub"]
        .into_iter()
        .map(|claim| (claim.to_owned(), without(epj_claims(&server), claim)))
        .collect();
    cases.push(("sub".into(), with(epj_claims(&server), "sub", json!(" "))));
    for (claim, claims) in cases {
        let status = server
            .appointments()
            .upsert_appointment(upsert(&signed(&server, &claims)))
            .await
            .expect_err("refused");
        assert_refused(&status, &format!("MISSING_CLAIM_{}", claim.to_uppercase()));
    }
    assert_eq!(server.count_rows("appointments").await, 0);
    assert_eq!(server.count_rows("patients").await, 0);

    server
        .appointments()
        .upsert_appointment(upsert(&signed(&server, &epj_claims(&server))))
        .await
        .expect("a complete token upserts");
    assert_eq!(server.count_rows("appointments").await, 1);
    server.stop().await;
}

async fn tokens_issued_or_valid_only_in_the_future_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let list = |token: &str| authorized(token, ListRepresentedPatientsRequest {});
    let later = json!(now() + 3600);
    for (claims, reason) in [
        (
            with(citizen_claims(&server), "iat", later.clone()),
            "TOKEN_ISSUED_IN_FUTURE",
        ),
        (
            with(citizen_claims(&server), "nbf", later.clone()),
            "TOKEN_NOT_YET_VALID",
        ),
        (
            with(epj_claims(&server), "iat", later.clone()),
            "TOKEN_ISSUED_IN_FUTURE",
        ),
    ] {
        let status = server
            .patients()
            .list_represented_patients(list(&signed(&server, &claims)))
            .await
            .expect_err("refused");
        assert_refused(&status, reason);
    }
    // Within the leeway, and in the past, both claims are fine.
    let now_ish = with(
        with(citizen_claims(&server), "nbf", json!(now() - 60)),
        "iat",
        json!(now() + 5),
    );
    server
        .patients()
        .list_represented_patients(list(&signed(&server, &now_ish)))
        .await
        .expect("accepted");
    server.stop().await;
}

async fn a_staff_name_claim_with_direction_controls_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let claims = with(epj_claims(&server), "name", json!("Kari \u{202E}nnamdroN"));
    let status = server
        .appointments()
        .upsert_appointment(authorized(
            &signed(&server, &claims),
            visit("v-name", ASTRID, "unit-a", 72),
        ))
        .await
        .expect_err("refused");
    assert_refused(&status, "INVALID_NAME_CLAIM");
    assert_eq!(server.count_rows("appointments").await, 0);
    server.stop().await;
}

async fn a_staff_care_unit_claim_that_is_not_a_unit_id_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    for bad in [
        json!(["unit-a", "unit a"]),
        json!(["unit-\u{202E}a"]),
        json!([""]),
    ] {
        let claims = with(epj_claims(&server), "care_units", bad);
        let status = server
            .appointments()
            .upsert_appointment(authorized(
                &signed(&server, &claims),
                visit("v-unit", ASTRID, "unit-a", 72),
            ))
            .await
            .expect_err("refused");
        assert_refused(&status, "INVALID_CARE_UNIT_CLAIM");
    }
    assert_eq!(server.count_rows("appointments").await, 0);
    let claims = with(
        epj_claims(&server),
        "care_units",
        json!(["unit-a", "sone-3.b_2"]),
    );
    server
        .appointments()
        .upsert_appointment(authorized(
            &signed(&server, &claims),
            visit("v-unit", ASTRID, "unit-a", 72),
        ))
        .await
        .expect("unit ids as they are written");
    server.stop().await;
}

/// A server on PostgreSQL trusts only its issuers' keys unless development keys are asked
/// for by name: a development key lying in its data directory is not enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_server_refuses_development_tokens_unless_told_to_accept_them() {
    let Some(backend) = Backend::postgres() else {
        eprintln!(
            "skipped: set {} to run on PostgreSQL",
            homecare_tests::POSTGRES_URL_VAR
        );
        return;
    };
    let issuer_key = DevKey::generate().expect("key");
    let jwks_dir = tempfile::tempdir().expect("dir");
    let jwks = jwks_dir.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::to_string(&issuer_key.jwks()).unwrap()).unwrap();
    let server = TestServer::start_bare(backend, |config| {
        config.auth.dev_keys = None;
        config.auth.citizen.jwks_file = Some(jwks.clone());
        config.auth.staff.jwks_file = Some(jwks.clone());
    })
    .await;

    let dev_token = server.citizen_token(ASTRID);
    let status = server
        .patients()
        .list_represented_patients(authorized(&dev_token, ListRepresentedPatientsRequest {}))
        .await
        .expect_err("a development token is refused");
    assert_refused(&status, "BAD_SIGNATURE");

    let issuer_token = TokenMinter::new(issuer_key, &server.config.auth)
        .citizen(ASTRID, chrono::Duration::minutes(5))
        .expect("token");
    let status = server
        .patients()
        .list_represented_patients(authorized(&issuer_token, ListRepresentedPatientsRequest {}))
        .await
        .expect_err("not yet past the terms");
    assert_eq!(
        error_reason(&status).as_deref(),
        Some("TERMS_NOT_ACCEPTED"),
        "the issuer's token is authenticated: {status:?}"
    );
    server.stop().await;
}

/// Every staff call that names a patient, as a nurse of `unit` about `patient_id`.
async fn staff_calls_about(
    server: &TestServer,
    unit: &str,
    patient_id: &str,
    appointment_id: &str,
) -> Vec<(&'static str, Result<(), tonic::Status>)> {
    use homecare_proto::patients::v1 as patients;
    let token = server.nurse_token("nurse-probe", &[unit]);
    let mut appointment_service = server.appointments();
    let mut patient_service = server.patients();
    let patient_id = patient_id.to_owned();
    let proxy_id = uuid::Uuid::new_v4().to_string();
    vec![
        (
            "ListAppointments",
            appointment_service
                .list_appointments(authorized(
                    &token,
                    appointments::ListAppointmentsRequest {
                        patient_id: patient_id.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
        ),
        (
            "GetAppointment",
            appointment_service
                .get_appointment(authorized(
                    &token,
                    appointments::GetAppointmentRequest {
                        patient_id: patient_id.clone(),
                        appointment_id: appointment_id.into(),
                    },
                ))
                .await
                .map(drop),
        ),
        (
            "ListAppointmentHistory",
            appointment_service
                .list_appointment_history(authorized(
                    &token,
                    appointments::ListAppointmentHistoryRequest {
                        patient_id: patient_id.clone(),
                        appointment_id: appointment_id.into(),
                    },
                ))
                .await
                .map(drop),
        ),
        (
            "ListProxies",
            patient_service
                .list_proxies(authorized(
                    &token,
                    patients::ListProxiesRequest {
                        patient_id: patient_id.clone(),
                    },
                ))
                .await
                .map(drop),
        ),
        (
            "RegisterProxy",
            patient_service
                .register_proxy(authorized(
                    &token,
                    patients::RegisterProxyRequest {
                        patient_id: patient_id.clone(),
                        holder_national_id: homecare_tests::people::KARI.into(),
                        holder_name: "Kari Nordmann".into(),
                        patient_name: "Astrid Hansen".into(),
                        scopes: vec![patients::Scope::ReadVisits.into()],
                        request_id: "probe".into(),
                        basis: patients::ProxyBasis::PaperForm.into(),
                        document_reference: "2026/1".into(),
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
        ),
        (
            "UpdateProxy",
            patient_service
                .update_proxy(authorized(
                    &token,
                    patients::UpdateProxyRequest {
                        patient_id: patient_id.clone(),
                        proxy_id: proxy_id.clone(),
                        scopes: vec![patients::Scope::ReadVisits.into()],
                        update_mask: vec!["scopes".into()],
                        ..Default::default()
                    },
                ))
                .await
                .map(drop),
        ),
        (
            "EndProxy",
            patient_service
                .end_proxy(authorized(
                    &token,
                    patients::EndProxyRequest {
                        patient_id: patient_id.clone(),
                        proxy_id,
                    },
                ))
                .await
                .map(drop),
        ),
    ]
}

async fn staff_cannot_tell_a_patient_of_another_unit_from_one_that_does_not_exist(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let appointment_id = server.planned_visit("v-unit-a", ASTRID, "unit-a", 72).await;
    let patient_id = server.own_patient_id(ASTRID).await;
    let unknown_id = uuid::Uuid::new_v4().to_string();

    let other_unit = staff_calls_about(&server, "unit-b", &patient_id, &appointment_id).await;
    let nobody = staff_calls_about(&server, "unit-b", &unknown_id, &appointment_id).await;
    for ((call, real), (_, unknown)) in other_unit.into_iter().zip(nobody) {
        let real = real.expect_err(call);
        let unknown = unknown.expect_err(call);
        assert_eq!(real.code(), Code::NotFound, "{call}: {real:?}");
        assert_eq!(real.code(), unknown.code(), "{call}");
        assert_eq!(real.message(), unknown.message(), "{call}");
        assert_eq!(error_reason(&real), error_reason(&unknown), "{call}");
    }
    assert_eq!(server.count_rows("proxies").await, 0, "nothing registered");

    // The patient's own unit reaches them.
    let own_unit = staff_calls_about(&server, "unit-a", &patient_id, &appointment_id).await;
    for (call, result) in &own_unit[..4] {
        assert!(result.is_ok(), "{call}: {result:?}");
    }
    server.stop().await;
}

async fn text_others_read_refuses_invisible_characters_and_is_stored_composed(backend: Backend) {
    use homecare_proto::patients::v1 as patients;
    use homecare_tests::people::{KARI, OLA};
    use homecare_tests::{grant_request, violated_fields};
    let server = TestServer::start(backend).await;
    let appointment_id = server.planned_visit("v-text", ASTRID, "unit-a", 72).await;
    let patient_id = server.own_patient_id(ASTRID).await;
    let nurse = server.nurse_token("nurse-a", &["unit-a"]);
    let scopes = [patients::Scope::ReadVisits];

    for hostile in [
        "\u{202E}", "\u{2067}", "\u{200F}", "\u{061C}", "\u{200B}", "\u{FEFF}",
    ] {
        let sneaky = format!("Kari{hostile} Nordmann");
        let mut grant = grant_request(&patient_id, KARI, &scopes);
        grant.holder_name = sneaky.clone();
        grant.patient_name = sneaky.clone();
        let status = server.grant_with(ASTRID, grant).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["holder_name", "patient_name"]);

        let status = server
            .patients()
            .register_proxy(authorized(
                &nurse,
                patients::RegisterProxyRequest {
                    patient_id: patient_id.clone(),
                    holder_national_id: OLA.into(),
                    holder_name: "Ola Nordmann".into(),
                    patient_name: "Astrid Hansen".into(),
                    scopes: vec![patients::Scope::ReadVisits.into()],
                    request_id: uuid::Uuid::new_v4().to_string(),
                    basis: patients::ProxyBasis::PaperForm.into(),
                    document_reference: format!("2026/{hostile}123"),
                    ..Default::default()
                },
            ))
            .await
            .expect_err("refused");
        assert_eq!(violated_fields(&status), ["document_reference"]);

        let status = server
            .appointments()
            .cancel_appointment(authorized(
                &server.citizen_token(ASTRID),
                appointments::CancelAppointmentRequest {
                    patient_id: patient_id.clone(),
                    appointment_id: appointment_id.clone(),
                    reason: format!("Hos {hostile}datteren"),
                    request_id: uuid::Uuid::new_v4().to_string(),
                },
            ))
            .await
            .expect_err("refused");
        assert_eq!(violated_fields(&status), ["reason"]);
    }
    assert_eq!(server.count_rows("proxies").await, 0);
    assert_eq!(server.count_rows("epj_outbox").await, 0);

    // Sami and Norwegian letters pass, and a decomposed name is stored composed.
    let mut grant = grant_request(&patient_id, KARI, &scopes);
    grant.holder_name = "A\u{030A}se Ŋuolga-Čeavčča".into();
    grant.patient_name = "Máret Đuvle Ŧuđe".into();
    let proxy = server.grant_with(ASTRID, grant).await.expect("granted");
    assert_eq!(proxy.holder_name, "\u{00C5}se Ŋuolga-Čeavčča");
    assert_eq!(proxy.patient_name, "Máret Đuvle Ŧuđe");
    server.stop().await;
}
