//! The notification scenario (`--notices N`): N citizens, each with SMS settings and one
//! visit; the EPJ reports every visit completed, as fast as the server takes it, and a
//! Twilio stand-in on loopback notes when each citizen's SMS arrives. It reports notices
//! delivered per second (first completion sent to last SMS received), the time from each
//! completion's commit (its RPC's answer) to its SMS (p50, p99), the most SMS in any one
//! second (for `--sms-rate`), and the server's RSS.
//!
//! With `--notices-in-quiet-hours` the quiet hours cover the run: nothing is sent, and the
//! server's RSS is read once every notice waits in the outbox. With `--notices-drain` the
//! server has no SMS provider while the completions run; it then restarts with one, and the
//! time from the restart to the last SMS is the pipeline's pace on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use homecare_proto::appointments::v1::appointment_service_client::AppointmentServiceClient;
use homecare_proto::appointments::v1::{AppointmentStatus, ServiceType, UpsertAppointmentRequest};
use homecare_proto::notifications::v1::notification_service_client::NotificationServiceClient;
use homecare_proto::notifications::v1::{Channels, Language, UpdateNotificationSettingsRequest};
use homecare_server::dev_keys::TokenMinter;
use tonic::transport::Channel;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::{authorized, timestamp};

/// The stand-in's account.
pub(crate) const ACCOUNT: &str = "AC00000000000000000000000000000002";

/// When each SMS arrived, by recipient.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

struct Take(Arrivals, std::sync::atomic::AtomicUsize);

impl Respond for Take {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let arrived = Instant::now();
        let to = form_field(&request.body, "To").unwrap_or_default();
        self.0
            .lock()
            .expect("arrivals")
            .entry(to)
            .or_insert(arrived);
        let n = self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ResponseTemplate::new(201)
            .set_body_json(serde_json::json!({"sid": format!("SM{n:032x}"), "status": "queued"}))
    }
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    body.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.replace("%2B", "+"))
    })
}

/// The Twilio stand-in.
pub(crate) struct FakeTwilio {
    server: MockServer,
    arrivals: Arrivals,
}

impl FakeTwilio {
    pub(crate) async fn start() -> FakeTwilio {
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        let arrivals = Arrivals::default();
        Mock::given(wiremock::matchers::method("POST"))
            .respond_with(Take(arrivals.clone(), Default::default()))
            .mount(&server)
            .await;
        FakeTwilio { server, arrivals }
    }

    pub(crate) fn uri(&self) -> String {
        self.server.uri()
    }
}

fn phone(index: usize) -> String {
    format!("+479{index:07}")
}

/// One citizen's visit, ready to be reported completed.
struct Job {
    completed: UpsertAppointmentRequest,
    phone: String,
}

/// Seeds a visit, accepted terms and SMS settings for each of `pids`.
async fn seed(
    channel: &Channel,
    epj: &str,
    tokens: &TokenMinter,
    pids: &[String],
) -> anyhow::Result<Vec<Job>> {
    let start = chrono::Utc::now() - chrono::Duration::hours(2);
    let mut tasks = tokio::task::JoinSet::new();
    let mut jobs = Vec::with_capacity(pids.len());
    for (index, pid) in pids.iter().enumerate() {
        let channel = channel.clone();
        let epj = epj.to_owned();
        let pid = pid.clone();
        let citizen = tokens.citizen(&pid, chrono::Duration::hours(2))?;
        tasks.spawn(async move {
            let planned = UpsertAppointmentRequest {
                epj_id: format!("notice-{index}"),
                patient_national_id: pid.clone(),
                care_unit_id: format!("unit-{}", index % 10),
                window_start: Some(timestamp(start)),
                window_end: Some(timestamp(start + chrono::Duration::minutes(30))),
                service_type: ServiceType::HomeNursing.into(),
                status: AppointmentStatus::Planned.into(),
                citizen_cancellable: true,
                epj_version_id: String::new(),
            };
            AppointmentServiceClient::new(channel.clone())
                .upsert_appointment(authorized(&epj, planned.clone()))
                .await?;
            crate::accept_terms(&channel, &citizen).await?;
            NotificationServiceClient::new(channel)
                .update_notification_settings(authorized(
                    &citizen,
                    UpdateNotificationSettingsRequest {
                        channels: Channels::Sms.into(),
                        phone_number: phone(index),
                        email_address: String::new(),
                        language: Language::Nb.into(),
                    },
                ))
                .await?;
            Ok::<_, anyhow::Error>(Job {
                completed: UpsertAppointmentRequest {
                    status: AppointmentStatus::Completed.into(),
                    ..planned
                },
                phone: phone(index),
            })
        });
        if tasks.len() >= 32 {
            jobs.push(tasks.join_next().await.context("seed task")???);
        }
    }
    while let Some(job) = tasks.join_next().await {
        jobs.push(job??);
    }
    Ok(jobs)
}

