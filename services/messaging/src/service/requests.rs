//! Requests checked into commands: every wrong field named at once, none echoed.

use homecare_core::all_checked;
use homecare_core::identifier::{IdError, IdentifierError, RequestId, parse_identifier};
use homecare_core::paging::{self, Cursor, QueryKey};
use homecare_core::status::FieldViolations;
use homecare_proto::messaging::v1 as pb;
use uuid::Uuid;

use crate::content::{check_text, parse_subject};
use crate::desk::{NewThread, Sending};
use crate::error::MessagingError;

/// The longest care unit id.
const MAX_CARE_UNIT_ID_LEN: usize = 64;

/// An id this service gave out.
pub(super) fn id(text: &str) -> Result<Uuid, IdError> {
    homecare_core::identifier::parse_id(text, "id")
}

/// The id in `field`, or INVALID_ARGUMENT naming it.
pub(super) fn parse_id(field: &str, text: &str) -> Result<Uuid, MessagingError> {
    let mut violations = FieldViolations::new();
    let parsed = violations.check(field, id(text));
    Ok(all_checked!(violations; parsed)?.0)
}

fn optional_id(text: &str) -> Result<Option<Uuid>, IdError> {
    if text.is_empty() {
        Ok(None)
    } else {
        id(text).map(Some)
    }
}

pub(super) fn parse_request_id(text: &str) -> Result<RequestId, IdentifierError> {
    RequestId::parse(text)
}

/// A care unit id as sent, or INVALID_ARGUMENT naming `care_unit_id`.
pub(super) fn parse_unit(text: &str) -> Result<String, MessagingError> {
    let mut violations = FieldViolations::new();
    let unit = violations.check("care_unit_id", parse_identifier(text, MAX_CARE_UNIT_ID_LEN));
    Ok(all_checked!(violations; unit)?.0)
}

fn optional_unit(text: &str) -> Result<Option<String>, IdentifierError> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse_identifier(text, MAX_CARE_UNIT_ID_LEN).map(Some)
    }
}

fn attachment_ids(ids: &[String], violations: &mut FieldViolations) -> Vec<Uuid> {
    let mut parsed = Vec::new();
    for (index, text) in ids.iter().enumerate() {
        if let Some(found) = violations.check(&format!("attachment_ids[{index}]"), id(text))
            && !parsed.contains(&found)
        {
            parsed.push(found);
        }
    }
    parsed
}

fn sending(draft: bool, request_id: &str, violations: &mut FieldViolations) -> Option<Sending> {
    if draft {
        Some(Sending::Draft)
    } else {
        violations
            .check("request_id", parse_request_id(request_id))
            .map(Sending::Now)
    }
}

/// A new thread's fields, before the patient is known.
pub(super) struct NewThreadFields {
    care_unit: Option<String>,
    subject: String,
    text: String,
    sensitive: bool,
    attachments: Vec<Uuid>,
    appointment: Option<Uuid>,
    previous: Option<Uuid>,
}

impl NewThreadFields {
    pub(super) fn into_new_thread(self, patient_id: Uuid) -> NewThread {
        NewThread {
            patient_id,
            care_unit: self.care_unit,
            subject: self.subject,
            text: self.text,
            sensitive: self.sensitive,
            attachments: self.attachments,
            appointment: self.appointment,
            previous: self.previous,
        }
    }
}

pub(super) fn parse_new_thread(
    request: &pb::CreateThreadRequest,
) -> Result<(NewThreadFields, Sending), MessagingError> {
    let mut violations = FieldViolations::new();
    let care_unit = violations.check("care_unit_id", optional_unit(&request.care_unit_id));
    let subject = violations.check("subject", parse_subject(&request.subject));
    let text = violations
        .check("text", check_text(&request.text))
        .map(|()| request.text.clone());
    let attachments = attachment_ids(&request.attachment_ids, &mut violations);
    let appointment = violations.check("appointment_id", optional_id(&request.appointment_id));
    let previous = violations.check(
        "previous_thread_id",
        optional_id(&request.previous_thread_id),
    );
    let sending = sending(request.draft, &request.request_id, &mut violations);
    let (care_unit, subject, text, appointment, previous, sending) =
        all_checked!(violations; care_unit, subject, text, appointment, previous, sending)?;
    Ok((
        NewThreadFields {
            care_unit,
            subject,
            text,
            sensitive: request.sensitive,
            attachments,
            appointment,
            previous,
        },
        sending,
    ))
}

pub(super) fn parse_reply(
    request: &pb::ReplyToThreadRequest,
) -> Result<(String, Vec<Uuid>, Sending), MessagingError> {
    let mut violations = FieldViolations::new();
    let text = violations
        .check("text", check_text(&request.text))
        .map(|()| request.text.clone());
    let attachments = attachment_ids(&request.attachment_ids, &mut violations);
    let sending = sending(request.draft, &request.request_id, &mut violations);
    let (text, sending) = all_checked!(violations; text, sending)?;
    Ok((text, attachments, sending))
}

/// A draft's new content.
pub(super) struct DraftUpdate {
    pub(super) message_id: Uuid,
    /// Unit, subject and sensitivity, for the draft of a new thread.
    pub(super) thread_fields: Option<(Option<String>, String, bool)>,
    pub(super) text: String,
    pub(super) attachments: Vec<Uuid>,
}

pub(super) fn parse_update(
    request: &pb::UpdateDraftRequest,
) -> Result<DraftUpdate, MessagingError> {
    let mut violations = FieldViolations::new();
    let message_id = violations.check("message_id", id(&request.message_id));
    let has_thread_fields =
        !request.subject.is_empty() || !request.care_unit_id.is_empty() || request.sensitive;
    let thread_fields = if has_thread_fields {
        let unit = violations.check("care_unit_id", optional_unit(&request.care_unit_id));
        let subject = violations.check("subject", parse_subject(&request.subject));
        unit.zip(subject)
            .map(|(unit, subject)| Some((unit, subject, request.sensitive)))
    } else {
        Some(None)
    };
    let text = violations
        .check("text", check_text(&request.text))
        .map(|()| request.text.clone());
    let attachments = attachment_ids(&request.attachment_ids, &mut violations);
    let (message_id, thread_fields, text) =
        all_checked!(violations; message_id, thread_fields, text)?;
    Ok(DraftUpdate {
        message_id,
        thread_fields,
        text,
        attachments,
    })
}

/// A page request of a citizen's list.
pub(super) struct ThreadsPage {
    pub(super) page_size: u64,
    pub(super) cursor: Option<Cursor>,
}

pub(super) fn parse_page(
    page_size: i32,
    page_token: &str,
    key: &QueryKey,
) -> Result<ThreadsPage, MessagingError> {
    let mut violations = FieldViolations::new();
    let size = violations.check("page_size", paging::page_size(page_size));
    let cursor = violations.check("page_token", Cursor::decode(page_token, key));
    let (page_size, cursor) = all_checked!(violations; size, cursor)?;
    Ok(ThreadsPage { page_size, cursor })
}
