//! Patients, proxies, terms of use and the access log.

mod config;

use std::sync::Arc;

use homecare_patients::PatientApi;
use homecare_patients::kept_proxies::ProxyFollower;
use homecare_proto::patients::v1::patient_service_server::PatientServiceServer;
use homecare_runtime::{BuildError, Capability, Context, FOLLOW_POLL, MAX_REQUEST_BYTES, Parts};

pub use config::TermsConfig;

/// Patients, proxies, terms of use and the access log. The terms and the proxies kept in
/// memory are built with the server's [`homecare_patients::Actors`], which every capability
/// shares.
pub struct Patients;

impl Capability for Patients {
    fn name(&self) -> &'static str {
        "patients"
    }

    fn build(self: Box<Self>, context: &Context, parts: &mut Parts) -> Result<(), BuildError> {
        let api = PatientApi::new(
            context.db.clone(),
            context.actors.clone(),
            context.read_log.clone(),
            context.clock.clone(),
            context.time_zone,
        );
        parts.grpc(PatientServiceServer::new(api).max_decoding_message_size(MAX_REQUEST_BYTES));
        let proxies = context.actors.kept_proxies().clone();
        parts.topic(Arc::new(proxies.topic().clone())).task(
            "proxies follower",
            homecare_core::event_log::follow(
                context.background_db.clone(),
                Arc::new(ProxyFollower(proxies.clone())),
                proxies.topic().elsewhere(),
                FOLLOW_POLL,
                context.shutdown.clone(),
            ),
        );
        Ok(())
    }
}
