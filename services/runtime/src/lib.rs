//! What the server is made of: capabilities (patients, appointments, messaging,
//! notifications), each contributing its gRPC services, plain HTTP routes, background tasks
//! and cross-process topics through one small interface, [`Capability`]. The server builds
//! what every capability shares ([`Context`]: database, clock, shutdown, who may act for
//! whom, the access log), asks each capability for its [`Parts`], and serves them together.
//!
//! A capability lives in its own crate beside its domain code, with its configuration
//! section; the capability value carries that section. Adding one is writing it and naming
//! it (and its section) in the server's list.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use homecare_core::Clock;
use homecare_core::coherent::Coherence;
use homecare_core::shutdown::Shutdown;
use homecare_core::topic::Topic;
use homecare_patients::Actors;
use homecare_patients::access_log::ReadLog;
use sea_orm::DatabaseConnection;
use tonic::server::NamedService;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;

/// The largest request a service accepts unless it says otherwise (with tonic's
/// `max_decoding_message_size` on its server). Every field is bounded far below this; a
/// larger message is refused (OUT_OF_RANGE, as tonic answers it) before it is decoded.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A configuration value that cannot be used, named by its key.
#[derive(Debug, thiserror::Error)]
#[error("configuration key {key}: {reason}")]
pub struct InvalidConfig {
    /// The key, e.g. `epj.base_url`.
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Why a capability could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Its configuration is unusable.
    #[error(transparent)]
    Config(#[from] InvalidConfig),
    /// Something it needs could not be set up (a client, a template, a blob store), or a
    /// capability it builds on was not built before it.
    #[error("{capability}: {reason}")]
    Setup {
        /// The capability's name.
        capability: &'static str,
        /// What failed.
        reason: String,
    },
}

/// What every capability is built from.
pub struct Context {
    /// The database, migrated, through the pool for calls: what a service answers with.
    pub db: DatabaseConnection,
    /// The same database through the pool for background work: outbox workers, consumers of
    /// the histories, followers. Kept apart so that a burst of calls does not leave a
    /// delivery waiting for a connection behind every call, nor the other way round.
    pub background_db: DatabaseConnection,
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
    pub coherence: Coherence,
    /// The municipality's time zone, in which days are counted.
    pub time_zone: chrono_tz::Tz,
    /// Where local state lives (the embedded database, attachments by default).
    pub data_dir: PathBuf,
    /// How often table-backed metrics (outbox backlogs) are sampled.
    pub sample_every: Duration,
}

/// One capability of the server.
pub trait Capability: Send {
    /// Its name in logs.
    fn name(&self) -> &'static str;

    /// Builds its services, routes, tasks and topics into `parts`.
    fn build(self: Box<Self>, context: &Context, parts: &mut Parts) -> Result<(), BuildError>;
}

/// What a gate does with a request: lets it through (with what it found out added), or
/// refuses it.
type Check = dyn Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send + Sync;

/// What stands before every gRPC service: the server's token verification, which puts the
/// verified caller into the request.
#[derive(Clone)]
pub struct Gate(Arc<Check>);

impl Gate {
    /// A gate that lets through what `check` lets through.
    pub fn new(
        check: impl Fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self(Arc::new(check))
    }
}

impl Interceptor for Gate {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        (self.0)(request)
    }
}

/// What the capabilities contribute.
pub struct Parts {
    gate: Gate,
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
    /// Nothing yet; gRPC services will be served behind `gate`.
    pub fn new(gate: Gate) -> Self {
        Self {
            gate,
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
            .add_service(InterceptedService::new(service, self.gate.clone()));
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
    pub fn into_routes(
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

/// How often the followers that keep caches coherent read their log unwoken: a fallback for
/// a change whose cross-process signal was lost (the LISTEN connection's loss is noticed and
/// faults the caches; a NOTIFY lost otherwise is not).
pub const FOLLOW_POLL: Duration = Duration::from_secs(1);
