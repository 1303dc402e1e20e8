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

    let refused = homecare(dir.path(), 0, &["dev-token", "citizen", "15034012367"])
        .output()
        .expect("dev-token runs");
    assert!(
        !refused.status.success(),
        "a wrong identity number is refused"
    );
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
    assert!(log.contains("EPJ delivery attempt"), "the log was captured");
    assert!(
        !log.contains("Hos tannlegen"),
        "the patient's words reached the log"
    );
    assert!(
        !log.contains("1503401236"),
        "an identity number reached the log"
    );
}
