//! The contract's messages of what is stored: visits, their history, EPJ deliveries.

use homecare_core::{status, timestamp};
use homecare_outbox::RowState;
use homecare_proto::appointments::v1 as pb;
use sea_orm::DbErr;
use tonic::Status;

use crate::domain::{ActorKind, AppointmentStatus, CancellationState, EventType, ServiceType};
use crate::{entity, events, outbox};

pub(super) fn event_to_proto(
    event: &events::entity::Model,
) -> Result<pb::AppointmentEvent, Status> {
    let event_type = EventType::from_stored(&event.event_type).map_err(|e| status::internal(&e))?;
    let actor_kind = ActorKind::from_stored(&event.actor_kind).map_err(|e| status::internal(&e))?;
    Ok(pb::AppointmentEvent {
        r#type: event_type.to_proto().into(),
        appointment_id: event.appointment_id.to_string(),
        patient_id: event.patient_id.to_string(),
        care_unit_id: event.care_unit_id.clone(),
        occur_time: Some(timestamp::to_proto(event.occurred_at)),
        actor_kind: actor_kind.to_proto().into(),
        actor: event.actor_subject.clone(),
        version: event.version,
        actor_name: event.actor_name.clone().unwrap_or_default(),
        previous_status: event
            .previous_status
            .as_deref()
            .map(AppointmentStatus::from_stored)
            .transpose()
            .map_err(|e| status::internal(&e))?
            .map_or(0, |previous| previous.to_proto().into()),
        previous_window_start: event.previous_window_start.map(timestamp::to_proto),
        previous_window_end: event.previous_window_end.map(timestamp::to_proto),
    })
}

/// The visit as the caller may see it; `staff_view` adds why a cancellation failed.
pub(super) fn to_proto(model: &entity::Model, staff_view: bool) -> Result<pb::Appointment, Status> {
    let service_type =
        ServiceType::from_stored(&model.service_type).map_err(|e| status::internal(&e))?;
    let appointment_status =
        AppointmentStatus::from_stored(&model.status).map_err(|e| status::internal(&e))?;
    Ok(pb::Appointment {
        id: model.id.to_string(),
        patient_id: model.patient_id.to_string(),
        epj_id: model.epj_id.clone(),
        care_unit_id: model.care_unit_id.clone(),
        window_start: Some(timestamp::to_proto(model.window_start)),
        window_end: Some(timestamp::to_proto(model.window_end)),
        service_type: service_type.to_proto().into(),
        status: appointment_status.to_proto().into(),
        citizen_cancellable: model.citizen_cancellable,
        version: model.version,
        update_time: Some(timestamp::to_proto(model.updated_at)),
        cancellation: cancellation_to_proto(model, staff_view)?,
    })
}

fn cancellation_to_proto(
    model: &entity::Model,
    staff_view: bool,
) -> Result<Option<pb::Cancellation>, Status> {
    let Some(state) = &model.cancellation_state else {
        return Ok(None);
    };
    let state = CancellationState::from_stored(state).map_err(|e| status::internal(&e))?;
    let requested_by = model
        .cancellation_requested_by
        .as_deref()
        .map(ActorKind::from_stored)
        .transpose()
        .map_err(|e| status::internal(&e))?;
    Ok(Some(pb::Cancellation {
        state: state.to_proto().into(),
        reason: model.cancellation_reason.clone().unwrap_or_default(),
        request_time: model.cancellation_requested_at.map(timestamp::to_proto),
        requested_by: requested_by.map_or(0, |kind| kind.to_proto().into()),
        requested_by_name: model
            .cancellation_requested_by_name
            .clone()
            .unwrap_or_default(),
        failure_reason: if staff_view {
            model
                .cancellation_failure_reason
                .clone()
                .unwrap_or_default()
        } else {
            String::new()
        },
    }))
}

pub(super) fn delivery_to_proto(row: &outbox::entity::Model) -> Result<pb::EpjDelivery, Status> {
    let state = match RowState::from_stored(&row.state) {
        Some(RowState::Pending) => pb::EpjDeliveryState::Pending,
        Some(RowState::Delivered) => pb::EpjDeliveryState::Delivered,
        Some(RowState::Failed) => pb::EpjDeliveryState::Failed,
        None => {
            return Err(status::internal(&DbErr::Custom(
                "unknown stored delivery state".into(),
            )));
        }
    };
    Ok(pb::EpjDelivery {
        id: row.id.to_string(),
        appointment_id: row.appointment_id.to_string(),
        patient_id: row.patient_id.to_string(),
        care_unit_id: row.care_unit_id.clone(),
        state: state.into(),
        attempts: row.attempts,
        last_error: row.last_error.clone().unwrap_or_default(),
        create_time: Some(timestamp::to_proto(row.created_at)),
        update_time: Some(timestamp::to_proto(row.updated_at)),
    })
}
