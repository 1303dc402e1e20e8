//! The `homecare` binary as a user runs it: first start on the embedded default, a dev token,
//! a call, graceful shutdown on SIGTERM, and a restart that keeps the data.

use std::path::Path;
use std::process::{Command, Stdio};

use std::time::Duration;
use tokio::process::Child;

use homecare_proto::appointments::v1::appointment_service_client::AppointmentServiceClient;
use homecare_proto::appointments::v1::{
    AppointmentStatus, ListAppointmentsRequest, ServiceType, UpsertAppointmentRequest,
};
use homecare_proto::patients::v1::patient_service_client::PatientServiceClient;
use homecare_proto::patients::v1::{AcceptTermsRequest, ListRepresentedPatientsRequest};
use tonic::transport::Channel;

const BINARY: &str = env!("CARGO_BIN_EXE_homecare");
const PID: &str = "15034012366";

fn homecare(dir: &Path, port: u16, args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    configure(&mut command, dir, port, args);
    command
}

/// The server as a child process the async tests can wait on without blocking the runtime
/// that drives their own gRPC connections.
fn spawn_server(dir: &Path, port: u16, stderr: Stdio) -> Child {
    spawn_server_with(dir, port, stderr, &[])
}

/// [`spawn_server`] with extra environment variables.
fn spawn_server_with(dir: &Path, port: u16, stderr: Stdio, env: &[(&str, String)]) -> Child {
    let mut command = tokio::process::Command::new(BINARY);
    // Citizens here accept the terms and go on at once; the one-day wait is tested to the
    // second with a manual clock in the end-to-end tests.
    command.env("HOMECARE_TERMS__ACTIVATION_DELAY_HOURS", "0");
    command.envs(env.iter().map(|(key, value)| (*key, value.as_str())));
    command
        .args(["serve"])
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("HOMECARE_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("HOMECARE_LOG__FORMAT", "json")
        // Debug level, so the privacy test sees everything the server could log.
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true);
    command.spawn().expect("serve starts")
}

