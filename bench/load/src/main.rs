//! `homecare-load`: starts the real `homecare` binary on a fresh database, seeds it through
//! the EPJ integration's RPC, then drives it over gRPC with N concurrent streams for T seconds
//! per scenario and prints requests/s, p50 and p99 latency, and the server's peak RSS.
//!
//! Scenarios, side by side in one run:
//! - `health`: grpc.health.v1 Check, the no-op baseline of the same server;
//! - `list_appointments`: a citizen's ListAppointments of a patient with 20 upcoming visits;
//! - `cancel_appointment`: citizens cancel distinct visits (each once) while the server's
//!   worker writes them to an EPJ on loopback (an in-process HTTP server playing FHIR); it
//!   reports cancellations accepted per second and the time from each cancel answer to the
//!   EPJ receiving the update (p50, p99).
//!
//! `--messages` runs the messaging scenarios instead (see `messages`).
//!
//! ```text
//! cargo build --release -p homecare-server -p homecare-load
//! target/release/homecare-load --concurrency 64 --seconds 10
//! target/release/homecare-load --database-url postgres://127.0.0.1:5432/test
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use homecare_core::NationalIdentityNumber;
use homecare_proto::appointments::v1::appointment_service_client::AppointmentServiceClient;
use homecare_proto::appointments::v1::{
    AppointmentStatus, GetAppointmentRequest, ListAppointmentHistoryRequest,
    ListAppointmentsRequest, ServiceType, UpsertAppointmentRequest,
};
use homecare_proto::patients::v1::patient_service_client::PatientServiceClient;
use homecare_proto::patients::v1::{AcceptTermsRequest, ListRepresentedPatientsRequest, Relation};
use homecare_server::config::Config;
use homecare_server::dev_keys::{DevKey, TokenMinter};
use sea_orm::ConnectionTrait as _;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

mod cancel;
mod epj;
mod memory;
mod messages;
mod notices;
mod proxy;
mod replicas;
mod unit_day;

#[derive(Parser, Debug, Clone)]
#[command(about = "Drive a homecare server over gRPC and report throughput, latency and RSS")]
struct Args {
    /// The server binary to start.
    #[arg(long, default_value = "target/release/homecare")]
    server_bin: PathBuf,
    /// A PostgreSQL URL; a fresh schema is created there and dropped afterwards. Default: a
    /// fresh SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Concurrent gRPC streams.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Unmeasured warm-up seconds before each scenario.
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Patients besides the measured one, each with as many visits, so the tables are not
    /// trivially small.
    #[arg(long, default_value_t = 200)]
    other_patients: usize,
    /// Visits of each patient.
    #[arg(long, default_value_t = 20)]
    visits_per_patient: usize,
    /// Visits seeded for the cancellation scenario (20 per patient); each is cancelled at
    /// most once, so the scenario ends early if they run out.
    #[arg(long, default_value_t = 20_000)]
    cancellations: usize,
    /// Server processes on the database (PostgreSQL only for more than one): with 2, a
    /// second process is started beside the first, and the time from a change on the first
    /// to its event on a stream of the second is measured.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Changes timed across replicas.
    #[arg(long, default_value_t = 300)]
    replica_changes: usize,
    /// Run the notification scenario instead of the others: this many citizens, each told
    /// by SMS of one visit completed.
    #[arg(long)]
    notices: Option<usize>,
    /// With `--notices`: the server's SMS rate limit (messages per second).
    #[arg(long)]
    sms_rate: Option<u32>,
    /// With `--notices`: quiet hours cover the run, so every notice waits; reports RSS.
    #[arg(long)]
    notices_in_quiet_hours: bool,
    /// With `--notices`: the notices are made while the server has no SMS provider, then it
    /// restarts with one; reports how fast that backlog is delivered (the pipeline alone,
    /// without the completions competing for the machine).
    #[arg(long)]
    notices_drain: bool,
    /// With `--notices`: how long to wait for the last SMS (or, in quiet hours, for the
    /// notices to be written) after the last completion.
    #[arg(long, default_value_t = 120)]
    notice_patience_seconds: u64,
    /// With `--notices` on PostgreSQL: SMS notices delivered over the past week, written by
    /// SQL before the run (none with `--stale-statistics`).
    #[arg(long, default_value_t = 100_000)]
    notice_history: usize,
    /// Run the messaging scenarios instead of the others: uploads, messages sent, the inbox.
    #[arg(long)]
    messages: bool,
    /// With `--messages`: the citizens who write, one visit each.
    #[arg(long, default_value_t = 64)]
    message_citizens: usize,
    /// Run the memory scenario instead of the others: this many patients with
    /// `--visits-per-patient` visits each read their own list once; reports peak RSS.
    #[arg(long)]
    memory_patients: Option<usize>,
    /// On PostgreSQL, measure without first taking the seeded tables' statistics. By
    /// default the statistics of every table that holds rows are taken after seeding, as
    /// autovacuum has long done on a database in use; without them the planner takes a
    /// just-seeded table of 20,000 rows for a small one and keeps sequential-scan plans in
    /// the server's prepared statements.
    #[arg(long)]
    stale_statistics: bool,
}

