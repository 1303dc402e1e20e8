//! `homecare.notifications.v1.NotificationService`: settings, proxy holders' choice, the
//! history of notices, and staff's retry.

mod commands;
mod convert;

use std::sync::Arc;

use homecare_core::paging::Cursor;
use homecare_core::status;
use homecare_core::{Caller, Clock};
use homecare_outbox::Wakeup;
use homecare_patients::access_log::{Action, ReadLog};
use homecare_patients::{Actor, Actors, Need, Scope, Via};
use homecare_proto::notifications::v1 as pb;
use pb::notification_service_server::NotificationService;
use sea_orm::sea_query::{Condition, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::entity::{delivery, follow, notice, settings as settings_entity};
use crate::kind::{Channel, NoticeStatus};
use crate::retry::RetryError;
use crate::settings::Settings;
use convert::{notices_to_proto, settings_to_proto};

/// The service.
pub struct NotificationApi {
    db: DatabaseConnection,
    actors: Arc<Actors>,
    read_log: ReadLog,
    clock: Arc<dyn Clock>,
    sms: Wakeup,
    email: Wakeup,
}

impl std::fmt::Debug for NotificationApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationApi").finish_non_exhaustive()
    }
}

impl NotificationApi {
    /// The service over `db`, resolving callers with `actors`, waking the channels' workers.
    pub fn new(
        db: DatabaseConnection,
        actors: Arc<Actors>,
        read_log: ReadLog,
        clock: Arc<dyn Clock>,
        sms: Wakeup,
        email: Wakeup,
    ) -> Self {
        Self {
            db,
            actors,
            read_log,
            clock,
            sms,
            email,
        }
    }

    /// A page of notices matching `filter`, newest first, with their messages.
    async fn page(
        &self,
        filter: Condition,
        cursor: Option<Cursor>,
        page_size: u64,
    ) -> Result<(Vec<notice::Model>, Vec<delivery::Model>, Option<Cursor>), Status> {
        let mut select = notice::Entity::find().filter(filter);
        if let Some(cursor) = cursor {
            select = select.filter(
                Condition::any()
                    .add(notice::Column::CreatedAt.lt(cursor.after))
                    .add(
                        Condition::all()
                            .add(notice::Column::CreatedAt.eq(cursor.after))
                            .add(notice::Column::Id.lt(cursor.id)),
                    ),
            );
        }
        let mut rows = select
            .order_by_desc(notice::Column::CreatedAt)
            .order_by_desc(notice::Column::Id)
            .limit(page_size + 1)
            .all(&self.db)
            .await
            .map_err(status::from_db)?;
        let next = if rows.len() as u64 > page_size {
            rows.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
            rows.last().map(|row| Cursor {
                after: row.created_at,
                id: row.id,
            })
        } else {
            None
        };
        let deliveries = delivery::Entity::find()
            .filter(delivery::Column::Id.is_in(rows.iter().filter_map(|row| row.delivery_id)))
            .all(&self.db)
            .await
            .map_err(status::from_db)?;
        Ok((rows, deliveries, next))
    }

    /// The names of the proxy holders told by `rows`.
    async fn holders_of(
        &self,
        rows: &[notice::Model],
    ) -> Result<std::collections::HashMap<(Uuid, String), String>, Status> {
        let told: Vec<(Uuid, &str)> = rows
            .iter()
            .filter(|row| row.on_behalf)
            .map(|row| (row.patient_id, row.recipient_national_id.as_str()))
            .collect();
        homecare_patients::store::holder_names(&self.db, &told)
            .await
            .map_err(status::from_db)
    }

