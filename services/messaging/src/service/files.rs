//! Attachments: uploaded by client streaming into the blob store (type read from the bytes,
//! size bounded, nothing kept of an upload that fails), downloaded by server streaming.

use futures_util::StreamExt as _;
use homecare_blob::BlobUpload;
use homecare_core::status::{self, FieldViolations};
use homecare_core::{Caller, all_checked};
use homecare_proto::messaging::v1 as pb;
use sea_orm::{EntityTrait, IntoActiveModel as _};
use tokio::io::AsyncWriteExt as _;
use tonic::{Status, Streaming};
use uuid::Uuid;

use super::commands::id;
use super::{MessagingApi, ServerStream};
use crate::content::{
    AttachmentError, FileType, MAX_ATTACHMENT_BYTES, MAX_CHUNK_BYTES, SNIFF_BYTES,
    check_name_matches, parse_file_name,
};
use crate::entity::{attachment, message, thread};
use crate::error::MessagingError;
use crate::participant::Participant;
use crate::thread::ThreadStatus;

/// Whom an upload is for: a citizen's patient, or a staff member's thread.
enum UploadFor {
    Patient(Uuid),
    Thread(Uuid),
}

fn refused(error: AttachmentError) -> Status {
    status::invalid_argument("attachment", &error.to_string())
}

/// Receives one attachment: `info` first, then chunks.
pub(super) async fn upload(
    api: &MessagingApi,
    caller: &Caller,
    mut parts: Streaming<pb::UploadAttachmentRequest>,
) -> Result<attachment::Model, Status> {
    let first = parts
        .message()
        .await?
        .and_then(|part| part.part)
        .ok_or_else(|| status::invalid_argument("info", "must come first"))?;
    let pb::upload_attachment_request::Part::Info(info) = first else {
        return Err(status::invalid_argument("info", "must come first"));
    };
    let mut violations = FieldViolations::new();
    let file_name = violations.check("info.file_name", parse_file_name(&info.file_name));
    let (file_name,) = all_checked!(violations; file_name).map_err(Status::from)?;
    let (by, target) = uploader(api, caller, &info).await?;

    let mut upload = api.blobs.upload().await.map_err(MessagingError::from)?;
    match receive(&mut upload, &mut parts).await {
        Ok(kind) => {
            if let Err(error) = check_name_matches(&file_name, kind) {
                abort(upload).await;
                return Err(refused(error));
            }
            let size = upload.size();
            let stored = upload.finish().await.map_err(MessagingError::from)?;
            let now = api.desk.now();
            let row = attachment::Model {
                id: homecare_core::ids::new_id(now),
                owner_key: by.key.clone(),
                patient_id: match target {
                    UploadFor::Patient(patient) => Some(patient),
                    UploadFor::Thread(_) => None,
                },
                thread_id: match target {
                    UploadFor::Thread(thread) => Some(thread),
                    UploadFor::Patient(_) => None,
                },
                message_id: None,
                file_name,
                media_type: kind.media_type().to_owned(),
                size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
                sha256: stored.sha256,
                created_at: now,
            };
            attachment::Entity::insert(row.clone().into_active_model())
                .exec_without_returning(api.desk.db())
                .await
                .map_err(status::from_db)?;
            Ok(row)
        }
        Err(error) => {
            abort(upload).await;
            Err(error)
        }
    }
}

/// Who uploads, for whom: a citizen for the patient they act for (messaging scope), staff
/// for a thread of their units.
async fn uploader(
    api: &MessagingApi,
    caller: &Caller,
    info: &pb::AttachmentInfo,
) -> Result<(Participant, UploadFor), Status> {
    match caller {
        Caller::Citizen { .. } => {
            let (by, patient) = api.citizen(caller, &info.patient_id).await?;
            Ok((by, UploadFor::Patient(patient)))
        }
        Caller::Staff(_) => {
            let (by, thread) =
                api.thread_for(caller, "", &info.thread_id)
                    .await
                    .map_err(|error| match error {
                        MessagingError::Invalid(_) => {
                            status::invalid_argument("info.thread_id", "is not a valid id")
                        }
                        other => other.into(),
                    })?;
            Ok((by, UploadFor::Thread(thread.id)))
        }
    }
}

async fn abort(upload: BlobUpload) {
    if let Err(error) = upload.abort().await {
        tracing::warn!(%error, "an aborted upload could not be removed from the blob store");
    }
}

/// How a zip file starts: its first local file header.
const ZIP_SIGNATURE: &[u8] = b"PK\x03\x04";

