//! `--memory-patients N`: the server's peak RSS after N patients with 20 visits each have
//! each read their own list once, so that every patient's upcoming visits were kept in
//! memory (as far as `read_cache.visits_megabytes` lets them).

use std::sync::Arc;
use std::time::Instant;

use homecare_proto::appointments::v1::ListAppointmentsRequest;
use homecare_proto::appointments::v1::appointment_service_client::AppointmentServiceClient;
use homecare_server::dev_keys::TokenMinter;
use tonic::transport::Channel;

use crate::{authorized, own_patient_id};

/// Has each of `pids` (patients already seeded) accept the terms and list their visits
/// once, 64 at a time; returns how many lists came back with `visits` visits.
pub(crate) async fn read_each_once(
    channel: &Channel,
    tokens: &TokenMinter,
    pids: &[String],
    visits: usize,
) -> anyhow::Result<usize> {
    let started = Instant::now();
    let tokens = Arc::new(tokens.clone());
    let mut tasks = tokio::task::JoinSet::new();
    let mut complete = 0;
    for pid in pids {
        let channel = channel.clone();
        let tokens = tokens.clone();
        let pid = pid.clone();
        tasks.spawn(async move {
            let citizen = tokens.citizen(&pid, chrono::Duration::hours(2))?;
            let patient_id = own_patient_id(&channel, &citizen).await?;
            let listed = AppointmentServiceClient::new(channel)
                .list_appointments(authorized(
                    &citizen,
                    ListAppointmentsRequest {
                        patient_id,
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner()
                .appointments
                .len();
            Ok::<_, anyhow::Error>(listed)
        });
        if tasks.len() >= 64 {
            complete += usize::from(tasks.join_next().await.expect("a task")?? == visits);
        }
    }
    while let Some(listed) = tasks.join_next().await {
        complete += usize::from(listed?? == visits);
    }
    eprintln!(
        "{} patients read their lists in {:.1}s",
        pids.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(complete)
}

/// Writes `pids` as patients with `visits` upcoming visits each straight into the schema
/// (PostgreSQL only): through the EPJ's RPC, 2 million visits take most of an hour on this
/// machine, and the scenario measures the reads, not the seeding.
pub(crate) async fn seed_by_sql(
    url: &str,
    schema: &str,
    pids: &[String],
    visits: usize,
) -> anyhow::Result<()> {
    use sea_orm::ConnectionTrait as _;
    let started = Instant::now();
    let db = sea_orm::Database::connect(url).await?;
    let values = pids
        .iter()
        .map(|pid| format!("('{pid}')"))
        .collect::<Vec<_>>()
        .join(",");
    db.execute_unprepared(&format!(
        "INSERT INTO {schema}.patients (id, national_id, created_at, protected_address) \
         SELECT gen_random_uuid(), pid, now(), false FROM (VALUES {values}) AS p(pid)"
    ))
    .await?;
    db.execute_unprepared(&format!(
        "INSERT INTO {schema}.appointments (id, epj_id, patient_id, care_unit_id, window_start, \
         window_end, service_type, status, citizen_cancellable, epj_version_id, version, \
         created_at, updated_at) \
         SELECT gen_random_uuid(), 'mem-' || p.national_id || '-' || v, p.id, \
         'unit-' || (abs(hashtext(p.national_id)) % 10), \
         now() + interval '1 day' + v * interval '8 hours', \
         now() + interval '1 day' + v * interval '8 hours' + interval '30 minutes', \
         'home_nursing', 'planned', true, NULL, 1, now(), now() \
         FROM {schema}.patients p CROSS JOIN generate_series(0, {last}) AS v",
        last = visits.saturating_sub(1)
    ))
    .await?;
    db.execute_unprepared(&format!(
        "ANALYZE {schema}.patients; ANALYZE {schema}.appointments"
    ))
    .await?;
    db.close().await?;
    eprintln!(
        "seeded {} patients x {visits} visits by SQL in {:.1}s",
        pids.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
