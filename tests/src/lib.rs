//! The end-to-end harness: starts the real server on a free loopback port, on SQLite or on
//! PostgreSQL, and hands tests gRPC clients and tokens.
//!
//! Every test gets its own database: a fresh SQLite file, or a fresh schema in the PostgreSQL
//! database named by `HOMECARE_TEST_DATABASE_URL` (which `.ci/run` sets).

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use homecare_core::clock::ManualClock;
use homecare_proto::appointments::v1 as appointments;
use homecare_proto::appointments::v1::appointment_service_client::AppointmentServiceClient;
use homecare_proto::patients::v1::patient_service_client::PatientServiceClient;
use homecare_server::config::{Config, LogFormat};
use homecare_server::dev_keys::{DevKey, TokenMinter};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tokio::sync::oneshot;
use tonic::Request;
use tonic::transport::Channel;

pub mod epj;
pub mod messages;
pub mod notices;

/// The environment variable naming the PostgreSQL database for the PostgreSQL runs.
pub const POSTGRES_URL_VAR: &str = "HOMECARE_TEST_DATABASE_URL";

/// Identity numbers with valid check digits, for test patients and relatives.
pub mod people {
    /// A patient born 1940.
    pub const ASTRID: &str = "15034012366";
    /// Another patient, born 1938.
    pub const BJARNE: &str = "01013812388";
    /// A citizen the service has never heard of.
    pub const STRANGER: &str = "24058812338";
    /// A relative, born 1968.
    pub const KARI: &str = "12046823441";
    /// Another relative, born 1971.
    pub const OLA: &str = "30097134576";
    /// A relative appointed guardian, born 1980.
    pub const GUARDIAN: &str = "14028045647";
    /// A 17-year-old (born 2009-06-10).
    pub const TEEN: &str = "10060951220";
    /// Turns 18 on 2026-12-02, the day after the test clock starts.
    pub const ALMOST_ADULT: &str = "02120861258";
    /// A patient aged 15 (born 2011-03-03).
    pub const YOUNG_PATIENT: &str = "03031171384";
    /// Someone who has not accepted the terms of use when a test starts.
    pub const NEWCOMER: &str = "21075512373";

    /// Everyone but [`NEWCOMER`]: they have accepted the terms of use, and can use the
    /// service, when a test server starts.
    pub const ACCEPTED_TERMS: [&str; 9] = [
        ASTRID,
        BJARNE,
        STRANGER,
        KARI,
        OLA,
        GUARDIAN,
        TEEN,
        ALMOST_ADULT,
        YOUNG_PATIENT,
    ];
}

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh schema in this PostgreSQL database.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL, when the test database URL is set.
    pub fn postgres() -> Option<Backend> {
        std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|url| !url.is_empty())
            .map(Backend::Postgres)
    }
}

/// Runs each named `async fn(Backend)` as one test on SQLite and one on PostgreSQL.
///
/// The PostgreSQL test says so and returns when `HOMECARE_TEST_DATABASE_URL` is unset, so the
/// suite runs on a machine without PostgreSQL; CI sets it.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    match $crate::Backend::postgres() {
                        Some(backend) => super::$name(backend).await,
                        None => eprintln!(
                            "skipped: set {} to run on PostgreSQL",
                            $crate::POSTGRES_URL_VAR
                        ),
                    }
                }
            )+
        }
    };
}

/// The instant the test clock starts at: a Tuesday morning in Oslo.
pub fn test_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 7, 0, 0).unwrap()
}

