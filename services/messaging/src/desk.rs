//! Every change to threads and messages, each in one transaction with its history, its
//! access-log entry and (for a cancellation request) the visit's history entry.
//!
//! Callers have resolved who acts ([`Participant`]) and checked the request's fields; this
//! module decides, from the stored state, whether the step is possible, and persists it.

use homecare_core::identifier::CareUnitId;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use homecare_appointments::domain::{AppointmentStatus, EventType as VisitEventType};
use homecare_appointments::entity as visit;
use homecare_appointments::events::{self as visit_events, Who};
use homecare_core::Clock;
use homecare_core::idempotency::{fingerprint, is_repeat};
use homecare_core::identifier::RequestId;
use homecare_core::status::FieldViolations;
use homecare_patients::access_log::{self, Action};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DbErr, EntityTrait, IntoActiveModel as _, QueryFilter, QueryOrder, QuerySelect, SqlErr,
};
use uuid::Uuid;

use crate::content::{MAX_ATTACHMENTS, MAX_MESSAGE_BYTES};
use crate::entity::{attachment, message, read, thread};
use crate::error::MessagingError;
use crate::history;
use crate::participant::Participant;
use crate::thread::{StepType, ThreadKind, ThreadState, ThreadStatus, reply_due};

/// A message's state as stored: not sent, seen by its author only.
pub(crate) const DRAFT: &str = "draft";
/// A message's state as stored: received.
pub(crate) const SENT: &str = "sent";

/// A new thread as a citizen asked for it, its fields checked.
#[derive(Debug, Clone)]
pub struct NewThread {
    /// The patient it is about.
    pub patient_id: Uuid,
    /// The unit it goes to; `None` for general inquiries.
    pub care_unit: Option<CareUnitId>,
    /// Its subject.
    pub subject: String,
    /// The first message's text, as sent.
    pub text: String,
    /// Whether its subject must never leave the thread.
    pub sensitive: bool,
    /// Uploads to attach.
    pub attachments: Vec<Uuid>,
    /// The visit it asks to cancel.
    pub appointment: Option<Uuid>,
    /// The closed thread it follows on from.
    pub previous: Option<Uuid>,
}

/// Whether to send now (with the request's idempotency key) or keep as a draft.
#[derive(Debug, Clone)]
pub enum Sending {
    /// Send, answering a repeat of `RequestId` with the first result.
    Now(RequestId),
    /// Keep as a draft, seen by its author only.
    Draft,
}

/// A thread and one of its messages, as stored after a step.
#[derive(Debug, Clone)]
pub struct Written {
    /// The thread.
    pub thread: thread::Model,
    /// The message.
    pub message: message::Model,
    /// The message's attachments.
    pub attachments: Vec<attachment::Model>,
}

/// The messaging desk.
#[derive(Clone)]
pub struct Desk {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    zone: Tz,
    general_inquiries: String,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk").finish_non_exhaustive()
    }
}

/// A short reference to a received message, to quote on the phone: `M-` and the last twelve
/// hex digits of its id (the random part of a UUIDv7).
pub fn receipt_reference(message_id: Uuid) -> String {
    let hex = message_id.simple().to_string().to_uppercase();
    format!("M-{}-{}", &hex[20..26], &hex[26..32])
}

fn is_unique_violation(error: &DbErr) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

