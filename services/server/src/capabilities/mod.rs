//! The capabilities this server is made of (see [`homecare_runtime`]), in the order they
//! are built: each is one line of [`all`], naming its configuration section.
//!
//! Appointments, messaging and notifications live in their own crates, each with its
//! configuration section. Patients' capability is here: every other capability's
//! [`Context`](homecare_runtime::Context) carries what the server builds from the patients
//! crate (who may act for whom, the access log), so the runtime crate depends on that crate,
//! which therefore cannot implement the runtime's trait.

pub mod patients;

use homecare_runtime::Capability;

use crate::config::Config;

/// Every capability of this server, in the order they are built, each with its section of
/// `config`.
pub fn all(config: &Config) -> Vec<Box<dyn Capability>> {
    vec![
        Box::new(patients::Patients),
        Box::new(homecare_appointments::Appointments {
            cancellation: config.cancellation.clone(),
            epj: config.epj.clone(),
            visits_megabytes: config.read_cache.visits_megabytes,
        }),
        Box::new(homecare_messaging::Messaging(config.messaging.clone())),
        Box::new(homecare_notifications::Notifications(
            config.notifications.clone(),
        )),
    ]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use homecare_runtime::Parts;

    use crate::auth::{Authenticate, Verifier};
    use crate::config::Config;
    use crate::dev_keys::DevKey;

    /// A provider's callback (plain HTTP/1.1, no token) and a gRPC service (behind token
    /// verification) answer on the same port.
    #[tokio::test]
    async fn plain_http_routes_answer_beside_grpc_outside_token_verification() {
        let key = DevKey::generate().unwrap();
        let verifier = Verifier::new(&Config::default().auth, Some(&key)).unwrap();
        let mut parts = Parts::new(Authenticate(Arc::new(verifier)).into_gate());
        let (_health, health_service) = tonic_health::server::health_reporter();
        parts.grpc(health_service).http(axum::Router::new().route(
            "/callbacks/test",
            axum::routing::post(|body: String| async move { format!("took {body}") }),
        ));
        assert!(parts.has_http());
        assert_eq!(parts.service_names(), ["grpc.health.v1.Health"]);
        let (routes, _tasks) = parts.into_routes();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .accept_http1(true)
                .add_routes(routes)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );

        let answer = reqwest::Client::new()
            .post(format!("http://{address}/callbacks/test"))
            .body("a status")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.version(), reqwest::Version::HTTP_11);
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
        assert_eq!(answer.text().await.unwrap(), "took a status");

        let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let refused = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    }
}
