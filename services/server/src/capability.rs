//! What the server is made of: capabilities (patients, appointments; notifications and
//! messaging next), each contributing its gRPC services, plain HTTP routes, background tasks
//! and cross-process topics through one small interface. [`crate::run`] builds what every
//! capability shares (database, clock, token verification, the patients' actors and access
//! log), asks each capability for its parts, and serves them together.
//!
//! Adding a capability is writing its [`Capability`] (in `crate::capabilities`, with its
//! configuration section beside it), adding it to [`all`], and naming its section in
//! `crate::config::Config`.

use std::convert::Infallible;
use std::sync::Arc;

use homecare_core::Clock;
use homecare_core::shutdown::Shutdown;
use homecare_core::topic::Topic;
use homecare_patients::Actors;
use homecare_patients::access_log::ReadLog;
use sea_orm::DatabaseConnection;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;

use crate::ServerError;
use crate::auth::Authenticate;
use crate::config::Config;

/// The largest request a service accepts unless it says otherwise (with tonic's
/// `max_decoding_message_size` on its server). Every field is bounded far below this; a
/// larger message is refused (OUT_OF_RANGE, as tonic answers it) before it is decoded.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What every capability is built from.
pub struct Context {
    /// The whole configuration; a capability reads its own section.
    pub config: Config,
    /// The database, migrated.
    pub db: DatabaseConnection,
    /// The business clock.
    pub clock: Arc<dyn Clock>,
    /// Triggered when the server stops: streams end, workers finish what they hold.
    pub shutdown: Shutdown,
    /// Who may act for which patient.
    pub actors: Arc<Actors>,
    /// The access log of reads by someone other than the patient.
    pub read_log: ReadLog,
    /// A client for outbound HTTP.
    pub http: reqwest::Client,
    /// Whether answers kept in memory can be trusted to reflect every commit (see
    /// `homecare_core::coherent`).
    pub coherence: homecare_core::coherent::Coherence,
}

/// One capability of the server.
pub trait Capability: Send {
    /// Its name in logs.
    fn name(&self) -> &'static str;

    /// Builds its services, routes, tasks and topics into `parts`.
    fn build(self: Box<Self>, context: &Context, parts: &mut Parts) -> Result<(), ServerError>;
}

/// Every capability of this server, in the order they are built.
pub fn all() -> Vec<Box<dyn Capability>> {
    vec![
        Box::new(crate::capabilities::Patients),
        Box::new(crate::capabilities::Appointments),
        Box::new(crate::capabilities::messaging::Messaging),
        Box::new(crate::capabilities::notifications::Notifications),
    ]
}

/// What the capabilities contribute.
pub struct Parts {
    authenticate: Authenticate,
    grpc: tonic::service::RoutesBuilder,
    http: axum::Router,
    has_http: bool,
    service_names: Vec<&'static str>,
    tasks: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
    topics: Vec<Arc<dyn Topic>>,
    /// What a capability hands to those built after it, by type.
    shared: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

impl Parts {
    pub(crate) fn new(authenticate: Authenticate) -> Self {
        Self {
            authenticate,
            grpc: tonic::service::RoutesBuilder::default(),
            http: axum::Router::new(),
            has_http: false,
            service_names: Vec::new(),
            tasks: Vec::new(),
            topics: Vec::new(),
            shared: Vec::new(),
        }
    }

    /// Hands `value` to the capabilities built after this one (the visits' change feed, which
    /// messaging tells when a message adds to a visit's history).
    pub fn share<T: std::any::Any + Send + Sync>(&mut self, value: T) -> &mut Self {
        self.shared.push(Box::new(value));
        self
    }

    /// What an earlier capability shared of type `T`.
    pub fn shared<T: std::any::Any + Clone>(&self) -> Option<T> {
        self.shared
            .iter()
            .find_map(|value| value.downcast_ref::<T>())
            .cloned()
    }

    /// Serves a gRPC service behind token verification; health checks know it by its name.
    pub fn grpc<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.service_names.push(S::NAME);
        self.grpc
            .add_service(InterceptedService::new(service, self.authenticate.clone()));
        self
    }

    /// Serves plain HTTP routes on the gRPC port, outside token verification (a provider's
    /// callbacks, which prove themselves otherwise).
    pub fn http(&mut self, routes: axum::Router) -> &mut Self {
        self.http = std::mem::take(&mut self.http).merge(routes);
        self.has_http = true;
        self
    }

    /// A background task, awaited (within the grace period) when the server stops.
    pub fn task(&mut self, name: &'static str, task: tokio::task::JoinHandle<()>) -> &mut Self {
        self.tasks.push((name, task));
        self
    }

    /// A topic other server processes are told of.
    pub fn topic(&mut self, topic: Arc<dyn Topic>) -> &mut Self {
        self.topics.push(topic);
        self
    }

    /// The changes of the topic `name` that an earlier capability added, made here or
    /// elsewhere, if it offers them.
    pub fn topic_changes(&self, name: &str) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.topics
            .iter()
            .find(|topic| topic.name() == name)
            .and_then(|topic| topic.changes())
    }

    /// The names of the gRPC services, for health checks.
    pub fn service_names(&self) -> &[&'static str] {
        &self.service_names
    }

    /// The topics, for the signals between processes.
    pub fn topics(&self) -> &[Arc<dyn Topic>] {
        &self.topics
    }

    /// Whether plain HTTP/1 must be accepted beside gRPC.
    pub fn has_http(&self) -> bool {
        self.has_http
    }

    /// The gRPC services and HTTP routes as one router, and the tasks.
    pub(crate) fn into_routes(
        self,
    ) -> (
        tonic::service::Routes,
        Vec<(&'static str, tokio::task::JoinHandle<()>)>,
    ) {
        let mut routes = self.grpc.routes();
        if self.has_http {
            let router = std::mem::take(routes.axum_router_mut());
            *routes.axum_router_mut() = router.merge(self.http);
        }
        (routes, self.tasks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Verifier;
    use crate::dev_keys::DevKey;

    /// A provider's callback (plain HTTP/1.1, no token) and a gRPC service (behind token
    /// verification) answer on the same port.
    #[tokio::test]
    async fn plain_http_routes_answer_beside_grpc_outside_token_verification() {
        let key = DevKey::generate().unwrap();
        let verifier = Verifier::new(&Config::default().auth, Some(&key)).unwrap();
        let mut parts = Parts::new(Authenticate(Arc::new(verifier)));
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
