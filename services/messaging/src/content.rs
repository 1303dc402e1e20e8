//! What a message may hold: a subject and a text people will read, and attachments whose
//! type is read from their bytes.

use homecare_core::text::{self, TextError};

/// The longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// The longest text, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// The largest attachment.
pub const MAX_ATTACHMENT_BYTES: u64 = 10 * 1024 * 1024;
/// The most a message's attachments may weigh together.
pub const MAX_MESSAGE_BYTES: u64 = 25 * 1024 * 1024;
/// The most attachments on one message.
pub const MAX_ATTACHMENTS: usize = 20;
/// The largest chunk of an upload.
pub const MAX_CHUNK_BYTES: usize = 128 * 1024;
/// How much of the start of a file is read to tell its type: enough for the parts of an
/// Office file the check looks at, and small enough to hold for every upload at once.
pub const SNIFF_BYTES: usize = 256 * 1024;
/// The longest file name, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 200;

/// A subject: one line, trimmed, 1 to 200 characters, nothing invisible.
pub fn parse_subject(subject: &str) -> Result<String, TextError> {
    text::parse_line(subject, MAX_SUBJECT_CHARS)
}

/// A message's text, kept as sent: 1 to 10,000 characters, nothing invisible.
pub fn check_text(body: &str) -> Result<(), TextError> {
    text::check_message_text(body, MAX_TEXT_CHARS)
}

/// The kinds of file accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    /// PDF.
    Pdf,
    /// Word (Office Open XML).
    Docx,
    /// Excel (Office Open XML).
    Xlsx,
    /// Word 97-2003.
    Doc,
    /// Excel 97-2003.
    Xls,
    /// JPEG image.
    Jpeg,
    /// PNG image.
    Png,
}

impl FileType {
    const ALL: [FileType; 7] = [
        FileType::Pdf,
        FileType::Docx,
        FileType::Xlsx,
        FileType::Doc,
        FileType::Xls,
        FileType::Jpeg,
        FileType::Png,
    ];

    /// The media type, as stored and served.
    pub fn media_type(self) -> &'static str {
        match self {
            FileType::Pdf => "application/pdf",
            FileType::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            FileType::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            FileType::Doc => "application/msword",
            FileType::Xls => "application/vnd.ms-excel",
            FileType::Jpeg => "image/jpeg",
            FileType::Png => "image/png",
        }
    }

    /// The file name endings that go with it.
    fn extensions(self) -> &'static [&'static str] {
        match self {
            FileType::Pdf => &["pdf"],
            FileType::Docx => &["docx"],
            FileType::Xlsx => &["xlsx"],
            FileType::Doc => &["doc"],
            FileType::Xls => &["xls"],
            FileType::Jpeg => &["jpg", "jpeg"],
            FileType::Png => &["png"],
        }
    }

    /// The type the first bytes of a file show, if it is one accepted.
    pub fn of_bytes(start: &[u8]) -> Option<FileType> {
        let found = infer::get(start)?;
        FileType::ALL
            .into_iter()
            .find(|kind| kind.media_type() == found.mime_type())
    }
}

/// Why an attachment is refused. Never carries its name or content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    /// The bytes are not of an accepted type.
    #[error(
        "must be a PDF, DOCX, XLSX, DOC, XLS, JPEG or PNG file (the type is read from the content)"
    )]
    Type,
    /// The name's ending says another type than the bytes.
    #[error("the file name's ending does not match the file's content")]
    NameMismatch,
    /// Larger than allowed.
    #[error("must be at most 10 MB")]
    TooLarge,
    /// No bytes.
    #[error("is empty")]
    Empty,
    /// A chunk larger than allowed.
    #[error("chunks must be at most 128 KiB")]
    ChunkTooLarge,
}

/// Why a file name is refused. Never carries the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FileNameError {
    /// Empty, too long, more than one line, or with invisible characters.
    #[error(transparent)]
    Text(#[from] TextError),
    /// A path rather than a name.
    #[error("must be a file name alone, without '/' or '\\'")]
    Path,
}

/// A file name as given, trimmed: one line, at most 200 characters, nothing invisible, no
/// path.
pub fn parse_file_name(name: &str) -> Result<String, FileNameError> {
    let name = text::parse_line(name, MAX_FILE_NAME_CHARS)?;
    if name.contains(['/', '\\']) {
        return Err(FileNameError::Path);
    }
    Ok(name)
}

/// Whether `name` ends as a file of `kind` does (case aside).
pub fn check_name_matches(name: &str, kind: FileType) -> Result<(), AttachmentError> {
    let ending = name
        .rsplit_once('.')
        .map(|(_, ending)| ending.to_ascii_lowercase())
        .ok_or(AttachmentError::NameMismatch)?;
    if kind.extensions().contains(&ending.as_str()) {
        Ok(())
    } else {
        Err(AttachmentError::NameMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of a minimal PDF.
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";
    /// The start of an ELF executable.
    const ELF: &[u8] = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00";
    /// A PNG signature and the start of its header chunk.
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01";

    #[test]
    fn the_type_comes_from_the_bytes() {
        assert_eq!(FileType::of_bytes(PDF), Some(FileType::Pdf));
        assert_eq!(FileType::of_bytes(PNG), Some(FileType::Png));
        assert_eq!(FileType::of_bytes(ELF), None);
        assert_eq!(FileType::of_bytes(b"just some text"), None);
    }

    #[test]
    fn the_name_must_end_as_the_content_is() {
        assert_eq!(check_name_matches("brev.PDF", FileType::Pdf), Ok(()));
        assert_eq!(check_name_matches("bilde.jpeg", FileType::Jpeg), Ok(()));
        assert_eq!(
            check_name_matches("brev.pdf", FileType::Png),
            Err(AttachmentError::NameMismatch)
        );
        assert_eq!(
            check_name_matches("brev", FileType::Pdf),
            Err(AttachmentError::NameMismatch)
        );
    }

    #[test]
    fn file_names_are_one_visible_line_without_a_path() {
        assert_eq!(parse_file_name(" vedtak.pdf "), Ok("vedtak.pdf".into()));
        assert_eq!(parse_file_name("../etc/passwd"), Err(FileNameError::Path));
        assert_eq!(parse_file_name("a\\b.pdf"), Err(FileNameError::Path));
        assert_eq!(
            parse_file_name("a\nb.pdf"),
            Err(FileNameError::Text(TextError::Control))
        );
        assert!(parse_file_name("kvittering\u{202E}fdp.exe").is_err());
        assert!(parse_file_name("").is_err());
    }

    #[test]
    fn subjects_are_one_line_of_at_most_200_characters() {
        assert_eq!(parse_subject(" Medisiner "), Ok("Medisiner".into()));
        assert!(parse_subject(&"æ".repeat(201)).is_err());
        assert!(parse_subject("Hei\nder").is_err());
        assert!(check_text(&"x".repeat(10_001)).is_err());
        assert!(check_text(&"x".repeat(10_000)).is_ok());
    }
}
