//! The cancellation scenario: accepted cancellations per second, and how long each took
//! from the cancel RPC's answer to the EPJ receiving the update.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use homecare_proto::appointments::v1::appointment_service_client::AppointmentServiceClient;
use homecare_proto::appointments::v1::{
    AppointmentStatus, CancelAppointmentRequest, ServiceType, UpsertAppointmentRequest,
};
use homecare_proto::patients::v1::ListRepresentedPatientsRequest;
use homecare_proto::patients::v1::patient_service_client::PatientServiceClient;
use homecare_server::dev_keys::TokenMinter;
use tonic::transport::Channel;

use crate::epj::FakeEpj;
use crate::{Args, authorized, timestamp};

pub(crate) const VISITS_PER_PATIENT: usize = 20;

/// One visit to cancel, with what its patient's call needs.
pub(crate) struct Job {
    token: Arc<String>,
    patient_id: Arc<String>,
    appointment_id: String,
    epj_id: String,
}

/// Seeds [`VISITS_PER_PATIENT`] cancellable visits, days ahead, for each of `pids`.
pub(crate) async fn seed(
    channel: &Channel,
    epj_token: &str,
    tokens: &TokenMinter,
    pids: &[String],
) -> anyhow::Result<Vec<Job>> {
    let start = chrono::Utc::now() + chrono::Duration::days(3);
    let mut jobs = Vec::with_capacity(pids.len() * VISITS_PER_PATIENT);
    let mut tasks = tokio::task::JoinSet::new();
    for (patient, pid) in pids.iter().enumerate() {
        let channel = channel.clone();
        let epj_token = epj_token.to_owned();
        let pid = pid.clone();
        let citizen = Arc::new(tokens.citizen(&pid, chrono::Duration::hours(2))?);
        tasks.spawn(async move {
            let mut client = AppointmentServiceClient::new(channel.clone());
            let mut visits = Vec::with_capacity(VISITS_PER_PATIENT);
            for visit in 0..VISITS_PER_PATIENT {
                let window_start = start + chrono::Duration::hours(visit as i64 * 8);
                let epj_id = format!("cancel-{patient}-{visit}");
                let stored = client
                    .upsert_appointment(authorized(
                        &epj_token,
                        UpsertAppointmentRequest {
                            epj_id: epj_id.clone(),
                            patient_national_id: pid.clone(),
                            care_unit_id: format!("unit-{}", patient % 10),
                            window_start: Some(timestamp(window_start)),
                            window_end: Some(timestamp(
                                window_start + chrono::Duration::minutes(30),
                            )),
                            service_type: ServiceType::PracticalHelp.into(),
                            status: AppointmentStatus::Planned.into(),
                            citizen_cancellable: true,
                            epj_version_id: String::new(),
                        },
                    ))
                    .await?
                    .into_inner()
                    .appointment
                    .context("upserted visit")?;
                visits.push((stored.id, epj_id));
            }
            crate::accept_terms(&channel, &citizen).await?;
            let patient_id = Arc::new(
                PatientServiceClient::new(channel)
                    .list_represented_patients(authorized(
                        &citizen,
                        ListRepresentedPatientsRequest {},
                    ))
                    .await?
                    .into_inner()
                    .patients
                    .first()
                    .context("the patient is known")?
                    .patient_id
                    .clone(),
            );
            Ok::<_, anyhow::Error>(
                visits
                    .into_iter()
                    .map(|(appointment_id, epj_id)| Job {
                        token: citizen.clone(),
                        patient_id: patient_id.clone(),
                        appointment_id,
                        epj_id,
                    })
                    .collect::<Vec<_>>(),
            )
        });
        // Bounded parallelism while seeding.
        if tasks.len() >= 16 {
            jobs.extend(tasks.join_next().await.context("seed task")???);
        }
    }
    while let Some(result) = tasks.join_next().await {
        jobs.extend(result??);
    }
    Ok(jobs)
}

/// What the scenario measured.
pub(crate) struct CancelResult {
    accepted: usize,
    errors: usize,
    elapsed: Duration,
    call_p50: Duration,
    call_p99: Duration,
    delivered: usize,
    duplicates: usize,
    to_epj_p50: Duration,
    to_epj_p99: Duration,
    to_epj_max: Duration,
}

impl CancelResult {
    pub(crate) fn print(&self) {
        println!(
            "{:<20} {:>12.0} {:>10.2} {:>10.2} {:>8}",
            "cancel_appointment",
            self.accepted as f64 / self.elapsed.as_secs_f64(),
            self.call_p50.as_secs_f64() * 1e3,
            self.call_p99.as_secs_f64() * 1e3,
            self.errors
        );
        println!(
            "cancel answer -> EPJ received: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms \
             ({} of {} delivered, {} delivered twice)",
            self.to_epj_p50.as_secs_f64() * 1e3,
            self.to_epj_p99.as_secs_f64() * 1e3,
            self.to_epj_max.as_secs_f64() * 1e3,
            self.delivered,
            self.accepted,
            self.duplicates
        );
    }
}

/// Cancels visits from `args.concurrency` tasks for `args.seconds` (or until the visits run
/// out), then waits up to a minute for the EPJ to have every accepted one.
pub(crate) async fn run(
    channel: &Channel,
    args: &Args,
    jobs: Vec<Job>,
    epj: &FakeEpj,
) -> CancelResult {
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let answered: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let jobs = jobs.clone();
            let next = next.clone();
            let answered = answered.clone();
            let mut client = AppointmentServiceClient::new(channel.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                while Instant::now() < deadline {
                    let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let call_started = Instant::now();
                    let result = client
                        .cancel_appointment(authorized(
                            &job.token,
                            CancelAppointmentRequest {
                                patient_id: job.patient_id.to_string(),
                                appointment_id: job.appointment_id.clone(),
                                reason: "Load test".into(),
                                request_id: format!("load-{}", job.epj_id),
                            },
                        ))
                        .await;
                    let answer = Instant::now();
                    latencies.push(answer - call_started);
                    match result {
                        Ok(_) => {
                            answered
                                .lock()
                                .expect("answered")
                                .insert(job.epj_id.clone(), answer);
                        }
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (task_latencies, task_errors) = task.await.expect("cancel task");
        latencies.extend(task_latencies);
        errors += task_errors;
    }
    let elapsed = started.elapsed();
    let answered = std::mem::take(&mut *answered.lock().expect("answered"));

    // Wait for the worker to catch up, by looking at what the EPJ has.
    let receipts = epj.receipts();
    let wait_until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < wait_until {
        let have = receipts.lock().expect("receipts").len();
        if have >= answered.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let receipts = receipts.lock().expect("receipts").clone();
    let mut to_epj: Vec<Duration> = answered
        .iter()
        .filter_map(|(epj_id, answer)| {
            receipts
                .get(epj_id)
                .map(|(arrived, _)| arrived.saturating_duration_since(*answer))
        })
        .collect();
    to_epj.sort_unstable();
    latencies.sort_unstable();
    CancelResult {
        accepted: answered.len(),
        errors,
        elapsed,
        call_p50: percentile(&latencies, 0.50),
        call_p99: percentile(&latencies, 0.99),
        delivered: to_epj.len(),
        duplicates: receipts.values().filter(|(_, count)| *count > 1).count(),
        to_epj_p50: percentile(&to_epj, 0.50),
        to_epj_p99: percentile(&to_epj, 0.99),
        to_epj_max: to_epj.last().copied().unwrap_or_default(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}
