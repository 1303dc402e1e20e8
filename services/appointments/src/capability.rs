//! The appointments capability: visits, cancellations and their delivery to the EPJ, and
//! the staff change stream, with their configuration.

use std::sync::Arc;

use homecare_core::SystemClock;
use homecare_epj::{FhirEpj, FhirEpjConfig};
use homecare_outbox::{Sink as _, Wakeup};
use homecare_proto::appointments::v1::appointment_service_server::AppointmentServiceServer;
use homecare_runtime::{BuildError, Capability, Context, FOLLOW_POLL, MAX_REQUEST_BYTES, Parts};

use crate::AppointmentApi;
use crate::config::{CancellationConfig, EpjConfig};
use crate::feed::ChangeFeed;
use crate::outbox::EpjSink;
use crate::upcoming::{UpcomingFollower, UpcomingVisits};

const MEBIBYTE: u64 = 1024 * 1024;

/// Visits, cancellations and their delivery to the EPJ, and the staff change stream. Shares
/// the visits' [`ChangeFeed`] with the capabilities built after it.
pub struct Appointments {
    /// When patients may cancel.
    pub cancellation: CancellationConfig,
    /// The EPJ cancellations are written to.
    pub epj: EpjConfig,
    /// Citizens' upcoming visits kept in memory, in MiB.
    pub visits_megabytes: u64,
}

impl Capability for Appointments {
    fn name(&self) -> &'static str {
        "appointments"
    }

    fn build(self: Box<Self>, context: &Context, parts: &mut Parts) -> Result<(), BuildError> {
        let upcoming = Arc::new(UpcomingVisits::new(
            self.visits_megabytes * MEBIBYTE,
            context.coherence.clone(),
        ));
        let feed = ChangeFeed::new(upcoming.clone());
        parts.task(
            "upcoming visits follower",
            homecare_core::event_log::follow(
                context.background_db.clone(),
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
        if let Some(worker) = epj_delivery(&self.epj, context, &feed, &epj_outbox)? {
            parts.task("EPJ delivery", worker);
        }
        parts.task(
            "EPJ outbox metrics",
            homecare_outbox::gauges::sample_every::<crate::outbox::entity::Entity>(
                EpjSink::NAME,
                context.background_db.clone(),
                Arc::new(SystemClock),
                context.sample_every,
                context.shutdown.clone(),
            ),
        );
        let api = AppointmentApi::new(
            context.db.clone(),
            context.actors.clone(),
            context.read_log.clone(),
            context.clock.clone(),
            self.cancellation.policy(context.time_zone)?,
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
    config: &EpjConfig,
    context: &Context,
    feed: &ChangeFeed,
    wakeup: &Wakeup,
) -> Result<Option<tokio::task::JoinHandle<()>>, BuildError> {
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
    .map_err(|error| BuildError::Setup {
        capability: "appointments",
        reason: format!("EPJ client: {error}"),
    })?;
    let sink = EpjSink::new(Arc::new(epj), context.clock.clone(), feed.clone());
    // The outbox schedules by the machine's clock; history entries take the business clock.
    let worker = homecare_outbox::Worker::new(
        context.background_db.clone(),
        Arc::new(sink),
        Arc::new(SystemClock),
        wakeup.clone(),
        context.shutdown.clone(),
        config.delivery_settings(),
    );
    Ok(Some(tokio::spawn(worker.run())))
}
