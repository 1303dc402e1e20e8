//! Helpers for the messaging tests: a client, requests, uploads and downloads.

use homecare_proto::messaging::v1 as pb;
use homecare_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use tonic::transport::Channel;

use crate::{TestServer, authorized};

/// The start of a PDF file, padded to `size` bytes.
pub fn pdf_bytes(size: usize) -> Vec<u8> {
    let mut bytes =
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec();
    bytes.resize(size.max(bytes.len()), b' ');
    bytes
}

/// The start of an ELF executable, padded to `size` bytes.
pub fn elf_bytes(size: usize) -> Vec<u8> {
    let mut bytes =
        b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00".to_vec();
    bytes.resize(size.max(bytes.len()), 0);
    bytes
}

/// A zip of `parts` (name, content), deflated, in the order given: as an Office writer that
/// puts its parts in that order stores them.
pub fn zip_of(parts: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in parts {
        zip.start_file(*name, options).expect("a part");
        zip.write_all(content).expect("its content");
    }
    zip.finish().expect("the zip").into_inner()
}

/// `[Content_Types].xml` declaring `main` (a part name such as `/word/document.xml`) with
/// `content_type`, and the usual defaults.
pub fn content_types(main: &str, content_type: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="{main}" ContentType="{content_type}"/><Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/></Types>"#
    )
    .into_bytes()
}

/// `_rels/.rels` naming `target` the package's main part.
pub fn package_relationships(target: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="{target}"/></Relationships>"#
    )
    .into_bytes()
}

/// The content type of a Word document's main part.
pub const DOCX_MAIN: &str =
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml";
/// The content type of an Excel workbook's main part.
pub const XLSX_MAIN: &str =
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml";

/// A CreateThread request for `patient_id` to `unit` (empty: general inquiries), sent now
/// with a fresh request id.
pub fn new_thread(
    patient_id: &str,
    unit: &str,
    subject: &str,
    text: &str,
) -> pb::CreateThreadRequest {
    pb::CreateThreadRequest {
        patient_id: patient_id.into(),
        care_unit_id: unit.into(),
        subject: subject.into(),
        text: text.into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

/// A ReplyToThread request, sent now with a fresh request id.
pub fn reply(patient_id: &str, thread_id: &str, text: &str) -> pb::ReplyToThreadRequest {
    pb::ReplyToThreadRequest {
        patient_id: patient_id.into(),
        thread_id: thread_id.into(),
        text: text.into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }
}

impl TestServer {
    /// A client of the messaging service.
    pub fn messaging(&self) -> MessagingServiceClient<Channel> {
        MessagingServiceClient::new(self.channel.clone()).max_decoding_message_size(1 << 20)
    }

    /// Starts a thread as the citizen `pid`.
    pub async fn create_thread(
        &self,
        pid: &str,
        request: pb::CreateThreadRequest,
    ) -> Result<pb::CreateThreadResponse, tonic::Status> {
        self.messaging()
            .create_thread(authorized(&self.citizen_token(pid), request))
            .await
            .map(tonic::Response::into_inner)
    }

    /// One thread as `token`'s holder sees it (`patient_id` empty for staff).
    pub async fn thread_seen_by(
        &self,
        token: &str,
        patient_id: &str,
        thread_id: &str,
    ) -> Result<pb::GetThreadResponse, tonic::Status> {
        self.messaging()
            .get_thread(authorized(
                token,
                pb::GetThreadRequest {
                    patient_id: patient_id.into(),
                    thread_id: thread_id.into(),
                },
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// The patient's threads as the citizen `pid` sees them.
    pub async fn threads_seen_by(
        &self,
        pid: &str,
        patient_id: &str,
    ) -> Result<Vec<pb::Thread>, tonic::Status> {
        self.messaging()
            .list_threads(authorized(
                &self.citizen_token(pid),
                pb::ListThreadsRequest {
                    patient_id: patient_id.into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|response| response.into_inner().threads)
    }

    /// The inbox of `unit` as a nurse of it sees it.
    pub async fn inbox(&self, unit: &str) -> Result<Vec<pb::Thread>, tonic::Status> {
        self.messaging()
            .list_inbox(authorized(
                &self.nurse_token("nurse-inbox", &[unit]),
                pb::ListInboxRequest {
                    care_unit_id: unit.into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|response| response.into_inner().threads)
    }

    /// Uploads `bytes` named `file_name` in chunks of `chunk` bytes, as `token`'s holder.
    pub async fn upload(
        &self,
        token: &str,
        info: pb::AttachmentInfo,
        bytes: &[u8],
        chunk: usize,
    ) -> Result<pb::Attachment, tonic::Status> {
        let mut parts = vec![pb::UploadAttachmentRequest {
            part: Some(pb::upload_attachment_request::Part::Info(info)),
        }];
        parts.extend(
            bytes
                .chunks(chunk)
                .map(|piece| pb::UploadAttachmentRequest {
                    part: Some(pb::upload_attachment_request::Part::Chunk(piece.to_vec())),
                }),
        );
        self.messaging()
            .upload_attachment(authorized(token, tokio_stream::iter(parts)))
            .await
            .map(|response| response.into_inner().attachment.expect("attachment"))
    }

    /// Downloads an attachment as `token`'s holder: its description and its bytes.
    pub async fn download(
        &self,
        token: &str,
        patient_id: &str,
        attachment_id: &str,
    ) -> Result<(pb::Attachment, Vec<u8>), tonic::Status> {
        let mut stream = self
            .messaging()
            .download_attachment(authorized(
                token,
                pb::DownloadAttachmentRequest {
                    patient_id: patient_id.into(),
                    attachment_id: attachment_id.into(),
                },
            ))
            .await?
            .into_inner();
        let mut info = None;
        let mut bytes = Vec::new();
        while let Some(part) = stream.message().await? {
            match part.part {
                Some(pb::download_attachment_response::Part::Info(found)) => info = Some(found),
                Some(pb::download_attachment_response::Part::Chunk(chunk)) => {
                    bytes.extend_from_slice(&chunk);
                }
                None => {}
            }
        }
        Ok((info.expect("info first"), bytes))
    }

    /// The files in the attachment store (none staged, none orphaned, when all is well).
    pub fn blob_files(&self) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![self.config.data_dir.join("attachments")];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    found.push(path);
                }
            }
        }
        found.sort();
        found
    }
}
