//! Stored rows to protobuf.

use std::collections::HashMap;

use homecare_core::status;
use homecare_core::timestamp;
use homecare_proto::common::v1::ActorKind;
use homecare_proto::notifications::v1 as pb;
use tonic::Status;

use crate::entity::{delivery, notice, settings};
use crate::kind::{Channel, NoticeKind, NoticeStatus, SkipReason};
use crate::queue::read_settings;

fn corrupt(error: impl std::error::Error) -> Status {
    status::internal(&error)
}

/// Settings as stored; none stored reads as no channels.
pub(super) fn settings_to_proto(
    stored: Option<&settings::Model>,
) -> Result<pb::NotificationSettings, Status> {
    let Some(row) = stored else {
        return Ok(pb::NotificationSettings {
            channels: pb::Channels::None as i32,
            language: pb::Language::Nb as i32,
            ..Default::default()
        });
    };
    let settings = read_settings(row).map_err(corrupt)?;
    Ok(pb::NotificationSettings {
        channels: settings.channels.to_proto() as i32,
        phone_number: settings
            .phone
            .map(|phone| phone.as_str().to_owned())
            .unwrap_or_default(),
        email_address: settings
            .email
            .map(|email| email.as_str().to_owned())
            .unwrap_or_default(),
        language: settings.language.to_proto() as i32,
        update_time: Some(timestamp::to_proto(row.updated_at)),
    })
}

/// Notices with what their messages say and who was told (`holders`: the proxy holders'
/// names by patient and identity number); `for_staff` adds the last error.
pub(super) fn notices_to_proto(
    rows: &[notice::Model],
    deliveries: &[delivery::Model],
    holders: &HashMap<(uuid::Uuid, String), String>,
    for_staff: bool,
) -> Result<Vec<pb::Notice>, Status> {
    let deliveries: HashMap<_, _> = deliveries.iter().map(|row| (row.id, row)).collect();
    rows.iter()
        .map(|row| {
            let message = row.delivery_id.and_then(|id| deliveries.get(&id));
            Ok(pb::Notice {
                id: row.id.to_string(),
                kind: NoticeKind::from_stored(&row.kind)
                    .map_err(corrupt)?
                    .to_proto() as i32,
                channel: row
                    .channel
                    .as_deref()
                    .map(Channel::from_stored)
                    .transpose()
                    .map_err(corrupt)?
                    .map_or(0, |channel| channel.to_proto() as i32),
                status: NoticeStatus::from_stored(&row.status)
                    .map_err(corrupt)?
                    .to_proto() as i32,
                skip_reason: row
                    .skip_reason
                    .as_deref()
                    .map(SkipReason::from_stored)
                    .transpose()
                    .map_err(corrupt)?
                    .map_or(0, |reason| reason.to_proto() as i32),
                patient_id: row.patient_id.to_string(),
                create_time: Some(timestamp::to_proto(row.created_at)),
                update_time: Some(timestamp::to_proto(row.updated_at)),
                provider_id: message
                    .and_then(|message| message.provider_id.clone())
                    .unwrap_or_default(),
                error_code: row.error_code.clone().unwrap_or_default(),
                last_error: if for_staff {
                    message
                        .and_then(|message| message.last_error.clone())
                        .unwrap_or_default()
                } else {
                    String::new()
                },
                recipient_kind: if row.on_behalf {
                    ActorKind::Proxy as i32
                } else {
                    ActorKind::Patient as i32
                },
                recipient_name: if row.on_behalf {
                    holders
                        .get(&(row.patient_id, row.recipient_national_id.clone()))
                        .cloned()
                        .unwrap_or_default()
                } else {
                    String::new()
                },
            })
        })
        .collect()
}