struct ScenarioResult {
    name: &'static str,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    /// CPU time the server process spent over the measured period (see [`cpu_time`]).
    server_cpu: Duration,
    /// CPU time this load tool spent over the measured period.
    load_cpu: Duration,
}

impl ScenarioResult {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Microseconds of `cpu` per call. On a machine the load tool shares with the server,
    /// throughput moves with whatever else runs; the server's CPU per call does not.
    fn micros_per_call(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }
}

/// The server process measured by [`run_scenario`]; set once it has started.
static SERVER_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// User plus system CPU time of process `pid` (all its threads), from /proc/PID/stat. Its
/// unit is USER_HZ, which Linux fixes at 100 per second for user space.
fn cpu_time(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // utime and stime.
    Duration::from_millis(stat_ticks(&stat, 2) * 10)
}

/// The sum of the first `fields` CPU times of a `/proc/PID/stat` line (utime, stime, then
/// cutime, cstime), in clock ticks.
fn stat_ticks(stat: &str, fields: usize) -> u64 {
    // The command name, in parentheses, may hold spaces: count fields after it.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name
        .split_whitespace()
        .skip(11) // utime is field 14; the first after ')' is field 3
        .take(fields)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum()
}

/// CPU time of every PostgreSQL process on this machine, including backends that have
/// exited (counted in the postmaster's children's times): what the database spent.
fn postgres_cpu_time() -> Duration {
    let mut ticks = 0;
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    for process in processes.flatten() {
        let Ok(stat) = std::fs::read_to_string(process.path().join("stat")) else {
            continue;
        };
        if !stat.contains("(postgres) ") {
            continue;
        }
        // utime, stime, cutime and cstime.
        ticks += stat_ticks(&stat, 4);
    }
    Duration::from_millis(ticks * 10)
}

/// CPU time spent by the server, PostgreSQL and this tool, read at two instants.
#[derive(Clone, Copy)]
struct Spent {
    server: Duration,
    postgres: Duration,
    load: Duration,
}

impl Spent {
    fn now() -> Self {
        Spent {
            server: SERVER_PID
                .get()
                .map(|pid| cpu_time(&pid.to_string()))
                .unwrap_or_default(),
            postgres: postgres_cpu_time(),
            load: cpu_time("self"),
        }
    }

