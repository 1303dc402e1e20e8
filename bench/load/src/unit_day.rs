//! A care unit's day: staff read the 300 visits of their unit's day (two pages of
//! ListCareUnitAppointments, 200 and 100), as a home-care app does at the start of a shift.

use chrono::{Datelike as _, TimeZone as _};
use homecare_proto::appointments::v1::appointment_service_client::AppointmentServiceClient;
use homecare_proto::appointments::v1::{
    AppointmentStatus, ListCareUnitAppointmentsRequest, ServiceType, UpsertAppointmentRequest,
};
use homecare_server::dev_keys::TokenMinter;
use tonic::transport::Channel;

use crate::authorized;

/// The unit whose day is read.
pub(crate) const UNIT: &str = "unit-day";
/// Visits of that unit on that day.
pub(crate) const VISITS: usize = 300;

/// The day read: the day after tomorrow in Oslo, taken once, at seeding (taken again when
/// the scenario starts, it moved at midnight in Oslo and no call found the 300 visits).
fn day() -> chrono::NaiveDate {
    (chrono::Utc::now().with_timezone(&chrono_tz::Europe::Oslo) + chrono::Duration::days(2))
        .date_naive()
}

/// Upserts [`VISITS`] visits of [`UNIT`] on [`day`], one per patient of `pids` in turn,
/// between 07:00 and 22:00; returns the day.
pub(crate) async fn seed(
    channel: &Channel,
    epj: &str,
    pids: &[String],
) -> anyhow::Result<chrono::NaiveDate> {
    let day = day();
    let morning = chrono_tz::Europe::Oslo
        .with_ymd_and_hms(day.year(), day.month(), day.day(), 7, 0, 0)
        .single()
        .ok_or_else(|| anyhow::anyhow!("07:00 on the day"))?
        .with_timezone(&chrono::Utc);
    let mut client = AppointmentServiceClient::new(channel.clone());
    for visit in 0..VISITS {
        let start = morning + chrono::Duration::minutes(visit as i64 * 3);
        client
            .upsert_appointment(authorized(
                epj,
                UpsertAppointmentRequest {
                    epj_id: format!("day-{visit}"),
                    patient_national_id: pids[visit % pids.len()].clone(),
                    care_unit_id: UNIT.into(),
                    window_start: Some(crate::timestamp(start)),
                    window_end: Some(crate::timestamp(start + chrono::Duration::minutes(30))),
                    service_type: ServiceType::HomeNursing.into(),
                    status: AppointmentStatus::Planned.into(),
                    citizen_cancellable: true,
                    epj_version_id: String::new(),
                },
            ))
            .await?;
    }
    Ok(day)
}

/// One read of the whole `day` by a nurse of the unit; a call counts when all [`VISITS`]
/// came back.
pub(crate) fn scenario(
    channel: &Channel,
    tokens: &TokenMinter,
    day: chrono::NaiveDate,
) -> anyhow::Result<
    impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
    + Clone
    + Send
    + 'static,
> {
    let nurse: std::sync::Arc<str> = tokens
        .staff(
            "load-day-nurse",
            &["nurse"],
            &[UNIT],
            chrono::Duration::hours(2),
        )?
        .into();
    let channel = channel.clone();
    let date = day.to_string();
    Ok(move || {
        let mut client = AppointmentServiceClient::new(channel.clone());
        let nurse = nurse.clone();
        let date = date.clone();
        Box::pin(async move {
            let mut seen = 0;
            let mut page_token = String::new();
            loop {
                let Ok(page) = client
                    .list_care_unit_appointments(authorized(
                        &nurse,
                        ListCareUnitAppointmentsRequest {
                            care_unit_id: UNIT.into(),
                            date: date.clone(),
                            page_size: 200,
                            page_token,
                        },
                    ))
                    .await
                else {
                    return false;
                };
                let page = page.into_inner();
                seen += page.appointments.len();
                if page.next_page_token.is_empty() {
                    return seen == VISITS;
                }
                page_token = page.next_page_token;
            }
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
    })
}

/// A patient of the day reads the first page (50) of their access log, which holds every read
/// of the day so far: the cost of reading a log whose reads are stored once per set of
/// patients. A call counts when the page is full.
pub(crate) fn access_log_scenario(
    channel: &Channel,
    citizen: &str,
    patient_id: &str,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
+ Clone
+ Send
+ 'static {
    use homecare_proto::patients::v1::ListAccessLogRequest;
    use homecare_proto::patients::v1::patient_service_client::PatientServiceClient;
    let channel = channel.clone();
    let citizen: std::sync::Arc<str> = citizen.into();
    let patient_id: std::sync::Arc<str> = patient_id.into();
    move || {
        let mut client = PatientServiceClient::new(channel.clone());
        let request = authorized(
            &citizen,
            ListAccessLogRequest {
                patient_id: patient_id.to_string(),
                page_size: 50,
                page_token: String::new(),
            },
        );
        Box::pin(async move {
            client
                .list_access_log(request)
                .await
                .is_ok_and(|response| response.into_inner().entries.len() == 50)
        })
    }
}