fn configure(command: &mut Command, dir: &Path, port: u16, args: &[&str]) {
    command
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("HOMECARE_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("HOMECARE_LOG__FORMAT", "json");
}

fn token(dir: &Path, args: &[&str]) -> String {
    let output = homecare(dir, 0, &[&["dev-token"], args].concat())
        .output()
        .expect("dev-token runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// Connects once the server is ready (its health check says SERVING: the socket is bound
/// before the database is opened and migrated), trying for at most ten seconds.
async fn connect(port: u16, server: &mut Child) -> Channel {
    use tonic_health::pb::health_check_response::ServingStatus;
    let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}")).expect("uri");
    for _ in 0..100 {
        if let Ok(channel) = endpoint.connect().await {
            let serving = tonic_health::pb::health_client::HealthClient::new(channel.clone())
                .check(tonic_health::pb::HealthCheckRequest {
                    service: homecare_server::SERVICE_NAMES[0].into(),
                })
                .await
                .is_ok_and(|response| response.into_inner().status() == ServingStatus::Serving);
            if serving {
                return channel;
            }
        }
        assert!(
            server.try_wait().expect("status").is_none(),
            "server exited early"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server did not listen within ten seconds");
}

fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Accepts the terms of use in force ("1" by default) as `citizen`.
async fn accept_terms(channel: Channel, citizen: &str) {
    PatientServiceClient::new(channel)
        .accept_terms(authorized(
            citizen,
            AcceptTermsRequest {
                terms_version: "1".into(),
            },
        ))
        .await
        .expect("terms accepted");
}

async fn terminate(server: &mut Child) -> std::process::ExitStatus {
    let pid = server.id().expect("running");
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    server.wait().await.expect("server exits")
}

async fn list_own_visits(channel: Channel, citizen: &str) -> Vec<String> {
    accept_terms(channel.clone(), citizen).await;
    let patients = PatientServiceClient::new(channel.clone())
        .list_represented_patients(authorized(citizen, ListRepresentedPatientsRequest {}))
        .await
        .expect("represented patients")
        .into_inner()
        .patients;
    let Some(me) = patients.first() else {
        return Vec::new();
    };
    AppointmentServiceClient::new(channel)
        .list_appointments(authorized(
            citizen,
            ListAppointmentsRequest {
                patient_id: me.patient_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .appointments
        .into_iter()
        .map(|appointment| appointment.epj_id)
        .collect()
}

#[tokio::test]
async fn first_start_creates_its_database_serves_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut server = spawn_server(dir.path(), port, Stdio::null());
    let channel = connect(port, &mut server).await;
    assert!(dir.path().join(".homecare/homecare.db").exists());

    let epj = token(dir.path(), &["epj"]);
    let citizen = token(dir.path(), &["citizen", PID]);
    AppointmentServiceClient::new(channel.clone())
        .upsert_appointment(authorized(&epj, visit_request("visit-1")))
        .await
        .expect("upsert");
    let before_terms = PatientServiceClient::new(channel.clone())
        .list_represented_patients(authorized(&citizen, ListRepresentedPatientsRequest {}))
        .await
        .expect_err("the terms come first");
    assert_eq!(before_terms.code(), tonic::Code::FailedPrecondition);
    assert_eq!(list_own_visits(channel, &citizen).await, ["visit-1"]);

    let status = terminate(&mut server).await;
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    // A restart finds the same file, already migrated, with the visit in it.
    let port = free_port();
    let mut restarted = spawn_server(dir.path(), port, Stdio::null());
    let channel = connect(port, &mut restarted).await;
    assert_eq!(list_own_visits(channel, &citizen).await, ["visit-1"]);
    assert!(terminate(&mut restarted).await.success());
}

#[tokio::test]
async fn migrate_runs_alone_and_dev_token_refuses_a_wrong_identity_number() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = homecare(dir.path(), 0, &["migrate"])
        .output()
        .expect("migrate runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join(".homecare/homecare.db").exists());

    // An operator's mistake reads as the error and its causes, with no backtrace even when
    // one is asked for (backtraces are for panics).
    let refused = homecare(dir.path(), 0, &["dev-token", "citizen", "15034012367"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("dev-token runs");
    assert!(
        !refused.status.success(),
        "a wrong identity number is refused"
    );
    let said = String::from_utf8_lossy(&refused.stderr);
    // Beside the log's JSON lines.
    let lines: Vec<&str> = said.lines().filter(|line| !line.starts_with('{')).collect();
    assert_eq!(lines.len(), 2, "{said}");
    assert_eq!(lines[0], "error: pid");
    assert!(lines[1].starts_with("  caused by: "), "{said}");
    assert!(!said.contains("backtrace"), "{said}");
}

#[tokio::test]
async fn server_logs_never_contain_identity_numbers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut server = spawn_server(dir.path(), port, Stdio::from(log));
    let channel = connect(port, &mut server).await;
    let citizen = token(dir.path(), &["citizen", PID]);
    let epj = token(dir.path(), &["epj"]);
    let mut client = AppointmentServiceClient::new(channel.clone());
    let bad = client
        .upsert_appointment(authorized(
            &epj,
            UpsertAppointmentRequest {
                epj_id: "v".into(),
                patient_national_id: "15034012367".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("invalid");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    list_own_visits(channel, &citizen).await;
    assert!(terminate(&mut server).await.success());

    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(log.contains("serving gRPC"), "the log was captured");
    assert!(
        !log.contains("1503401236"),
        "an identity number reached the log"
    );
    assert!(
        !log.contains(&citizen),
        "a token (which carries the pid) reached the log"
    );
}

/// The visit the EPJ plans in these tests, three days ahead of the real clock.
fn visit_request(epj_id: &str) -> UpsertAppointmentRequest {
    let start = chrono::Utc::now() + chrono::Duration::days(3);
    UpsertAppointmentRequest {
        epj_id: epj_id.into(),
        patient_national_id: PID.into(),
        care_unit_id: "unit-a".into(),
        window_start: Some(prost_types::Timestamp {
            seconds: start.timestamp(),
            nanos: 0,
        }),
        window_end: Some(prost_types::Timestamp {
            seconds: start.timestamp() + 3600,
            nanos: 0,
        }),
        service_type: ServiceType::HomeNursing.into(),
        status: AppointmentStatus::Planned.into(),
        citizen_cancellable: true,
        epj_version_id: String::new(),
    }
}

#[tokio::test]
async fn a_cancellation_survives_a_kill_before_it_reached_the_epj() {
    use homecare_proto::appointments::v1::{
        AppointmentEventType, CancelAppointmentRequest, WatchCareUnitChangesRequest,
    };
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const REASON: &str = "Hos tannlegen hele dagen";
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    // First life: no EPJ is reachable (none configured), so the cancellation waits.
    let port = free_port();
    let mut server = spawn_server(dir.path(), port, Stdio::from(log.try_clone().unwrap()));
    let channel = connect(port, &mut server).await;
    let citizen = token(dir.path(), &["citizen", PID]);
    let nurse = token(
        dir.path(),
        &["staff", "--subject", "nurse-1", "--unit", "unit-a"],
    );
    let epj_token = token(dir.path(), &["epj"]);
    let mut client = AppointmentServiceClient::new(channel.clone());
    let visit = client
        .upsert_appointment(authorized(&epj_token, visit_request("visit-9")))
        .await
        .expect("upsert")
        .into_inner()
        .appointment
        .unwrap();
    accept_terms(channel.clone(), &citizen).await;
    let mut stream = client
        .watch_care_unit_changes(authorized(
            &nurse,
            WatchCareUnitChangesRequest {
                care_unit_id: "unit-a".into(),
                resume_token: String::new(),
            },
        ))
        .await
        .expect("watch")
        .into_inner();
    client
        .cancel_appointment(authorized(
            &citizen,
            CancelAppointmentRequest {
                patient_id: visit.patient_id.clone(),
                appointment_id: visit.id.clone(),
                reason: REASON.into(),
                request_id: "req-1".into(),
            },
        ))
        .await
        .expect("cancel accepted");
    let requested = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("in time")
        .expect("healthy")
        .expect("open");
    assert_eq!(
        requested.event.as_ref().unwrap().r#type(),
        AppointmentEventType::CancellationRequested
    );
    drop(stream);
    server.kill().await.expect("SIGKILL");

    // Second life: the EPJ is up.
    let epj = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "resourceType": "Appointment", "id": "visit-9",
            "meta": {"versionId": "1"}, "status": "booked",
        })))
        .mount(&epj)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&epj)
        .await;
    let port = free_port();
    let mut restarted = spawn_server_with(
        dir.path(),
        port,
        Stdio::from(log),
        &[("HOMECARE_EPJ__BASE_URL", format!("{}/fhir", epj.uri()))],
    );
    let channel = connect(port, &mut restarted).await;
    // Resuming after the request's event shows the confirmation, however early it came.
    let mut stream = AppointmentServiceClient::new(channel)
        .watch_care_unit_changes(authorized(
            &nurse,
            WatchCareUnitChangesRequest {
                care_unit_id: "unit-a".into(),
                resume_token: requested.resume_token.clone(),
            },
        ))
        .await
        .expect("watch")
        .into_inner();
    let confirmed = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("delivered in time")
        .expect("healthy")
        .expect("open");
    assert_eq!(
        confirmed.event.as_ref().unwrap().r#type(),
        AppointmentEventType::CancellationConfirmed
    );
    drop(stream);
    assert!(terminate(&mut restarted).await.success());
    epj.verify().await;

    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(
        log.contains("outbox delivery attempt"),
        "the log was captured"
    );
    assert!(
        !log.contains("Hos tannlegen"),
        "the patient's words reached the log"
    );
    assert!(
        !log.contains("1503401236"),
        "an identity number reached the log"
    );
}

/// Where a spawned server keeps its data: the SQLite file in its directory, or a fresh
/// schema of the PostgreSQL test database.
struct Storage {
    config: homecare_server::config::Config,
}

impl Storage {
    async fn new(dir: &Path, postgres_url: Option<&str>) -> Storage {
        use sea_orm::ConnectionTrait as _;
        let mut config = homecare_server::config::Config {
            data_dir: dir.join(".homecare"),
            ..Default::default()
        };
        if let Some(url) = postgres_url {
            let schema = format!("hc_bin_{}", uuid::Uuid::new_v4().simple());
            let admin = sea_orm::Database::connect(url).await.expect("PostgreSQL");
            admin
                .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
                .await
                .expect("schema");
            config.database_url = url.to_owned();
            config.database_schema = Some(schema);
        }
        Storage { config }
    }

    /// The environment that points a server at this storage.
    fn env(&self) -> Vec<(&'static str, String)> {
        match &self.config.database_schema {
            None => Vec::new(),
            Some(schema) => vec![
                ("HOMECARE_DATABASE_URL", self.config.database_url.clone()),
                ("HOMECARE_DATABASE_SCHEMA", schema.clone()),
                ("HOMECARE_AUTH__DEV_KEYS", "true".to_owned()),
            ],
        }
    }

    /// The number of outbox rows that satisfy `condition`.
    async fn outbox_rows(&self, condition: &str) -> i64 {
        use sea_orm::ConnectionTrait as _;
        let db = homecare_server::database::connect(&self.config)
            .await
            .expect("open the database");
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM epj_outbox WHERE {condition}"),
            ))
            .await
            .expect("count")
            .expect("a row");
        let count = row.try_get::<i64>("", "n").expect("count");
        db.close().await.expect("close");
        count
    }

    async fn drop(self) {
        use sea_orm::ConnectionTrait as _;
        if let Some(schema) = &self.config.database_schema {
            let admin = sea_orm::Database::connect(self.config.database_url.as_str())
                .await
                .expect("PostgreSQL");
            admin
                .execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .expect("drop schema");
        }
    }
}

/// Polls `probe` every 50 ms until it is true; false if `within` passes first.
async fn eventually<F: std::future::Future<Output = bool>>(
    within: Duration,
    mut probe: impl FnMut() -> F,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// After a crash, deliveries that are due go out as soon as they are due, although the first
/// row in line is still leased by the dead process: the worker wakes at the earliest time any
/// row can be claimed, not at that row's lease (nor after a whole idle poll).
#[tokio::test]
async fn after_a_kill_due_deliveries_do_not_wait_for_a_dead_process_lease_on_sqlite() {
    due_deliveries_after_a_kill(None).await;
}

/// The same on PostgreSQL, when `HOMECARE_TEST_DATABASE_URL` names one (CI sets it).
#[tokio::test]
async fn after_a_kill_due_deliveries_do_not_wait_for_a_dead_process_lease_on_postgres() {
    match std::env::var("HOMECARE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => due_deliveries_after_a_kill(Some(&url)).await,
        _ => eprintln!("skipped: set HOMECARE_TEST_DATABASE_URL to run on PostgreSQL"),
    }
}

async fn due_deliveries_after_a_kill(postgres_url: Option<&str>) {
    use homecare_proto::appointments::v1::CancelAppointmentRequest;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const QUICK: usize = 39;
    let epj = MockServer::start().await;
    // The EPJ is down: it answers 503 at once, except for one visit whose request hangs, so
    // that one is in flight, leased, when the server dies.
    Mock::given(method("GET"))
        .and(path("/fhir/Appointment/v-slow"))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_secs(600)))
        .with_priority(1)
        .mount(&epj)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&epj)
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = Storage::new(dir.path(), postgres_url).await;
    let settings = |epj: &MockServer| {
        let mut env = storage.env();
        env.extend([
            ("HOMECARE_EPJ__BASE_URL", format!("{}/fhir", epj.uri())),
            // First retry 5-10 s after a failure; a lease of 2 x 300 + 30 s; sleeping at
            // most a minute when nothing seems due.
            ("HOMECARE_EPJ__RETRY_BASE_MILLIS", "10000".to_owned()),
            ("HOMECARE_EPJ__TIMEOUT_SECONDS", "300".to_owned()),
            ("HOMECARE_EPJ__IDLE_POLL_SECONDS", "60".to_owned()),
        ]);
        env
    };
    let port = free_port();
    let mut server = spawn_server_with(dir.path(), port, Stdio::null(), &settings(&epj));
    let channel = connect(port, &mut server).await;
    let (citizen, epj_token) = if postgres_url.is_some() {
        // dev-token refuses to mint for PostgreSQL unless told; the server was told.
        let minter = homecare_server::dev_keys::TokenMinter::new(
            homecare_server::dev_keys::DevKey::load(&storage.config.dev_key_path()).unwrap(),
            &storage.config.auth,
        );
        let ttl = chrono::Duration::minutes(10);
        (
            minter.citizen(PID, ttl).unwrap(),
            minter
                .staff(
                    "epj",
                    &[homecare_core::caller::EPJ_INTEGRATION_ROLE],
                    &[],
                    ttl,
                )
                .unwrap(),
        )
    } else {
        (
            token(dir.path(), &["citizen", PID]),
            token(dir.path(), &["epj"]),
        )
    };
    accept_terms(channel.clone(), &citizen).await;
    let mut client = AppointmentServiceClient::new(channel.clone());
    let mut cancel = async |epj_id: String| {
        let visit = client
            .upsert_appointment(authorized(&epj_token, visit_request(&epj_id)))
            .await
            .expect("upsert")
            .into_inner()
            .appointment
            .unwrap();
        client
            .cancel_appointment(authorized(
                &citizen,
                CancelAppointmentRequest {
                    patient_id: visit.patient_id,
                    appointment_id: visit.id,
                    reason: String::new(),
                    request_id: format!("req-{epj_id}"),
                },
            ))
            .await
            .expect("cancel accepted");
    };
    for i in 0..QUICK {
        cancel(format!("v-{i}")).await;
    }
    // Each of them failed once and waits for its retry.
    assert!(
        eventually(Duration::from_secs(10), async || storage
            .outbox_rows("attempts >= 1 AND lease_until IS NULL")
            .await
            == QUICK as i64)
        .await,
        "the first attempts were recorded"
    );
    cancel("v-slow".to_owned()).await;
    let slow_in_flight = async || {
        epj.received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .any(|request| request.url.path().ends_with("/v-slow"))
    };
    assert!(eventually(Duration::from_secs(10), slow_in_flight).await);
    server.kill().await.expect("SIGKILL");

    // The EPJ is back, and the server restarts at once.
    epj.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "resourceType": "Appointment", "id": "any",
            "meta": {"versionId": "1"}, "status": "booked",
        })))
        .mount(&epj)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&epj)
        .await;
    let restarted_at = std::time::Instant::now();
    let port = free_port();
    let mut restarted = spawn_server_with(dir.path(), port, Stdio::null(), &settings(&epj));
    connect(port, &mut restarted).await;
    let delivered = async || {
        epj.received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|request| request.method.as_str() == "PUT")
            .count()
    };
    // Due within ten seconds of the failures; an idle poll would be a minute.
    assert!(
        eventually(Duration::from_secs(30), async || delivered().await == QUICK).await,
        "{} of {QUICK} delivered {:?} after the restart",
        delivered().await,
        restarted_at.elapsed()
    );
    // Each delivery is recorded after the EPJ answered it: wait for the records, or a row
    // whose answer just arrived still holds its lease here.
    assert!(
        eventually(Duration::from_secs(10), async || storage
            .outbox_rows("state = 'delivered'")
            .await
            == QUICK as i64)
        .await,
        "the deliveries were recorded"
    );
    // The row in flight at the crash waits for its lease: it is not sent twice meanwhile.
    assert_eq!(
        storage
            .outbox_rows("state = 'pending' AND lease_until IS NOT NULL")
            .await,
        1
    );
    assert!(terminate(&mut restarted).await.success());
    storage.drop().await;
}
