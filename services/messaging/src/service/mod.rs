//! `homecare.messaging.v1.MessagingService`: decode the request into its command
//! (`commands`), resolve who acts, call the desk, answer.

mod commands;
mod convert;
mod files;
mod stream;

use std::pin::Pin;
use std::sync::Arc;

use homecare_appointments::feed::ChangeFeed;
use homecare_blob::BlobStore;
use homecare_core::identifier::CareUnitId;
use homecare_core::paging::Cursor;
use homecare_core::{Caller, status};
use homecare_patients::access_log::{Action, ReadLog};
use homecare_patients::{Actor, Actors, Need, Scope};
use homecare_proto::messaging::v1 as pb;
use pb::messaging_service_server::MessagingService;
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::desk::{DRAFT, Desk, SENT, Written, attachments_of, unread_counts};
use crate::entity::{message, thread};
use crate::error::MessagingError;
use crate::history;
use crate::inbox;
use crate::participant::Participant;
use crate::thread::ThreadStatus;
use commands::parse_id;
use convert::{event_to_proto, message_to_proto, receipt, thread_to_proto};

pub use stream::InboxFeed;

/// The service.
#[derive(Clone)]
pub struct MessagingApi {
    desk: Desk,
    actors: Arc<Actors>,
    read_log: ReadLog,
    blobs: BlobStore,
    feed: InboxFeed,
    /// Told when a message adds to a visit's history (a cancellation request).
    visits: ChangeFeed,
    shutdown: homecare_core::shutdown::Shutdown,
}

impl std::fmt::Debug for MessagingApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessagingApi").finish_non_exhaustive()
    }
}

type ServerStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl MessagingApi {
    /// The service over `desk`, resolving callers with `actors`, storing attachment bytes in
    /// `blobs`, waking inbox streams through `feed` and telling `visits` of what it adds to
    /// a visit's history.
    pub fn new(
        desk: Desk,
        actors: Arc<Actors>,
        read_log: ReadLog,
        blobs: BlobStore,
        feed: InboxFeed,
        visits: ChangeFeed,
        shutdown: homecare_core::shutdown::Shutdown,
    ) -> Self {
        Self {
            desk,
            actors,
            read_log,
            blobs,
            feed,
            visits,
            shutdown,
        }
    }

    /// The calling citizen acting for `patient_id` with the messaging scope.
    async fn citizen(
        &self,
        caller: &Caller,
        patient_id: &str,
    ) -> Result<(Participant, Uuid), MessagingError> {
        let pid = caller.require_citizen()?;
        let (actor, patient_id) = self
            .actors
            .for_patient(caller, patient_id, Need::Scope(Scope::Messaging))
            .await?;
        Ok((Participant::citizen(actor, pid.expose()), patient_id))
    }

    /// The calling staff member.
    fn staff(caller: &Caller) -> Result<Participant, MessagingError> {
        Ok(Participant::staff(Actor::staff(caller)?))
    }

    /// The caller and the thread `thread_id` they may see: a citizen's for the patient they
    /// name (a draft thread only if they wrote it), or staff's of one of their units. Any
    /// other is NOT_FOUND, as is one that does not exist.
    async fn thread_for(
        &self,
        caller: &Caller,
        patient_id: &str,
        thread_id: &str,
    ) -> Result<(Participant, thread::Model), MessagingError> {
        let thread_id = parse_id("thread_id", thread_id)?;
        let (participant, patient) = match caller {
            Caller::Citizen { .. } => {
                let (participant, patient) = self.citizen(caller, patient_id).await?;
                (participant, Some(patient))
            }
            Caller::Staff(_) => (Self::staff(caller)?, None),
        };
        let found = thread::Entity::find_by_id(thread_id)
            .one(self.desk.db())
            .await?
            .ok_or(MessagingError::ThreadNotFound)?;
        let reachable = match patient {
            Some(patient) => found.patient_id == patient,
            None => participant.reaches_unit(&found.care_unit_id),
        };
        if !reachable {
            return Err(MessagingError::ThreadNotFound);
        }
        if found.status == ThreadStatus::Draft.as_stored()
            && !self.wrote_draft_of(&participant, found.id).await?
        {
            return Err(MessagingError::ThreadNotFound);
        }
        Ok((participant, found))
    }

    async fn wrote_draft_of(
        &self,
        by: &Participant,
        thread_id: Uuid,
    ) -> Result<bool, MessagingError> {
        Ok(message::Entity::find()
            .filter(message::Column::ThreadId.eq(thread_id))
            .filter(message::Column::AuthorKey.eq(by.key.as_str()))
            .filter(message::Column::State.eq(DRAFT))
            .one(self.desk.db())
            .await?
            .is_some())
    }

    /// Records that `by` read `threads` (nothing when they are the patient), before the
    /// answer goes.
    async fn log_reads<'a>(
        &self,
        by: &Participant,
        threads: impl IntoIterator<Item = &'a thread::Model>,
    ) -> Result<(), Status> {
        self.read_log
            .record(
                &by.actor,
                threads
                    .into_iter()
                    .map(|thread| (thread.patient_id, Some(thread.id.to_string()))),
                Action::ReadMessages,
                self.desk.now(),
            )
            .await
    }

    fn written_to_parts(
        &self,
        written: &Written,
    ) -> Result<(pb::Thread, pb::Message, Option<pb::Receipt>), Status> {
        // A sent message is a step the inbox streams follow; a draft is nobody's news.
        if written.message.sent_at.is_some() {
            self.feed.messages_changed();
            // A cancellation request's first message is a step of the visit's history too.
            if written.thread.appointment_id.is_some() {
                self.visits.visits_changed([written.thread.patient_id]);
            }
        }
        Ok((
            thread_to_proto(&written.thread, 0, self.desk.now(), self.desk.zone())?,
            message_to_proto(&written.message, &written.attachments)?,
            receipt(written, self.desk.zone()),
        ))
    }

    /// `threads` with `by`'s unread counts.
    async fn threads_to_proto(
        &self,
        by: &Participant,
        threads: &[thread::Model],
    ) -> Result<Vec<pb::Thread>, Status> {
        let unread = unread_counts(self.desk.db(), threads, by)
            .await
            .map_err(status::from_db)?;
        let now = self.desk.now();
        threads
            .iter()
            .map(|thread| {
                thread_to_proto(
                    thread,
                    unread.get(&thread.id).copied().unwrap_or(0),
                    now,
                    self.desk.zone(),
                )
            })
            .collect()
    }
}

