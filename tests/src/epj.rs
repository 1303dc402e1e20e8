//! A FHIR EPJ on loopback (wiremock), for the tests of cancellations written back to it.

use std::time::Duration;

use homecare_server::config::Config;
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const APPOINTMENT_PATH: &str = r"^/fhir/Appointment/[A-Za-z0-9._-]+$";

/// The EPJ, as a real HTTP server on a loopback port.
pub struct FakeEpj {
    /// The server; tests mount extra behaviour on it.
    pub server: MockServer,
}

/// Answers a read with a booked appointment whose id is the one asked for.
struct BookedAppointment;

impl Respond for BookedAppointment {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id = request.url.path().rsplit('/').next().unwrap_or_default();
        ResponseTemplate::new(200).set_body_json(json!({
            "resourceType": "Appointment",
            "id": id,
            "meta": {"versionId": "1"},
            "status": "booked",
        }))
    }
}

/// Answers an update with the resource it was sent, at version 2.
struct AcceptUpdate;

impl Respond for AcceptUpdate {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        body["meta"] = json!({"versionId": "2"});
        ResponseTemplate::new(200).set_body_json(body)
    }
}

impl FakeEpj {
    /// An EPJ that takes every cancellation.
    pub async fn healthy() -> FakeEpj {
        let epj = FakeEpj {
            server: MockServer::start().await,
        };
        epj.mount_healthy().await;
        epj
    }

    /// Mounts the healthy behaviour (again, after `server.reset()`).
    pub async fn mount_healthy(&self) {
        Mock::given(method("GET"))
            .and(path_regex(APPOINTMENT_PATH))
            .respond_with(BookedAppointment)
            .mount(&self.server)
            .await;
        Mock::given(method("PUT"))
            .and(path_regex(APPOINTMENT_PATH))
            .respond_with(AcceptUpdate)
            .mount(&self.server)
            .await;
    }

    /// The next `times` requests of `http_method` get `response` instead.
    pub async fn first_answer(&self, http_method: &str, times: u64, response: ResponseTemplate) {
        Mock::given(method(http_method))
            .and(path_regex(APPOINTMENT_PATH))
            .respond_with(response)
            .up_to_n_times(times)
            .with_priority(1)
            .mount(&self.server)
            .await;
    }

    /// The bodies of the updates the EPJ received for the visit `epj_id`.
    pub async fn updates_of(&self, epj_id: &str) -> Vec<Value> {
        let wanted = format!("/fhir/Appointment/{epj_id}");
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|request| request.method.as_str() == "PUT" && request.url.path() == wanted)
            .map(|request| serde_json::from_slice(&request.body).expect("JSON body"))
            .collect()
    }

    /// Points `config` at this EPJ, with retries fast enough for a test.
    pub fn configure(&self, config: &mut Config) {
        config.epj.base_url = format!("{}/fhir", self.server.uri());
        config.epj.timeout_seconds = 1;
        config.epj.retry_base_millis = 50;
        config.epj.retry_cap_seconds = 1;
        config.epj.idle_poll_seconds = 1;
        config.epj.max_attempts = 10;
    }
}

/// An answer `delay` late.
pub fn slow(delay: Duration) -> ResponseTemplate {
    ResponseTemplate::new(200).set_delay(delay)
}