/// A running server and what a test needs to talk to it.
pub struct TestServer {
    /// Where it listens.
    pub address: SocketAddr,
    /// A channel to it.
    pub channel: Channel,
    /// Mints tokens the server accepts.
    pub tokens: TokenMinter,
    /// The server's clock.
    pub clock: Arc<ManualClock>,
    /// A direct connection to the server's database, for asserting what was stored.
    pub db: DatabaseConnection,
    /// The configuration it runs with.
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), homecare_server::ServerError>>>,
    postgres_schema: Option<(String, String)>,
    _data_dir: Arc<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server on `backend` with the default configuration.
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server on `backend` after `adjust` changed its configuration.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let server = Self::start_bare(backend, adjust).await;
        // The test people accepted the terms one waiting period ago, through the real RPC.
        let delay = Duration::hours(i64::from(server.config.terms.activation_delay_hours));
        server.clock.set(test_now() - delay);
        for pid in people::ACCEPTED_TERMS {
            server.accept_terms(pid).await.expect("accept the terms");
        }
        server.clock.set(test_now());
        server
    }

    /// Like [`TestServer::start_with`], without the test people's acceptance of the terms:
    /// for a server whose tokens are not the development key's.
    pub async fn start_bare(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            data_dir: data_dir.path().to_path_buf(),
            ..Config::default()
        };
        config.log.format = LogFormat::Pretty;
        let postgres_schema = match &backend {
            Backend::Sqlite => None,
            Backend::Postgres(url) => {
                let schema = format!("hc_test_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(url.as_str())
                    .await
                    .expect("connect to PostgreSQL");
                admin
                    .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
                    .await
                    .expect("create test schema");
                admin.close().await.expect("close");
                config.database_url = url.clone();
                config.database_schema = Some(schema.clone());
                Some((url.clone(), schema))
            }
        };
        // Development tokens are what tests mint; on PostgreSQL they are accepted only when
        // asked for explicitly.
        config.auth.dev_keys = Some(true);
        adjust(&mut config);
        let mut server = Self::serve(config, Arc::new(data_dir), test_now()).await;
        server.postgres_schema = postgres_schema;
        server
    }

    /// A second server process on this one's database (and, on SQLite, its file), as when a
    /// municipality runs several replicas. Its configuration is this one's after `adjust`.
    pub async fn start_beside(&self, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = self.config.clone();
        adjust(&mut config);
        Self::serve(config, self._data_dir.clone(), test_now()).await
    }

    /// Serves with a clock that starts at `now`.
    async fn serve(
        config: Config,
        data_dir: Arc<tempfile::TempDir>,
        now: DateTime<Utc>,
    ) -> TestServer {
        if std::env::var_os("TEST_LOG").is_some() {
            homecare_server::telemetry::init(&config.log);
        }

        let clock = Arc::new(ManualClock::new(now));
        let key = DevKey::load_or_create(&config.dev_key_path()).expect("dev key");
        let tokens = TokenMinter::new(key, &config.auth);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(homecare_server::run(
            config.clone(),
            listener,
            clock.clone(),
            async {
                let _ = stop.await;
            },
        ));

        let channel = Channel::from_shared(format!("http://{address}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        wait_until_serving(channel.clone()).await;
        let db = homecare_server::database::connect(&config)
            .await
            .expect("db");

        TestServer {
            address,
            channel,
            tokens,
            clock,
            db,
            config,
            shutdown: Some(shutdown),
            task: Some(task),
            postgres_schema: None,
            _data_dir: data_dir,
        }
    }

    /// Accepts the terms in force as the citizen `pid`.
    pub async fn accept_terms(
        &self,
        pid: &str,
    ) -> Result<homecare_proto::patients::v1::TermsStatus, tonic::Status> {
        self.patients()
            .accept_terms(authorized(
                &self.citizen_token(pid),
                homecare_proto::patients::v1::AcceptTermsRequest {
                    terms_version: self.config.terms.version.clone(),
                },
            ))
            .await
            .map(|response| response.into_inner().terms.expect("terms"))
    }

    /// The patients the citizen `pid` may act for.
    pub async fn represented(
        &self,
        pid: &str,
    ) -> Result<Vec<homecare_proto::patients::v1::RepresentedPatient>, tonic::Status> {
        self.patients()
            .list_represented_patients(authorized(
                &self.citizen_token(pid),
                homecare_proto::patients::v1::ListRepresentedPatientsRequest {},
            ))
            .await
            .map(|response| response.into_inner().patients)
    }

    /// Grants `holder` a proxy from the patient `pid` (whose id is `patient_id`) with
    /// `scopes`, valid from now until ended.
    pub async fn grant(
        &self,
        pid: &str,
        patient_id: &str,
        holder: &str,
        scopes: &[homecare_proto::patients::v1::Scope],
    ) -> Result<homecare_proto::patients::v1::Proxy, tonic::Status> {
        self.grant_with(pid, grant_request(patient_id, holder, scopes))
            .await
    }

    /// Sends `request` as GrantProxy from the citizen `pid`.
    pub async fn grant_with(
        &self,
        pid: &str,
        request: homecare_proto::patients::v1::GrantProxyRequest,
    ) -> Result<homecare_proto::patients::v1::Proxy, tonic::Status> {
        self.patients()
            .grant_proxy(authorized(&self.citizen_token(pid), request))
            .await
            .map(|response| response.into_inner().proxy.expect("proxy"))
    }

    /// Stops the server gracefully and starts it again on the same database, with its
    /// configuration after `adjust` and its clock where it was: a restart.
    pub async fn restart(mut self, adjust: impl FnOnce(&mut Config)) -> TestServer {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        let mut config = self.config.clone();
        adjust(&mut config);
        // The clock goes on from where it was, from the first instant of the new process.
        let now = homecare_core::Clock::now(&*self.clock);
        let mut next = Self::serve(config, self._data_dir.clone(), now).await;
        next.postgres_schema = self.postgres_schema.take();
        next
    }

    /// Stops the server gracefully, checks it stopped cleanly, and drops the test schema.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        if let Some((url, schema)) = self.postgres_schema.take() {
            let admin = Database::connect(url.as_str()).await.expect("connect");
            admin
                .execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .expect("drop test schema");
        }
    }

    /// A client of the appointment service.
    pub fn appointments(&self) -> AppointmentServiceClient<Channel> {
        AppointmentServiceClient::new(self.channel.clone())
    }

    /// A client of the patient service.
    pub fn patients(&self) -> PatientServiceClient<Channel> {
        PatientServiceClient::new(self.channel.clone())
    }

    /// A token for the citizen with identity number `pid`.
    pub fn citizen_token(&self, pid: &str) -> String {
        self.tokens
            .citizen(pid, Duration::minutes(10))
            .expect("token")
    }

    /// A token for the EPJ integration.
    pub fn epj_token(&self) -> String {
        self.tokens
            .staff(
                "epj-system",
                &[homecare_core::caller::EPJ_INTEGRATION_ROLE],
                &[],
                Duration::minutes(10),
            )
            .expect("token")
    }

    /// A token for a nurse working in `units`.
    pub fn nurse_token(&self, subject: &str, units: &[&str]) -> String {
        self.tokens
            .staff(subject, &["nurse"], units, Duration::minutes(10))
            .expect("token")
    }

    /// The id the citizen `pid` uses for themself, from ListRepresentedPatients.
    pub async fn own_patient_id(&self, pid: &str) -> String {
        let patients = self
            .represented(pid)
            .await
            .expect("list represented patients");
        patients
            .into_iter()
            .find(|patient| patient.relation() == homecare_proto::patients::v1::Relation::Self_)
            .expect("the citizen is a known patient")
            .patient_id
    }

    /// Stores `request` as the EPJ and returns the id its patient uses for themself.
    pub async fn own_patient_id_after(
        &self,
        request: &appointments::UpsertAppointmentRequest,
    ) -> String {
        self.upsert(request.clone()).await;
        self.own_patient_id(&request.patient_national_id).await
    }

    /// Upserts a visit as the EPJ, returning the stored appointment.
    pub async fn upsert(
        &self,
        request: appointments::UpsertAppointmentRequest,
    ) -> appointments::UpsertAppointmentResponse {
        self.appointments()
            .upsert_appointment(authorized(&self.epj_token(), request))
            .await
            .expect("upsert")
            .into_inner()
    }

    /// Plans a visit of `pid` in `unit` as the EPJ, `hours_from_now` ahead; returns its id.
    pub async fn planned_visit(&self, epj_id: &str, pid: &str, unit: &str, hours: i64) -> String {
        self.upsert(visit(epj_id, pid, unit, hours))
            .await
            .appointment
            .expect("appointment")
            .id
    }

    /// Sends every one of `plans` as the EPJ at the same time, each on its own task; the
    /// answers in the order of `plans`.
    pub async fn upsert_all_at_once(
        &self,
        plans: Vec<appointments::UpsertAppointmentRequest>,
    ) -> Vec<Result<appointments::UpsertAppointmentResponse, tonic::Status>> {
        let mut calls = tokio::task::JoinSet::new();
        for (n, plan) in plans.into_iter().enumerate() {
            let mut client = self.appointments();
            let token = self.epj_token();
            calls.spawn(async move {
                let answer = client.upsert_appointment(authorized(&token, plan)).await;
                (n, answer.map(tonic::Response::into_inner))
            });
        }
        let mut answers = calls.join_all().await;
        answers.sort_by_key(|(n, _)| *n);
        answers.into_iter().map(|(_, answer)| answer).collect()
    }

    /// A visit's history as the citizen `pid` sees it, oldest first.
    pub async fn history_seen_by(
        &self,
        pid: &str,
        patient_id: &str,
        appointment_id: &str,
    ) -> Vec<appointments::AppointmentEvent> {
        self.appointments()
            .list_appointment_history(authorized(
                &self.citizen_token(pid),
                appointments::ListAppointmentHistoryRequest {
                    patient_id: patient_id.into(),
                    appointment_id: appointment_id.into(),
                },
            ))
            .await
            .expect("history")
            .into_inner()
            .events
    }

    /// One visit as the citizen `pid` sees it.
    pub async fn appointment_seen_by(
        &self,
        pid: &str,
        patient_id: &str,
        appointment_id: &str,
    ) -> Result<appointments::Appointment, tonic::Status> {
        self.appointments()
            .get_appointment(authorized(
                &self.citizen_token(pid),
                appointments::GetAppointmentRequest {
                    patient_id: patient_id.into(),
                    appointment_id: appointment_id.into(),
                },
            ))
            .await
            .map(|response| response.into_inner().appointment.expect("appointment"))
    }

    /// Cancels a visit as the citizen `pid`.
    pub async fn cancel(
        &self,
        pid: &str,
        patient_id: &str,
        appointment_id: &str,
        request_id: &str,
    ) -> Result<appointments::Appointment, tonic::Status> {
        self.appointments()
            .cancel_appointment(authorized(
                &self.citizen_token(pid),
                appointments::CancelAppointmentRequest {
                    patient_id: patient_id.into(),
                    appointment_id: appointment_id.into(),
                    reason: String::new(),
                    request_id: request_id.into(),
                },
            ))
            .await
            .map(|response| response.into_inner().appointment.expect("appointment"))
    }

    /// A nurse's change stream for `unit`, from `resume_token` (empty: from now).
    pub async fn watch(&self, unit: &str, resume_token: &str) -> ChangeStream {
        let stream = self
            .appointments()
            .watch_care_unit_changes(authorized(
                &self.nurse_token("nurse-watch", &[unit]),
                appointments::WatchCareUnitChangesRequest {
                    care_unit_id: unit.into(),
                    resume_token: resume_token.into(),
                },
            ))
            .await
            .expect("watch")
            .into_inner();
        ChangeStream(stream)
    }

    /// Waits (at most 10 seconds) until `table` has at least `count` rows, as a background
    /// task writes them; the count then.
    pub async fn until_rows(&self, table: &str, count: i64) -> i64 {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let rows = self.count_rows(table).await;
            if rows >= count || tokio::time::Instant::now() >= deadline {
                return rows;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The number of rows in `table`.
    /// On PostgreSQL, a transaction that has an id and stays open until it is rolled back:
    /// what commits after it began cannot be read in order from the event logs behind it.
    /// `None` on SQLite, which has one writer and nothing to wait for.
    pub async fn hold_a_transaction_open(&self) -> Option<sea_orm::DatabaseTransaction> {
        use sea_orm::TransactionTrait as _;
        if self.db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return None;
        }
        let open = self.db.begin().await.expect("begin");
        open.execute_unprepared("SELECT pg_current_xact_id()")
            .await
            .expect("take an id");
        Some(open)
    }

    pub async fn count_rows(&self, table: &str) -> i64 {
        if table.contains("access_log") {
            // As reading the log through the service does: every read stored so far is in it.
            homecare_patients::access_log::spread_all(&self.db)
                .await
                .expect("spread the access log's new sets");
        }
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .expect("count")
            .expect("a row");
        row.try_get::<i64>("", "n").expect("count column")
    }
}

