//! The contract's messages of what is stored: proxies and their history, access-log entries.

use chrono::{DateTime, Utc};

use crate::actor::ActorKind;
use crate::entity::{proxy as proxy_entity, proxy_event};
use crate::proxy::{self, Basis};
use crate::scope::Scopes;
use homecare_core::{status, timestamp};
use homecare_proto::patients::v1 as pb;
use tonic::Status;

/// Who acted, as stored, in the contract's kind and in the deprecated role it still fills.
fn kind_and_role(stored: &str) -> (i32, i32) {
    let Ok(kind) = ActorKind::from_stored(stored) else {
        return (0, 0);
    };
    let role = match kind {
        ActorKind::Patient => pb::ActorRole::Patient,
        ActorKind::Proxy => pb::ActorRole::Proxy,
        ActorKind::Staff => pb::ActorRole::Staff,
        ActorKind::System => pb::ActorRole::System,
    };
    (kind.to_proto().into(), role.into())
}

pub(super) fn access_entry_to_proto(
    row: &crate::entity::access_log_entry::Model,
) -> pb::AccessLogEntry {
    let (actor_kind, actor_role) = kind_and_role(&row.actor_kind);
    #[allow(deprecated)]
    pb::AccessLogEntry {
        occur_time: Some(timestamp::to_proto(row.occurred_at)),
        actor_kind,
        actor_role,
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
            .map(|event| {
                let (actor_kind, actor_role) = kind_and_role(&event.actor_kind);
                #[allow(deprecated)]
                pb::ProxyEvent {
                    r#type: proxy::EventType::from_stored(&event.event_type)
                        .map_or(
                            pb::proxy_event::Type::Unspecified,
                            proxy::EventType::to_proto,
                        )
                        .into(),
                    occur_time: Some(timestamp::to_proto(event.occurred_at)),
                    actor_kind,
                    actor_role,
                    actor_name: event
                        .actor_name
                        .clone()
                        .unwrap_or_else(|| event.actor_subject.clone()),
                    scopes: Scopes::from_stored(&event.scopes)
                        .map(Scopes::to_proto)
                        .unwrap_or_default(),
                    end_time: event.valid_to.map(timestamp::to_proto),
                }
            })
            .collect(),
    })
}