    /// What was spent since `earlier`, in microseconds per one of `count`.
    fn per(self, earlier: Spent, count: usize) -> String {
        let each = |after: Duration, before: Duration| {
            after.saturating_sub(before).as_secs_f64() * 1e6 / count.max(1) as f64
        };
        format!(
            "server {:.0} µs, PostgreSQL {:.0} µs, load tool {:.0} µs",
            each(self.server, earlier.server),
            each(self.postgres, earlier.postgres),
            each(self.load, earlier.load),
        )
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data_dir = tempfile::tempdir()?;
    let schema = match &args.database_url {
        Some(url) => Some(create_schema(url).await?),
        None => None,
    };
    if args.replicas > 1 && args.database_url.is_none() {
        bail!("--replicas needs --database-url: SQLite has one server process");
    }
    if args.messages {
        let result = messaging_run(&args, data_dir.path(), schema.as_deref()).await;
        if let (Some(url), Some(schema)) = (&args.database_url, &schema) {
            drop_schema(url, schema).await?;
        }
        return result;
    }
    if let Some(count) = args.memory_patients {
        let result = memory_run(&args, count, data_dir.path(), schema.as_deref()).await;
        if let (Some(url), Some(schema)) = (&args.database_url, &schema) {
            drop_schema(url, schema).await?;
        }
        return result;
    }
    if let Some(count) = args.notices {
        let result = notice_run(&args, count, data_dir.path(), schema.as_deref()).await;
        if let (Some(url), Some(schema)) = (&args.database_url, &schema) {
            drop_schema(url, schema).await?;
        }
        return result;
    }
    let epj = epj::FakeEpj::start().await;
    let port = free_port()?;
    let mut server = spawn_server(&args, data_dir.path(), schema.as_deref(), port, Some(&epj))?;
    let server_pid = server.id().context("server pid")?;
    let _ = SERVER_PID.set(server_pid);
    // The second replica takes no EPJ: cancellations are delivered by the first alone.
    let mut second = if args.replicas > 1 {
        // After the first has migrated the schema and made the development key.
        connect(port).await?;
        let port = free_port()?;
        Some((
            spawn_server(&args, data_dir.path(), schema.as_deref(), port, None)?,
            port,
        ))
    } else {
        None
    };

    let second_port = second.as_ref().map(|(_, port)| *port);
    let result = measure(
        &args,
        port,
        second_port,
        data_dir.path(),
        schema.as_deref(),
        server_pid,
        &epj,
    )
    .await;

    for child in std::iter::once(&mut server).chain(second.as_mut().map(|(child, _)| child)) {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = child.wait().await;
    }
    if let (Some(url), Some(schema)) = (&args.database_url, &schema) {
        drop_schema(url, schema).await?;
    }
    result
}

/// The token minter of the server in `data_dir` (its dev key), and a token of the EPJ
/// integration valid for two hours: every run seeds visits as the EPJ.
fn minter_and_epj_token(data_dir: &std::path::Path) -> anyhow::Result<(TokenMinter, String)> {
    let key = DevKey::load(&data_dir.join("dev-signing-key.pem"))?;
    let tokens = TokenMinter::new(key, &Config::default().auth);
    let epj = tokens.staff(
        "load-epj",
        &[homecare_core::caller::EPJ_INTEGRATION_ROLE],
        &[],
        chrono::Duration::hours(2),
    )?;
    Ok((tokens, epj))
}

/// The memory scenario alone: `count` patients seeded and each read once.
async fn memory_run(
    args: &Args,
    count: usize,
    data_dir: &std::path::Path,
    schema: Option<&str>,
) -> anyhow::Result<()> {
    let port = free_port()?;
    let mut server = spawn_server(args, data_dir, schema, port, None)?;
    let server_pid = server.id().context("server pid")?;
    let result = async {
        let channel = connect(port).await?;
        let (tokens, epj) = minter_and_epj_token(data_dir)?;
        let pids = identity_numbers(count);
        match (&args.database_url, schema) {
            (Some(url), Some(schema)) => {
                memory::seed_by_sql(url, schema, &pids, args.visits_per_patient).await?;
            }
            _ => {
                let started = Instant::now();
                seed(&channel, &epj, &pids, args.visits_per_patient).await?;
                eprintln!(
                    "seeded {count} patients x {} visits in {:.1}s",
                    args.visits_per_patient,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        let (seeded_peak, _) = server_memory(server_pid)?;
        let complete =
            memory::read_each_once(&channel, &tokens, &pids, args.visits_per_patient).await?;
        let (peak, now) = server_memory(server_pid)?;
        println!(
            "{count} patients x {} visits, each read once ({complete} complete lists): server \
             RSS peak {:.1} MB (after seeding {:.1} MB), now {:.1} MB",
            args.visits_per_patient,
            peak as f64 / 1024.0,
            seeded_peak as f64 / 1024.0,
            now as f64 / 1024.0
        );
        Ok(())
    }
    .await;
    if let Some(pid) = server.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let _ = server.wait().await;
    result
}

/// The notification scenario alone, on a server whose SMS go to a stand-in on loopback.
async fn notice_run(
    args: &Args,
    count: usize,
    data_dir: &std::path::Path,
    schema: Option<&str>,
) -> anyhow::Result<()> {
    let twilio = notices::FakeTwilio::start().await;
    let port = free_port()?;
    // Drained: the notices are made by a server without an SMS provider, sent by the next.
    let mut server = notice_server(args, data_dir, schema, port, &twilio, !args.notices_drain)
        .spawn()
        .with_context(|| format!("starting {}", args.server_bin.display()))?;
    let _ = SERVER_PID.set(server.id().context("server pid")?);
    let result = async {
        let channel = connect(port).await?;
        let (tokens, epj) = minter_and_epj_token(data_dir)?;
        let pids = identity_numbers(count);
        let result = notices::run(
            &channel,
            &epj,
            &tokens,
            &pids,
            &twilio,
            async {
                if let (Some(url), Some(schema), false) =
                    (&args.database_url, schema, args.stale_statistics)
                {
                    notices::seed_history_by_sql(url, schema, args.notice_history).await?;
                }
                analyze_schema(args, schema).await
            },
            notices::Pace {
                concurrency: args.concurrency,
                wait_for_sms: !(args.notices_in_quiet_hours || args.notices_drain),
                patience: Duration::from_secs(args.notice_patience_seconds),
            },
        )
        .await?;
        let drained = if args.notices_drain {
            stop(&mut server).await;
            let restarted = std::time::Instant::now();
            server = notice_server(args, data_dir, schema, port, &twilio, true)
                .spawn()
                .with_context(|| format!("starting {}", args.server_bin.display()))?;
            connect(port).await?;
            Some(
                twilio
                    .drained(
                        count,
                        restarted,
                        Duration::from_secs(args.notice_patience_seconds),
                    )
                    .await,
            )
        } else {
            None
        };
        let (peak_rss, rss) = server_memory(server.id().context("server pid")?)?;
        println!(
            "backend: {}  concurrency: {}  citizens: {count}  SMS rate limit: {}",
            if args.database_url.is_some() {
                "postgres"
            } else {
                "sqlite"
            },
            args.concurrency,
            args.sms_rate
                .map_or("none".to_owned(), |rate| format!("{rate}/s")),
        );
        result.print();
        if let Some(drained) = drained {
            drained.print();
        }
        println!(
            "server RSS: peak {:.1} MB, now {:.1} MB",
            peak_rss as f64 / 1024.0,
            rss as f64 / 1024.0
        );
        Ok::<_, anyhow::Error>(())
    }
    .await;
    stop(&mut server).await;
    result
}

/// The server of the notification scenario, sending its SMS to `twilio` when `sends`.
fn notice_server(
    args: &Args,
    data_dir: &std::path::Path,
    schema: Option<&str>,
    port: u16,
    twilio: &notices::FakeTwilio,
    sends: bool,
) -> tokio::process::Command {
    let mut command = server_command(args, data_dir, schema, port);
    if sends {
        command.env("HOMECARE_NOTIFICATIONS__SMS__BASE_URL", twilio.uri());
    }
    command
        .env("HOMECARE_NOTIFICATIONS__SMS__ACCOUNT_SID", notices::ACCOUNT)
        .env("HOMECARE_NOTIFICATIONS__SMS__AUTH_TOKEN", "load-token")
        .env("HOMECARE_NOTIFICATIONS__SMS__FROM", "LoadTest");
    // Quiet hours either cover the whole run or none of it.
    let (start, end) = if args.notices_in_quiet_hours {
        let now = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Oslo);
        let from = now - chrono::Duration::hours(1);
        let to = now + chrono::Duration::hours(3);
        (
            from.format("%H:00").to_string(),
            to.format("%H:00").to_string(),
        )
    } else {
        ("00:00".to_owned(), "00:00".to_owned())
    };
    command
        .env("HOMECARE_NOTIFICATIONS__SMS_QUIET_HOURS__START", start)
        .env("HOMECARE_NOTIFICATIONS__SMS_QUIET_HOURS__END", end);
    if let Some(rate) = args.sms_rate {
        command.env(
            "HOMECARE_NOTIFICATIONS__SMS__RATE_PER_SECOND",
            rate.to_string(),
        );
    }
    command
}

/// Stops `server` as an operator would (SIGTERM) and waits for it.
async fn stop(server: &mut tokio::process::Child) {
    if let Some(pid) = server.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let _ = server.wait().await;
}

/// The messaging scenarios alone.
async fn messaging_run(
    args: &Args,
    data_dir: &std::path::Path,
    schema: Option<&str>,
) -> anyhow::Result<()> {
    let port = free_port()?;
    let mut server = spawn_server(args, data_dir, schema, port, None)?;
    let server_pid = server.id().context("server pid")?;
    let _ = SERVER_PID.set(server_pid);
    let result = async {
        let channel = connect(port).await?;
        let (tokens, epj) = minter_and_epj_token(data_dir)?;
        let pids = identity_numbers(args.message_citizens);
        seed(&channel, &epj, &pids, 1).await?;
        messages::run(args, &channel, &tokens, &pids, server_pid, schema).await
    }
    .await;
    if let Some(pid) = server.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let _ = server.wait().await;
    result
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts the server binary on `port`, on the fresh SQLite file in `data_dir` or in `schema`
/// of the PostgreSQL, writing cancellations to `epj` if given.
fn spawn_server(
    args: &Args,
    data_dir: &std::path::Path,
    schema: Option<&str>,
    port: u16,
    epj: Option<&epj::FakeEpj>,
) -> anyhow::Result<tokio::process::Child> {
    let mut command = server_command(args, data_dir, schema, port);
    if let Some(epj) = epj {
        command.env("HOMECARE_EPJ__BASE_URL", format!("{}/fhir", epj.uri()));
    }
    command
        .spawn()
        .with_context(|| format!("starting {}", args.server_bin.display()))
}

/// The server binary's command on `port`, on the fresh SQLite file in `data_dir` or in
/// `schema` of the PostgreSQL.
fn server_command(
    args: &Args,
    data_dir: &std::path::Path,
    schema: Option<&str>,
    port: u16,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(&args.server_bin);
    command
        .arg("serve")
        // Load citizens accept the terms and go on at once.
        .env("HOMECARE_TERMS__ACTIVATION_DELAY_HOURS", "0")
        .env_remove("DATABASE_URL")
        .env("HOMECARE_DATA_DIR", data_dir)
        .env("HOMECARE_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("HOMECARE_LOG__FILTER", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    // HOMECARE_LOAD_SERVER_LOG=FILE keeps the servers' warnings there.
    match std::env::var_os("HOMECARE_LOAD_SERVER_LOG").and_then(|path| {
        std::fs::File::options()
            .append(true)
            .create(true)
            .open(path)
            .ok()
    }) {
        Some(file) => command.stderr(file),
        None => command.stderr(Stdio::null()),
    };
    if let (Some(url), Some(schema)) = (&args.database_url, schema) {
        command
            .env("HOMECARE_DATABASE_URL", url)
            .env("HOMECARE_DATABASE_SCHEMA", schema)
            // The load tool mints development tokens; on PostgreSQL they must be allowed.
            .env("HOMECARE_AUTH__DEV_KEYS", "true");
    }
    command
}

async fn measure(
    args: &Args,
    port: u16,
    second_port: Option<u16>,
    data_dir: &std::path::Path,
    schema: Option<&str>,
    server_pid: u32,
    fake_epj: &epj::FakeEpj,
) -> anyhow::Result<()> {
    let channel = connect(port).await?;
    let (tokens, epj) = minter_and_epj_token(data_dir)?;
    let ttl = chrono::Duration::hours(2);

    let cancelling_patients = args.cancellations.div_ceil(cancel::VISITS_PER_PATIENT);
    let mut all_pids = identity_numbers(args.other_patients + 1 + cancelling_patients);
    let cancel_pids = all_pids.split_off(args.other_patients + 1);
    let pids = all_pids;
    let seed_started = Instant::now();
    seed(&channel, &epj, &pids, args.visits_per_patient).await?;
    eprintln!(
        "seeded {} patients x {} visits in {:.1}s",
        pids.len(),
        args.visits_per_patient,
        seed_started.elapsed().as_secs_f64()
    );
    let seed_started = Instant::now();
    let jobs = cancel::seed(&channel, &epj, &tokens, &cancel_pids).await?;
    eprintln!(
        "seeded {} cancellable visits in {:.1}s",
        jobs.len(),
        seed_started.elapsed().as_secs_f64()
    );

    let measured_pid = &pids[0];
    let citizen = tokens.citizen(measured_pid, ttl)?;
    let patient_id = own_patient_id(&channel, &citizen).await?;
    let (holder, represented) = proxy::seed(&channel, &tokens, &pids[..3]).await?;
    let visit_ids: Vec<String> = AppointmentServiceClient::new(channel.clone())
        .list_appointments(authorized(
            &citizen,
            ListAppointmentsRequest {
                patient_id: patient_id.clone(),
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .appointments
        .into_iter()
        .map(|visit| visit.id)
        .collect();
    let listed = visit_ids.len();
    // Patients the list scenarios do not read: theirs stay at 20 visits.
    let day = unit_day::seed(&channel, &epj, &pids[3..]).await?;
    analyze_schema(args, schema).await?;
    if listed != args.visits_per_patient {
        bail!(
            "expected {} visits, listed {listed}",
            args.visits_per_patient
        );
    }

    let health = run_scenario("health", args, {
        let channel = channel.clone();
        move || {
            let mut client = HealthClient::new(channel.clone());
            async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .is_ok()
            }
        }
    })
    .await;
    // The patient's own list and a proxy holder's, twice each, alternating, so drift on the
    // shared machine falls on both alike.
    let by_patient = list_scenario(&channel, &citizen, std::slice::from_ref(&patient_id));
    let by_proxy = list_scenario(&channel, &holder, &represented);
    let list = run_scenario("list_appointments", args, by_patient.clone()).await;
    let proxy_list = run_scenario("list_by_proxy", args, by_proxy.clone()).await;
    let list_again = run_scenario("list_appointments", args, by_patient).await;
    let proxy_again = run_scenario("list_by_proxy", args, by_proxy).await;
    let get = run_scenario(
        "get_appointment",
        args,
        one_visit_scenario(&channel, &citizen, &patient_id, &visit_ids, false),
    )
    .await;
    let history = run_scenario(
        "list_history",
        args,
        one_visit_scenario(&channel, &citizen, &patient_id, &visit_ids, true),
    )
    .await;
    let day_streams = Args {
        concurrency: 8,
        ..args.clone()
    };
    let unit_day = run_scenario(
        "unit_day_300",
        &day_streams,
        unit_day::scenario(&channel, &tokens, day)?,
    )
    .await;
    let day_citizen = tokens.citizen(&pids[3], ttl)?;
    let day_patient_id = own_patient_id(&channel, &day_citizen).await?;
    let day_log = run_scenario(
        "access_log_page",
        &day_streams,
        unit_day::access_log_scenario(&channel, &day_citizen, &day_patient_id),
    )
    .await;

    let cancelled = cancel::run(&channel, args, jobs, fake_epj).await;

    let (peak_rss, rss) = server_memory(server_pid)?;
    println!(
        "backend: {}  concurrency: {}  seconds: {}  patients: {}  visits/patient: {}",
        if args.database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        args.concurrency,
        args.seconds,
        pids.len(),
        args.visits_per_patient
    );
    println!(
        "{:<20} {:>12} {:>10} {:>10} {:>8} {:>16} {:>14}",
        "scenario", "requests/s", "p50 ms", "p99 ms", "errors", "server µs/call", "load µs/call"
    );
    for result in [
        &health,
        &list,
        &proxy_list,
        &list_again,
        &proxy_again,
        &get,
        &history,
        &unit_day,
        &day_log,
    ] {
        println!(
            "{:<20} {:>12.0} {:>10.2} {:>10.2} {:>8} {:>16.1} {:>14.1}",
            result.name,
            result.per_second(),
            result.p50.as_secs_f64() * 1e3,
            result.p99.as_secs_f64() * 1e3,
            result.errors,
            result.micros_per_call(result.server_cpu),
            result.micros_per_call(result.load_cpu)
        );
    }
    println!(
        "list_appointments / health throughput: {:.2} and {:.2}; get_appointment {:.2}; \
         list_history {:.2} (unit_day_300 at 8 streams, one call = the whole day in two pages; \
         access_log_page at 8 streams, a patient of that day reads the first 50 of their log)",
        list.per_second() / health.per_second(),
        list_again.per_second() / health.per_second(),
        get.per_second() / health.per_second(),
        history.per_second() / health.per_second()
    );
    let patient_rate = list.per_second() + list_again.per_second();
    let proxy_rate = proxy_list.per_second() + proxy_again.per_second();
    println!(
        "proxy path (holder of 3 proxies) costs {:+.1}% per call against the patient's own \
         (throughput, both runs)",
        (patient_rate / proxy_rate - 1.0) * 100.0
    );
    cancelled.print();
    if let Some(second_port) = second_port {
        let second = connect(second_port).await?;
        replicas::run(&channel, &second, &tokens, &pids[1], args.replica_changes)
            .await?
            .print();
        replicas::read_your_writes(&channel, &second, &tokens, &pids[2], args.replica_changes)
            .await?
            .print();
    }
    println!(
        "server RSS: peak {:.1} MB, now {:.1} MB",
        peak_rss as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    Ok(())
}

/// ListAppointments by `token`, for each of `patients` in turn; a call counts when it lists
/// the patient's 20 visits.
fn list_scenario(
    channel: &Channel,
    token: &str,
    patients: &[String],
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
+ Clone
+ Send
+ 'static {
    let channel = channel.clone();
    let token: Arc<str> = token.into();
    let patients: Arc<[String]> = patients.into();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    move || {
        let mut client = AppointmentServiceClient::new(channel.clone());
        let turn = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request = authorized(
            &token,
            ListAppointmentsRequest {
                patient_id: patients[turn % patients.len()].clone(),
                ..Default::default()
            },
        );
        Box::pin(async move {
            client
                .list_appointments(request)
                .await
                .is_ok_and(|response| response.into_inner().appointments.len() == 20)
        })
    }
}

/// GetAppointment (or, with `history`, ListAppointmentHistory) by `token` of `patient_id`'s
/// visits in turn; a call counts when it answers with the visit (or a history).
fn one_visit_scenario(
    channel: &Channel,
    token: &str,
    patient_id: &str,
    visits: &[String],
    history: bool,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
+ Clone
+ Send
+ 'static {
    let channel = channel.clone();
    let token: Arc<str> = token.into();
    let patient_id: Arc<str> = patient_id.into();
    let visits: Arc<[String]> = visits.into();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    move || {
        let mut client = AppointmentServiceClient::new(channel.clone());
        let turn = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let visit = visits[turn % visits.len()].clone();
        let token = token.clone();
        let patient_id = patient_id.to_string();
        Box::pin(async move {
            if history {
                client
                    .list_appointment_history(authorized(
                        &token,
                        ListAppointmentHistoryRequest {
                            patient_id,
                            appointment_id: visit,
                        },
                    ))
                    .await
                    .is_ok_and(|response| !response.into_inner().events.is_empty())
            } else {
                client
                    .get_appointment(authorized(
                        &token,
                        GetAppointmentRequest {
                            patient_id,
                            appointment_id: visit.clone(),
                        },
                    ))
                    .await
                    .is_ok_and(|response| {
                        response
                            .into_inner()
                            .appointment
                            .is_some_and(|found| found.id == visit)
                    })
            }
        })
    }
}

/// Accepts the terms of use in force ("1" by default) as `citizen`.
pub(crate) async fn accept_terms(channel: &Channel, citizen: &str) -> anyhow::Result<()> {
    PatientServiceClient::new(channel.clone())
        .accept_terms(authorized(
            citizen,
            AcceptTermsRequest {
                terms_version: "1".into(),
            },
        ))
        .await?;
    Ok(())
}

/// The patient id the citizen uses for themself, after accepting the terms.
pub(crate) async fn own_patient_id(channel: &Channel, citizen: &str) -> anyhow::Result<String> {
    accept_terms(channel, citizen).await?;
    Ok(PatientServiceClient::new(channel.clone())
        .list_represented_patients(authorized(citizen, ListRepresentedPatientsRequest {}))
        .await?
        .into_inner()
        .patients
        .into_iter()
        .find(|patient| patient.relation() == Relation::Self_)
        .context("the citizen is a known patient")?
        .patient_id)
}

/// Runs `call` from `args.concurrency` tasks: a warm-up, then a measured period.
async fn run_scenario<F, Fut>(name: &'static str, args: &Args, call: F) -> ScenarioResult
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let drive = |period: Duration| {
        let tasks: Vec<_> = (0..args.concurrency)
            .map(|_| {
                let call = call.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(16 * 1024);
                    let mut errors = 0usize;
                    let deadline = Instant::now() + period;
                    while Instant::now() < deadline {
                        let started = Instant::now();
                        let ok = call().await;
                        latencies.push(started.elapsed());
                        if !ok {
                            errors += 1;
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        async move {
            let started = Instant::now();
            let mut latencies = Vec::new();
            let mut errors = 0;
            for task in tasks {
                let (task_latencies, task_errors) = task.await.expect("load task");
                latencies.extend(task_latencies);
                errors += task_errors;
            }
            (latencies, errors, started.elapsed())
        }
    };
    drive(Duration::from_secs(args.warmup_seconds)).await;
    let server = SERVER_PID.get().map(u32::to_string);
    let server_cpu = || server.as_deref().map(cpu_time).unwrap_or_default();
    let (server_before, load_before) = (server_cpu(), cpu_time("self"));
    let (mut latencies, errors, elapsed) = drive(Duration::from_secs(args.seconds)).await;
    let (server_after, load_after) = (server_cpu(), cpu_time("self"));
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    ScenarioResult {
        name,
        requests: latencies.len(),
        errors,
        elapsed,
        p50: percentile(0.50),
        p99: percentile(0.99),
        server_cpu: server_after.saturating_sub(server_before),
        load_cpu: load_after.saturating_sub(load_before),
    }
}

pub(crate) fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

async fn seed(
    channel: &Channel,
    epj: &str,
    pids: &[String],
    visits_per_patient: usize,
) -> anyhow::Result<()> {
    let start = chrono::Utc::now() + chrono::Duration::days(1);
    let mut tasks = tokio::task::JoinSet::new();
    for (patient, pid) in pids.iter().enumerate() {
        let mut client = AppointmentServiceClient::new(channel.clone());
        let epj = epj.to_owned();
        let pid = pid.clone();
        tasks.spawn(async move {
            for visit in 0..visits_per_patient {
                let window_start = start + chrono::Duration::hours(visit as i64 * 8);
                client
                    .upsert_appointment(authorized(
                        &epj,
                        UpsertAppointmentRequest {
                            epj_id: format!("load-{patient}-{visit}"),
                            patient_national_id: pid.clone(),
                            care_unit_id: format!("unit-{}", patient % 10),
                            window_start: Some(prost_types::Timestamp {
                                seconds: window_start.timestamp(),
                                nanos: 0,
                            }),
                            window_end: Some(prost_types::Timestamp {
                                seconds: window_start.timestamp() + 1800,
                                nanos: 0,
                            }),
                            service_type: ServiceType::HomeNursing.into(),
                            status: AppointmentStatus::Planned.into(),
                            citizen_cancellable: true,
                            epj_version_id: String::new(),
                        },
                    ))
                    .await?;
            }
            Ok::<_, tonic::Status>(())
        });
        // Bounded parallelism while seeding.
        if tasks.len() >= 16 {
            tasks.join_next().await.context("seed task")???;
        }
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}

/// `count` distinct valid identity numbers of people born in the 1940s.
fn identity_numbers(count: usize) -> Vec<String> {
    let mut found = Vec::with_capacity(count);
    'outer: for individual in 0..500u32 {
        for day in 1..=28u32 {
            for month in 1..=12u32 {
                let prefix = format!("{day:02}{month:02}4{}{individual:03}", individual % 10);
                if let Some(valid) = (0..100)
                    .map(|check| format!("{prefix}{check:02}"))
                    .find(|candidate| NationalIdentityNumber::parse(candidate).is_ok())
                {
                    found.push(valid);
                    if found.len() == count {
                        break 'outer;
                    }
                }
            }
        }
    }
    found
}

async fn connect(port: u16) -> anyhow::Result<Channel> {
    let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}"))?;
    for _ in 0..100 {
        if let Ok(channel) = endpoint.connect().await {
            let mut health = HealthClient::new(channel.clone());
            if health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .is_ok()
            {
                return Ok(channel);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server did not answer within ten seconds")
}

pub(crate) fn authorized<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    request
}

/// (peak RSS, current RSS) of `pid` in KiB, from /proc.
fn server_memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .with_context(|| format!("{name} in /proc/{pid}/status"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

async fn create_schema(url: &str) -> anyhow::Result<String> {
    let schema = format!("hc_load_{}", uuid::Uuid::new_v4().simple());
    let db = sea_orm::Database::connect(url).await?;
    db.execute_unprepared(&format!("CREATE SCHEMA {schema}"))
        .await?;
    db.close().await?;
    Ok(schema)
}

/// Takes the statistics of every table in `schema` (see `Args::stale_statistics`).
async fn analyze_schema(args: &Args, schema: Option<&str>) -> anyhow::Result<()> {
    let (Some(url), Some(schema), false) = (&args.database_url, schema, args.stale_statistics)
    else {
        return Ok(());
    };
    let started = Instant::now();
    let db = sea_orm::Database::connect(url.as_str()).await?;
    // A bare ANALYZE would take every schema of the database. A table still empty keeps no
    // statistics, as on a fresh installation: statistics saying "empty" would have the
    // planner read the queues that fill during the run by sequential scan.
    db.execute_unprepared(&format!(
        "DO $$ DECLARE t text; seeded boolean; BEGIN \
           FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' LOOP \
             EXECUTE format('SELECT EXISTS (SELECT FROM %I.%I)', '{schema}', t) INTO seeded; \
             IF seeded THEN EXECUTE format('ANALYZE %I.%I', '{schema}', t); END IF; \
           END LOOP; \
         END $$"
    ))
    .await?;
    db.close().await?;
    eprintln!(
        "statistics taken in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn drop_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    let db = sea_orm::Database::connect(url).await?;
    db.execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
        .await?;
    db.close().await?;
    Ok(())
}
