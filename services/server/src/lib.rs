//! The homecare server: configuration, authentication, storage, wiring and shutdown.
//!
//! [`run`] is what `homecare serve` does after loading configuration; end-to-end tests call it
//! with a listener on a free loopback port.

pub mod auth;
pub mod capabilities;
pub mod config;
pub mod database;
pub mod dev_keys;
pub mod metrics;
pub mod signals;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;

use homecare_appointments::care::VisitCareUnits;
use homecare_core::Clock;
use homecare_core::coherent::{Coherence, Fault};
use homecare_core::shutdown::Shutdown;
use homecare_patients::Actors;
use homecare_patients::access_log::ReadLog;
use homecare_patients::kept_proxies::KeptProxies;
use homecare_patients::terms::TermsGate;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::auth::{Authenticate, Verifier};
use crate::config::Config;
use crate::dev_keys::DevKey;

pub use homecare_runtime::MAX_REQUEST_BYTES;
use homecare_runtime::{Context, Parts};

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
    /// A capability could not be built (its configuration, a client, a template, a blob
    /// store).
    #[error(transparent)]
    Capability(#[from] homecare_runtime::BuildError),
    /// The metrics address could not be bound.
    #[error("metrics.listen_addr: {0}")]
    MetricsListener(std::io::Error),
}

/// The names of the services this server offers, as health checks know them.
pub const SERVICE_NAMES: [&str; 2] = [
    homecare_proto::appointments::v1::appointment_service_server::SERVICE_NAME,
    homecare_proto::patients::v1::patient_service_server::SERVICE_NAME,
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
    Ok(Verifier::load(&config.auth, dev_key.as_ref(), http)
        .await?
        .with_identity_rules(config.identity_rules()))
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
            http.clone(),
            std::time::Duration::from_secs(config.auth.jwks_refresh_seconds.max(1)),
        )
    });
    let authenticate = Authenticate(verifier);
    let db = database::connect(&config).await?;
    database::migrate(&db).await?;
    let background = database::connect_background(&config, &db).await?;
    let metrics_listener = match config.metrics.listen_addr {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .map_err(ServerError::MetricsListener)?,
        ),
        None => None,
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    // v1 for current tools, v1alpha for older grpcurl builds.
    let reflection_v1 = reflection_builder().build_v1()?;
    let reflection_v1alpha = reflection_builder().build_v1alpha()?;

    let stopping_tasks = Shutdown::new();
    // One process alone on SQLite; on PostgreSQL, kept answers wait for the LISTEN
    // connection that tells of other processes' changes.
    let coherence = if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        Coherence::faulted(Fault::NotListening)
    } else {
        Coherence::trusted()
    };
    let sample_every = std::time::Duration::from_secs(config.metrics.sample_seconds.max(1));
    let context = Context {
        coherence: coherence.clone(),
        actors: Arc::new(
            Actors::new(
                db.clone(),
                TermsGate::with_capacity(config.terms.policy()?, config.read_cache.citizens),
                Arc::new(VisitCareUnits::new(db.clone())),
                clock.clone(),
            )
            .with_identity_rules(config.identity_rules())
            .with_directory_capacity(config.read_cache.citizens)
            .with_kept_proxies(Arc::new(KeptProxies::new(
                config.read_cache.proxies_megabytes * 1024 * 1024,
                coherence.clone(),
            ))),
        ),
        read_log: ReadLog::start(db.clone(), background.clone()),
        db: db.clone(),
        background_db: background.clone(),
        clock,
        shutdown: stopping_tasks.clone(),
        http,
        time_zone: config.time_zone()?,
        data_dir: config.data_dir.clone(),
        sample_every,
    };
    let mut parts = Parts::new(authenticate.into_gate());
    for capability in capabilities::all(&config) {
        let name = capability.name();
        capability.build(&context, &mut parts)?;
        tracing::debug!(capability = name, "built");
    }
    parts.task(
        "database pool metrics",
        metrics::sample_pools(
            [("calls", db.clone()), ("background", background.clone())],
            sample_every,
            stopping_tasks.clone(),
        ),
    );
    if let Some(listener) = metrics_listener {
        tracing::info!(address = ?listener.local_addr().ok(), "serving /metrics");
        parts.task(
            "metrics endpoint",
            metrics::serve(listener, stopping_tasks.clone()),
        );
    }
    let signal_tasks = signals::start(
        &background,
        &config.effective_database_url(),
        config.database_schema.as_deref(),
        parts.topics(),
        &coherence,
        &stopping_tasks,
    );
    let service_names = parts.service_names().to_vec();
    let accept_http1 = parts.has_http();
    let (routes, tasks) = parts.into_routes();

    // SERVING only now: migrations ran, the workers started and the services are built.
    for name in &service_names {
        health
            .set_service_status(*name, ServingStatus::Serving)
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
        .accept_http1(accept_http1)
        .layer(metrics::RpcMetricsLayer::new())
        .add_routes(routes)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            tracing::info!("shutting down: finishing calls in flight");
            // Change streams end (clients resume elsewhere); the workers finish their batch.
            shutdown_tasks.trigger();
            for name in service_names {
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
    for (name, task) in tasks {
        if tokio::time::timeout(grace, task).await.is_err() {
            tracing::warn!(task = name, "did not stop in time; its leases will expire");
        }
    }
    db.close().await?;
    background.close().await?;
    tracing::info!("stopped");
    Ok(())
}

fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(homecare_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}
