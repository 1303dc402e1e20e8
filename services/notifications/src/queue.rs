//! Turning "tell this person of this" into notices and messages, inside the transaction of
//! whatever caused it.
//!
//! Per recipient and channel, a notice joins the message not yet sent (no attempt made), if
//! there is one; otherwise a new message is made, due at once, or when the merge window after
//! the previous message ends (so someone told at 10:00 hears of further changes at 10:02, in
//! one message), and never inside the channel's quiet hours.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::entity::{delivery, notice, settings};
use crate::kind::{Channel, NoticeKind, NoticeStatus, SkipReason};
use crate::quiet::QuietHours;
use crate::settings::{Channels, EmailAddress, Language, PhoneNumber, Settings};

/// One person to be told of one thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tell {
    /// Their identity number (stored, never logged).
    pub recipient: String,
    /// The patient it is about.
    pub patient_id: Uuid,
    /// Whether they are told as someone acting for the patient.
    pub on_behalf: bool,
    /// What happened.
    pub kind: NoticeKind,
    /// When it happens or happened (the visit's start).
    pub subject_time: DateTime<Utc>,
}

/// When messages may go.
#[derive(Debug, Clone)]
pub struct Timing {
    /// After a message to someone, further notices to them on that channel wait this long
    /// and go as one.
    pub merge_window: Duration,
    /// Quiet hours of SMS, if any.
    pub sms_quiet: Option<QuietHours>,
    /// Quiet hours of e-mail, if any.
    pub email_quiet: Option<QuietHours>,
}

impl Timing {
    fn quiet(&self, channel: Channel) -> Option<&QuietHours> {
        match channel {
            Channel::Sms => self.sms_quiet.as_ref(),
            Channel::Email => self.email_quiet.as_ref(),
        }
    }
}

/// Reads the stored settings of `national_id`, if they made any.
pub async fn settings_of<C: ConnectionTrait>(
    db: &C,
    national_id: &str,
) -> Result<Option<Settings>, DbErr> {
    settings::Entity::find_by_id(national_id.to_owned())
        .one(db)
        .await?
        .map(|row| read_settings(&row))
        .transpose()
}

/// A stored settings row as values.
pub fn read_settings(row: &settings::Model) -> Result<Settings, DbErr> {
    let corrupt =
        |error: homecare_core::stored::UnknownStoredValue| DbErr::Custom(error.to_string());
    Ok(Settings {
        channels: Channels::from_stored(&row.channels).map_err(corrupt)?,
        phone: row.phone_number.clone().map(PhoneNumber::stored),
        email: row
            .email_address
            .as_deref()
            .map(EmailAddress::parse)
            .transpose()
            .map_err(|error| DbErr::Custom(error.to_owned()))?,
        language: Language::from_stored(&row.language).map_err(corrupt)?,
    })
}

