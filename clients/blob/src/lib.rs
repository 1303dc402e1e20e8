//! Attachment bytes in a blob store, never in the main tables.
//!
//! Built on `object_store`: a local directory for the embedded default, or any store it
//! opens by URL (`s3://bucket/prefix` with its options) in production. An upload is streamed
//! into a staging object while its SHA-256 is computed, then moved to its content address
//! (`sha256/<hex>`), so the same bytes are stored once. An upload that is not finished is
//! aborted and leaves nothing behind. Nothing here holds more than one part of a file in
//! memory.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use object_store::path::Path;
use object_store::{ObjectStore, WriteMultipart};
use sha2::{Digest as _, Sha256};

/// Why the blob store failed. Never carries a file's name or content.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The store refused or could not be reached.
    #[error("blob store: {0}")]
    Store(#[from] object_store::Error),
    /// The configured location is not one the store understands.
    #[error("blob store location: {0}")]
    Location(String),
    /// An address that is not a SHA-256 in lowercase hex.
    #[error("not a content address")]
    Address,
}

/// How many parts of one upload may be in flight to the store at once.
const PARTS_IN_FLIGHT: usize = 2;

/// A blob store.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    part_bytes: usize,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("store", &self.store.to_string())
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// A store in the local directory `root` (created if missing), sending parts of
    /// `part_bytes` to it.
    pub fn local(root: &std::path::Path, part_bytes: usize) -> Result<Self, BlobError> {
        std::fs::create_dir_all(root).map_err(|error| BlobError::Location(error.to_string()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(root)?;
        Ok(Self {
            store: Arc::new(store),
            prefix: Path::default(),
            part_bytes,
        })
    }

    /// The store at `url` (e.g. `s3://bucket/attachments`), configured with `options`
    /// (`aws_region`, `aws_endpoint`, ...; credentials are best left to the environment).
    /// S3 needs parts of at least 5 MiB.
    pub fn at_url(
        url: &str,
        options: impl IntoIterator<Item = (String, String)>,
        part_bytes: usize,
    ) -> Result<Self, BlobError> {
        let url = url::Url::parse(url).map_err(|error| BlobError::Location(error.to_string()))?;
        let (store, prefix) = object_store::parse_url_opts(&url, options)?;
        Ok(Self {
            store: Arc::from(store),
            prefix,
            part_bytes,
        })
    }

    fn content_path(&self, sha256: &str) -> Result<Path, BlobError> {
        if sha256.len() != 64
            || !sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(BlobError::Address);
        }
        Ok(self.prefix.child("sha256").child(sha256))
    }

    /// Starts an upload.
    pub async fn upload(&self) -> Result<BlobUpload, BlobError> {
        let staging = self
            .prefix
            .child("staging")
            .child(uuid::Uuid::new_v4().simple().to_string());
        let upload = self.store.put_multipart(&staging).await?;
        Ok(BlobUpload {
            store: self.clone(),
            staging,
            writer: WriteMultipart::new_with_chunk_size(upload, self.part_bytes),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// The bytes stored at `sha256`, as a stream of parts.
    pub async fn download(
        &self,
        sha256: &str,
    ) -> Result<impl Stream<Item = Result<Bytes, BlobError>> + Send + 'static, BlobError> {
        let path = self.content_path(sha256)?;
        let found = self.store.get(&path).await?;
        Ok(found
            .into_stream()
            .map(|part| part.map_err(BlobError::from)))
    }

    /// Whether bytes are stored at `sha256`.
    pub async fn contains(&self, sha256: &str) -> Result<bool, BlobError> {
        match self.store.head(&self.content_path(sha256)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}

/// What an upload stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// The content address: lowercase hex SHA-256.
    pub sha256: String,
    /// The number of bytes.
    pub size: u64,
}

/// An upload in progress. Dropped without [`BlobUpload::finish`], its staged parts stay
/// until [`BlobUpload::abort`] is called: callers abort on every path that does not finish.
pub struct BlobUpload {
    store: BlobStore,
    staging: Path,
    writer: WriteMultipart,
    hasher: Sha256,
    size: u64,
}

impl std::fmt::Debug for BlobUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobUpload")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl BlobUpload {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `chunk`, waiting while the store is behind.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.writer.write(chunk);
        Ok(())
    }

    /// Completes the upload and moves it to its content address.
    pub async fn finish(self) -> Result<StoredBlob, BlobError> {
        let sha256: String = self
            .hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        self.writer.finish().await?;
        let target = self.store.content_path(&sha256)?;
        // The same bytes stored before: the staged copy is not needed.
        if self.store.contains(&sha256).await? {
            self.store.store.delete(&self.staging).await?;
        } else {
            self.store.store.rename(&self.staging, &target).await?;
        }
        Ok(StoredBlob {
            sha256,
            size: self.size,
        })
    }

    /// Gives the upload up: nothing of it stays in the store.
    pub async fn abort(self) -> Result<(), BlobError> {
        self.writer.abort().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_under(root: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    found.push(path);
                }
            }
        }
        found
    }

    async fn read_all(store: &BlobStore, sha256: &str) -> Vec<u8> {
        let mut stream = Box::pin(store.download(sha256).await.unwrap());
        let mut bytes = Vec::new();
        while let Some(part) = stream.next().await {
            bytes.extend_from_slice(&part.unwrap());
        }
        bytes
    }

    #[tokio::test]
    async fn bytes_are_stored_once_under_their_sha256_and_read_back() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::local(root.path(), 1024).unwrap();
        let content: Vec<u8> = (0..10_000u32).map(|n| (n % 251) as u8).collect();
        let mut stored = Vec::new();
        for _ in 0..2 {
            let mut upload = store.upload().await.unwrap();
            for chunk in content.chunks(700) {
                upload.write(chunk).await.unwrap();
            }
            stored.push(upload.finish().await.unwrap());
        }
        let expected: String = Sha256::digest(&content)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(stored[0].sha256, expected);
        assert_eq!(stored[0], stored[1]);
        assert_eq!(stored[0].size, 10_000);
        assert_eq!(read_all(&store, &expected).await, content);
        assert_eq!(
            files_under(root.path()),
            vec![root.path().join("sha256").join(&expected)],
            "one copy, nothing staged"
        );
    }

    #[tokio::test]
    async fn an_aborted_upload_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::local(root.path(), 1024).unwrap();
        let mut upload = store.upload().await.unwrap();
        upload.write(&[7u8; 5000]).await.unwrap();
        upload.abort().await.unwrap();
        assert_eq!(files_under(root.path()), Vec::<std::path::PathBuf>::new());
    }

    #[tokio::test]
    async fn addresses_that_are_not_a_sha256_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::local(root.path(), 1024).unwrap();
        for bad in ["../../etc/passwd", "ABC", &"g".repeat(64)] {
            assert!(matches!(
                store.download(bad).await.err(),
                Some(BlobError::Address)
            ));
        }
    }
}
