//! The notifications capability: durable consumers of the visits', messages' and proxies'
//! histories, one outbox worker per channel, the provider's status reports, and the gRPC
//! service, with their configuration.

use std::sync::Arc;
use std::time::Duration;

use homecare_core::event_log::run_consumer;
use homecare_outbox::{Sink, Wakeup, Worker};
use homecare_proto::notifications::v1::notification_service_server::NotificationServiceServer;
use homecare_runtime::{BuildError, Capability, Context, MAX_REQUEST_BYTES, Parts};
use secrecy::SecretString;

use crate::NotificationApi;
use crate::callback::StatusReports;
use crate::config::NotificationsConfig;
use crate::entity::delivery;
use crate::plan::{MessageNotifier, Notifier, ProxyNotifier, VisitNotifier};
use crate::sink::{Composer, EmailProvider, NoticeSink, QUIET_HOURS, SmsProvider};
use crate::templates::{Branding, Templates};

/// Notices by SMS and e-mail.
pub struct Notifications(pub NotificationsConfig);

impl Capability for Notifications {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn build(self: Box<Self>, context: &Context, parts: &mut Parts) -> Result<(), BuildError> {
        let config = &self.0;
        let zone = context.time_zone;
        let templates = Templates::load(config.templates_dir.as_deref()).map_err(|error| {
            BuildError::Setup {
                capability: "notifications",
                reason: error.to_string(),
            }
        })?;
        let timing = config.timing(zone)?;
        let sms_wakeup = Wakeup::new("sms_outbox");
        let email_wakeup = Wakeup::new("email_outbox");
        parts
            .topic(Arc::new(sms_wakeup.clone()))
            .topic(Arc::new(email_wakeup.clone()));

        let notifier = Notifier {
            timing: timing.clone(),
            added_horizon: Duration::from_secs(config.added_horizon_hours * 3600),
            sms: sms_wakeup.clone(),
            email: email_wakeup.clone(),
            clock: context.clock.clone(),
        };
        let poll = Duration::from_millis(config.poll_millis);
        // Each log's topic wakes its consumer as it changes, here or on another replica. The
        // poll stays needed on PostgreSQL: a wake-up can come before its event may be read
        // (an older transaction still runs), and no second one comes for it.
        let changes = |name: &str| {
            parts
                .topic_changes(name)
                .unwrap_or_else(|| tokio::sync::watch::channel(0).1)
        };
        let visits_changed = changes("visits");
        let messages_changed = changes("messages");
        let proxies_changed = changes("proxies");
        parts.task(
            "visit notices",
            run_consumer(
                context.background_db.clone(),
                Arc::new(VisitNotifier(notifier.clone())),
                visits_changed,
                context.clock.clone(),
                poll,
                context.shutdown.clone(),
            ),
        );
        parts.task(
            "message notices",
            run_consumer(
                context.background_db.clone(),
                Arc::new(MessageNotifier(notifier.clone())),
                messages_changed,
                context.clock.clone(),
                poll,
                context.shutdown.clone(),
            ),
        );
        parts.task(
            "proxy notices",
            run_consumer(
                context.background_db.clone(),
                Arc::new(ProxyNotifier(notifier)),
                proxies_changed,
                context.clock.clone(),
                poll,
                context.shutdown.clone(),
            ),
        );

        let composer = Arc::new(Composer::new(
            context.background_db.clone(),
            Arc::new(templates),
            Branding {
                service_name: config.service_name.clone(),
                portal_url: config.portal_url.clone(),
                zone,
            },
            context.clock.clone(),
        ));
        match config.twilio()? {
            Some(twilio) => {
                let sink = NoticeSink::new(
                    composer.clone(),
                    SmsProvider::new(
                        Arc::new(twilio),
                        context.background_db.clone(),
                        context.clock.clone(),
                    ),
                    timing.sms_quiet,
                );
                parts.task(
                    "SMS delivery",
                    worker(context, sink, &sms_wakeup, config.sms_settings()),
                );
            }
            None => tracing::warn!(
                "no SMS provider configured (notifications.sms.base_url): SMS notices wait \
                 until a server with one starts"
            ),
        }
        match config.smtp()? {
            Some(smtp) => {
                let sink =
                    NoticeSink::new(composer, EmailProvider(Arc::new(smtp)), timing.email_quiet);
                parts.task(
                    "e-mail delivery",
                    worker(context, sink, &email_wakeup, config.email_settings()),
                );
            }
            None => tracing::warn!(
                "no SMTP server configured (notifications.email.host): e-mail notices wait \
                 until a server with one starts"
            ),
        }
        parts.task(
            "notice outbox metrics",
            homecare_outbox::gauges::sample_every::<delivery::Entity>(
                "notices",
                context.background_db.clone(),
                context.clock.clone(),
                context.sample_every,
                context.shutdown.clone(),
            ),
        );

        let auth_token: Option<SecretString> = config.sms.auth_token.clone();
        if config.sms.status_callback_url.is_some() && auth_token.is_none() {
            tracing::warn!(
                "notifications.sms.auth_token is not set: SMS status reports cannot be \
                 checked and are refused"
            );
        }
        parts.http(
            StatusReports::new(
                context.db.clone(),
                context.clock.clone(),
                auth_token,
                config.sms.status_callback_url.clone().unwrap_or_default(),
            )
            .routes(),
        );

        let api = NotificationApi::new(
            context.db.clone(),
            context.actors.clone(),
            context.read_log.clone(),
            context.clock.clone(),
            sms_wakeup,
            email_wakeup,
        );
        parts
            .grpc(NotificationServiceServer::new(api).max_decoding_message_size(MAX_REQUEST_BYTES));
        Ok(())
    }
}

/// Starts a channel's outbox worker. Notices are scheduled by the business clock, which is
/// the machine's in production (and a test's hand-set clock in tests, for quiet hours).
///
/// First, the messages an earlier run held for its quiet hours are made due now: the quiet
/// hours in force (perhaps other ones, or none) judge them again when they are claimed.
fn worker<S: Sink>(
    context: &Context,
    sink: S,
    wakeup: &Wakeup,
    settings: homecare_outbox::Settings,
) -> tokio::task::JoinHandle<()> {
    let db = context.background_db.clone();
    let clock = context.clock.clone();
    let worker = Worker::new(
        db.clone(),
        Arc::new(sink),
        clock.clone(),
        wakeup.clone(),
        context.shutdown.clone(),
        settings,
    );
    tokio::spawn(async move {
        let reopened = homecare_outbox::store::reopen::<S::Entity>(
            &db,
            S::PARTITION,
            QUIET_HOURS,
            clock.now(),
        )
        .await;
        match reopened {
            Ok(0) => {}
            Ok(count) => tracing::info!(
                sink = S::NAME,
                count,
                "messages held for quiet hours are judged again by the quiet hours in force"
            ),
            Err(error) => tracing::warn!(
                sink = S::NAME,
                %error,
                "could not judge the messages held for quiet hours again; they wait as held"
            ),
        }
        worker.run().await;
    })
}
