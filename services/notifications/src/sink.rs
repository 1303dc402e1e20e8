//! Sending messages: one outbox sink per channel over the shared `notice_deliveries` table.
//!
//! A message is composed when it is sent, from the notices it carries and the recipient's
//! settings as they are when its batch is claimed (read for the whole batch at once): a
//! changed phone number is used, an opt-out is respected (its notices are marked skipped).
//! Once the provider has taken an SMS, that is recorded at once, with the provider's id (see
//! [`TakenMessages`]), not when the worker's batch ends: a later attempt (after a crash)
//! finds the message delivered and does not send it again; the window for a repeat is only
//! between the provider's answer and that write.
//! Twilio's Messages API takes no idempotency key; an e-mail carries its message's id as
//! `Message-ID`, by which mail clients drop a repeat.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use homecare_core::db::begin_write;
use homecare_email::{Email, EmailError, OutgoingEmail};
use homecare_outbox::store::Partition;
use homecare_outbox::{Attempt, Sink};
use homecare_sms::{OutgoingSms, Sms, SmsError};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::entity::{delivery, notice, settings};
use crate::kind::{Channel, NoticeKind, NoticeStatus, SkipReason};
use crate::queue::read_settings;
use crate::quiet::QuietHours;
use crate::settings::Settings;
use crate::templates::{Branding, NoticeContext, Rendered, Templates};

/// Why a message waits, as its outbox row says while it waits for quiet hours to end.
pub const QUIET_HOURS: &str = "waiting for quiet hours to end";

/// What both channels need to compose a message.
pub struct Composer {
    db: DatabaseConnection,
    templates: Arc<Templates>,
    branding: Branding,
    clock: Arc<dyn homecare_core::Clock>,
}

impl Composer {
    /// Composes from `db` with `templates` and `branding`, timing by `clock`.
    pub fn new(
        db: DatabaseConnection,
        templates: Arc<Templates>,
        branding: Branding,
        clock: Arc<dyn homecare_core::Clock>,
    ) -> Self {
        Self {
            db,
            templates,
            branding,
            clock,
        }
    }
}

/// A message ready to go: where, and what.
pub struct Composed {
    contact: String,
    rendered: Rendered,
}

/// Why nothing is sent for a row.
enum Nothing {
    /// Every notice was skipped (the recipient opted out or has no contact now), or there is
    /// none left to send.
    Skipped,
}

/// What a batch of claimed messages needs to be composed, read in two queries for the
/// whole batch: the notices each carries and their recipients' settings.
pub struct Recipients {
    /// Per message, its queued notices, oldest subject first.
    notices: HashMap<Uuid, Vec<notice::Model>>,
    /// Per recipient who made settings, those settings (or why they cannot be read).
    settings: HashMap<String, Result<Settings, String>>,
}

