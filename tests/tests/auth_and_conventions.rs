//! Authentication of every call, and the gRPC conventions tools rely on: health and
//! reflection without a token, concurrent upserts of one visit.

use chrono::Duration;
use homecare_proto::patients::v1::ListRepresentedPatientsRequest;
use homecare_server::auth::CitizenClaims;
use homecare_server::dev_keys::{DevKey, TokenMinter};
use homecare_tests::people::ASTRID;
use homecare_tests::{Backend, TestServer, authorized, error_reason, on_every_backend, visit};
use tonic::Code;

on_every_backend!(concurrent_upserts_of_one_visit_create_it_once);

async fn refusal(server: &TestServer, token: Option<&str>) -> tonic::Status {
    let request = match token {
        Some(token) => authorized(token, ListRepresentedPatientsRequest {}),
        None => tonic::Request::new(ListRepresentedPatientsRequest {}),
    };
    server
        .patients()
        .list_represented_patients(request)
        .await
        .expect_err("refused")
}

#[tokio::test]
async fn every_bad_token_is_unauthenticated_with_its_reason() {
    let server = TestServer::start(Backend::Sqlite).await;
    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, acr: &str, exp: i64| CitizenClaims {
        iss: iss.into(),
        aud: Some("homecare".into()),
        sub: "s".into(),
        pid: ASTRID.into(),
        acr: acr.into(),
        iat: now - 3600,
        exp,
    };
    let server_key = DevKey::load(&server.config.dev_key_path()).expect("server key");
    let stranger_key = DevKey::generate().expect("key");
    let other_audience = {
        let mut auth = server.config.auth.clone();
        auth.citizen.audience = Some("another-service".into());
        TokenMinter::new(server_key.clone(), &auth)
            .citizen(ASTRID, Duration::minutes(5))
            .expect("token")
    };

    let cases: Vec<(&str, Option<String>)> = vec![
        ("MISSING_CREDENTIALS", None),
        ("MALFORMED_TOKEN", Some("not.a.jwt".into())),
        (
            "TOKEN_EXPIRED",
            Some(
                server_key
                    .sign(&claims(
                        "homecare-dev-citizen",
                        "idporten-loa-high",
                        now - 120,
                    ))
                    .unwrap(),
            ),
        ),
        (
            "BAD_SIGNATURE",
            Some(
                stranger_key
                    .sign(&claims(
                        "homecare-dev-citizen",
                        "idporten-loa-high",
                        now + 600,
                    ))
                    .unwrap(),
            ),
        ),
        (
            "UNKNOWN_ISSUER",
            Some(
                server_key
                    .sign(&claims("someone-else", "idporten-loa-high", now + 600))
                    .unwrap(),
            ),
        ),
        (
            "INSUFFICIENT_ASSURANCE_LEVEL",
            Some(
                server_key
                    .sign(&claims(
                        "homecare-dev-citizen",
                        "idporten-loa-substantial",
                        now + 600,
                    ))
                    .unwrap(),
            ),
        ),
        ("WRONG_AUDIENCE", Some(other_audience)),
    ];
    for (reason, token) in cases {
        let status = refusal(&server, token.as_deref()).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{reason}: {status:?}");
        assert_eq!(error_reason(&status).as_deref(), Some(reason));
    }

    // A staff token is not a citizen token, even when signed by the same key.
    let nurse = server.nurse_token("nurse-kari", &["unit-a"]);
    assert_eq!(
        refusal(&server, Some(&nurse)).await.code(),
        Code::PermissionDenied
    );
    server.stop().await;
}

#[tokio::test]
async fn health_and_reflection_answer_without_a_token() {
    use tokio_stream::StreamExt as _;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start(Backend::Sqlite).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    for service in homecare_server::SERVICE_NAMES {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner()
            .status;
        assert_eq!(
            status,
            i32::from(tonic_health::pb::health_check_response::ServingStatus::Serving)
        );
    }

    let mut reflection = ServerReflectionClient::new(server.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.next().await.expect("a response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in homecare_server::SERVICE_NAMES {
        assert!(names.iter().any(|name| name == expected), "{names:?}");
    }
    server.stop().await;
}

async fn concurrent_upserts_of_one_visit_create_it_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let plan = visit("v-race", ASTRID, "unit-a", 5);
    let mut calls = Vec::new();
    for _ in 0..8 {
        let mut client = server.appointments();
        let request = authorized(&server.epj_token(), plan.clone());
        calls.push(tokio::spawn(async move {
            client.upsert_appointment(request).await
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for call in calls {
        let response = call.await.expect("task").expect("upsert").into_inner();
        created += usize::from(response.created);
        ids.insert(response.appointment.expect("appointment").id);
    }
    assert_eq!(created, 1, "exactly one call created the visit");
    assert_eq!(ids.len(), 1, "every call saw the same visit");
    assert_eq!(server.count_rows("appointments").await, 1);
    assert_eq!(server.count_rows("patients").await, 1);
    server.stop().await;
}