    /// Staff of one of `patient_id`'s care units.
    async fn staff_for(&self, caller: &Caller, patient_id: &str) -> Result<(Actor, Uuid), Status> {
        Actor::staff(caller)?;
        Ok(self
            .actors
            .for_patient(caller, patient_id, Need::Scope(Scope::ReadVisits))
            .await?)
    }
}

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    #[tracing::instrument(skip_all)]
    async fn get_notification_settings(
        &self,
        request: Request<pb::GetNotificationSettingsRequest>,
    ) -> Result<Response<pb::GetNotificationSettingsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let pid = self.actors.citizen(caller).await?;
        let stored = settings_entity::Entity::find_by_id(pid.expose().to_owned())
            .one(&self.db)
            .await
            .map_err(status::from_db)?;
        Ok(Response::new(pb::GetNotificationSettingsResponse {
            settings: Some(settings_to_proto(stored.as_ref())?),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_notification_settings(
        &self,
        request: Request<pb::UpdateNotificationSettingsRequest>,
    ) -> Result<Response<pb::UpdateNotificationSettingsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let settings = Settings::try_from(request.get_ref())?;
        let pid = self.actors.citizen(caller).await?;
        let row = settings_entity::ActiveModel {
            national_id: Set(pid.expose().to_owned()),
            channels: Set(settings.channels.as_stored().to_owned()),
            phone_number: Set(settings
                .phone
                .as_ref()
                .map(|phone| phone.as_str().to_owned())),
            email_address: Set(settings
                .email
                .as_ref()
                .map(|email| email.as_str().to_owned())),
            language: Set(settings.language.as_stored().to_owned()),
            updated_at: Set(self.clock.now()),
        };
        let txn = homecare_core::db::begin_write(&self.db)
            .await
            .map_err(status::from_db)?;
        settings_entity::Entity::insert(row)
            .on_conflict(
                OnConflict::column(settings_entity::Column::NationalId)
                    .update_columns([
                        settings_entity::Column::Channels,
                        settings_entity::Column::PhoneNumber,
                        settings_entity::Column::EmailAddress,
                        settings_entity::Column::Language,
                        settings_entity::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&*txn)
            .await
            .map_err(status::from_db)?;
        let stored = settings_entity::Entity::find_by_id(pid.expose().to_owned())
            .one(&*txn)
            .await
            .map_err(status::from_db)?;
        txn.commit().await.map_err(status::from_db)?;
        Ok(Response::new(pb::UpdateNotificationSettingsResponse {
            settings: Some(settings_to_proto(stored.as_ref())?),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn set_patient_notifications(
        &self,
        request: Request<pb::SetPatientNotificationsRequest>,
    ) -> Result<Response<pb::SetPatientNotificationsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        // A holder may follow the patient to hear of visits or of answers to messages: either
        // scope will do; each notice is checked against the scope it needs.
        let (actor, patient_id) = match self
            .actors
            .for_patient(caller, &message.patient_id, Need::Scope(Scope::ReadVisits))
            .await
        {
            Err(homecare_patients::AccessError::Proxy(_)) => {
                self.actors
                    .for_patient(caller, &message.patient_id, Need::Scope(Scope::Messaging))
                    .await?
            }
            resolved => resolved?,
        };
        if !matches!(actor.via, Via::Proxy { .. }) {
            // The patient's own notices follow their settings; staff have none.
            return Err(status::failed_precondition(
                "NOT_A_PROXY_HOLDER",
                "patient",
                "only a proxy holder chooses notices about someone else",
            ));
        }
        let pid = caller
            .require_citizen()
            .map_err(Status::from)?
            .expose()
            .to_owned();
        let txn = homecare_core::db::begin_write(&self.db)
            .await
            .map_err(status::from_db)?;
        follow::Entity::insert(follow::ActiveModel {
            holder_national_id: Set(pid),
            patient_id: Set(patient_id),
            enabled: Set(message.enabled),
            updated_at: Set(self.clock.now()),
        })
        .on_conflict(
            OnConflict::columns([follow::Column::HolderNationalId, follow::Column::PatientId])
                .update_columns([follow::Column::Enabled, follow::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(&*txn)
        .await
        .map_err(status::from_db)?;
        txn.commit().await.map_err(status::from_db)?;
        Ok(Response::new(pb::SetPatientNotificationsResponse {
            patient_id: patient_id.to_string(),
            enabled: message.enabled,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_my_notices(
        &self,
        request: Request<pb::ListMyNoticesRequest>,
    ) -> Result<Response<pb::ListMyNoticesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let commands::NoticesPage {
            page_size,
            cursor,
            query_key: key,
        } = message.try_into()?;
        let pid = self.actors.citizen(caller).await?;
        let (rows, deliveries, next) = self
            .page(
                Condition::all().add(notice::Column::RecipientNationalId.eq(pid.expose())),
                cursor,
                page_size,
            )
            .await?;
        Ok(Response::new(pb::ListMyNoticesResponse {
            notices: notices_to_proto(&rows, &deliveries, &self.holders_of(&rows).await?, false)?,
            next_page_token: next.map(|cursor| cursor.encode(&key)).unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_patient_notices(
        &self,
        request: Request<pb::ListPatientNoticesRequest>,
    ) -> Result<Response<pb::ListPatientNoticesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let commands::NoticesPage {
            page_size,
            cursor,
            query_key: key,
        } = message.try_into()?;
        let (actor, patient_id) = self.staff_for(caller, &message.patient_id).await?;
        let mut filter = Condition::all().add(notice::Column::PatientId.eq(patient_id));
        if message.only_failed {
            filter = filter.add(notice::Column::Status.eq(NoticeStatus::Failed.as_stored()));
        }
        let (rows, deliveries, next) = self.page(filter, cursor, page_size).await?;
        self.read_log
            .record(
                &actor,
                [(patient_id, None)],
                Action::ReadNotifications,
                self.clock.now(),
            )
            .await?;
        Ok(Response::new(pb::ListPatientNoticesResponse {
            notices: notices_to_proto(&rows, &deliveries, &self.holders_of(&rows).await?, true)?,
            next_page_token: next.map(|cursor| cursor.encode(&key)).unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn retry_notice(
        &self,
        request: Request<pb::RetryNoticeRequest>,
    ) -> Result<Response<pb::RetryNoticeResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let commands::RetryNotice { notice_id } = message.try_into()?;
        let (actor, patient_id) = self.staff_for(caller, &message.patient_id).await?;
        let (row, message_row) =
            crate::retry::send_again(&self.db, &actor, patient_id, notice_id, self.clock.now())
                .await
                .map_err(|error| match error {
                    RetryError::NotFound => status::not_found("notice"),
                    RetryError::NotFailed => status::failed_precondition(
                        "NOT_FAILED",
                        "notice",
                        "only a failed notice can be sent again",
                    ),
                    RetryError::Db(error) => status::from_db(error),
                })?;
        match Channel::from_stored(&message_row.channel) {
            Ok(Channel::Sms) => self.sms.rows_queued(),
            Ok(Channel::Email) => self.email.rows_queued(),
            Err(_) => {}
        }
        let deliveries = [message_row];
        let rows = [row];
        let mut notices =
            notices_to_proto(&rows, &deliveries, &self.holders_of(&rows).await?, true)?;
        Ok(Response::new(pb::RetryNoticeResponse {
            notice: Some(notices.remove(0)),
        }))
    }
}
