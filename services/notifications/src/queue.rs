//! Turning "tell this person of this" into notices and messages, inside the transaction of
//! whatever caused it.
//!
//! Per recipient and channel, a notice joins the message not yet sent (no attempt made), if
//! there is one; otherwise a new message is made, due at once, or when the merge window after
//! the previous message ends (so someone told at 10:00 hears of further changes at 10:02, in
//! one message). A message made in quiet hours is held until they end, marked as the sink marks
//! one it holds; what decides is the sink, when the message is due to go, with the quiet hours
//! in force then (and a start makes held messages due, to be judged again: see `sink`).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use homecare_core::db::insert_in_chunks;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use crate::entity::{delivery, notice, settings};
use crate::kind::{Channel, NoticeKind, NoticeStatus, SkipReason};
use crate::quiet::QuietHours;
use crate::settings::{Channels, EmailAddress, Language, PhoneNumber, Settings};
use crate::sink::QUIET_HOURS;

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
    /// Which channels it may take.
    pub route: Route,
}

/// Which channels a notice may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Route {
    /// Those the recipient chose.
    #[default]
    AsChosen,
    /// E-mail, where the recipient gave an address and did not opt out of notices (a
    /// receipt: the recipient already knows what they sent, so it is no SMS).
    EmailWhereKnown,
}

/// When messages may go.
#[derive(Debug, Clone)]
pub struct Timing {
    /// After a message to someone, further notices to them on that channel wait this long
    /// and go as one.
    pub merge_window: Duration,
    /// Quiet hours of SMS, if any (applied by the SMS sink when a message is due).
    pub sms_quiet: Option<QuietHours>,
    /// Quiet hours of e-mail, if any (applied by the e-mail sink when a message is due).
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

/// Writes the notices of `tells` (and the messages that will carry them) in `txn`, with a
/// fixed number of statements whatever the number of tells.
pub async fn enqueue<C: ConnectionTrait>(
    txn: &C,
    tells: &[Tell],
    timing: &Timing,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let recipients: Vec<&str> = {
        let mut unique: Vec<&str> = tells.iter().map(|tell| tell.recipient.as_str()).collect();
        unique.sort_unstable();
        unique.dedup();
        unique
    };
    let mut settings: HashMap<String, Settings> = HashMap::new();
    for row in settings::Entity::find()
        .filter(settings::Column::NationalId.is_in(recipients.iter().copied()))
        .all(txn)
        .await?
    {
        settings.insert(row.national_id.clone(), read_settings(&row)?);
    }
    // Where each tell goes: a channel with a contact, or why it is skipped.
    let mut notices = Vec::new();
    let mut to_send: Vec<(&Tell, Channel)> = Vec::new();
    for tell in tells {
        match settings.get(&tell.recipient) {
            None => notices.push(skipped(tell, None, SkipReason::NoContact, now)),
            Some(chosen) if chosen.channels == Channels::None => {
                notices.push(skipped(tell, None, SkipReason::OptedOut, now));
            }
            Some(chosen) if tell.route == Route::EmailWhereKnown => {
                if chosen.email.is_some() {
                    to_send.push((tell, Channel::Email));
                } else {
                    notices.push(skipped(
                        tell,
                        Some(Channel::Email),
                        SkipReason::NoContact,
                        now,
                    ));
                }
            }
            Some(chosen) => {
                for &channel in chosen.channels.chosen() {
                    if chosen.contact(channel).is_some() {
                        to_send.push((tell, channel));
                    } else {
                        notices.push(skipped(tell, Some(channel), SkipReason::NoContact, now));
                    }
                }
            }
        }
    }
    let messages = messages_for(
        txn,
        to_send
            .iter()
            .map(|(tell, channel)| (tell.recipient.as_str(), *channel)),
        timing,
        now,
    )
    .await?;
    for (tell, channel) in &to_send {
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
            delivery_id: Set(messages.get(&(tell.recipient.clone(), *channel)).copied()),
            error_code: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        });
    }
    insert_in_chunks(txn, notices).await?;
    Ok(())
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