impl Composer {
    /// Reads what `rows` need to be composed.
    async fn recipients(&self, rows: &[delivery::Model]) -> Result<Recipients, DbErr> {
        let mut notices: HashMap<Uuid, Vec<notice::Model>> = HashMap::new();
        for notice in notice::Entity::find()
            .filter(notice::Column::DeliveryId.is_in(rows.iter().map(|row| row.id)))
            .filter(notice::Column::Status.eq(NoticeStatus::Queued.as_stored()))
            .order_by_asc(notice::Column::SubjectTime)
            .all(&self.db)
            .await?
        {
            if let Some(delivery_id) = notice.delivery_id {
                notices.entry(delivery_id).or_default().push(notice);
            }
        }
        let settings = settings::Entity::find()
            .filter(
                settings::Column::NationalId
                    .is_in(rows.iter().map(|row| row.recipient_national_id.as_str())),
            )
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| {
                let read = read_settings(&row).map_err(|error| error.to_string());
                (row.national_id, read)
            })
            .collect();
        Ok(Recipients { notices, settings })
    }

    /// The message `row` carries on `channel`, or why there is none, from what was read for
    /// its batch. Notices of a recipient who has since opted out or removed the contact are
    /// marked skipped here.
    async fn compose(
        &self,
        row: &delivery::Model,
        channel: Channel,
        batch: &Recipients,
    ) -> Result<Result<Composed, Nothing>, DbErr> {
        let Some(notices) = batch.notices.get(&row.id).filter(|found| !found.is_empty()) else {
            return Ok(Err(Nothing::Skipped));
        };
        let first = &notices[0];
        let settings = match batch.settings.get(&row.recipient_national_id) {
            None => None,
            Some(Ok(settings)) => Some(settings),
            Some(Err(error)) => return Err(DbErr::Custom(error.clone())),
        };
        let skip = match settings {
            None => Some(SkipReason::NoContact),
            Some(settings) if !settings.channels.chosen().contains(&channel) => {
                Some(SkipReason::OptedOut)
            }
            Some(settings) if settings.contact(channel).is_none() => Some(SkipReason::NoContact),
            Some(_) => None,
        };
        let (Some(settings), None) = (settings, skip) else {
            let reason = skip.unwrap_or(SkipReason::NoContact);
            mark_skipped(&self.db, row.id, reason, self.clock.now()).await?;
            return Ok(Err(Nothing::Skipped));
        };
        let kinds = notices
            .iter()
            .map(|notice| NoticeKind::from_stored(&notice.kind))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| DbErr::Custom(error.to_string()))?;
        let on_behalf = notices.iter().all(|notice| notice.on_behalf);
        let context = NoticeContext::new(first.subject_time, &kinds, on_behalf, &self.branding);
        let rendered = self
            .templates
            .render(settings.language, &kinds, &context)
            .map_err(|error| DbErr::Custom(error.to_string()))?;
        let contact = settings.contact(channel).unwrap_or_default().to_owned();
        Ok(Ok(Composed { contact, rendered }))
    }

    /// Deferred when `quiet` holds now: the message waits until it ends, as it was queued.
    fn quiet_now(&self, quiet: Option<&QuietHours>) -> Option<Attempt> {
        let quiet = quiet?;
        let now = self.clock.now();
        quiet.contains(now).then(|| Attempt::Deferred {
            reason: QUIET_HOURS,
            until: quiet.next_allowed(now),
        })
    }
}

async fn mark_skipped(
    db: &DatabaseConnection,
    delivery_id: Uuid,
    reason: SkipReason,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let txn = begin_write(db).await?;
    notice::Entity::update_many()
        .col_expr(
            notice::Column::Status,
            NoticeStatus::Skipped.as_stored().into(),
        )
        .col_expr(notice::Column::SkipReason, Some(reason.as_stored()).into())
        .col_expr(notice::Column::UpdatedAt, now.into())
        .filter(notice::Column::DeliveryId.eq(delivery_id))
        .filter(notice::Column::Status.eq(NoticeStatus::Queued.as_stored()))
        .exec(&*txn)
        .await?;
    txn.commit().await
}

/// Stores the provider's error code for a message it refused.
async fn store_error_code(
    db: &DatabaseConnection,
    delivery_id: Uuid,
    code: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let txn = begin_write(db).await?;
    notice::Entity::update_many()
        .col_expr(notice::Column::ErrorCode, Expr::value(code))
        .col_expr(notice::Column::UpdatedAt, now.into())
        .filter(notice::Column::DeliveryId.eq(delivery_id))
        .exec(&*txn)
        .await?;
    txn.commit().await
}

/// A message the provider took, waiting to be recorded.
struct TakenMessage {
    delivery_id: Uuid,
    provider_id: String,
    recorded: oneshot::Sender<Result<(), String>>,
}

/// Records the messages the provider took, at once (see the module documentation): the
/// provider's id, the message delivered, its notices sent, in one write per message where
/// the outbox would otherwise write the row twice (the id now, the outcome when its batch
/// ends). Concurrent sends are recorded together, in one transaction: a busy worker pays one
/// commit for many messages, not one each.
#[derive(Clone)]
pub struct TakenMessages {
    queue: mpsc::Sender<TakenMessage>,
}

/// Messages waiting to be recorded, at most; beyond this, senders wait for room.
const TAKEN_QUEUE: usize = 1_024;

