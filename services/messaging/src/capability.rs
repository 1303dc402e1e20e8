//! The messaging capability: the gRPC service, its blob store and the inbox topic, with
//! its configuration.

use std::sync::Arc;

use homecare_appointments::feed::ChangeFeed;
use homecare_blob::BlobStore;
use homecare_proto::messaging::v1::messaging_service_server::MessagingServiceServer;
use homecare_runtime::{BuildError, Capability, Context, Parts};

use crate::config::MessagingConfig;
use crate::desk::Desk;
use crate::{InboxFeed, MessagingApi};

/// The largest request: an upload's chunk (128 KiB) or a message's text (10,000 characters)
/// with room to spare.
const MAX_MESSAGING_REQUEST_BYTES: usize = 256 * 1024;

/// Secure messaging.
pub struct Messaging(pub MessagingConfig);

impl Capability for Messaging {
    fn name(&self) -> &'static str {
        "messaging"
    }

    fn build(self: Box<Self>, context: &Context, parts: &mut Parts) -> Result<(), BuildError> {
        let config = &self.0;
        let blobs = if config.blob_store_url.is_empty() {
            BlobStore::local(
                &context.data_dir.join("attachments"),
                config.blob_part_bytes,
            )
        } else {
            let mut options: Vec<(String, String)> = std::env::vars()
                .filter(|(key, _)| key.starts_with("AWS_"))
                .map(|(key, value)| (key.to_ascii_lowercase(), value))
                .collect();
            options.extend(config.blob_store_options.clone());
            BlobStore::at_url(&config.blob_store_url, options, config.blob_part_bytes)
        }
        .map_err(|error| BuildError::Setup {
            capability: "messaging",
            reason: error.to_string(),
        })?;
        let visits = parts
            .shared::<ChangeFeed>()
            .ok_or_else(|| BuildError::Setup {
                capability: "messaging",
                reason: "is built after the appointments capability".into(),
            })?;
        let feed = InboxFeed::new(std::time::Duration::from_millis(config.stream_poll_ms));
        parts.topic(Arc::new(feed.topic()));
        let desk = Desk::new(
            context.db.clone(),
            context.clock.clone(),
            context.time_zone,
            config.general_inquiries_unit.clone(),
        );
        let api = MessagingApi::new(
            desk,
            context.actors.clone(),
            context.read_log.clone(),
            blobs,
            feed,
            visits,
            context.shutdown.clone(),
        );
        parts.grpc(
            MessagingServiceServer::new(api).max_decoding_message_size(MAX_MESSAGING_REQUEST_BYTES),
        );
        Ok(())
    }
}
