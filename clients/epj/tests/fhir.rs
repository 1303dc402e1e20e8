//! The FHIR client against a real HTTP server on loopback playing the EPJ.

use std::time::Duration;

use homecare_epj::{
    Cancellation, Epj, EpjError, FhirEpj, FhirEpjConfig, REQUESTED_BY_EXTENSION, Registered,
    RequestedBy,
};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn epj(server: &MockServer, timeout: Duration) -> FhirEpj {
    FhirEpj::new(FhirEpjConfig {
        base_url: format!("{}/fhir/", server.uri()),
        bearer_token: Some("epj-secret".into()),
        timeout,
    })
    .expect("client")
}

fn cancellation(reason: Option<&str>) -> Cancellation {
    Cancellation {
        epj_id: "visit-17".into(),
        reason: reason.map(str::to_owned),
        idempotency_key: "0193a1b2-key".into(),
        requested_by: RequestedBy::Patient,
    }
}

fn appointment(status: &str, version: &str) -> Value {
    json!({
        "resourceType": "Appointment",
        "id": "visit-17",
        "meta": {"versionId": version},
        "status": status,
        "start": "2026-12-02T08:00:00Z",
        "end": "2026-12-02T08:30:00Z",
        "participant": [{"actor": {"reference": "Patient/p-1"}, "status": "accepted"}],
    })
}

async fn serve_appointment(server: &MockServer, status: &str, version: &str) {
    Mock::given(method("GET"))
        .and(path("/fhir/Appointment/visit-17"))
        .and(header("authorization", "Bearer epj-secret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(appointment(status, version)))
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_proxy_cancellation_names_the_proxy_and_keeps_the_epjs_own_extensions() {
    let server = MockServer::start().await;
    let mut booked = appointment("booked", "3");
    booked["extension"] = json!([{"url": "https://epj.example/kommune", "valueString": "0301"}]);
    Mock::given(method("GET"))
        .and(path("/fhir/Appointment/visit-17"))
        .respond_with(ResponseTemplate::new(200).set_body_json(booked))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/fhir/Appointment/visit-17"))
        .and(body_partial_json(json!({
            "status": "cancelled",
            "extension": [
                {"url": "https://epj.example/kommune", "valueString": "0301"},
                {
                    "url": REQUESTED_BY_EXTENSION,
                    "extension": [
                        {"url": "role", "valueCode": "proxy"},
                        {"url": "name", "valueString": "Kari Nordmann"},
                    ],
                },
            ],
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(appointment("cancelled", "4")))
        .expect(1)
        .mount(&server)
        .await;

    let by_proxy = Cancellation {
        requested_by: RequestedBy::Proxy {
            name: "Kari Nordmann".into(),
        },
        ..cancellation(None)
    };
    epj(&server, Duration::from_secs(5))
        .cancel_appointment(&by_proxy)
        .await
        .expect("registered");
}

#[tokio::test]
async fn a_booked_visit_is_updated_to_cancelled_with_the_portal_reason_and_if_match() {
    let server = MockServer::start().await;
    serve_appointment(&server, "booked", "3").await;
    Mock::given(method("PUT"))
        .and(path("/fhir/Appointment/visit-17"))
        .and(header("if-match", "W/\"3\""))
        .and(header("content-type", "application/fhir+json"))
        .and(header("authorization", "Bearer epj-secret"))
        .and(header("idempotency-key", "0193a1b2-key"))
        .and(body_partial_json(json!({
            "resourceType": "Appointment",
            "status": "cancelled",
            "start": "2026-12-02T08:00:00Z",
            "cancelationReason": {
                "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason",
                    "code": "pat-cpp",
                }],
                "text": "Hos datteren",
            },
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(appointment("cancelled", "4")))
        .expect(1)
        .mount(&server)
        .await;

    let registered = epj(&server, Duration::from_secs(5))
        .cancel_appointment(&cancellation(Some("Hos datteren")))
        .await
        .expect("registered");

    assert_eq!(
        registered,
        Registered {
            version_id: Some("4".into()),
            already_cancelled: false
        }
    );
}

#[tokio::test]
async fn a_visit_already_cancelled_in_the_epj_is_not_written_again() {
    let server = MockServer::start().await;
    serve_appointment(&server, "cancelled", "5").await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;

    let registered = epj(&server, Duration::from_secs(5))
        .cancel_appointment(&cancellation(None))
        .await
        .expect("registered");

    assert!(registered.already_cancelled);
    assert_eq!(registered.version_id.as_deref(), Some("5"));
}

#[tokio::test]
async fn overload_is_temporary_and_honours_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "7"))
        .mount(&server)
        .await;

    let error = epj(&server, Duration::from_secs(5))
        .cancel_appointment(&cancellation(None))
        .await
        .expect_err("refused for now");

    assert_eq!(
        error,
        EpjError::Temporary {
            reason: "HTTP 429".into(),
            retry_after: Some(Duration::from_secs(7))
        }
    );
}

#[tokio::test]
async fn a_conflict_on_update_is_temporary() {
    let server = MockServer::start().await;
    serve_appointment(&server, "booked", "3").await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(409))
        .mount(&server)
        .await;

    let error = epj(&server, Duration::from_secs(5))
        .cancel_appointment(&cancellation(None))
        .await
        .expect_err("conflict");

    assert!(matches!(error, EpjError::Temporary { .. }), "{error:?}");
}

#[tokio::test]
async fn a_bad_request_is_refused_with_the_epjs_reason() {
    let server = MockServer::start().await;
    serve_appointment(&server, "booked", "3").await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "business-rule",
                       "diagnostics": "Besøket er allerede utført"}],
        })))
        .mount(&server)
        .await;

    let error = epj(&server, Duration::from_secs(5))
        .cancel_appointment(&cancellation(None))
        .await
        .expect_err("refused");

    assert_eq!(
        error,
        EpjError::Refused {
            reason: "HTTP 400: Besøket er allerede utført".into()
        }
    );
}

#[tokio::test]
async fn an_unknown_visit_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;

    let error = epj(&server, Duration::from_secs(5))
        .cancel_appointment(&cancellation(None))
        .await
        .expect_err("unknown");

    assert_eq!(
        error,
        EpjError::Refused {
            reason: "HTTP 404".into()
        }
    );
}

#[tokio::test]
async fn a_slow_epj_is_a_temporary_failure() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(appointment("booked", "1"))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;

    let error = epj(&server, Duration::from_millis(200))
        .cancel_appointment(&cancellation(None))
        .await
        .expect_err("timed out");

    assert_eq!(
        error,
        EpjError::Temporary {
            reason: "the EPJ did not answer in time".into(),
            retry_after: None
        }
    );
}