/// A staff client's stream of visit changes.
pub struct ChangeStream(tonic::Streaming<appointments::WatchCareUnitChangesResponse>);

impl ChangeStream {
    /// The next change, failing the test if none arrives within `within`.
    pub async fn next_within(
        &mut self,
        within: std::time::Duration,
    ) -> appointments::WatchCareUnitChangesResponse {
        tokio::time::timeout(within, self.0.message())
            .await
            .expect("a change arrives in time")
            .expect("the stream is healthy")
            .expect("the stream is open")
    }

    /// Changes until `count` of type `wanted` arrived (within ten seconds in all), returning
    /// every change seen.
    pub async fn until(
        &mut self,
        wanted: appointments::AppointmentEventType,
        count: usize,
    ) -> Vec<appointments::WatchCareUnitChangesResponse> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut seen = Vec::new();
        let mut found = 0;
        while found < count {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let change = self.next_within(left).await;
            if event_type(&change) == wanted {
                found += 1;
            }
            seen.push(change);
        }
        seen
    }
}

/// The type of a change's event.
pub fn event_type(
    change: &appointments::WatchCareUnitChangesResponse,
) -> appointments::AppointmentEventType {
    change.event.as_ref().expect("event").r#type()
}

/// A GrantProxy request from `patient_id` to `holder` for `scopes`, from now, open-ended,
/// with a fresh request id.
pub fn grant_request(
    patient_id: &str,
    holder: &str,
    scopes: &[homecare_proto::patients::v1::Scope],
) -> homecare_proto::patients::v1::GrantProxyRequest {
    homecare_proto::patients::v1::GrantProxyRequest {
        patient_id: patient_id.into(),
        holder_national_id: holder.into(),
        holder_name: "Kari Nordmann".into(),
        patient_name: "Astrid Hansen".into(),
        scopes: scopes.iter().map(|scope| i32::from(*scope)).collect(),
        valid_time: None,
        end_time: None,
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}

/// A request carrying `token` as its bearer token.
pub fn authorized<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    request
}