/// Messages per UPDATE, at most: three parameters each.
const TAKEN_PER_STATEMENT: usize = 256;

impl TakenMessages {
    /// Starts the writer on `db`, timing by `clock`; it stops when the last handle is dropped.
    pub fn start(db: DatabaseConnection, clock: Arc<dyn homecare_core::Clock>) -> Self {
        let (queue, taken) = mpsc::channel(TAKEN_QUEUE);
        tokio::spawn(record_taken(db, clock, taken));
        Self { queue }
    }

    /// Records that the provider took message `delivery_id` as `provider_id`, returning once
    /// it is stored.
    async fn record(&self, delivery_id: Uuid, provider_id: String) -> Result<(), String> {
        let (recorded, written) = oneshot::channel();
        let taken = TakenMessage {
            delivery_id,
            provider_id,
            recorded,
        };
        let gone = || "the writer of taken messages has stopped".to_owned();
        self.queue.send(taken).await.map_err(|_| gone())?;
        written.await.map_err(|_| gone())?
    }
}

/// Whatever lease a message is under, it is delivered once the provider took it: a worker
/// that claimed it again after this one's lease ran out finds it recorded, and writes nothing.
async fn record_taken(
    db: DatabaseConnection,
    clock: Arc<dyn homecare_core::Clock>,
    mut taken: mpsc::Receiver<TakenMessage>,
) {
    let mut batch = Vec::new();
    while taken.recv_many(&mut batch, TAKEN_QUEUE).await > 0 {
        let now = clock.now();
        let result = async {
            let txn = begin_write(&db).await?;
            for chunk in batch.chunks(TAKEN_PER_STATEMENT) {
                let mut provider_id = sea_orm::sea_query::CaseStatement::new();
                for message in chunk {
                    provider_id = provider_id.case(
                        delivery::Column::Id.eq(message.delivery_id),
                        Expr::value(message.provider_id.clone()),
                    );
                }
                homecare_outbox::store::mark_delivered::<delivery::Entity>(now)
                    .col_expr(delivery::Column::ProviderId, provider_id.into())
                    .filter(
                        delivery::Column::Id.is_in(chunk.iter().map(|message| message.delivery_id)),
                    )
                    .exec(&*txn)
                    .await?;
            }
            let ids = batch.iter().map(|message| message.delivery_id).collect();
            notices_sent(&*txn, ids, now).await?;
            txn.commit().await
        }
        .await
        .map_err(|error: DbErr| error.to_string());
        for message in batch.drain(..) {
            let _ = message.recorded.send(result.clone());
        }
    }
}

/// Sets the status of the notices of `deliveries` that are still `from` to `to`.
async fn advance<C: ConnectionTrait>(
    db: &C,
    deliveries: Vec<Uuid>,
    from: &[NoticeStatus],
    to: NoticeStatus,
    error_code: Option<&str>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let mut update = notice::Entity::update_many()
        .col_expr(notice::Column::Status, to.as_stored().into())
        .col_expr(notice::Column::UpdatedAt, now.into());
    if let Some(code) = error_code {
        update = update.col_expr(notice::Column::ErrorCode, Expr::value(code));
    }
    Ok(update
        .filter(notice::Column::DeliveryId.is_in(deliveries))
        .filter(notice::Column::Status.is_in(from.iter().map(|status| status.as_stored())))
        .exec(db)
        .await?
        .rows_affected)
}

/// The provider took the messages `deliveries`: their queued notices are sent.
async fn notices_sent<C: ConnectionTrait>(
    db: &C,
    deliveries: Vec<Uuid>,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    advance(
        db,
        deliveries,
        &[NoticeStatus::Queued],
        NoticeStatus::Sent,
        None,
        now,
    )
    .await
}

/// What an outcome means for the notices, the same for both channels.
async fn delivered(
    txn: &DatabaseTransaction,
    rows: &[delivery::Model],
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    notices_sent(txn, rows.iter().map(|row| row.id).collect(), now).await?;
    Ok(0)
}

