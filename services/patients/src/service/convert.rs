//! The contract's messages of what is stored: proxies and their history, access-log entries.

use chrono::{DateTime, Utc};

use crate::entity::{proxy as proxy_entity, proxy_event};
use crate::proxy::{self, Basis};
use crate::scope::Scopes;
use homecare_core::{status, timestamp};
use homecare_proto::patients::v1 as pb;
use tonic::Status;

fn role_of(kind: &str) -> pb::ActorRole {
    match kind {
        "patient" => pb::ActorRole::Patient,
        "proxy" => pb::ActorRole::Proxy,
        "staff" => pb::ActorRole::Staff,
        "system" => pb::ActorRole::System,
        _ => pb::ActorRole::Unspecified,
    }
}

pub(super) fn access_entry_to_proto(row: &crate::entity::access_log::Model) -> pb::AccessLogEntry {
    pb::AccessLogEntry {
        occur_time: Some(timestamp::to_proto(row.occurred_at)),
        actor_role: role_of(&row.actor_kind).into(),
        // Staff without a name in their token are shown by their staff id.
        actor_name: row
            .actor_name
            .clone()
            .unwrap_or_else(|| row.actor_subject.clone()),
        on_behalf_of_patient_id: row.patient_id.to_string(),
        proxy_id: row.proxy_id.map(|id| id.to_string()).unwrap_or_default(),
        action: row.action.clone(),
        resource_id: row.resource_id.clone().unwrap_or_default(),
    }
}

pub(super) fn proxy_to_proto(
    model: &proxy_entity::Model,
    history: &[proxy_event::Model],
    staff_view: bool,
    now: DateTime<Utc>,
) -> Result<pb::Proxy, Status> {
    let terms = proxy::terms_of(model).map_err(status::from_db)?;
    let basis = Basis::from_stored(&model.basis)
        .map(Basis::to_proto)
        .unwrap_or(pb::ProxyBasis::Unspecified);
    Ok(pb::Proxy {
        id: model.id.to_string(),
        patient_id: model.patient_id.to_string(),
        patient_name: model.patient_name.clone(),
        holder_name: model.holder_name.clone(),
        scopes: terms.scopes.to_proto(),
        basis: basis.into(),
        document_reference: if staff_view {
            model.document_reference.clone().unwrap_or_default()
        } else {
            String::new()
        },
        valid_time: Some(timestamp::to_proto(model.valid_from)),
        end_time: model.valid_to.map(timestamp::to_proto),
        ended_time: model.ended_at.map(timestamp::to_proto),
        state: terms.state_to_proto(now).into(),
        create_time: Some(timestamp::to_proto(model.created_at)),
        history: history
            .iter()
            .map(|event| pb::ProxyEvent {
                r#type: proxy::EventType::from_stored(&event.event_type)
                    .map_or(
                        pb::proxy_event::Type::Unspecified,
                        proxy::EventType::to_proto,
                    )
                    .into(),
                occur_time: Some(timestamp::to_proto(event.occurred_at)),
                actor_role: role_of(&event.actor_kind).into(),
                actor_name: event
                    .actor_name
                    .clone()
                    .unwrap_or_else(|| event.actor_subject.clone()),
                scopes: Scopes::from_stored(&event.scopes)
                    .map(Scopes::to_proto)
                    .unwrap_or_default(),
                end_time: event.valid_to.map(timestamp::to_proto),
            })
            .collect(),
    })
}