/// A visit plan for `pid` starting `hours_from_now` after the test clock's start.
pub fn visit(
    epj_id: &str,
    pid: &str,
    unit: &str,
    hours_from_now: i64,
) -> appointments::UpsertAppointmentRequest {
    let start = test_now() + Duration::hours(hours_from_now);
    visit_at(epj_id, pid, unit, start)
}

/// A one-hour home-nursing visit for `pid` starting at `start`.
pub fn visit_at(
    epj_id: &str,
    pid: &str,
    unit: &str,
    start: DateTime<Utc>,
) -> appointments::UpsertAppointmentRequest {
    appointments::UpsertAppointmentRequest {
        epj_id: epj_id.into(),
        patient_national_id: pid.into(),
        care_unit_id: unit.into(),
        window_start: Some(homecare_core::timestamp::to_proto(start)),
        window_end: Some(homecare_core::timestamp::to_proto(
            start + Duration::hours(1),
        )),
        service_type: appointments::ServiceType::HomeNursing.into(),
        status: appointments::AppointmentStatus::Planned.into(),
        citizen_cancellable: true,
        epj_version_id: String::new(),
    }
}

/// Checks that a visit's history is one unbroken chain of versions, 1 to the last, each
/// change's previous window being the window of the version before it: no change was
/// written over another unseen. `window_of` gives the window start each answered version
/// had (from the calls' answers); versions no call answered with are skipped.
pub fn assert_history_chains(
    events: &[appointments::AppointmentEvent],
    window_of: &std::collections::HashMap<i64, prost_types::Timestamp>,
) {
    let versions: Vec<i64> = events.iter().map(|event| event.version).collect();
    let expected: Vec<i64> = (1..=i64::try_from(events.len()).expect("few")).collect();
    assert_eq!(versions, expected, "one event per version, in order");
    for event in &events[1..] {
        let (Some(before), Some(after)) = (
            window_of.get(&(event.version - 1)),
            window_of.get(&event.version),
        ) else {
            continue;
        };
        match &event.previous_window_start {
            Some(previous) => {
                assert_eq!(previous, before, "version {} moved from", event.version);
                assert_ne!(previous, after, "version {} moved", event.version);
            }
            None => assert_eq!(before, after, "version {} kept the window", event.version),
        }
    }
}

