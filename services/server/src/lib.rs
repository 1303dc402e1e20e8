//! The homecare server: configuration, authentication, storage, wiring and shutdown.
//!
//! [`run`] is what `homecare serve` does after loading configuration; end-to-end tests call it
//! with a listener on a free loopback port.

pub mod auth;
pub mod config;
pub mod database;
pub mod dev_keys;
pub mod signals;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;

use homecare_appointments::AppointmentApi;
use homecare_appointments::care::VisitCareUnits;
use homecare_appointments::feed::ChangeFeed;
use homecare_appointments::outbox::EpjSink;
use homecare_core::shutdown::Shutdown;
use homecare_core::{Clock, SystemClock};
use homecare_epj::{FhirEpj, FhirEpjConfig};
use homecare_outbox::Wakeup;
use homecare_patients::access_log::ReadLog;
use homecare_patients::terms::TermsGate;
use homecare_patients::{Actors, PatientApi};
use homecare_proto::appointments::v1::appointment_service_server::{
    self, AppointmentServiceServer,
};
use homecare_proto::patients::v1::patient_service_server::{self, PatientServiceServer};
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::auth::{Authenticate, Verifier};
use crate::config::Config;
use crate::dev_keys::DevKey;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The development key could not be had.
    #[error(transparent)]
    DevKey(#[from] dev_keys::DevKeyError),
    /// Token verification could not be set up.
    #[error(transparent)]
    Auth(#[from] auth::AuthSetupError),
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// Creating the data directory failed.
    #[error("data directory: {0}")]
    DataDir(std::io::Error),
    /// Reflection could not be set up from the descriptors.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The EPJ client could not be built.
    #[error("EPJ client: {0}")]
    Epj(reqwest::Error),
}

/// The largest request accepted. Every field is bounded far below this; a larger message is
/// refused (OUT_OF_RANGE, as tonic answers it) before it is decoded.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The names of the services this server offers, as health checks know them.
pub const SERVICE_NAMES: [&str; 2] = [
    appointment_service_server::SERVICE_NAME,
    patient_service_server::SERVICE_NAME,
];

/// Builds the token verifier `config` asks for, creating the development key if needed and
/// fetching keys that issuers publish at a URL.
pub async fn verifier(config: &Config, http: &reqwest::Client) -> Result<Verifier, ServerError> {
    let dev_key = if config.dev_keys_enabled() {
        if config.auth.dev_keys == Some(true)
            && !config.effective_database_url().starts_with("sqlite:")
        {
            tracing::warn!(
                "auth.dev_keys = true on PostgreSQL: ANYONE WITH THE DEVELOPMENT KEY CAN ACT AS \
                 ANY PATIENT OR STAFF MEMBER; never do this in production"
            );
        } else {
            tracing::warn!("accepting tokens signed by the development key: not for production");
        }
        Some(DevKey::load_or_create(&config.dev_key_path())?)
    } else {
        None
    };
    Ok(Verifier::load(&config.auth, dev_key.as_ref(), http).await?)
}

/// Fetches published issuer keys every `period`, keeping the old keys when a fetch fails.
fn refresh_keys_periodically(
    verifier: Arc<Verifier>,
    http: reqwest::Client,
    period: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(error) = verifier.refresh_published_keys(&http).await {
                tracing::warn!(%error, "could not refresh issuer keys; keeping the old ones");
            }
        }
    })
}