/// What the first bytes of an upload showed.
enum Sniffed {
    /// Its type.
    Known(FileType),
    /// A zip, perhaps an Office package: copied to `spool` as well, a temporary file gone
    /// when closed, so that its central directory can be read at the end without holding
    /// the file in memory.
    Package { spool: tokio::fs::File },
}

fn spool_failed(error: &std::io::Error) -> Status {
    tracing::warn!(%error, "an upload could not be spooled to a temporary file");
    status::unavailable("the attachment could not be stored now, try again")
}

fn sniff(start: &[u8]) -> Result<Sniffed, Status> {
    if start.starts_with(ZIP_SIGNATURE) {
        let spool = tempfile::tempfile().map_err(|error| spool_failed(&error))?;
        return Ok(Sniffed::Package {
            spool: tokio::fs::File::from_std(spool),
        });
    }
    FileType::of_bytes(start)
        .map(Sniffed::Known)
        .ok_or(refused(AttachmentError::Type))
}

impl Sniffed {
    /// Stores `bytes` in `upload` (and the spool).
    async fn write(&mut self, upload: &mut BlobUpload, bytes: &[u8]) -> Result<(), Status> {
        upload.write(bytes).await.map_err(MessagingError::from)?;
        if let Sniffed::Package { spool } = self {
            spool
                .write_all(bytes)
                .await
                .map_err(|error| spool_failed(&error))?;
        }
        Ok(())
    }

    /// The type, once every byte is in: a zip is accepted only as a DOCX or XLSX package.
    async fn finish(self) -> Result<FileType, Status> {
        match self {
            Sniffed::Known(kind) => Ok(kind),
            Sniffed::Package { mut spool } => {
                spool.flush().await.map_err(|error| spool_failed(&error))?;
                let spool = spool.into_std().await;
                tokio::task::spawn_blocking(move || crate::office::package_type(spool))
                    .await
                    .ok()
                    .flatten()
                    .ok_or(refused(AttachmentError::Type))
            }
        }
    }
}

/// Streams the chunks into `upload`, telling the type from the first bytes, and for a zip
/// from the package's declarations at the end.
async fn receive(
    upload: &mut BlobUpload,
    parts: &mut Streaming<pb::UploadAttachmentRequest>,
) -> Result<FileType, Status> {
    // The start of the file, held until its type is known.
    let mut start: Vec<u8> = Vec::new();
    let mut sniffed: Option<Sniffed> = None;
    while let Some(part) = parts.message().await? {
        let Some(pb::upload_attachment_request::Part::Chunk(chunk)) = part.part else {
            return Err(status::invalid_argument("info", "must come only first"));
        };
        if chunk.len() > MAX_CHUNK_BYTES {
            return Err(refused(AttachmentError::ChunkTooLarge));
        }
        if upload.size() + start.len() as u64 + chunk.len() as u64 > MAX_ATTACHMENT_BYTES {
            return Err(refused(AttachmentError::TooLarge));
        }
        if let Some(sniffed) = &mut sniffed {
            sniffed.write(upload, &chunk).await?;
            continue;
        }
        start.extend_from_slice(&chunk);
        if start.len() >= SNIFF_BYTES {
            let mut known = sniff(&start)?;
            known.write(upload, &start).await?;
            start = Vec::new();
            sniffed = Some(known);
        }
    }
    let sniffed = match sniffed {
        Some(sniffed) => sniffed,
        None if start.is_empty() => return Err(refused(AttachmentError::Empty)),
        None => {
            let mut known = sniff(&start)?;
            known.write(upload, &start).await?;
            known
        }
    };
    sniffed.finish().await
}

