//! Each RPC's request checked into a command: every wrong field named at once
//! (INVALID_ARGUMENT with a violation per field), no value sent echoed. A handler decodes
//! with `Command::try_from(request)?` before it resolves who acts. Patient ids are resolved,
//! and a bad one named, by `Actors`; a thread id by `thread_for`, which also finds the
//! thread.

use homecare_core::all_checked;
use homecare_core::identifier::{CareUnitId, IdError, RequestId};
use homecare_core::paging::{self, Cursor, QueryKey};
use homecare_core::status::FieldViolations;
use homecare_proto::messaging::v1 as pb;
use uuid::Uuid;

use crate::content::{check_text, parse_subject};
use crate::desk::{NewThread, Sending};
use crate::error::MessagingError;
use crate::inbox::InboxCursor;

/// An id this service gave out.
pub(super) fn id(text: &str) -> Result<Uuid, IdError> {
    homecare_core::identifier::parse_id(text, "id")
}

/// The id in `field`, or INVALID_ARGUMENT naming it.
pub(super) fn parse_id(field: &str, text: &str) -> Result<Uuid, MessagingError> {
    Ok(FieldViolations::single(field, id(text))?)
}

fn optional_id(text: &str) -> Result<Option<Uuid>, IdError> {
    if text.is_empty() {
        Ok(None)
    } else {
        id(text).map(Some)
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
            .check("request_id", RequestId::parse(request_id))
            .map(Sending::Now)
    }
}

/// A new thread (CreateThread): its fields, before the patient is known, and whether it is
/// sent or saved as a draft.
pub(super) struct CreateThread {
    pub(super) fields: NewThreadFields,
    pub(super) sending: Sending,
}

/// A new thread's fields, before the patient is known.
pub(super) struct NewThreadFields {
    care_unit: Option<CareUnitId>,
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

impl TryFrom<&pb::CreateThreadRequest> for CreateThread {
    type Error = FieldViolations;

    fn try_from(request: &pb::CreateThreadRequest) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let care_unit = violations.check(
            "care_unit_id",
            CareUnitId::parse_optional(&request.care_unit_id),
        );
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
        Ok(Self {
            fields: NewThreadFields {
                care_unit,
                subject,
                text,
                sensitive: request.sensitive,
                attachments,
                appointment,
                previous,
            },
            sending,
        })
    }
}

/// A reply in a thread, sent or saved as a draft (ReplyToThread).
pub(super) struct ReplyToThread {
    pub(super) text: String,
    pub(super) attachments: Vec<Uuid>,
    pub(super) sending: Sending,
}

impl TryFrom<&pb::ReplyToThreadRequest> for ReplyToThread {
    type Error = FieldViolations;

    fn try_from(request: &pb::ReplyToThreadRequest) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let text = violations
            .check("text", check_text(&request.text))
            .map(|()| request.text.clone());
        let attachments = attachment_ids(&request.attachment_ids, &mut violations);
        let sending = sending(request.draft, &request.request_id, &mut violations);
        let (text, sending) = all_checked!(violations; text, sending)?;
        Ok(Self {
            text,
            attachments,
            sending,
        })
    }
}

/// A draft's new content (UpdateDraft).
pub(super) struct UpdateDraft {
    pub(super) message_id: Uuid,
    /// Unit, subject and sensitivity, for the draft of a new thread.
    pub(super) thread_fields: Option<(Option<CareUnitId>, String, bool)>,
    pub(super) text: String,
    pub(super) attachments: Vec<Uuid>,
}

impl TryFrom<&pb::UpdateDraftRequest> for UpdateDraft {
    type Error = FieldViolations;

    fn try_from(request: &pb::UpdateDraftRequest) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let message_id = violations.check("message_id", id(&request.message_id));
        let has_thread_fields =
            !request.subject.is_empty() || !request.care_unit_id.is_empty() || request.sensitive;
        let thread_fields = if has_thread_fields {
            let unit = violations.check(
                "care_unit_id",
                CareUnitId::parse_optional(&request.care_unit_id),
            );
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
        Ok(Self {
            message_id,
            thread_fields,
            text,
            attachments,
        })
    }
}

/// Sending a draft (SendDraft).
pub(super) struct SendDraft {
    pub(super) message_id: Uuid,
    pub(super) request_id: RequestId,
}

impl TryFrom<&pb::SendDraftRequest> for SendDraft {
    type Error = FieldViolations;

    fn try_from(request: &pb::SendDraftRequest) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let message_id = violations.check("message_id", id(&request.message_id));
        let request_id = violations.check("request_id", RequestId::parse(&request.request_id));
        let (message_id, request_id) = all_checked!(violations; message_id, request_id)?;
        Ok(Self {
            message_id,
            request_id,
        })
    }
}

/// Deleting a draft (DeleteDraft).
pub(super) struct DeleteDraft {
    pub(super) message_id: Uuid,
}

impl TryFrom<&pb::DeleteDraftRequest> for DeleteDraft {
    type Error = FieldViolations;

    fn try_from(request: &pb::DeleteDraftRequest) -> Result<Self, FieldViolations> {
        Ok(Self {
            message_id: FieldViolations::single("message_id", id(&request.message_id))?,
        })
    }
}

/// Moving a thread to another unit (ReassignThread).
pub(super) struct ReassignThread {
    pub(super) care_unit: CareUnitId,
}

impl TryFrom<&pb::ReassignThreadRequest> for ReassignThread {
    type Error = FieldViolations;

    fn try_from(request: &pb::ReassignThreadRequest) -> Result<Self, FieldViolations> {
        Ok(Self {
            care_unit: FieldViolations::single(
                "care_unit_id",
                CareUnitId::parse(&request.care_unit_id),
            )?,
        })
    }
}

/// One page of a citizen's threads (ListThreads).
pub(super) struct ListThreads {
    pub(super) page_size: u64,
    pub(super) cursor: Option<Cursor>,
    pub(super) query_key: QueryKey,
}

impl TryFrom<&pb::ListThreadsRequest> for ListThreads {
    type Error = FieldViolations;

    fn try_from(request: &pb::ListThreadsRequest) -> Result<Self, FieldViolations> {
        let query_key = QueryKey::named("threads").with("patient", &request.patient_id);
        let mut violations = FieldViolations::new();
        let size = violations.check("page_size", paging::page_size(request.page_size));
        let cursor = violations.check(
            "page_token",
            Cursor::decode(&request.page_token, &query_key),
        );
        let (page_size, cursor) = all_checked!(violations; size, cursor)?;
        Ok(Self {
            page_size,
            cursor,
            query_key,
        })
    }
}

/// One page of the staff inbox of `units` (ListInbox): the page token is bound to the units
/// it covers, so it is checked once they are known.
pub(super) struct ListInbox {
    pub(super) page_size: u64,
    pub(super) cursor: Option<InboxCursor>,
    pub(super) query_key: QueryKey,
}

impl ListInbox {
    pub(super) fn decode(
        request: &pb::ListInboxRequest,
        units: &[CareUnitId],
    ) -> Result<Self, FieldViolations> {
        let names: Vec<&str> = units.iter().map(CareUnitId::as_str).collect();
        let query_key = QueryKey::named("inbox").with("units", names.join(","));
        let mut violations = FieldViolations::new();
        let size = violations.check("page_size", paging::page_size(request.page_size));
        let cursor = violations.check(
            "page_token",
            InboxCursor::decode(&request.page_token, &query_key),
        );
        let (page_size, cursor) = all_checked!(violations; size, cursor)?;
        Ok(Self {
            page_size,
            cursor,
            query_key,
        })
    }
}
