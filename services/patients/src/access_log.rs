//! The access log: every read or change of a patient's data by anyone but the patient.
//!
//! Written in the same transaction as a change, so a change is never without its entry.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use uuid::Uuid;

use crate::actor::{Actor, Via};
use crate::entity::access_log;

/// What was done to a patient's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Visits were listed or read.
    ReadAppointments,
    /// A visit was created or changed.
    WriteAppointment,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::ReadAppointments => "appointments.read",
            Action::WriteAppointment => "appointments.write",
        }
    }
}

/// Records that `actor` did `action` to `patient_id`'s data, unless the actor is the patient.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    actor: &Actor,
    patient_id: Uuid,
    action: Action,
    resource_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    record_many(db, actor, [(patient_id, resource_id)], action, now).await
}

/// Like [`record`] for several patients or records at once, in one statement.
pub async fn record_many<C: ConnectionTrait>(
    db: &C,
    actor: &Actor,
    touched: impl IntoIterator<Item = (Uuid, Option<String>)>,
    action: Action,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let (kind, subject) = match &actor.via {
        Via::SelfService => return Ok(()),
        Via::Staff { subject, .. } => ("staff", subject.as_str()),
        Via::System { subject } => ("system", subject.as_str()),
    };
    let rows: Vec<access_log::ActiveModel> = touched
        .into_iter()
        .map(|(patient_id, resource_id)| access_log::ActiveModel {
            id: Set(Uuid::now_v7()),
            patient_id: Set(patient_id),
            occurred_at: Set(now),
            actor_kind: Set(kind.to_owned()),
            actor_subject: Set(subject.to_owned()),
            action: Set(action.as_str().to_owned()),
            resource_id: Set(resource_id),
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    access_log::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}