/// Writes the notices of `tells` (and the messages that will carry them) in `txn`. Returns
/// the channels that got messages, to wake their workers once `txn` commits.
pub async fn enqueue<C: ConnectionTrait>(
    txn: &C,
    tells: &[Tell],
    timing: &Timing,
    now: DateTime<Utc>,
) -> Result<Vec<Channel>, DbErr> {
    let mut settings: HashMap<&str, Option<Settings>> = HashMap::new();
    let mut messages: HashMap<(&str, Channel), Uuid> = HashMap::new();
    let mut notices = Vec::new();
    for tell in tells {
        if !settings.contains_key(tell.recipient.as_str()) {
            let stored = settings_of(txn, &tell.recipient).await?;
            settings.insert(&tell.recipient, stored);
        }
        let chosen = match &settings[tell.recipient.as_str()] {
            None => {
                notices.push(skipped(tell, None, SkipReason::NoContact, now));
                continue;
            }
            Some(chosen) if chosen.channels == Channels::None => {
                notices.push(skipped(tell, None, SkipReason::OptedOut, now));
                continue;
            }
            Some(chosen) => chosen,
        };
        for &channel in chosen.channels.chosen() {
            if chosen.contact(channel).is_none() {
                notices.push(skipped(tell, Some(channel), SkipReason::NoContact, now));
                continue;
            }
            let message = match messages.get(&(tell.recipient.as_str(), channel)) {
                Some(message) => *message,
                None => {
                    let message = open_message(txn, &tell.recipient, channel, timing, now).await?;
                    messages.insert((&tell.recipient, channel), message);
                    message
                }
            };
            notices.push(notice::ActiveModel {
                id: Set(homecare_core::ids::new_id(now)),
                recipient_national_id: Set(tell.recipient.clone()),
                patient_id: Set(tell.patient_id),
                on_behalf: Set(tell.on_behalf),
                kind: Set(tell.kind.as_stored().to_owned()),
                channel: Set(Some(channel.as_stored().to_owned())),
                status: Set(NoticeStatus::Queued.as_stored().to_owned()),
                skip_reason: Set(None),
                subject_time: Set(tell.subject_time),
                delivery_id: Set(Some(message)),
                error_code: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            });
        }
    }
    if !notices.is_empty() {
        notice::Entity::insert_many(notices)
            .exec_without_returning(txn)
            .await?;
    }
    let mut channels: Vec<Channel> = messages.keys().map(|(_, channel)| *channel).collect();
    channels.dedup();
    Ok(channels)
}

fn skipped(
    tell: &Tell,
    channel: Option<Channel>,
    reason: SkipReason,
    now: DateTime<Utc>,
) -> notice::ActiveModel {
    notice::ActiveModel {
        id: Set(homecare_core::ids::new_id(now)),
        recipient_national_id: Set(tell.recipient.clone()),
        patient_id: Set(tell.patient_id),
        on_behalf: Set(tell.on_behalf),
        kind: Set(tell.kind.as_stored().to_owned()),
        channel: Set(channel.map(|channel| channel.as_stored().to_owned())),
        status: Set(NoticeStatus::Skipped.as_stored().to_owned()),
        skip_reason: Set(Some(reason.as_stored().to_owned())),
        subject_time: Set(tell.subject_time),
        delivery_id: Set(None),
        error_code: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// The message to `recipient` on `channel` that new notices join: the one not yet tried, or
/// a new one.
///
/// On PostgreSQL the row found is locked: a worker claiming it (`FOR UPDATE SKIP LOCKED`)
/// passes it over until this transaction ends, and once a worker has claimed it, its
/// `attempts` is no longer 0 and it is not found here. On SQLite both go through the writer
/// gate, one at a time.
async fn open_message<C: ConnectionTrait>(
    txn: &C,
    recipient: &str,
    channel: Channel,
    timing: &Timing,
    now: DateTime<Utc>,
) -> Result<Uuid, DbErr> {
    let mine = || {
        delivery::Entity::find()
            .filter(delivery::Column::RecipientNationalId.eq(recipient))
            .filter(delivery::Column::Channel.eq(channel.as_stored()))
    };
    let open = mine()
        .filter(delivery::Column::State.eq(homecare_outbox::RowState::Pending.as_stored()))
        .filter(delivery::Column::Attempts.eq(0))
        .lock_exclusive()
        .one(txn)
        .await?;
    if let Some(open) = open {
        return Ok(open.id);
    }
    let previous = mine()
        .order_by_desc(delivery::Column::CreatedAt)
        .one(txn)
        .await?;
    let mut due = now;
    if let Some(previous) = previous {
        let window = chrono::Duration::from_std(timing.merge_window).unwrap_or_default();
        due = due.max(previous.created_at.max(previous.next_attempt_at) + window);
    }
    if let Some(quiet) = timing.quiet(channel) {
        due = quiet.next_allowed(due);
    }
    let id = homecare_core::ids::new_id(now);
    delivery::Entity::insert(delivery::ActiveModel {
        id: Set(id),
        recipient_national_id: Set(recipient.to_owned()),
        channel: Set(channel.as_stored().to_owned()),
        provider_id: Set(None),
        state: Set(homecare_outbox::RowState::Pending.as_stored().to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(due),
        lease_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(txn)
    .await?;
    Ok(id)
}
