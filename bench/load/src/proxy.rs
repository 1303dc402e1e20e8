//! The proxy scenario's setup: one relative holds proxies from three patients.

use anyhow::Context as _;
use chrono::NaiveDate;
use homecare_core::NationalIdentityNumber;
use homecare_proto::patients::v1::patient_service_client::PatientServiceClient;
use homecare_proto::patients::v1::{GrantProxyRequest, Scope};
use homecare_server::dev_keys::TokenMinter;
use tonic::transport::Channel;

use crate::{accept_terms, authorized, own_patient_id};

/// Has each of `patients` grant one relative a proxy to read visits; returns the relative's
/// token and the patient ids they may use.
pub(crate) async fn seed(
    channel: &Channel,
    tokens: &TokenMinter,
    patients: &[String],
) -> anyhow::Result<(String, Vec<String>)> {
    let ttl = chrono::Duration::hours(2);
    let born = NaiveDate::from_ymd_opt(1970, 1, 15).context("date")?;
    let relative = (100..200)
        .find_map(|individual| NationalIdentityNumber::synthesize(born, individual))
        .context("a relative's identity number")?;
    let holder = tokens.citizen(relative.expose(), ttl)?;
    accept_terms(channel, &holder).await?;
    let mut represented = Vec::new();
    for (index, pid) in patients.iter().enumerate() {
        let citizen = tokens.citizen(pid, ttl)?;
        let patient_id = own_patient_id(channel, &citizen).await?;
        PatientServiceClient::new(channel.clone())
            .grant_proxy(authorized(
                &citizen,
                GrantProxyRequest {
                    patient_id: patient_id.clone(),
                    holder_national_id: relative.expose().to_owned(),
                    holder_name: "Load Relative".into(),
                    patient_name: format!("Load Patient {index}"),
                    scopes: vec![Scope::ReadVisits.into()],
                    valid_time: None,
                    end_time: None,
                    request_id: format!("load-proxy-{index}"),
                },
            ))
            .await?;
        represented.push(patient_id);
    }
    Ok((holder, represented))
}
