//! Metrics for operators, in Prometheus text format on a plain HTTP `/metrics` (its own port,
//! `metrics.listen_addr`): every RPC's count and latency (one tower layer), each outbox's
//! backlog, the caches, the database pool. Labels carry only names this service chose: a
//! method path that is not one of ours is counted as `unknown`, so a caller cannot grow the
//! label set, and no identity number or free text is ever a label.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use homecare_core::shutdown::Shutdown;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use prost::Message as _;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

/// RPCs answered, by service, method and gRPC status code name.
pub const RPC_REQUESTS: &str = "homecare_rpc_requests_total";
/// Seconds from an RPC's arrival to its response headers, by service and method.
pub const RPC_SECONDS: &str = "homecare_rpc_duration_seconds";
/// Database connections of the pool, by state (`in_use`, `idle`).
pub const DB_CONNECTIONS: &str = "homecare_db_pool_connections";

/// The process's recorder, installed on first use; every server in the process (tests start
/// several) records into it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ],
            )
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        metrics::describe_counter!(RPC_REQUESTS, "RPCs answered, by method and status code");
        metrics::describe_histogram!(
            RPC_SECONDS,
            metrics::Unit::Seconds,
            "Time from an RPC's arrival to its response headers"
        );
        metrics::describe_gauge!(DB_CONNECTIONS, "Database pool connections, by state");
        handle
    })
}

/// Serves `/metrics` on `listener` until `shutdown`.
pub fn serve(listener: TcpListener, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
    let handle = handle().clone();
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                handle.run_upkeep();
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "the metrics endpoint stopped");
        }
    })
}

/// Samples the named database pools every `every` until `shutdown`, and folds the latencies
/// recorded since into their histograms' buckets (the recorder keeps each sample until then:
/// without this, memory grows with every call until the next scrape).
pub fn sample_pools<const N: usize>(
    pools: [(&'static str, DatabaseConnection); N],
    every: Duration,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for (name, db) in &pools {
                let (size, idle) = match db.get_database_backend() {
                    sea_orm::DatabaseBackend::Postgres => {
                        let pool = db.get_postgres_connection_pool();
                        (pool.size(), pool.num_idle())
                    }
                    _ => {
                        let pool = db.get_sqlite_connection_pool();
                        (pool.size(), pool.num_idle())
                    }
                };
                let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
                metrics::gauge!(DB_CONNECTIONS, "pool" => *name, "state" => "in_use")
                    .set(f64::from(size - idle));
                metrics::gauge!(DB_CONNECTIONS, "pool" => *name, "state" => "idle")
                    .set(f64::from(idle));
            }
            handle().run_upkeep();
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.wait() => break,
            }
        }
    })
}

/// One method's metrics: its latency histogram, and a counter per status code, registered
/// once so that a call costs no allocation and no registry lookup.
struct MethodMetrics {
    service: &'static str,
    method: &'static str,
    seconds: metrics::Histogram,
    by_code: [OnceLock<metrics::Counter>; CODES],
}

/// gRPC status codes 0..=16.
const CODES: usize = 17;

impl MethodMetrics {
    fn new(service: &'static str, method: &'static str) -> Self {
        Self {
            service,
            method,
            seconds: metrics::histogram!(RPC_SECONDS, "service" => service, "method" => method),
            by_code: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    fn answered(&self, code: tonic::Code, elapsed: Duration) {
        self.seconds.record(elapsed.as_secs_f64());
        let index = (code as usize).min(CODES - 1);
        self.by_code[index]
            .get_or_init(|| {
                metrics::counter!(
                    RPC_REQUESTS,
                    "service" => self.service,
                    "method" => self.method,
                    "code" => code_name(code)
                )
            })
            .increment(1);
    }
}

/// Every RPC this server offers, by path (`/package.Service/Method`), and one entry for any
/// other path.
struct KnownMethods {
    by_path: HashMap<String, usize>,
    /// By the index in `by_path`; the last is every other path's.
    methods: Vec<MethodMetrics>,
}

impl KnownMethods {
    fn index_of(&self, path: &str) -> usize {
        self.by_path
            .get(path)
            .copied()
            .unwrap_or(self.methods.len() - 1)
    }
}

/// The RPCs of the descriptor sets. Their names are leaked once: a fixed set of a few dozen
/// short strings, labels for the life of the process.
fn known_methods() -> KnownMethods {
    let mut by_path = HashMap::new();
    let mut methods = Vec::new();
    for set in [
        homecare_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ] {
        let Ok(files) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in files.file {
            let package = file.package();
            for service in &file.service {
                let service_name: &'static str =
                    Box::leak(format!("{package}.{}", service.name()).into_boxed_str());
                for method in &service.method {
                    let method_name: &'static str =
                        Box::leak(method.name().to_owned().into_boxed_str());
                    by_path.insert(format!("/{service_name}/{method_name}"), methods.len());
                    methods.push(MethodMetrics::new(service_name, method_name));
                }
            }
        }
    }
    methods.push(MethodMetrics::new("unknown", "unknown"));
    KnownMethods { by_path, methods }
}

/// Counts and times every RPC.
#[derive(Clone)]
pub struct RpcMetricsLayer {
    known: Arc<KnownMethods>,
}

impl RpcMetricsLayer {
    /// A layer that knows this server's methods.
    pub fn new() -> Self {
        handle();
        Self {
            known: Arc::new(known_methods()),
        }
    }
}

impl Default for RpcMetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            known: self.known.clone(),
        }
    }
}

/// The service [`RpcMetricsLayer`] wraps around the server's.
#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    known: Arc<KnownMethods>,
}

/// The name of a gRPC status code, as the label shows it.
fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let known = self.known.clone();
        let method = known.index_of(request.uri().path());
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            // An error answered before any message carries its status in the headers
            // (trailers-only); a success (and an error in the middle of a stream) carries it
            // in the trailers, which this layer does not wait for: counted as OK.
            let code = match &response {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from),
                Err(_) => tonic::Code::Unavailable,
            };
            known.methods[method].answered(code, started.elapsed());
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_ours_is_known_and_nothing_else() {
        let known = known_methods();
        let list = &known.methods
            [known.index_of("/homecare.appointments.v1.AppointmentService/ListAppointments")];
        assert_eq!(list.service, "homecare.appointments.v1.AppointmentService");
        assert_eq!(list.method, "ListAppointments");
        let grant =
            &known.methods[known.index_of("/homecare.patients.v1.PatientService/GrantProxy")];
        assert_eq!(grant.method, "GrantProxy");
        assert_eq!(
            known.methods[known.index_of("/grpc.health.v1.Health/Check")].method,
            "Check"
        );
        let probe = &known.methods
            [known.index_of("/homecare.appointments.v1.AppointmentService/15034012366")];
        assert_eq!((probe.service, probe.method), ("unknown", "unknown"));
    }
}