#[tonic::async_trait]
impl MessagingService for MessagingApi {
    #[tracing::instrument(skip_all)]
    async fn list_message_recipients(
        &self,
        request: Request<pb::ListMessageRecipientsRequest>,
    ) -> Result<Response<pb::ListMessageRecipientsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let (by, patient_id) = self.citizen(caller, &request.get_ref().patient_id).await?;
        // The units come from the patient's visits: a read of their data.
        self.read_log
            .record(
                &by.actor,
                [(patient_id, None)],
                Action::ReadMessages,
                self.desk.now(),
            )
            .await?;
        let units = self
            .desk
            .recipients(patient_id)
            .await
            .map_err(status::from_db)?;
        let general = self.desk.general_inquiries();
        Ok(Response::new(pb::ListMessageRecipientsResponse {
            recipients: units
                .into_iter()
                .map(|unit| pb::MessageRecipient {
                    general_inquiries: unit == general,
                    care_unit_id: unit,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn upload_attachment(
        &self,
        request: Request<Streaming<pb::UploadAttachmentRequest>>,
    ) -> Result<Response<pb::UploadAttachmentResponse>, Status> {
        let caller = Caller::from_request(&request)?.clone();
        let stored = files::upload(self, &caller, request.into_inner()).await?;
        Ok(Response::new(pb::UploadAttachmentResponse {
            attachment: Some(convert::attachment_to_proto(&stored)),
        }))
    }

    type DownloadAttachmentStream = ServerStream<pb::DownloadAttachmentResponse>;

    #[tracing::instrument(skip_all)]
    async fn download_attachment(
        &self,
        request: Request<pb::DownloadAttachmentRequest>,
    ) -> Result<Response<Self::DownloadAttachmentStream>, Status> {
        let caller = Caller::from_request(&request)?;
        let stream = files::download(self, caller, request.get_ref()).await?;
        Ok(Response::new(stream))
    }

    #[tracing::instrument(skip_all)]
    async fn create_thread(
        &self,
        request: Request<pb::CreateThreadRequest>,
    ) -> Result<Response<pb::CreateThreadResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let commands::CreateThread { fields, sending } = message.try_into()?;
        let (by, patient_id) = self.citizen(caller, &message.patient_id).await?;
        let written = self
            .desk
            .create_thread(&by, fields.into_new_thread(patient_id), sending)
            .await?;
        let (thread, message, receipt) = self.written_to_parts(&written)?;
        Ok(Response::new(pb::CreateThreadResponse {
            thread: Some(thread),
            message: Some(message),
            receipt,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn reply_to_thread(
        &self,
        request: Request<pb::ReplyToThreadRequest>,
    ) -> Result<Response<pb::ReplyToThreadResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let commands::ReplyToThread {
            text,
            attachments,
            sending,
        } = message.try_into()?;
        let (by, thread) = self
            .thread_for(caller, &message.patient_id, &message.thread_id)
            .await?;
        let written = self
            .desk
            .reply(&by, thread.id, text, attachments, sending)
            .await?;
        let (thread, message, receipt) = self.written_to_parts(&written)?;
        Ok(Response::new(pb::ReplyToThreadResponse {
            thread: Some(thread),
            message: Some(message),
            receipt,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_draft(
        &self,
        request: Request<pb::UpdateDraftRequest>,
    ) -> Result<Response<pb::UpdateDraftResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let update: commands::UpdateDraft = message.try_into()?;
        let (by, patient) = self.resolve_any(caller, &message.patient_id).await?;
        let written = self
            .desk
            .update_draft(
                &by,
                patient,
                update.message_id,
                update.thread_fields,
                update.text,
                update.attachments,
            )
            .await?;
        Ok(Response::new(pb::UpdateDraftResponse {
            thread: Some(thread_to_proto(
                &written.thread,
                0,
                self.desk.now(),
                self.desk.zone(),
            )?),
            message: Some(message_to_proto(&written.message, &written.attachments)?),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn send_draft(
        &self,
        request: Request<pb::SendDraftRequest>,
    ) -> Result<Response<pb::SendDraftResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let commands::SendDraft {
            message_id,
            request_id,
        } = message.try_into()?;
        let (by, patient) = self.resolve_any(caller, &message.patient_id).await?;
        let written = self
            .desk
            .send_draft(&by, patient, message_id, request_id)
            .await?;
        let (thread, message, receipt) = self.written_to_parts(&written)?;
        Ok(Response::new(pb::SendDraftResponse {
            thread: Some(thread),
            message: Some(message),
            receipt,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_draft(
        &self,
        request: Request<pb::DeleteDraftRequest>,
    ) -> Result<Response<pb::DeleteDraftResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let commands::DeleteDraft { message_id } = message.try_into()?;
        let (by, patient) = self.resolve_any(caller, &message.patient_id).await?;
        self.desk.delete_draft(&by, patient, message_id).await?;
        Ok(Response::new(pb::DeleteDraftResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn list_threads(
        &self,
        request: Request<pb::ListThreadsRequest>,
    ) -> Result<Response<pb::ListThreadsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let commands::ListThreads {
            page_size,
            cursor,
            query_key: key,
        } = message.try_into()?;
        let (by, patient_id) = self.citizen(caller, &message.patient_id).await?;
        // Sent threads, and drafts of the caller's own.
        let own_drafts = Query::select()
            .column(message::Column::ThreadId)
            .from(message::Entity)
            .and_where(message::Column::State.eq(DRAFT))
            .and_where(message::Column::AuthorKey.eq(by.key.as_str()))
            .to_owned();
        let mut select = thread::Entity::find()
            .filter(thread::Column::PatientId.eq(patient_id))
            .filter(
                Condition::any()
                    .add(thread::Column::Status.ne(ThreadStatus::Draft.as_stored()))
                    .add(thread::Column::Id.in_subquery(own_drafts)),
            );
        if let Some(cursor) = cursor {
            select = select.filter(
                Condition::any()
                    .add(thread::Column::LastMessageAt.lt(cursor.after))
                    .add(
                        Condition::all()
                            .add(thread::Column::LastMessageAt.eq(cursor.after))
                            .add(thread::Column::Id.lt(cursor.id)),
                    ),
            );
        }
        let mut rows = select
            .order_by_desc(thread::Column::LastMessageAt)
            .order_by_desc(thread::Column::Id)
            .limit(page_size + 1)
            .all(self.desk.db())
            .await
            .map_err(status::from_db)?;
        let next = if rows.len() as u64 > page_size {
            rows.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
            rows.last().map(|row| Cursor {
                after: row.last_message_at,
                id: row.id,
            })
        } else {
            None
        };
        self.log_reads(&by, &rows).await?;
        Ok(Response::new(pb::ListThreadsResponse {
            threads: self.threads_to_proto(&by, &rows).await?,
            next_page_token: next.map(|cursor| cursor.encode(&key)).unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_thread(
        &self,
        request: Request<pb::GetThreadRequest>,
    ) -> Result<Response<pb::GetThreadResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let (by, thread) = self
            .thread_for(caller, &message.patient_id, &message.thread_id)
            .await?;
        self.log_reads(&by, [&thread]).await?;
        if self.desk.opened(&by, &thread).await? {
            self.feed.messages_changed();
        }
        let db = self.desk.db();
        let messages = message::Entity::find()
            .filter(message::Column::ThreadId.eq(thread.id))
            .filter(
                Condition::any()
                    .add(message::Column::State.eq(SENT))
                    .add(message::Column::AuthorKey.eq(by.key.as_str())),
            )
            .order_by_asc(message::Column::CreatedAt)
            .order_by_asc(message::Column::Id)
            .all(db)
            .await
            .map_err(status::from_db)?;
        // Sent messages in the order received; the caller's drafts after them.
        let (mut sent, drafts): (Vec<_>, Vec<_>) =
            messages.into_iter().partition(|row| row.sent_at.is_some());
        sent.sort_by_key(|row| (row.sent_at, row.id));
        sent.extend(drafts);
        let attachments = attachments_of(db, sent.iter().map(|row| row.id))
            .await
            .map_err(status::from_db)?;
        let steps = history::of_thread(db, thread.id)
            .await
            .map_err(status::from_db)?;
        let now = self.desk.now();
        Ok(Response::new(pb::GetThreadResponse {
            thread: Some(thread_to_proto(&thread, 0, now, self.desk.zone())?),
            messages: sent
                .iter()
                .map(|row| message_to_proto(row, &attachments))
                .collect::<Result<_, _>>()?,
            history: steps
                .iter()
                .map(|step| event_to_proto(step, Some(&thread), self.desk.zone()))
                .collect::<Result<_, _>>()?,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn mark_thread_read(
        &self,
        request: Request<pb::MarkThreadReadRequest>,
    ) -> Result<Response<pb::MarkThreadReadResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let (by, thread) = self
            .thread_for(caller, &message.patient_id, &message.thread_id)
            .await?;
        self.desk.mark_read(&by, &thread, message.read).await?;
        let mut threads = self
            .threads_to_proto(&by, std::slice::from_ref(&thread))
            .await?;
        Ok(Response::new(pb::MarkThreadReadResponse {
            thread: threads.pop(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_inbox(
        &self,
        request: Request<pb::ListInboxRequest>,
    ) -> Result<Response<pb::ListInboxResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let by = Self::staff(caller)?;
        let units = units_of(&by, &message.care_unit_id)?;
        let commands::ListInbox {
            page_size,
            cursor,
            query_key: key,
        } = commands::ListInbox::decode(message, &units)?;
        let (rows, next) = inbox::page(self.desk.db(), &units, cursor, page_size)
            .await
            .map_err(status::from_db)?;
        self.log_reads(&by, &rows).await?;
        let threads = self.threads_to_proto(&by, &rows).await?;
        Ok(Response::new(pb::ListInboxResponse {
            threads,
            next_page_token: next.map(|cursor| cursor.encode(&key)).unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn reassign_thread(
        &self,
        request: Request<pb::ReassignThreadRequest>,
    ) -> Result<Response<pb::ReassignThreadResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        Self::staff(caller)?;
        let commands::ReassignThread { care_unit: unit } = message.try_into()?;
        let (by, thread) = self.thread_for(caller, "", &message.thread_id).await?;
        let thread = self.desk.reassign(&by, thread.id, unit).await?;
        self.feed.messages_changed();
        Ok(Response::new(pb::ReassignThreadResponse {
            thread: Some(thread_to_proto(
                &thread,
                0,
                self.desk.now(),
                self.desk.zone(),
            )?),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn close_thread(
        &self,
        request: Request<pb::CloseThreadRequest>,
    ) -> Result<Response<pb::CloseThreadResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        Self::staff(caller)?;
        let (by, thread) = self.thread_for(caller, "", &message.thread_id).await?;
        let thread = self.desk.close(&by, thread.id).await?;
        self.feed.messages_changed();
        Ok(Response::new(pb::CloseThreadResponse {
            thread: Some(thread_to_proto(
                &thread,
                0,
                self.desk.now(),
                self.desk.zone(),
            )?),
        }))
    }

    type WatchInboxStream = ServerStream<pb::WatchInboxResponse>;

    #[tracing::instrument(skip_all)]
    async fn watch_inbox(
        &self,
        request: Request<pb::WatchInboxRequest>,
    ) -> Result<Response<Self::WatchInboxStream>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let by = Self::staff(caller)?;
        let units = units_of(&by, &message.care_unit_id)?;
        let stream = stream::watch(self.clone(), by, units, &message.resume_token).await?;
        Ok(Response::new(stream))
    }
}

impl MessagingApi {
    /// A citizen acting for `patient_id`, or a staff member (who names no patient).
    async fn resolve_any(
        &self,
        caller: &Caller,
        patient_id: &str,
    ) -> Result<(Participant, Option<Uuid>), MessagingError> {
        match caller {
            Caller::Citizen { .. } => {
                let (by, patient) = self.citizen(caller, patient_id).await?;
                Ok((by, Some(patient)))
            }
            Caller::Staff(_) => Ok((Self::staff(caller)?, None)),
        }
    }
}

/// The units a staff request covers: the one it names (NOT_FOUND unless it is theirs), or
/// all of theirs (PERMISSION_DENIED NO_CARE_UNIT when they have none, as for the visits of a
/// unit's day).
fn units_of(by: &Participant, named: &str) -> Result<Vec<CareUnitId>, MessagingError> {
    let mine = by.actor.visible_care_units().unwrap_or_default();
    if mine.is_empty() {
        return Err(MessagingError::NoCareUnit);
    }
    if named.is_empty() {
        return Ok(mine);
    }
    match mine.into_iter().find(|unit| unit == named) {
        Some(unit) => Ok(vec![unit]),
        None => Err(MessagingError::CareUnitNotFound),
    }
}
