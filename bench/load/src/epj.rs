//! The EPJ on loopback for the cancellation scenario: a real HTTP server (wiremock) that
//! answers FHIR reads and updates and notes when each visit's update arrived.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// When each update arrived, and how many arrived per visit.
pub(crate) type Receipts = Arc<Mutex<HashMap<String, (Instant, usize)>>>;

pub(crate) struct FakeEpj {
    server: MockServer,
    receipts: Receipts,
}

struct Read;

impl Respond for Read {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id = request.url.path().rsplit('/').next().unwrap_or_default();
        ResponseTemplate::new(200).set_body_json(json!({
            "resourceType": "Appointment", "id": id,
            "meta": {"versionId": "1"}, "status": "booked",
        }))
    }
}

struct Update(Receipts);

impl Respond for Update {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let arrived = Instant::now();
        let id = request.url.path().rsplit('/').next().unwrap_or_default();
        let mut receipts = self.0.lock().expect("receipts");
        receipts.entry(id.to_owned()).or_insert((arrived, 0)).1 += 1;
        ResponseTemplate::new(200).set_body_json(json!({
            "resourceType": "Appointment", "id": id,
            "meta": {"versionId": "2"}, "status": "cancelled",
        }))
    }
}

impl FakeEpj {
    pub(crate) async fn start() -> FakeEpj {
        // Its own record of requests would grow without bound and cost CPU the server needs.
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        let receipts = Receipts::default();
        Mock::given(method("GET"))
            .respond_with(Read)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .respond_with(Update(receipts.clone()))
            .mount(&server)
            .await;
        FakeEpj { server, receipts }
    }

    pub(crate) fn uri(&self) -> String {
        self.server.uri()
    }

    pub(crate) fn receipts(&self) -> Receipts {
        self.receipts.clone()
    }
}