impl Desk {
    /// The desk over `db`, counting days in `zone`; `general_inquiries` is the unit for
    /// questions no other unit fits.
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        zone: Tz,
        general_inquiries: String,
    ) -> Self {
        Self {
            db,
            clock,
            zone,
            general_inquiries,
        }
    }

    /// The database.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The business clock's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The time zone days are counted in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The unit for general inquiries.
    pub fn general_inquiries(&self) -> &str {
        &self.general_inquiries
    }

    /// The units `patient_id` can write to: those of their visits, then general inquiries.
    pub async fn recipients(&self, patient_id: Uuid) -> Result<Vec<String>, DbErr> {
        let mut units: Vec<String> = visit::Entity::find()
            .select_only()
            .column(visit::Column::CareUnitId)
            .distinct()
            .filter(visit::Column::PatientId.eq(patient_id))
            .into_tuple()
            .all(&self.db)
            .await?;
        units.sort_unstable();
        units.retain(|unit| *unit != self.general_inquiries);
        units.push(self.general_inquiries.clone());
        Ok(units)
    }

    /// The result of an earlier send by `by` with `request_id`, if there was one with the
    /// same content; refused if the id was used for other content.
    async fn repeat<C: ConnectionTrait>(
        &self,
        db: &C,
        by: &Participant,
        request_id: &RequestId,
        content: &str,
    ) -> Result<Option<Written>, MessagingError> {
        let Some(message) = message::Entity::find()
            .filter(message::Column::AuthorKey.eq(by.key.as_str()))
            .filter(message::Column::RequestId.eq(request_id.as_str()))
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        if !is_repeat(message.request_fingerprint.as_deref(), content) {
            return Err(MessagingError::RequestIdReused);
        }
        let thread = thread::Entity::find_by_id(message.thread_id)
            .one(db)
            .await?
            .ok_or(MessagingError::ThreadNotFound)?;
        let attachments = attachments_of(db, [message.id]).await?;
        Ok(Some(Written {
            thread,
            message,
            attachments,
        }))
    }

    /// Runs `step` in a write transaction; a send that lost a race with its own repeat (the
    /// same request id, committed first by another call) answers as the repeat does.
    async fn with_repeat<F>(
        &self,
        by: &Participant,
        sending: &Sending,
        content: &str,
        step: F,
    ) -> Result<Written, MessagingError>
    where
        F: AsyncFnOnce(&sea_orm::DatabaseTransaction) -> Result<Written, MessagingError>,
    {
        let txn = homecare_core::db::begin_write(&self.db).await?;
        if let Sending::Now(request_id) = sending
            && let Some(done) = self.repeat(&*txn, by, request_id, content).await?
        {
            txn.rollback().await?;
            return Ok(done);
        }
        let written = match step(&txn).await {
            Ok(written) => written,
            Err(MessagingError::Db(error)) if is_unique_violation(&error) => {
                txn.rollback().await?;
                if let Sending::Now(request_id) = sending
                    && let Some(done) = self.repeat(&self.db, by, request_id, content).await?
                {
                    return Ok(done);
                }
                return Err(MessagingError::Db(error));
            }
            Err(error) => return Err(error),
        };
        txn.commit().await?;
        Ok(written)
    }

    /// Starts a thread for `by`: sent at once, or kept as a draft.
    pub async fn create_thread(
        &self,
        by: &Participant,
        new: NewThread,
        sending: Sending,
    ) -> Result<Written, MessagingError> {
        let now = self.now();
        let mut parts = vec![
            "create".to_owned(),
            new.patient_id.to_string(),
            new.care_unit
                .as_ref()
                .map(CareUnitId::to_string)
                .unwrap_or_default(),
            new.subject.clone(),
            new.text.clone(),
            new.sensitive.to_string(),
            new.appointment.map(|id| id.to_string()).unwrap_or_default(),
            new.previous.map(|id| id.to_string()).unwrap_or_default(),
        ];
        parts.extend(new.attachments.iter().map(Uuid::to_string));
        let content = fingerprint(parts.iter().map(String::as_str));
        let recipients = if new.appointment.is_none() {
            self.recipients(new.patient_id).await?
        } else {
            Vec::new()
        };
        self.with_repeat(by, &sending, &content, async |txn| {
            let (kind, unit) = match new.appointment {
                Some(appointment) => {
                    let visit = open_visit(txn, new.patient_id, appointment, now).await?;
                    (ThreadKind::CancellationRequest, visit.care_unit_id)
                }
                None => {
                    let unit = new
                        .care_unit
                        .clone()
                        .map_or_else(|| self.general_inquiries.clone(), CareUnitId::into_string);
                    if !recipients.contains(&unit) {
                        let mut violations = FieldViolations::new();
                        violations.add(
                            "care_unit_id",
                            "is not a unit the patient can write to (see ListMessageRecipients)",
                        );
                        return Err(violations.into());
                    }
                    (ThreadKind::Inquiry, unit)
                }
            };
            if let Some(previous) = new.previous {
                let previous = thread::Entity::find_by_id(previous)
                    .one(txn)
                    .await?
                    .filter(|found| {
                        found.patient_id == new.patient_id
                            && found.status != ThreadStatus::Draft.as_stored()
                    })
                    .ok_or(MessagingError::ThreadNotFound)?;
                if previous.status != ThreadStatus::Closed.as_stored() {
                    return Err(MessagingError::PreviousThreadOpen);
                }
            }
            let thread = thread::Model {
                id: homecare_core::ids::new_id(now),
                patient_id: new.patient_id,
                care_unit_id: unit,
                subject: new.subject.clone(),
                sensitive: new.sensitive,
                kind: kind.as_stored().to_owned(),
                priority: ThreadState {
                    status: ThreadStatus::Draft,
                    kind,
                    due_at: None,
                }
                .priority() as i16,
                appointment_id: new.appointment,
                previous_thread_id: new.previous,
                status: ThreadStatus::Draft.as_stored().to_owned(),
                started_by_kind: by.author_kind().as_stored().to_owned(),
                started_by_subject: by.actor.subject(),
                started_by_name: by.actor.name().map(str::to_owned),
                created_at: now,
                received_at: None,
                due_at: None,
                last_message_at: now,
                updated_at: now,
            };
            let message = new_message(by, thread.id, &new.text, now);
            let attachments =
                claim_attachments(txn, by, &new.attachments, message.id, &thread).await?;
            let written = Written {
                thread,
                message,
                attachments,
            };
            match &sending {
                Sending::Now(request_id) => {
                    let stored = Stored::NOTHING;
                    self.send_in(txn, by, written, stored, request_id, &content, now)
                        .await
                }
                Sending::Draft => {
                    Stored::NOTHING.save(txn, &written).await?;
                    Ok(written)
                }
            }
        })
        .await
    }

    /// Writes in `thread` (which `by` may see) as `by`: sent at once, or kept as a draft.
    pub async fn reply(
        &self,
        by: &Participant,
        thread_id: Uuid,
        text: String,
        attachments: Vec<Uuid>,
        sending: Sending,
    ) -> Result<Written, MessagingError> {
        let now = self.now();
        let mut parts = vec!["reply".to_owned(), thread_id.to_string(), text.clone()];
        parts.extend(attachments.iter().map(Uuid::to_string));
        let content = fingerprint(parts.iter().map(String::as_str));
        self.with_repeat(by, &sending, &content, async |txn| {
            let thread = lock_thread(txn, thread_id).await?;
            let state = state_of(&thread)?;
            if state.status == ThreadStatus::Closed {
                return Err(crate::thread::StepError::Closed.into());
            }
            if state.status == ThreadStatus::Draft {
                return Err(crate::thread::StepError::NotSent.into());
            }
            let message = new_message(by, thread.id, &text, now);
            let attachments = claim_attachments(txn, by, &attachments, message.id, &thread).await?;
            let written = Written {
                thread,
                message,
                attachments,
            };
            let stored = Stored {
                thread: true,
                message: false,
            };
            match &sending {
                Sending::Now(request_id) => {
                    self.send_in(txn, by, written, stored, request_id, &content, now)
                        .await
                }
                Sending::Draft => {
                    message::Entity::insert(written.message.clone().into_active_model())
                        .exec_without_returning(txn)
                        .await?;
                    Ok(written)
                }
            }
        })
        .await
    }

    /// Sends `written` (a draft of `by`'s, stored as `stored` says) in `txn`: the thread's
    /// state moves, the message gets its receipt, both are stored, and the step goes to the
    /// histories and the access log.
    #[allow(clippy::too_many_arguments)]
    async fn send_in<C: ConnectionTrait>(
        &self,
        txn: &C,
        by: &Participant,
        written: Written,
        stored: Stored,
        request_id: &RequestId,
        content: &str,
        now: DateTime<Utc>,
    ) -> Result<Written, MessagingError> {
        let Written {
            mut thread,
            mut message,
            attachments,
        } = written;
        let state = state_of(&thread)?;
        let first = state.status == ThreadStatus::Draft;
        let kind = ThreadKind::from_stored(&thread.kind).map_err(corrupt)?;
        let (next, step) = if by.is_staff() {
            (state.staff_replied()?, StepType::StaffReplied)
        } else if first && kind == ThreadKind::CancellationRequest {
            // The care service must answer before the visit starts, whatever the calendar.
            let appointment = thread.appointment_id.ok_or(MessagingError::VisitNotOpen)?;
            let visit = open_visit(txn, thread.patient_id, appointment, now).await?;
            visit_events::append(
                txn,
                &visit,
                VisitEventType::CancellationRequestSent,
                &Who::of(&by.actor),
                now,
            )
            .await?;
            thread.care_unit_id = visit.care_unit_id;
            (
                state.citizen_wrote(visit.window_start)?,
                StepType::ThreadStarted,
            )
        } else {
            let step = if first {
                StepType::ThreadStarted
            } else {
                StepType::CitizenReplied
            };
            (state.citizen_wrote(reply_due(now, self.zone))?, step)
        };
        thread.status = next.status.as_stored().to_owned();
        thread.due_at = next.due_at;
        thread.priority = next.priority() as i16;
        thread.last_message_at = now;
        thread.updated_at = now;
        if first {
            thread.received_at = Some(now);
            thread.created_at = now;
        }
        message.state = SENT.to_owned();
        message.sent_at = Some(now);
        message.updated_at = now;
        message.request_id = Some(request_id.as_str().to_owned());
        message.request_fingerprint = Some(content.to_owned());
        message.receipt_reference = Some(receipt_reference(message.id));
        let written = Written {
            thread,
            message,
            attachments,
        };
        stored.save(txn, &written).await?;
        let thread = &written.thread;
        history::append(txn, thread, step, Some(written.message.id), None, by, now).await?;
        access_log::record(
            txn,
            &by.actor,
            thread.patient_id,
            Action::WriteMessages,
            Some(thread.id.to_string()),
            now,
        )
        .await?;
        // The author has read the thread up to their own message (a new thread has nothing
        // else to read).
        if !first {
            set_read(txn, thread.id, &by.key, Some(now), false, now).await?;
        }
        Ok(written)
    }

    /// `by`'s draft `message_id`, with its thread, if it is about `patient` (a citizen's)
    /// or in one of their units (staff, `None`); otherwise NOT_FOUND.
    async fn own_draft<C: ConnectionTrait>(
        &self,
        db: &C,
        by: &Participant,
        patient: Option<Uuid>,
        message_id: Uuid,
    ) -> Result<(thread::Model, message::Model), MessagingError> {
        let message = message::Entity::find_by_id(message_id)
            .one(db)
            .await?
            .filter(|found| found.author_key == by.key && found.state == DRAFT)
            .ok_or(MessagingError::DraftNotFound)?;
        let thread = thread::Entity::find_by_id(message.thread_id)
            .one(db)
            .await?
            .filter(|thread| match patient {
                Some(patient) => thread.patient_id == patient,
                None => by.reaches_unit(&thread.care_unit_id),
            })
            .ok_or(MessagingError::DraftNotFound)?;
        Ok((thread, message))
    }

    /// Replaces the content of `by`'s draft `message_id`. `thread_fields` (unit, subject,
    /// sensitive) apply to the draft of a new thread only.
    pub async fn update_draft(
        &self,
        by: &Participant,
        patient: Option<Uuid>,
        message_id: Uuid,
        thread_fields: Option<(Option<CareUnitId>, String, bool)>,
        text: String,
        attachments: Vec<Uuid>,
    ) -> Result<Written, MessagingError> {
        let now = self.now();
        let txn = homecare_core::db::begin_write(&self.db).await?;
        let (mut thread, mut message) = self.own_draft(&*txn, by, patient, message_id).await?;
        let new_thread = thread.status == ThreadStatus::Draft.as_stored();
        match (new_thread, thread_fields) {
            (true, Some((unit, subject, sensitive))) => {
                if thread.appointment_id.is_none() {
                    let unit = unit
                        .map_or_else(|| self.general_inquiries.clone(), CareUnitId::into_string);
                    if !self.recipients(thread.patient_id).await?.contains(&unit) {
                        let mut violations = FieldViolations::new();
                        violations.add(
                            "care_unit_id",
                            "is not a unit the patient can write to (see ListMessageRecipients)",
                        );
                        return Err(violations.into());
                    }
                    thread.care_unit_id = unit;
                }
                thread.subject = subject;
                thread.sensitive = sensitive;
                thread.updated_at = now;
                thread::Entity::update(thread.clone().into_active_model().reset_all())
                    .exec(&*txn)
                    .await?;
            }
            (true, None) => {
                let mut violations = FieldViolations::new();
                violations.add("subject", "is required for the draft of a new thread");
                return Err(violations.into());
            }
            (false, Some(_)) => {
                let mut violations = FieldViolations::new();
                violations.add(
                    "subject",
                    "only the draft of a new thread has a subject, unit and sensitivity",
                );
                return Err(violations.into());
            }
            (false, None) => {}
        }
        message.body = text;
        message.updated_at = now;
        message::Entity::update(message.clone().into_active_model().reset_all())
            .exec(&*txn)
            .await?;
        // The uploads no longer listed go back to their uploader.
        attachment::Entity::update_many()
            .col_expr(attachment::Column::MessageId, Expr::value(None::<Uuid>))
            .filter(attachment::Column::MessageId.eq(message.id))
            .filter(attachment::Column::Id.is_not_in(attachments.iter().copied()))
            .exec(&*txn)
            .await?;
        let attachments = claim_attachments(&*txn, by, &attachments, message.id, &thread).await?;
        txn.commit().await?;
        Ok(Written {
            thread,
            message,
            attachments,
        })
    }

    /// Sends `by`'s draft `message_id`.
    pub async fn send_draft(
        &self,
        by: &Participant,
        patient: Option<Uuid>,
        message_id: Uuid,
        request_id: RequestId,
    ) -> Result<Written, MessagingError> {
        let now = self.now();
        let content = fingerprint(["send-draft", &message_id.to_string()]);
        let sending = Sending::Now(request_id.clone());
        self.with_repeat(by, &sending, &content, async |txn| {
            let (_, message) = self.own_draft(txn, by, patient, message_id).await?;
            let thread = lock_thread(txn, message.thread_id).await?;
            let attachments = attachments_of(txn, [message.id]).await?;
            let written = Written {
                thread,
                message,
                attachments,
            };
            let stored = Stored {
                thread: true,
                message: true,
            };
            self.send_in(txn, by, written, stored, &request_id, &content, now)
                .await
        })
        .await
    }

    /// Deletes `by`'s draft `message_id` (and the thread, when it was a new one). Its
    /// uploads go back to their uploader.
    pub async fn delete_draft(
        &self,
        by: &Participant,
        patient: Option<Uuid>,
        message_id: Uuid,
    ) -> Result<(), MessagingError> {
        let txn = homecare_core::db::begin_write(&self.db).await?;
        let (thread, message) = self.own_draft(&*txn, by, patient, message_id).await?;
        attachment::Entity::update_many()
            .col_expr(attachment::Column::MessageId, Expr::value(None::<Uuid>))
            .filter(attachment::Column::MessageId.eq(message.id))
            .exec(&*txn)
            .await?;
        message::Entity::delete_by_id(message.id)
            .exec(&*txn)
            .await?;
        if thread.status == ThreadStatus::Draft.as_stored() {
            thread::Entity::delete_by_id(thread.id).exec(&*txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Marks `thread` read (up to its last message) or unread for `by`.
    pub async fn mark_read(
        &self,
        by: &Participant,
        thread: &thread::Model,
        read: bool,
    ) -> Result<(), MessagingError> {
        let now = self.now();
        let txn = homecare_core::db::begin_write(&self.db).await?;
        if read {
            set_read(&*txn, thread.id, &by.key, Some(now), false, now).await?;
        } else {
            let stored = read::Entity::find_by_id((thread.id, by.key.clone()))
                .one(&*txn)
                .await?;
            let through = stored.and_then(|row| row.read_through);
            set_read(&*txn, thread.id, &by.key, through, true, now).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// `by` opened `thread`: what they had not read is read now. A staff member reading
    /// citizens' messages for the first time is a step of the thread's history; true when
    /// such a step was added (its followers are to be woken).
    pub async fn opened(
        &self,
        by: &Participant,
        thread: &thread::Model,
    ) -> Result<bool, MessagingError> {
        let unread = unread_counts(&self.db, std::slice::from_ref(thread), by).await?;
        let count = unread.get(&thread.id).copied().unwrap_or(0);
        if count == 0 {
            return Ok(false);
        }
        let now = self.now();
        let txn = homecare_core::db::begin_write(&self.db).await?;
        set_read(&*txn, thread.id, &by.key, Some(now), false, now).await?;
        let step = by.is_staff();
        if step {
            history::append(&*txn, thread, StepType::ReadByStaff, None, None, by, now).await?;
        }
        txn.commit().await?;
        Ok(step)
    }

    /// Moves `thread_id` to `unit`, keeping its history and due time.
    pub async fn reassign(
        &self,
        by: &Participant,
        thread_id: Uuid,
        unit: CareUnitId,
    ) -> Result<thread::Model, MessagingError> {
        let unit = unit.into_string();
        let now = self.now();
        let txn = homecare_core::db::begin_write(&self.db).await?;
        let mut thread = lock_thread(&*txn, thread_id).await?;
        state_of(&thread)?.reassigned()?;
        if thread.care_unit_id == unit {
            txn.rollback().await?;
            return Ok(thread);
        }
        let from = std::mem::replace(&mut thread.care_unit_id, unit);
        thread.updated_at = now;
        thread::Entity::update(thread.clone().into_active_model().reset_all())
            .exec(&*txn)
            .await?;
        history::append(
            &*txn,
            &thread,
            StepType::Reassigned,
            None,
            Some(from),
            by,
            now,
        )
        .await?;
        access_log::record(
            &*txn,
            &by.actor,
            thread.patient_id,
            Action::WriteMessages,
            Some(thread.id.to_string()),
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(thread)
    }

    /// Closes `thread_id`; closing a closed thread changes nothing.
    pub async fn close(
        &self,
        by: &Participant,
        thread_id: Uuid,
    ) -> Result<thread::Model, MessagingError> {
        let now = self.now();
        let txn = homecare_core::db::begin_write(&self.db).await?;
        let mut thread = lock_thread(&*txn, thread_id).await?;
        let state = state_of(&thread)?;
        if state.status == ThreadStatus::Closed {
            txn.rollback().await?;
            return Ok(thread);
        }
        let next = state.closed()?;
        thread.status = next.status.as_stored().to_owned();
        thread.priority = next.priority() as i16;
        thread.updated_at = now;
        thread::Entity::update(thread.clone().into_active_model().reset_all())
            .exec(&*txn)
            .await?;
        history::append(&*txn, &thread, StepType::Closed, None, None, by, now).await?;
        access_log::record(
            &*txn,
            &by.actor,
            thread.patient_id,
            Action::WriteMessages,
            Some(thread.id.to_string()),
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(thread)
    }
}

/// Which rows of a step are stored already (updated), and which are new (inserted): a
/// message sent at once is written once, in its final state.
#[derive(Debug, Clone, Copy)]
struct Stored {
    thread: bool,
    message: bool,
}

impl Stored {
    const NOTHING: Stored = Stored {
        thread: false,
        message: false,
    };

    async fn save<C: ConnectionTrait>(self, txn: &C, written: &Written) -> Result<(), DbErr> {
        let thread = written.thread.clone().into_active_model();
        if self.thread {
            thread::Entity::update(thread.reset_all()).exec(txn).await?;
        } else {
            thread::Entity::insert(thread)
                .exec_without_returning(txn)
                .await?;
        }
        let message = written.message.clone().into_active_model();
        if self.message {
            message::Entity::update(message.reset_all())
                .exec(txn)
                .await?;
        } else {
            message::Entity::insert(message)
                .exec_without_returning(txn)
                .await?;
        }
        Ok(())
    }
}

fn corrupt(error: homecare_core::stored::UnknownStoredValue) -> MessagingError {
    MessagingError::Db(DbErr::Custom(error.to_string()))
}

/// A thread's state as stored.
pub fn state_of(thread: &thread::Model) -> Result<ThreadState, MessagingError> {
    Ok(ThreadState {
        status: ThreadStatus::from_stored(&thread.status).map_err(corrupt)?,
        kind: ThreadKind::from_stored(&thread.kind).map_err(corrupt)?,
        due_at: thread.due_at,
    })
}

/// A new draft message of `by`'s in `thread_id`.
fn new_message(
    by: &Participant,
    thread_id: Uuid,
    text: &str,
    now: DateTime<Utc>,
) -> message::Model {
    message::Model {
        id: homecare_core::ids::new_id(now),
        thread_id,
        author_kind: by.author_kind().as_stored().to_owned(),
        author_subject: by.actor.subject(),
        author_name: by.actor.name().map(str::to_owned),
        author_key: by.key.clone(),
        body: text.to_owned(),
        state: DRAFT.to_owned(),
        sent_at: None,
        request_id: None,
        request_fingerprint: None,
        receipt_reference: None,
        created_at: now,
        updated_at: now,
    }
}

/// The thread `thread_id`, locked for the transaction on PostgreSQL (SQLite has one writer).
async fn lock_thread<C: ConnectionTrait>(
    txn: &C,
    thread_id: Uuid,
) -> Result<thread::Model, MessagingError> {
    thread::Entity::find_by_id(thread_id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(MessagingError::ThreadNotFound)
}

/// The visit `appointment_id` of `patient_id`, if it can still be asked to be cancelled:
/// planned, not cancelled through this service, not yet started.
async fn open_visit<C: ConnectionTrait>(
    db: &C,
    patient_id: Uuid,
    appointment_id: Uuid,
    now: DateTime<Utc>,
) -> Result<visit::Model, MessagingError> {
    let found = visit::Entity::find_by_id(appointment_id)
        .one(db)
        .await?
        .filter(|found| found.patient_id == patient_id);
    let Some(found) = found else {
        let mut violations = FieldViolations::new();
        violations.add("appointment_id", "is not a visit of the patient's");
        return Err(violations.into());
    };
    let planned = AppointmentStatus::from_stored(&found.status)
        .is_ok_and(|status| status == AppointmentStatus::Planned);
    if !planned || found.cancellation_state.is_some() || found.window_start <= now {
        return Err(MessagingError::VisitNotOpen);
    }
    Ok(found)
}

/// Attaches the uploads `ids` to `message_id`: each must be `by`'s own, for the thread's
/// patient (citizens) or the thread (staff), and not on another message.
async fn claim_attachments<C: ConnectionTrait>(
    db: &C,
    by: &Participant,
    ids: &[Uuid],
    message_id: Uuid,
    thread: &thread::Model,
) -> Result<Vec<attachment::Model>, MessagingError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut violations = FieldViolations::new();
    if ids.len() > MAX_ATTACHMENTS {
        violations.add("attachment_ids", "must list at most 20 attachments");
        return Err(violations.into());
    }
    let found: HashMap<Uuid, attachment::Model> = attachment::Entity::find()
        .filter(attachment::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let mut claimed = Vec::new();
    for (index, id) in ids.iter().enumerate() {
        let usable = found.get(id).filter(|row| {
            row.owner_key == by.key
                && row.message_id.is_none_or(|on| on == message_id)
                && (row.patient_id == Some(thread.patient_id) || row.thread_id == Some(thread.id))
        });
        match usable {
            Some(row) => claimed.push(row.clone()),
            None => violations.add(
                format!("attachment_ids[{index}]"),
                "is not an upload of yours that is free to attach",
            ),
        }
    }
    violations.finish()?;
    let total: i64 = claimed.iter().map(|row| row.size_bytes).sum();
    if u64::try_from(total).unwrap_or(u64::MAX) > MAX_MESSAGE_BYTES {
        let mut violations = FieldViolations::new();
        violations.add(
            "attachment_ids",
            "the attachments of one message must be at most 25 MB together",
        );
        return Err(violations.into());
    }
    attachment::Entity::update_many()
        .col_expr(attachment::Column::MessageId, Expr::value(Some(message_id)))
        .filter(attachment::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    for row in &mut claimed {
        row.message_id = Some(message_id);
    }
    Ok(claimed)
}

/// The attachments of `messages`.
pub async fn attachments_of<C: ConnectionTrait>(
    db: &C,
    messages: impl IntoIterator<Item = Uuid>,
) -> Result<Vec<attachment::Model>, DbErr> {
    attachment::Entity::find()
        .filter(attachment::Column::MessageId.is_in(messages))
        .order_by_asc(attachment::Column::CreatedAt)
        .order_by_asc(attachment::Column::Id)
        .all(db)
        .await
}

/// Stores how far `reader` has read `thread_id`.
async fn set_read<C: ConnectionTrait>(
    db: &C,
    thread_id: Uuid,
    reader: &str,
    read_through: Option<DateTime<Utc>>,
    marked_unread: bool,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    read::Entity::insert(read::ActiveModel {
        thread_id: Set(thread_id),
        reader_key: Set(reader.to_owned()),
        read_through: Set(read_through),
        marked_unread: Set(marked_unread),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([read::Column::ThreadId, read::Column::ReaderKey])
            .update_columns([
                read::Column::ReadThrough,
                read::Column::MarkedUnread,
                read::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// How many messages from the other side `by` has not read, per thread of `threads`; a
/// thread marked unread counts at least one.
pub async fn unread_counts<C: ConnectionTrait>(
    db: &C,
    threads: &[thread::Model],
    by: &Participant,
) -> Result<HashMap<Uuid, i32>, DbErr> {
    if threads.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Uuid> = threads.iter().map(|thread| thread.id).collect();
    let reads: HashMap<Uuid, read::Model> = read::Entity::find()
        .filter(read::Column::ThreadId.is_in(ids.iter().copied()))
        .filter(read::Column::ReaderKey.eq(by.key.as_str()))
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.thread_id, row))
        .collect();
    let staff = homecare_patients::ActorKind::Staff.as_stored();
    let from_other_side = if by.is_staff() {
        message::Column::AuthorKind.ne(staff)
    } else {
        message::Column::AuthorKind.eq(staff)
    };
    // The other side's messages of these threads (a few each), counted here against each
    // thread's read mark: one index lookup per thread, where a condition per thread in SQL
    // costs the planner more than the query.
    let sent: Vec<(Uuid, Option<DateTime<Utc>>)> = message::Entity::find()
        .select_only()
        .column(message::Column::ThreadId)
        .column(message::Column::SentAt)
        .filter(message::Column::ThreadId.is_in(ids.iter().copied()))
        .filter(message::Column::State.eq(SENT))
        .filter(from_other_side)
        .into_tuple()
        .all(db)
        .await?;
    let mut counts: HashMap<Uuid, i32> = HashMap::new();
    for (thread_id, sent_at) in sent {
        let through = reads.get(&thread_id).and_then(|row| row.read_through);
        if through.is_none_or(|through| sent_at.is_some_and(|sent_at| sent_at > through)) {
            *counts.entry(thread_id).or_insert(0) += 1;
        }
    }
    for (id, row) in &reads {
        if row.marked_unread {
            let count = counts.entry(*id).or_insert(0);
            *count = (*count).max(1);
        }
    }
    Ok(counts)
}
