//! Staff's retry of a failed notice: the message that carried it goes again, once.

use chrono::{DateTime, Utc};
use homecare_core::db::begin_write;
use homecare_outbox::RowState;
use homecare_patients::Actor;
use homecare_patients::access_log::{self, Action};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::entity::{delivery, notice};
use crate::kind::NoticeStatus;

/// Why a retry was refused.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No such notice of the patient.
    #[error("notice not found")]
    NotFound,
    /// It has not failed.
    #[error("only a failed notice can be sent again")]
    NotFailed,
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Sends the message of `patient_id`'s failed notice `notice_id` again, with the other
/// failed notices it carried, for `actor` (whose access is logged); returns the notice and
/// the message that carries it now.
///
/// A message the outbox parked (refused, or out of attempts) is put back in line. A message
/// the provider took and reported failed later is done as far as the outbox is concerned:
/// its failed notices move to a new message, due now, sent once, whose provider id is
/// recorded when the provider takes it; the old message keeps its provider id, and a late
/// report on it changes nothing. Two retries at once: the second finds the notice queued.
pub async fn send_again(
    db: &DatabaseConnection,
    actor: &Actor,
    patient_id: Uuid,
    notice_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(notice::Model, delivery::Model), RetryError> {
    let txn = begin_write(db).await?;
    let found = notice::Entity::find_by_id(notice_id)
        .filter(notice::Column::PatientId.eq(patient_id))
        .lock_exclusive()
        .one(&*txn)
        .await?
        .ok_or(RetryError::NotFound)?;
    let (Some(delivery_id), Ok(NoticeStatus::Failed)) =
        (found.delivery_id, NoticeStatus::from_stored(&found.status))
    else {
        return Err(RetryError::NotFailed);
    };
    let message =
        match homecare_outbox::store::unpark::<delivery::Entity, _>(&*txn, delivery_id, now).await?
        {
            Some(parked) => parked,
            None => {
                let taken = delivery::Entity::find_by_id(delivery_id)
                    .one(&*txn)
                    .await?
                    .ok_or(RetryError::NotFound)?;
                if taken.state == RowState::Pending.as_stored() {
                    // Already on its way again: the notice rides along.
                    taken
                } else {
                    let again = delivery::Model {
                        id: homecare_core::ids::new_id(now),
                        provider_id: None,
                        state: RowState::Pending.as_stored().to_owned(),
                        attempts: 0,
                        next_attempt_at: now,
                        lease_until: None,
                        last_error: None,
                        created_at: now,
                        updated_at: now,
                        ..taken
                    };
                    delivery::Entity::insert(delivery::ActiveModel::from(again.clone()))
                        .exec_without_returning(&*txn)
                        .await?;
                    again
                }
            }
        };
    notice::Entity::update_many()
        .col_expr(
            notice::Column::Status,
            NoticeStatus::Queued.as_stored().into(),
        )
        .col_expr(notice::Column::ErrorCode, Option::<String>::None.into())
        .col_expr(notice::Column::DeliveryId, Some(message.id).into())
        .col_expr(notice::Column::UpdatedAt, now.into())
        .filter(notice::Column::DeliveryId.eq(delivery_id))
        .filter(notice::Column::Status.eq(NoticeStatus::Failed.as_stored()))
        .exec(&*txn)
        .await?;
    access_log::record(
        &*txn,
        actor,
        patient_id,
        Action::WriteNotifications,
        Some(notice_id.to_string()),
        now,
    )
    .await?;
    let notice = notice::Entity::find_by_id(notice_id)
        .one(&*txn)
        .await?
        .ok_or(RetryError::NotFound)?;
    txn.commit().await?;
    Ok((notice, message))
}