/// The message each (recipient, channel) of `wanted` joins: the one not yet tried, or a new
/// one.
///
/// On PostgreSQL the rows found are locked: a worker claiming one (`FOR UPDATE SKIP LOCKED`)
/// passes it over until this transaction ends, and once a worker has claimed one, its
/// `attempts` is no longer 0 and it is not found here. On SQLite both go through the writer
/// gate, one at a time.
async fn messages_for<'a, C: ConnectionTrait>(
    txn: &C,
    wanted: impl Iterator<Item = (&'a str, Channel)>,
    timing: &Timing,
    now: DateTime<Utc>,
) -> Result<HashMap<(String, Channel), Uuid>, DbErr> {
    let mut wanted: Vec<(&str, Channel)> = wanted.collect();
    wanted.sort_unstable_by_key(|(recipient, channel)| (*recipient, channel.as_stored()));
    wanted.dedup();
    let mut found: HashMap<(String, Channel), Uuid> = HashMap::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    let recipients: Vec<&str> = wanted.iter().map(|(recipient, _)| *recipient).collect();
    let key = |recipient: &str, channel: &str| {
        Channel::from_stored(channel)
            .map(|channel| (recipient.to_owned(), channel))
            .map_err(|error| DbErr::Custom(error.to_string()))
    };
    for open in delivery::Entity::find()
        .filter(delivery::Column::RecipientNationalId.is_in(recipients.iter().copied()))
        .filter(delivery::Column::State.eq(homecare_outbox::RowState::Pending.as_stored()))
        .filter(delivery::Column::Attempts.eq(0))
        .lock_exclusive()
        .all(txn)
        .await?
    {
        found.insert(key(&open.recipient_national_id, &open.channel)?, open.id);
    }
    let missing: Vec<(&str, Channel)> = wanted
        .into_iter()
        .filter(|(recipient, channel)| !found.contains_key(&((*recipient).to_owned(), *channel)))
        .collect();
    if missing.is_empty() {
        return Ok(found);
    }
    // When each recipient's latest message on each channel was made or due.
    let latest: Vec<(String, String, DateTime<Utc>, DateTime<Utc>)> = delivery::Entity::find()
        .select_only()
        .column(delivery::Column::RecipientNationalId)
        .column(delivery::Column::Channel)
        .expr(delivery::Column::CreatedAt.max())
        .expr(delivery::Column::NextAttemptAt.max())
        .filter(
            delivery::Column::RecipientNationalId
                .is_in(missing.iter().map(|(recipient, _)| *recipient)),
        )
        .group_by(delivery::Column::RecipientNationalId)
        .group_by(delivery::Column::Channel)
        .into_tuple()
        .all(txn)
        .await?;
    let mut previous: HashMap<(String, Channel), DateTime<Utc>> = HashMap::new();
    for (recipient, channel, created, due) in latest {
        previous.insert(key(&recipient, &channel)?, created.max(due));
    }
    let window = chrono::Duration::from_std(timing.merge_window).unwrap_or_default();
    let mut new_messages = Vec::with_capacity(missing.len());
    for (recipient, channel) in missing {
        let mut due = now;
        if let Some(previous) = previous.get(&(recipient.to_owned(), channel)) {
            due = due.max(*previous + window);
        }
        // Held for quiet hours from the start, as the sink would hold it when claimed (and
        // marked so, so that a start with other quiet hours judges it again): saves a claim
        // and a write per message made at night.
        let held = timing
            .quiet(channel)
            .map(|quiet| quiet.next_allowed(due))
            .filter(|until| *until > due);
        let id = homecare_core::ids::new_id(now);
        found.insert((recipient.to_owned(), channel), id);
        new_messages.push(delivery::ActiveModel {
            id: Set(id),
            recipient_national_id: Set(recipient.to_owned()),
            channel: Set(channel.as_stored().to_owned()),
            provider_id: Set(None),
            state: Set(homecare_outbox::RowState::Pending.as_stored().to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(held.unwrap_or(due)),
            lease_until: Set(None),
            last_error: Set(held.map(|_| QUIET_HOURS.to_owned())),
            created_at: Set(now),
            updated_at: Set(now),
        });
    }
    insert_in_chunks(txn, new_messages).await?;
    Ok(found)
}
