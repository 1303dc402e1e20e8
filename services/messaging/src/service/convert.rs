//! Threads, messages, receipts and history steps as the contract has them.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use homecare_core::status;
use homecare_core::timestamp::to_proto as timestamp;
use homecare_proto::google::r#type::Date;
use homecare_proto::messaging::v1 as pb;
use tonic::Status;

use crate::desk::{Written, state_of};
use crate::entity::{attachment, event, message, thread};
use crate::thread::{StepType, ThreadKind, ThreadStatus};
use homecare_patients::ActorKind;

fn corrupt(error: homecare_core::stored::UnknownStoredValue) -> Status {
    status::internal(&error)
}

/// The deprecated `AuthorKind` still filled beside the contract's `ActorKind`.
fn author_kind(kind: ActorKind) -> pb::AuthorKind {
    match kind {
        ActorKind::Patient => pb::AuthorKind::Patient,
        ActorKind::Proxy => pb::AuthorKind::Proxy,
        ActorKind::Staff | ActorKind::System => pb::AuthorKind::Staff,
    }
}

pub(super) fn attachment_to_proto(row: &attachment::Model) -> pb::Attachment {
    pb::Attachment {
        id: row.id.to_string(),
        file_name: row.file_name.clone(),
        media_type: row.media_type.clone(),
        size_bytes: row.size_bytes,
        sha256: row.sha256.clone(),
    }
}

/// The day an answer due at `due` is due, in `zone`: the day of the last moment before it
/// (an inquiry due at 00:00 is due the day before; a cancellation request on its visit's day).
pub(super) fn due_day(due: DateTime<Utc>, zone: Tz) -> Date {
    use chrono::Datelike as _;
    let day = (due - chrono::Duration::nanoseconds(1))
        .with_timezone(&zone)
        .date_naive();
    Date {
        year: day.year(),
        month: i32::try_from(day.month()).unwrap_or_default(),
        day: i32::try_from(day.day()).unwrap_or_default(),
    }
}

/// `thread` as `unread` tells the caller's unread count, at `now`, its due day in `zone`.
pub(super) fn thread_to_proto(
    thread: &thread::Model,
    unread: i32,
    now: DateTime<Utc>,
    zone: Tz,
) -> Result<pb::Thread, Status> {
    let state = state_of(thread).map_err(Status::from)?;
    let waiting = state.status == ThreadStatus::Sent;
    let started_by = ActorKind::from_stored(&thread.started_by_kind).map_err(corrupt)?;
    #[allow(deprecated)]
    Ok(pb::Thread {
        id: thread.id.to_string(),
        patient_id: thread.patient_id.to_string(),
        care_unit_id: thread.care_unit_id.clone(),
        subject: thread.subject.clone(),
        sensitive: thread.sensitive,
        kind: state.kind.to_proto().into(),
        appointment_id: thread
            .appointment_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        previous_thread_id: thread
            .previous_thread_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        status: state.status.to_proto().into(),
        create_time: Some(timestamp(thread.created_at)),
        due_time: thread.due_at.filter(|_| waiting).map(timestamp),
        due_date: thread
            .due_at
            .filter(|_| waiting)
            .map(|due| due_day(due, zone)),
        overdue: state.overdue(now),
        unread_count: unread,
        last_message_time: Some(timestamp(thread.last_message_at)),
        started_by: started_by.to_proto().into(),
        started_by_kind: author_kind(started_by).into(),
        started_by_name: thread.started_by_name.clone().unwrap_or_default(),
    })
}

pub(super) fn message_to_proto(
    message: &message::Model,
    attachments: &[attachment::Model],
) -> Result<pb::Message, Status> {
    let author = ActorKind::from_stored(&message.author_kind).map_err(corrupt)?;
    #[allow(deprecated)]
    Ok(pb::Message {
        id: message.id.to_string(),
        thread_id: message.thread_id.to_string(),
        author: author.to_proto().into(),
        author_kind: author_kind(author).into(),
        author_name: message.author_name.clone().unwrap_or_default(),
        text: message.body.clone(),
        attachments: attachments
            .iter()
            .filter(|row| row.message_id == Some(message.id))
            .map(attachment_to_proto)
            .collect(),
        send_time: message.sent_at.map(timestamp),
        draft: message.sent_at.is_none(),
        update_time: Some(timestamp(message.updated_at)),
    })
}

/// The receipt of a citizen's message that was sent, its due day in `zone`; none for a draft
/// or a staff reply.
pub(super) fn receipt(written: &Written, zone: Tz) -> Option<pb::Receipt> {
    let message = &written.message;
    let received = message.sent_at?;
    if message.author_kind == ActorKind::Staff.as_stored() {
        return None;
    }
    let thread = &written.thread;
    Some(pb::Receipt {
        reference: message.receipt_reference.clone().unwrap_or_default(),
        receive_time: Some(timestamp(received)),
        subject: if thread.sensitive {
            String::new()
        } else {
            thread.subject.clone()
        },
        attachments: written
            .attachments
            .iter()
            .map(attachment_to_proto)
            .collect(),
        reply_due_time: thread.due_at.map(timestamp),
        reply_due_date: thread.due_at.map(|due| due_day(due, zone)),
        thread_id: thread.id.to_string(),
        message_id: message.id.to_string(),
    })
}

/// One step of history; the thread's subject only when given and not sensitive.
pub(super) fn event_to_proto(
    event: &event::Model,
    thread: Option<&thread::Model>,
    zone: Tz,
) -> Result<pb::InboxEvent, Status> {
    let due = thread
        .filter(|thread| thread.status == ThreadStatus::Sent.as_stored())
        .and_then(|thread| thread.due_at);
    let step = StepType::from_stored(&event.event_type).map_err(corrupt)?;
    let actor = ActorKind::from_stored(&event.actor_kind).map_err(corrupt)?;
    #[allow(deprecated)]
    Ok(pb::InboxEvent {
        r#type: step.to_proto().into(),
        thread_id: event.thread_id.to_string(),
        patient_id: event.patient_id.to_string(),
        care_unit_id: event.care_unit_id.clone(),
        from_care_unit_id: event.from_care_unit_id.clone().unwrap_or_default(),
        occur_time: Some(timestamp(event.occurred_at)),
        thread_kind: thread
            .and_then(|thread| ThreadKind::from_stored(&thread.kind).ok())
            .map(|kind| kind.to_proto().into())
            .unwrap_or_default(),
        subject: thread
            .filter(|thread| !thread.sensitive)
            .map(|thread| thread.subject.clone())
            .unwrap_or_default(),
        due_time: due.map(timestamp),
        due_date: due.map(|due| due_day(due, zone)),
        actor: actor.to_proto().into(),
        actor_kind: author_kind(actor).into(),
        actor_name: event.actor_name.clone().unwrap_or_default(),
    })
}