/// The EPJ ids of `appointments`, in order.
pub fn epj_ids(appointments: &[appointments::Appointment]) -> Vec<&str> {
    appointments
        .iter()
        .map(|appointment| appointment.epj_id.as_str())
        .collect()
}

/// The fields a status's BadRequest details name.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    status
        .get_details_bad_request()
        .map(|bad_request| {
            bad_request
                .field_violations
                .into_iter()
                .map(|violation| violation.field)
                .collect()
        })
        .unwrap_or_default()
}

/// The ErrorInfo metadata value `key` of a status, if it has one.
pub fn error_metadata(status: &tonic::Status, key: &str) -> Option<String> {
    use tonic_types::StatusExt as _;
    status
        .get_details_error_info()
        .and_then(|info| info.metadata.get(key).cloned())
}

/// The ErrorInfo reason of a status, if it has one.
pub fn error_reason(status: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt as _;
    status.get_details_error_info().map(|info| info.reason)
}

async fn wait_until_serving(channel: Channel) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let mut health = HealthClient::new(channel);
    // The server migrates before it serves; the health call waits on the open connection.
    let response = health
        .check(HealthCheckRequest {
            service: homecare_proto::appointments::v1::appointment_service_server::SERVICE_NAME
                .into(),
        })
        .await
        .expect("health check");
    assert_eq!(
        response.into_inner().status,
        i32::from(tonic_health::pb::health_check_response::ServingStatus::Serving)
    );
}
