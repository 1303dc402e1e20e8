//! The capabilities this server is made of (see [`crate::capability`]), each with its
//! configuration section beside it.

pub mod appointments {
    //! Visits, cancellations and the EPJ.
    mod config;
    pub use config::{CancellationConfig, EpjConfig};
}

pub mod messaging;
pub mod notifications;

pub mod patients {
    //! Patients, proxies, terms of use.
    mod config;
    pub use config::TermsConfig;
}

use std::sync::Arc;

use homecare_appointments::AppointmentApi;
use homecare_appointments::feed::ChangeFeed;
use homecare_appointments::outbox::EpjSink;
use homecare_appointments::upcoming::{UpcomingFollower, UpcomingVisits};
use homecare_core::SystemClock;
use homecare_epj::{FhirEpj, FhirEpjConfig};
use homecare_outbox::{Sink as _, Wakeup};
use homecare_patients::PatientApi;
use homecare_patients::kept_proxies::ProxyFollower;
use homecare_proto::appointments::v1::appointment_service_server::AppointmentServiceServer;
use homecare_proto::patients::v1::patient_service_server::PatientServiceServer;

use crate::ServerError;
use crate::capability::{Capability, Context, MAX_REQUEST_BYTES, Parts};

const MEBIBYTE: u64 = 1024 * 1024;

/// How often the followers that keep caches coherent read their log unwoken: a fallback for
/// a change whose cross-process signal was lost (the LISTEN connection's loss is noticed and
/// faults the caches; a NOTIFY lost otherwise is not).
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Patients, proxies, terms of use and the access log.
pub struct Patients;

impl Capability for Patients {
    fn name(&self) -> &'static str {
        "patients"
    }

    fn build(self: Box<Self>, context: &Context, parts: &mut Parts) -> Result<(), ServerError> {
        let api = PatientApi::new(
            context.db.clone(),
            context.actors.clone(),
            context.read_log.clone(),
            context.clock.clone(),
            context.config.time_zone()?,
        );
        parts.grpc(PatientServiceServer::new(api).max_decoding_message_size(MAX_REQUEST_BYTES));
        let proxies = context.actors.kept_proxies().clone();
        parts.topic(Arc::new(proxies.topic().clone())).task(
            "proxies follower",
            homecare_core::event_log::follow(
                context.db.clone(),
                Arc::new(ProxyFollower(proxies.clone())),
                proxies.topic().elsewhere(),
                FOLLOW_POLL,
                context.shutdown.clone(),
            ),
        );
        Ok(())
    }
}

/// Visits, cancellations and their delivery to the EPJ, and the staff change stream.
pub struct Appointments;

impl Capability for Appointments {
    fn name(&self) -> &'static str {
        "appointments"
    }

    fn build(self: Box<Self>, context: &Context, parts: &mut Parts) -> Result<(), ServerError> {
        let config = &context.config;
        let upcoming = Arc::new(UpcomingVisits::new(
            config.read_cache.visits_megabytes * MEBIBYTE,
            context.coherence.clone(),
        ));
        let feed = ChangeFeed::new(upcoming.clone());
        parts.task(
            "upcoming visits follower",
            homecare_core::event_log::follow(
                context.db.clone(),
                Arc::new(UpcomingFollower(upcoming)),
                feed.subscribe_elsewhere(),
                FOLLOW_POLL,
                context.shutdown.clone(),
            ),
        );
        let epj_outbox = Wakeup::new("epj_outbox");
        parts
            .topic(Arc::new(feed.clone()))
            .topic(Arc::new(epj_outbox.clone()))
            .share(feed.clone());
        if let Some(worker) = epj_delivery(context, &feed, &epj_outbox)? {
            parts.task("EPJ delivery", worker);
        }
        parts.task(
            "EPJ outbox metrics",
            homecare_outbox::gauges::sample_every::<homecare_appointments::outbox::entity::Entity>(
                EpjSink::NAME,
                context.db.clone(),
                Arc::new(SystemClock),
                std::time::Duration::from_secs(config.metrics.sample_seconds.max(1)),
                context.shutdown.clone(),
            ),
        );
        let api = AppointmentApi::new(
            context.db.clone(),
            context.actors.clone(),
            context.read_log.clone(),
            context.clock.clone(),
            config.cancellation.policy(config.time_zone()?)?,
            feed,
            epj_outbox,
            context.shutdown.clone(),
        );
        parts.grpc(AppointmentServiceServer::new(api).max_decoding_message_size(MAX_REQUEST_BYTES));
        Ok(())
    }
}

/// Starts the worker that writes cancellations to the EPJ, if one is configured.
fn epj_delivery(
    context: &Context,
    feed: &ChangeFeed,
    wakeup: &Wakeup,
) -> Result<Option<tokio::task::JoinHandle<()>>, ServerError> {
    let config = &context.config.epj;
    if config.base_url.is_empty() {
        tracing::warn!(
            "no EPJ configured (epj.base_url): cancellations are kept until a server with one \
             starts"
        );
        return Ok(None);
    }
    let epj = FhirEpj::new(FhirEpjConfig {
        base_url: config.base_url.clone(),
        bearer_token: config.bearer_token.clone(),
        timeout: std::time::Duration::from_secs(config.timeout_seconds),
    })
    .map_err(ServerError::Epj)?;
    let sink = EpjSink::new(Arc::new(epj), context.clock.clone(), feed.clone());
    // The outbox schedules by the machine's clock; history entries take the business clock.
    let worker = homecare_outbox::Worker::new(
        context.db.clone(),
        Arc::new(sink),
        Arc::new(SystemClock),
        wakeup.clone(),
        context.shutdown.clone(),
        config.delivery_settings(),
    );
    Ok(Some(tokio::spawn(worker.run())))
}
