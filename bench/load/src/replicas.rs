//! `--replicas 2`: how soon a change made on one server process reaches a staff stream on
//! another process on the same PostgreSQL (the LISTEN/NOTIFY path, polling only as fallback).

use std::time::{Duration, Instant};

use homecare_proto::appointments::v1::appointment_service_client::AppointmentServiceClient;
use homecare_proto::appointments::v1::{
    AppointmentStatus, ListAppointmentsRequest, ServiceType, UpsertAppointmentRequest,
    WatchCareUnitChangesRequest,
};
use homecare_server::dev_keys::TokenMinter;
use tonic::transport::Channel;

use crate::authorized;

const UNIT: &str = "unit-replicas";

/// The latencies from a change's answer on the first replica to its being seen on the
/// second.
pub(crate) struct ReplicaLatency {
    what: &'static str,
    samples: Vec<Duration>,
}

impl ReplicaLatency {
    pub(crate) fn print(&self) {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let at = |fraction: f64| {
            sorted[((sorted.len() as f64 * fraction) as usize).min(sorted.len() - 1)].as_secs_f64()
                * 1e3
        };
        println!(
            "{}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} changes)",
            self.what,
            at(0.5),
            at(0.99),
            at(1.0),
            sorted.len()
        );
    }
}

/// Changes one visit `count` times through `first` and times each change's arrival on a
/// stream of `second`.
pub(crate) async fn run(
    first: &Channel,
    second: &Channel,
    tokens: &TokenMinter,
    pid: &str,
    count: usize,
) -> anyhow::Result<ReplicaLatency> {
    let ttl = chrono::Duration::hours(1);
    let epj = tokens.staff(
        "load-epj",
        &[homecare_core::caller::EPJ_INTEGRATION_ROLE],
        &[],
        ttl,
    )?;
    let nurse = tokens.staff("load-nurse", &["nurse"], &[UNIT], ttl)?;
    let mut writer = AppointmentServiceClient::new(first.clone());
    let change = |hours: i64| {
        let start = chrono::Utc::now() + chrono::Duration::days(2) + chrono::Duration::hours(hours);
        authorized(
            &epj,
            UpsertAppointmentRequest {
                epj_id: "load-replicas".into(),
                patient_national_id: pid.to_owned(),
                care_unit_id: UNIT.into(),
                window_start: Some(crate::timestamp(start)),
                window_end: Some(crate::timestamp(start + chrono::Duration::minutes(30))),
                service_type: ServiceType::HomeNursing.into(),
                status: AppointmentStatus::Planned.into(),
                citizen_cancellable: true,
                epj_version_id: String::new(),
            },
        )
    };
    writer.upsert_appointment(change(0)).await?;
    let mut stream = AppointmentServiceClient::new(second.clone())
        .watch_care_unit_changes(authorized(
            &nurse,
            WatchCareUnitChangesRequest {
                care_unit_id: UNIT.into(),
                resume_token: String::new(),
            },
        ))
        .await?
        .into_inner();
    let mut samples = Vec::with_capacity(count);
    for n in 1..=count {
        let answer = writer
            .upsert_appointment(change(i64::try_from(n % 48).unwrap_or(0) + 1))
            .await?
            .into_inner();
        let answered = Instant::now();
        let version = answer.appointment.map(|visit| visit.version).unwrap_or(0);
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .map_err(|_| anyhow::anyhow!("no event on the second replica within 10 s"))??
                .ok_or_else(|| anyhow::anyhow!("the second replica's stream ended"))?;
            if message.event.is_some_and(|event| event.version >= version) {
                break;
            }
        }
        samples.push(answered.elapsed());
    }
    Ok(ReplicaLatency {
        what: "change on replica 1 -> stream on replica 2",
        samples,
    })
}

/// Changes a visit of `pid` `count` times through `first` and times how soon the patient's
/// own ListAppointments on `second` (which keeps the patient's upcoming visits in memory)
/// shows each change: the list is read again and again until it does.
pub(crate) async fn read_your_writes(
    first: &Channel,
    second: &Channel,
    tokens: &TokenMinter,
    pid: &str,
    count: usize,
) -> anyhow::Result<ReplicaLatency> {
    let ttl = chrono::Duration::hours(1);
    let epj = tokens.staff(
        "load-epj",
        &[homecare_core::caller::EPJ_INTEGRATION_ROLE],
        &[],
        ttl,
    )?;
    let citizen = tokens.citizen(pid, ttl)?;
    let patient_id = crate::own_patient_id(second, &citizen).await?;
    let mut writer = AppointmentServiceClient::new(first.clone());
    let mut reader = AppointmentServiceClient::new(second.clone());
    let change = |hours: i64| {
        let start = chrono::Utc::now() + chrono::Duration::hours(2 + hours);
        authorized(
            &epj,
            UpsertAppointmentRequest {
                epj_id: "load-read-your-writes".into(),
                patient_national_id: pid.to_owned(),
                care_unit_id: UNIT.into(),
                window_start: Some(crate::timestamp(start)),
                window_end: Some(crate::timestamp(start + chrono::Duration::minutes(30))),
                service_type: ServiceType::HomeNursing.into(),
                status: AppointmentStatus::Planned.into(),
                citizen_cancellable: true,
                epj_version_id: String::new(),
            },
        )
    };
    let list = || {
        authorized(
            &citizen,
            ListAppointmentsRequest {
                patient_id: patient_id.clone(),
                ..Default::default()
            },
        )
    };
    writer.upsert_appointment(change(0)).await?;
    let mut samples = Vec::with_capacity(count);
    for n in 1..=count {
        // Read (and kept) on the second before the change.
        reader.list_appointments(list()).await?;
        let answer = writer
            .upsert_appointment(change(i64::try_from(n % 6).unwrap_or(0) + 1))
            .await?
            .into_inner();
        let answered = Instant::now();
        let (id, version) = answer
            .appointment
            .map(|visit| (visit.id, visit.version))
            .unwrap_or_default();
        loop {
            let listed = reader.list_appointments(list()).await?.into_inner();
            if listed
                .appointments
                .iter()
                .any(|visit| visit.id == id && visit.version >= version)
            {
                break;
            }
            if answered.elapsed() > Duration::from_secs(10) {
                anyhow::bail!("the second replica still listed the old visit after 10 s");
            }
        }
        samples.push(answered.elapsed());
    }
    Ok(ReplicaLatency {
        what: "change on replica 1 -> patient's list on replica 2",
        samples,
    })
}