/// Sends an attachment the caller may read: on a sent message of a thread they see, on
/// their own draft, or their own upload not yet attached.
pub(super) async fn download(
    api: &MessagingApi,
    caller: &Caller,
    request: &pb::DownloadAttachmentRequest,
) -> Result<ServerStream<pb::DownloadAttachmentResponse>, Status> {
    let mut violations = FieldViolations::new();
    let attachment_id = violations.check("attachment_id", id(&request.attachment_id));
    let (attachment_id,) = all_checked!(violations; attachment_id).map_err(Status::from)?;
    let (by, patient) = api.resolve_any(caller, &request.patient_id).await?;
    let db = api.desk.db();
    let not_found = || Status::from(MessagingError::AttachmentNotFound);
    let found = attachment::Entity::find_by_id(attachment_id)
        .one(db)
        .await
        .map_err(status::from_db)?
        .ok_or_else(not_found)?;
    let thread = match found.message_id {
        Some(message_id) => {
            let message = message::Entity::find_by_id(message_id)
                .one(db)
                .await
                .map_err(status::from_db)?
                .ok_or_else(not_found)?;
            if message.sent_at.is_none() && message.author_key != by.key {
                return Err(not_found());
            }
            thread::Entity::find_by_id(message.thread_id)
                .one(db)
                .await
                .map_err(status::from_db)?
        }
        None if found.owner_key == by.key => match found.thread_id {
            Some(thread_id) => thread::Entity::find_by_id(thread_id)
                .one(db)
                .await
                .map_err(status::from_db)?,
            None => None,
        },
        None => return Err(not_found()),
    };
    let reachable = match (&thread, patient) {
        (Some(thread), Some(patient)) => thread.patient_id == patient,
        (Some(thread), None) => {
            by.reaches_unit(&thread.care_unit_id)
                && thread.status != ThreadStatus::Draft.as_stored()
        }
        (None, Some(patient)) => found.patient_id == Some(patient),
        (None, None) => false,
    };
    if !reachable {
        return Err(not_found());
    }
    if let Some(thread) = &thread {
        api.log_reads(&by, [thread]).await?;
    }
    let bytes = api
        .blobs
        .download(&found.sha256)
        .await
        .map_err(MessagingError::from)?;
    let info = pb::DownloadAttachmentResponse {
        part: Some(pb::download_attachment_response::Part::Info(
            super::convert::attachment_to_proto(&found),
        )),
    };
    let chunks = in_chunks(Box::pin(bytes), DOWNLOAD_CHUNK_BYTES).map(|part| match part {
        Ok(chunk) => Ok(pb::DownloadAttachmentResponse {
            part: Some(pb::download_attachment_response::Part::Chunk(chunk)),
        }),
        Err(error) => Err(Status::from(MessagingError::from(error))),
    });
    Ok(Box::pin(tokio_stream::once(Ok(info)).chain(chunks)))
}

/// The size of each chunk of a download but the last: what the store reads at a time (8 KiB
/// from a local directory) would make a 9 MB file over a thousand messages.
pub(crate) const DOWNLOAD_CHUNK_BYTES: usize = 128 * 1024;

/// `parts` regrouped into chunks of `size` bytes, the last one shorter; an error ends it.
fn in_chunks<E>(
    parts: std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<bytes::Bytes, E>> + Send>>,
    size: usize,
) -> impl tokio_stream::Stream<Item = Result<Vec<u8>, E>> + Send
where
    E: Send + 'static,
{
    futures_util::stream::unfold(
        (Some(parts), Vec::with_capacity(size)),
        move |(parts, mut pending)| async move {
            let mut parts = parts?;
            loop {
                if pending.len() >= size {
                    let rest = pending.split_off(size);
                    let full = std::mem::replace(&mut pending, rest);
                    return Some((Ok(full), (Some(parts), pending)));
                }
                match parts.next().await {
                    Some(Ok(part)) => pending.extend_from_slice(&part),
                    Some(Err(error)) => return Some((Err(error), (None, Vec::new()))),
                    None if pending.is_empty() => return None,
                    None => return Some((Ok(pending), (None, Vec::new()))),
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parts_of_any_size_come_out_in_full_chunks_then_the_rest() {
        let parts: Vec<Result<bytes::Bytes, ()>> = [3usize, 8, 1, 12, 2]
            .into_iter()
            .enumerate()
            .map(|(n, len)| Ok(bytes::Bytes::from(vec![n as u8; len])))
            .collect();
        let chunks: Vec<Result<Vec<u8>, ()>> = in_chunks(Box::pin(tokio_stream::iter(parts)), 5)
            .collect()
            .await;
        let sizes: Vec<usize> = chunks
            .iter()
            .map(|chunk| chunk.as_ref().unwrap().len())
            .collect();
        assert_eq!(sizes, [5, 5, 5, 5, 5, 1]);
        let joined: Vec<u8> = chunks.into_iter().flat_map(Result::unwrap).collect();
        let mut expected = Vec::new();
        for (n, len) in [3usize, 8, 1, 12, 2].into_iter().enumerate() {
            expected.extend(std::iter::repeat_n(n as u8, len));
        }
        assert_eq!(joined, expected);
    }

    #[tokio::test]
    async fn an_error_ends_the_chunks() {
        let parts: Vec<Result<bytes::Bytes, &str>> = vec![
            Ok(bytes::Bytes::from_static(b"ab")),
            Err("gone"),
            Ok(bytes::Bytes::from_static(b"cd")),
        ];
        let chunks: Vec<_> = in_chunks(Box::pin(tokio_stream::iter(parts)), 4)
            .collect()
            .await;
        assert_eq!(chunks, [Err("gone")]);
    }
}