pub(crate) struct NoticeResult {
    notices: usize,
    delivered: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    max_in_a_second: usize,
    /// Nothing was to be sent during the run (quiet hours, or no provider yet).
    unsent: bool,
    /// CPU per notice, from the first completion to the last SMS (or the end of waiting).
    cpu_per_notice: String,
}

impl NoticeResult {
    pub(crate) fn print(&self) {
        if self.unsent {
            println!(
                "notices: {} completions committed while nothing may be sent; {} SMS sent \
                 (expected 0); CPU per completion, over the run and the wait after it: {}",
                self.notices, self.delivered, self.cpu_per_notice
            );
            return;
        }
        println!(
            "notices: {} of {} delivered in {:.1}s: {:.0} notices/s end to end; \
             commit to provider p50 {:.0} ms, p99 {:.0} ms; most SMS in one second: {}; \
             CPU per notice: {}",
            self.delivered,
            self.notices,
            self.elapsed.as_secs_f64(),
            self.delivered as f64 / self.elapsed.as_secs_f64(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max_in_a_second,
            self.cpu_per_notice,
        );
    }
}

/// How a run goes: completions from `concurrency` tasks, then waiting at most `patience` for
/// the SMS, or (when none may be sent) for the notices to be written.
pub(crate) struct Pace {
    pub(crate) concurrency: usize,
    pub(crate) wait_for_sms: bool,
    pub(crate) patience: Duration,
}

/// Seeds `pids`, runs `after_seeding`, then reports each visit completed and waits for the
/// SMS.
pub(crate) async fn run(
    channel: &Channel,
    epj: &str,
    tokens: &TokenMinter,
    pids: &[String],
    twilio: &FakeTwilio,
    after_seeding: impl Future<Output = anyhow::Result<()>>,
    pace: Pace,
) -> anyhow::Result<NoticeResult> {
    let Pace {
        concurrency,
        wait_for_sms,
        patience,
    } = pace;
    let seeded = Instant::now();
    let jobs = seed(channel, epj, tokens, pids).await?;
    eprintln!(
        "seeded {} citizens with a visit and SMS settings in {:.1}s",
        jobs.len(),
        seeded.elapsed().as_secs_f64()
    );
    after_seeding.await?;
    let notices = jobs.len();
    let queue = Arc::new(Mutex::new(jobs));
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let spent_before = crate::Spent::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let queue = queue.clone();
        let committed = committed.clone();
        let mut client = AppointmentServiceClient::new(channel.clone());
        let epj = epj.to_owned();
        tasks.spawn(async move {
            loop {
                let Some(job) = queue.lock().expect("queue").pop() else {
                    return Ok::<_, tonic::Status>(());
                };
                client
                    .upsert_appointment(authorized(&epj, job.completed))
                    .await?;
                committed
                    .lock()
                    .expect("committed")
                    .insert(job.phone, Instant::now());
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let all_committed = started.elapsed();
    eprintln!(
        "{notices} completions committed in {:.1}s",
        all_committed.as_secs_f64()
    );
    if !wait_for_sms {
        // Every notice is written by the consumer; give it the time it takes, then look.
        tokio::time::sleep(patience).await;
        let delivered = twilio.arrivals.lock().expect("arrivals").len();
        // Includes the idle wait, which costs little beside the completions.
        let cpu_per_notice = crate::Spent::now().per(spent_before, notices);
        return Ok(NoticeResult {
            cpu_per_notice,
            notices,
            delivered,
            elapsed: all_committed,
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            max_in_a_second: 0,
            unsent: true,
        });
    }
    let deadline = Instant::now() + patience;
    while twilio.arrivals.lock().expect("arrivals").len() < notices && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_per_notice = crate::Spent::now().per(spent_before, notices);
    let arrivals = twilio.arrivals.lock().expect("arrivals").clone();
    let committed = committed.lock().expect("committed").clone();
    let mut latencies: Vec<Duration> = arrivals
        .iter()
        .filter_map(|(to, arrived)| Some(arrived.saturating_duration_since(*committed.get(to)?)))
        .collect();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let mut times: Vec<Instant> = arrivals.values().copied().collect();
    times.sort_unstable();
    let last = times.last().copied().unwrap_or(started);
    let mut max_in_a_second = 0;
    let mut first = 0;
    for (index, at) in times.iter().enumerate() {
        while at.duration_since(times[first]) >= Duration::from_secs(1) {
            first += 1;
        }
        max_in_a_second = max_in_a_second.max(index + 1 - first);
    }
    Ok(NoticeResult {
        notices,
        delivered: arrivals.len(),
        elapsed: last.duration_since(started),
        p50: percentile(0.5),
        p99: percentile(0.99),
        max_in_a_second,
        unsent: false,
        cpu_per_notice,
    })
}

/// How fast a backlog of SMS was delivered after a restart.
pub(crate) struct Drained {
    expected: usize,
    delivered: usize,
    /// From the restart (the server's spawn) to the last SMS.
    elapsed: Duration,
}

impl Drained {
    pub(crate) fn print(&self) {
        println!(
            "drained after a restart: {} of {} SMS in {:.1}s (server start included): {:.0} SMS/s",
            self.delivered,
            self.expected,
            self.elapsed.as_secs_f64(),
            self.delivered as f64 / self.elapsed.as_secs_f64(),
        );
    }
}

impl FakeTwilio {
    /// Waits at most `patience` for `expected` SMS in all, timing from `restarted`.
    pub(crate) async fn drained(
        &self,
        expected: usize,
        restarted: Instant,
        patience: Duration,
    ) -> Drained {
        let deadline = Instant::now() + patience;
        while self.arrivals.lock().expect("arrivals").len() < expected && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let arrivals = self.arrivals.lock().expect("arrivals");
        let last = arrivals.values().max().copied().unwrap_or(restarted);
        Drained {
            expected,
            delivered: arrivals.len(),
            elapsed: last.saturating_duration_since(restarted),
        }
    }
}

/// Writes `count` SMS notices delivered over the past week into `schema` (PostgreSQL), as a
/// service in use holds, so that the queues the run fills are read with the plans of a
/// table with history and statistics rather than those of a fresh installation. Their
/// recipients' numbers start with day 99: no citizen of the run has one.
pub(crate) async fn seed_history_by_sql(
    url: &str,
    schema: &str,
    count: usize,
) -> anyhow::Result<()> {
    use sea_orm::ConnectionTrait as _;
    let started = Instant::now();
    let db = sea_orm::Database::connect(url).await?;
    db.execute_unprepared(&format!(
        "CREATE TEMPORARY TABLE history AS \
           SELECT gen_random_uuid() AS delivery_id, gen_random_uuid() AS notice_id, \
                  '99' || lpad((i % 1000000)::text, 9, '0') AS recipient, \
                  now() - interval '7 days' + i * (interval '6 days' / {count}) AS at \
           FROM generate_series(1, {count}) AS i; \
         INSERT INTO {schema}.notice_deliveries (id, recipient_national_id, channel, \
           provider_id, state, attempts, next_attempt_at, lease_until, last_error, created_at, \
           updated_at) \
           SELECT delivery_id, recipient, 'sms', 'SM' || md5(delivery_id::text), 'delivered', \
                  1, at, NULL, NULL, at, at + interval '2 seconds' FROM history; \
         INSERT INTO {schema}.notices (id, recipient_national_id, patient_id, on_behalf, kind, \
           channel, status, skip_reason, subject_time, delivery_id, error_code, created_at, \
           updated_at) \
           SELECT notice_id, recipient, gen_random_uuid(), false, 'visit_completed', 'sms', \
                  'delivered', NULL, at, delivery_id, NULL, at, at + interval '5 seconds' \
           FROM history"
    ))
    .await?;
    db.close().await?;
    eprintln!(
        "seeded {count} delivered notices of the past week by SQL in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