/// Connects to and migrates the database, then serves gRPC on `listener` until `shutdown`
/// completes; then stops accepting calls, lets calls in flight finish, and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate()?;
    let policy = config.cancellation_policy()?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|error| auth::AuthSetupError::JwksUrl {
            url: String::new(),
            reason: error.to_string(),
        })?;
    let verifier = Arc::new(verifier(&config, &http).await?);
    let key_refresh = verifier.has_published_keys().then(|| {
        refresh_keys_periodically(
            verifier.clone(),
            http,
            std::time::Duration::from_secs(config.auth.jwks_refresh_seconds.max(1)),
        )
    });
    let authenticate = Authenticate(verifier);
    let db = database::connect(&config).await?;
    database::migrate(&db).await?;

    let (health, health_service) = tonic_health::server::health_reporter();
    // v1 for current tools, v1alpha for older grpcurl builds.
    let reflection_v1 = reflection_builder().build_v1()?;
    let reflection_v1alpha = reflection_builder().build_v1alpha()?;

    let feed = ChangeFeed::new();
    let stopping_tasks = Shutdown::new();
    let epj_outbox = Wakeup::new();
    let delivery = start_delivery(&config, &db, &clock, &feed, &epj_outbox, &stopping_tasks)?;
    let signal_tasks = signals::start(
        &db,
        &config.effective_database_url(),
        config.database_schema.as_deref(),
        &feed,
        &epj_outbox,
        &stopping_tasks,
    );
    let actors = Arc::new(Actors::new(
        db.clone(),
        TermsGate::new(config.terms_policy()?),
        Arc::new(VisitCareUnits::new(db.clone())),
        clock.clone(),
    ));
    let read_log = ReadLog::start(db.clone());
    let patients = PatientApi::new(
        db.clone(),
        actors.clone(),
        read_log.clone(),
        clock.clone(),
        policy.time_zone,
    );
    let appointments = AppointmentApi::new(
        db.clone(),
        actors,
        read_log,
        clock.clone(),
        policy,
        feed.clone(),
        epj_outbox,
        stopping_tasks.clone(),
    );

    // SERVING only now: migrations ran, the workers started and the services are built.
    for name in SERVICE_NAMES {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let address = listener.local_addr().map_err(ServerError::DataDir)?;
    tracing::info!(%address, "serving gRPC");
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let shutdown_health = health.clone();
    let shutdown_tasks = stopping_tasks.clone();
    let (stopping, stop_requested) = tokio::sync::oneshot::channel::<()>();
    let grace = std::time::Duration::from_secs(config.shutdown_grace_seconds);
    let serve = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            AppointmentServiceServer::new(appointments)
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            authenticate.clone(),
        ))
        .add_service(InterceptedService::new(
            PatientServiceServer::new(patients).max_decoding_message_size(MAX_REQUEST_BYTES),
            authenticate,
        ))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            tracing::info!("shutting down: finishing calls in flight");
            // Change streams end (clients resume elsewhere); the worker finishes its batch.
            shutdown_tasks.trigger();
            for name in SERVICE_NAMES {
                shutdown_health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
            let _ = stopping.send(());
        });
    // A call that outlives the grace period (a client holding a stream open) must not keep
    // the process from stopping.
    let grace_over = async move {
        if stop_requested.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = serve => served?,
        () = grace_over => tracing::warn!(
            grace_seconds = grace.as_secs(),
            "calls still in flight after the grace period; stopping anyway"
        ),
    }
    if let Some(task) = key_refresh {
        task.abort();
    }
    stopping_tasks.trigger();
    for task in signal_tasks {
        let _ = task.await;
    }
    if let Some(worker) = delivery
        && tokio::time::timeout(grace, worker).await.is_err()
    {
        tracing::warn!("the EPJ delivery worker did not stop in time; its leases will expire");
    }
    db.close().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the worker that writes cancellations to the EPJ, if one is configured.
fn start_delivery(
    config: &Config,
    db: &sea_orm::DatabaseConnection,
    clock: &Arc<dyn Clock>,
    feed: &ChangeFeed,
    wakeup: &Wakeup,
    shutdown: &Shutdown,
) -> Result<Option<tokio::task::JoinHandle<()>>, ServerError> {
    if config.epj.base_url.is_empty() {
        tracing::warn!(
            "no EPJ configured (epj.base_url): cancellations are kept until a server with one \
             starts"
        );
        return Ok(None);
    }
    let epj = FhirEpj::new(FhirEpjConfig {
        base_url: config.epj.base_url.clone(),
        bearer_token: config.epj.bearer_token.clone(),
        timeout: std::time::Duration::from_secs(config.epj.timeout_seconds),
    })
    .map_err(ServerError::Epj)?;
    let sink = EpjSink::new(Arc::new(epj), clock.clone(), feed.clone());
    // The outbox schedules by the machine's clock; history entries take the business clock.
    let worker = homecare_outbox::Worker::new(
        db.clone(),
        Arc::new(sink),
        Arc::new(SystemClock),
        wakeup.clone(),
        shutdown.clone(),
        config.epj.delivery_settings(),
    );
    Ok(Some(tokio::spawn(worker.run())))
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(homecare_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}