async fn parked(
    txn: &DatabaseTransaction,
    row: &delivery::Model,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    advance(
        txn,
        vec![row.id],
        &[NoticeStatus::Queued],
        NoticeStatus::Failed,
        None,
        now,
    )
    .await?;
    Ok(false)
}

/// A provider of one channel: how a composed message goes out.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The channel it carries.
    const CHANNEL: Channel;
    /// The sink's name in logs and metrics.
    const NAME: &'static str;

    /// Sends `composed` for `row` once.
    async fn deliver(
        &self,
        composer: &Composer,
        row: &delivery::Model,
        composed: Composed,
    ) -> Attempt;

    /// Whether an earlier attempt at `row` already reached the provider.
    fn already_taken(_row: &delivery::Model) -> bool {
        false
    }
}

/// Sends one channel's messages: the outbox sink of its rows of `notice_deliveries`.
pub struct NoticeSink<P: Provider> {
    composer: Arc<Composer>,
    provider: P,
    quiet: Option<QuietHours>,
}

impl<P: Provider> NoticeSink<P> {
    /// Sends through `provider`, never in `quiet` hours.
    pub fn new(composer: Arc<Composer>, provider: P, quiet: Option<QuietHours>) -> Self {
        Self {
            composer,
            provider,
            quiet,
        }
    }
}

fn temporary(error: &DbErr) -> Attempt {
    tracing::warn!(%error, "could not compose a notice");
    Attempt::Temporary {
        reason: "the notice could not be composed".to_owned(),
        retry_after: None,
    }
}

#[async_trait::async_trait]
impl<P: Provider> Sink for NoticeSink<P> {
    type Entity = delivery::Entity;
    type Row = delivery::Model;
    const NAME: &'static str = P::NAME;
    const PARTITION: Option<Partition> = Some(Partition {
        column: "channel",
        value: P::CHANNEL.as_stored_const(),
    });

    type Batch = Result<Recipients, DbErr>;

    async fn prepare(&self, rows: &[delivery::Model]) -> Result<Recipients, DbErr> {
        self.composer.recipients(rows).await
    }

    async fn send(&self, row: &delivery::Model, batch: &Result<Recipients, DbErr>) -> Attempt {
        if P::already_taken(row) {
            // An earlier attempt reached the provider; its outcome was not recorded.
            return Attempt::Delivered;
        }
        if let Some(wait) = self.composer.quiet_now(self.quiet.as_ref()) {
            return wait;
        }
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => return temporary(error),
        };
        match self.composer.compose(row, P::CHANNEL, batch).await {
            Ok(Ok(composed)) => self.provider.deliver(&self.composer, row, composed).await,
            Ok(Err(Nothing::Skipped)) => Attempt::Delivered,
            Err(error) => temporary(&error),
        }
    }

    async fn on_delivered(
        &self,
        txn: &DatabaseTransaction,
        rows: &[delivery::Model],
    ) -> Result<usize, DbErr> {
        delivered(txn, rows, self.composer.clock.now()).await
    }

    async fn on_parked(
        &self,
        txn: &DatabaseTransaction,
        row: &delivery::Model,
        _error: &str,
        _refused: bool,
    ) -> Result<bool, DbErr> {
        parked(txn, row, self.composer.clock.now()).await
    }
}

/// SMS through an [`Sms`] provider.
pub struct SmsProvider {
    sms: Arc<dyn Sms>,
    taken: TakenMessages,
}

impl SmsProvider {
    /// Sends through `sms`, recording the messages it took in `db` at `clock`'s time.
    pub fn new(
        sms: Arc<dyn Sms>,
        db: DatabaseConnection,
        clock: Arc<dyn homecare_core::Clock>,
    ) -> Self {
        Self {
            sms,
            taken: TakenMessages::start(db, clock),
        }
    }
}

#[async_trait::async_trait]
impl Provider for SmsProvider {
    const CHANNEL: Channel = Channel::Sms;
    const NAME: &'static str = "sms";

    fn already_taken(row: &delivery::Model) -> bool {
        row.provider_id.is_some()
    }

    async fn deliver(
        &self,
        composer: &Composer,
        row: &delivery::Model,
        composed: Composed,
    ) -> Attempt {
        let message = OutgoingSms {
            to: composed.contact,
            body: composed.rendered.text,
        };
        match self.sms.send(&message).await {
            Ok(accepted) => match self.taken.record(row.id, accepted.provider_id).await {
                Ok(()) => Attempt::Recorded,
                Err(error) => {
                    // The worker records the outcome with its batch; the id is lost, so the
                    // provider's later reports on this message change nothing.
                    tracing::warn!(delivery_id = %row.id, %error, "could not record the message the provider took");
                    Attempt::Delivered
                }
            },
            Err(SmsError::Temporary {
                reason,
                retry_after,
            }) => Attempt::Temporary {
                reason,
                retry_after,
            },
            Err(SmsError::Refused { reason, code }) => {
                if let Some(code) = code {
                    let now = composer.clock.now();
                    if let Err(error) = store_error_code(&composer.db, row.id, &code, now).await {
                        tracing::warn!(delivery_id = %row.id, %error, "could not store the provider's error code");
                    }
                }
                Attempt::Refused { reason }
            }
        }
    }
}

/// E-mail through an [`Email`] sender; the message's id is its `Message-ID`.
pub struct EmailProvider(pub Arc<dyn Email>);

#[async_trait::async_trait]
impl Provider for EmailProvider {
    const CHANNEL: Channel = Channel::Email;
    const NAME: &'static str = "email";

    async fn deliver(
        &self,
        _composer: &Composer,
        row: &delivery::Model,
        composed: Composed,
    ) -> Attempt {
        let message = OutgoingEmail {
            to: composed.contact,
            subject: composed.rendered.subject,
            text: composed.rendered.text,
            html: composed.rendered.html,
            message_id: row.id.to_string(),
        };
        match self.0.send(&message).await {
            Ok(()) => Attempt::Delivered,
            Err(EmailError::Temporary { reason }) => Attempt::Temporary {
                reason,
                retry_after: None,
            },
            Err(EmailError::Refused { reason }) => Attempt::Refused { reason },
        }
    }
}

/// A provider's report on a message it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderStatus {
    /// Handed on to the network.
    Sent,
    /// On the phone.
    Delivered,
    /// The network could not deliver it.
    Undelivered,
    /// The provider could not send it.
    Failed,
}

impl ProviderStatus {
    /// Twilio's `MessageStatus`; statuses before `sent` tell nothing new.
    pub fn from_twilio(status: &str) -> Option<Self> {
        match status {
            "sent" => Some(ProviderStatus::Sent),
            "delivered" | "read" => Some(ProviderStatus::Delivered),
            "undelivered" => Some(ProviderStatus::Undelivered),
            "failed" => Some(ProviderStatus::Failed),
            _ => None,
        }
    }
}

/// Records a provider's report on the message with `provider_id`. Reports can come out of
/// order: a notice only moves forward (queued, sent, then a final status). Returns whether
/// the message is known.
pub async fn record_report(
    db: &DatabaseConnection,
    provider_id: &str,
    status: ProviderStatus,
    error_code: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let Some(message) = delivery::Entity::find()
        .filter(delivery::Column::ProviderId.eq(provider_id))
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let (from, to): (&[NoticeStatus], NoticeStatus) = match status {
        ProviderStatus::Sent => (&[NoticeStatus::Queued], NoticeStatus::Sent),
        ProviderStatus::Delivered => (
            &[NoticeStatus::Queued, NoticeStatus::Sent],
            NoticeStatus::Delivered,
        ),
        ProviderStatus::Undelivered => (
            &[NoticeStatus::Queued, NoticeStatus::Sent],
            NoticeStatus::Undelivered,
        ),
        ProviderStatus::Failed => (
            &[NoticeStatus::Queued, NoticeStatus::Sent],
            NoticeStatus::Failed,
        ),
    };
    let code = match status {
        ProviderStatus::Undelivered | ProviderStatus::Failed => error_code,
        _ => None,
    };
    let txn = begin_write(db).await?;
    advance(&*txn, vec![message.id], from, to, code, now).await?;
    txn.commit().await?;
    Ok(true)
}
