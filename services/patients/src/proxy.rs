//! Proxies in storage: granting, registering, changing and ending them, each with its
//! history entry (and, when someone other than the patient acts, its access-log entry) in
//! the same transaction.

use chrono::{DateTime, Utc};
use homecare_core::NationalIdentityNumber;
use homecare_core::db::{begin_write, first_row};
use homecare_proto::patients::v1 as pb;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::access_log::{self, Action};
use crate::actor::Actor;
use crate::entity::{patient, proxy, proxy_event};
use crate::scope::{ProxyState, ProxyTerms, Scopes};

/// On what a proxy rests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The patient granted it in this service.
    GrantedByPatient,
    /// Staff registered a proxy form the patient signed on paper.
    PaperForm,
    /// Staff registered a guardianship ("vergemål").
    Guardianship,
}

homecare_core::stored_enum!(Basis, "proxy basis", pb::ProxyBasis, {
    GrantedByPatient => "granted_by_patient", GrantedByPatient;
    PaperForm => "paper_form", PaperForm;
    Guardianship => "guardianship", Guardianship;
});

/// A proxy with its terms read.
#[derive(Debug, Clone)]
pub struct Held {
    /// The stored proxy.
    pub model: proxy::Model,
    /// When and what it allows.
    pub terms: ProxyTerms,
}

impl AsRef<ProxyTerms> for Held {
    fn as_ref(&self) -> &ProxyTerms {
        &self.terms
    }
}

impl Held {
    pub(crate) fn read(model: proxy::Model) -> Result<Held, DbErr> {
        let terms = terms_of(&model)?;
        Ok(Held { model, terms })
    }
}

/// When and what `model` allows.
pub fn terms_of(model: &proxy::Model) -> Result<ProxyTerms, DbErr> {
    Ok(ProxyTerms {
        scopes: Scopes::from_stored(&model.scopes).map_err(|e| DbErr::Custom(e.to_string()))?,
        valid_from: model.valid_from,
        valid_to: model.valid_to,
        ended_at: model.ended_at,
    })
}

/// Every proxy, in any state, that `holder` holds for `patient_id`: what each call by a
/// holder is checked against.
pub async fn held_by<C: ConnectionTrait>(
    db: &C,
    holder: &NationalIdentityNumber,
    patient_id: Uuid,
) -> Result<Vec<Held>, DbErr> {
    proxy::Entity::find()
        .filter(proxy::Column::HolderNationalId.eq(holder.expose()))
        .filter(proxy::Column::PatientId.eq(patient_id))
        .all(db)
        .await?
        .into_iter()
        .map(Held::read)
        .collect()
}

/// The proxies `holder` can use at `now`, oldest first.
pub async fn usable_by<C: ConnectionTrait>(
    db: &C,
    holder: &NationalIdentityNumber,
    now: DateTime<Utc>,
) -> Result<Vec<Held>, DbErr> {
    let held: Vec<Held> = proxy::Entity::find()
        .filter(proxy::Column::HolderNationalId.eq(holder.expose()))
        .filter(proxy::Column::EndedAt.is_null())
        .filter(proxy::Column::ValidFrom.lte(now))
        .order_by_asc(proxy::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(Held::read)
        .collect::<Result<_, _>>()?;
    Ok(held
        .into_iter()
        .filter(|proxy| proxy.terms.state_at(now) == ProxyState::Active)
        .collect())
}

/// The proxy with `id` of `patient_id`, if there is one.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    patient_id: Uuid,
    id: Uuid,
) -> Result<Option<proxy::Model>, DbErr> {
    proxy::Entity::find_by_id(id)
        .filter(proxy::Column::PatientId.eq(patient_id))
        .one(db)
        .await
}

/// The proxy with `id` held by `holder`, if there is one.
pub async fn find_held<C: ConnectionTrait>(
    db: &C,
    holder: &NationalIdentityNumber,
    id: Uuid,
) -> Result<Option<proxy::Model>, DbErr> {
    proxy::Entity::find_by_id(id)
        .filter(proxy::Column::HolderNationalId.eq(holder.expose()))
        .one(db)
        .await
}

/// Every proxy of `patient_id`, newest first.
pub async fn of_patient<C: ConnectionTrait>(
    db: &C,
    patient_id: Uuid,
) -> Result<Vec<proxy::Model>, DbErr> {
    proxy::Entity::find()
        .filter(proxy::Column::PatientId.eq(patient_id))
        .order_by_desc(proxy::Column::CreatedAt)
        .order_by_desc(proxy::Column::Id)
        .all(db)
        .await
}

/// The histories of `proxies`, each oldest first.
pub async fn histories<C: ConnectionTrait>(
    db: &C,
    proxies: impl IntoIterator<Item = Uuid>,
) -> Result<Vec<proxy_event::Model>, DbErr> {
    proxy_event::Entity::find()
        .filter(proxy_event::Column::ProxyId.is_in(proxies))
        .order_by_asc(proxy_event::Column::Seq)
        .all(db)
        .await
}

/// A proxy to be made.
#[derive(Debug, Clone)]
pub struct NewProxy {
    /// For whom.
    pub patient_id: Uuid,
    /// Who may act.
    pub holder: NationalIdentityNumber,
    /// The holder's name.
    pub holder_name: String,
    /// The patient's name, for the holder's list.
    pub patient_name: String,
    /// What it allows.
    pub scopes: Scopes,
    /// On what it rests.
    pub basis: Basis,
    /// The archived form or decision, for staff-registered proxies.
    pub document_reference: Option<String>,
    /// From when.
    pub valid_from: DateTime<Utc>,
    /// Until when; `None`: until ended.
    pub valid_to: Option<DateTime<Utc>>,
    /// The caller's idempotency key.
    pub request_id: homecare_core::identifier::RequestId,
    /// What the request asked for; a repeat of `request_id` must match it.
    pub request_fingerprint: String,
}

/// Why a proxy could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The patient has a protected address and gets no new proxies.
    #[error("the patient has a protected address")]
    ProtectedAddress,
    /// The holder already has a proxy from this patient for (part of) that time.
    #[error("the holder already has a proxy from this patient for that time")]
    Overlaps {
        /// The proxy in the way.
        existing: Uuid,
    },
    /// No such proxy for this patient.
    #[error("no such proxy")]
    NotFound,
    /// The proxy was ended; it cannot be changed.
    #[error("the proxy was ended")]
    Ended,
    /// The request id made another proxy (other holder, names, scopes, times or basis).
    #[error("the request id was used for another request")]
    RequestIdReused,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Makes a proxy, or returns the one made earlier with the same request id.
pub async fn create(
    db: &DatabaseConnection,
    actor: &Actor,
    new: NewProxy,
    now: DateTime<Utc>,
) -> Result<proxy::Model, ProxyError> {
    let txn = begin_write(db).await?;
    // Locked, so two grants for one patient at once see each other's proxy and request id
    // (PostgreSQL; SQLite has one writer at a time anyway).
    let patient = patient::Entity::find_by_id(new.patient_id)
        .lock_exclusive()
        .one(&*txn)
        .await?
        .ok_or(ProxyError::NotFound)?;
    if let Some(earlier) = by_request_id(&*txn, new.patient_id, new.request_id.as_str()).await? {
        txn.rollback().await?;
        if !homecare_core::idempotency::is_repeat(
            earlier.request_fingerprint.as_deref(),
            &new.request_fingerprint,
        ) {
            return Err(ProxyError::RequestIdReused);
        }
        return Ok(earlier);
    }
    if patient.protected_address {
        return Err(ProxyError::ProtectedAddress);
    }
    let overlapping = held_by(&*txn, &new.holder, new.patient_id)
        .await?
        .into_iter()
        .find(|proxy| {
            proxy.terms.ended_at.is_none()
                && proxy.terms.valid_to.is_none_or(|to| new.valid_from < to)
                && new.valid_to.is_none_or(|to| proxy.terms.valid_from < to)
        });
    if let Some(existing) = overlapping {
        return Err(ProxyError::Overlaps {
            existing: existing.model.id,
        });
    }
    let model = proxy::ActiveModel {
        id: Set(homecare_core::ids::new_id(now)),
        patient_id: Set(new.patient_id),
        holder_national_id: Set(new.holder.expose().to_owned()),
        holder_name: Set(new.holder_name),
        patient_name: Set(new.patient_name),
        scopes: Set(new.scopes.to_stored()),
        basis: Set(new.basis.as_stored().to_owned()),
        document_reference: Set(new.document_reference),
        valid_from: Set(new.valid_from),
        valid_to: Set(new.valid_to),
        ended_at: Set(None),
        request_id: Set(new.request_id.into_string()),
        request_fingerprint: Set(Some(new.request_fingerprint)),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&*txn)
    .await?;
    let event = if new.basis == Basis::GrantedByPatient {
        EventType::Granted
    } else {
        EventType::Registered
    };
    record(&*txn, actor, &model, event, now).await?;
    txn.commit().await?;
    Ok(model)
}

/// Changes a proxy's scopes and/or end; `valid_to: Some(None)` makes it open-ended.
pub async fn change(
    db: &DatabaseConnection,
    actor: &Actor,
    patient_id: Uuid,
    id: Uuid,
    scopes: Option<Scopes>,
    valid_to: Option<Option<DateTime<Utc>>>,
    now: DateTime<Utc>,
) -> Result<proxy::Model, ProxyError> {
    let txn = begin_write(db).await?;
    let current = find(&*txn, patient_id, id)
        .await?
        .ok_or(ProxyError::NotFound)?;
    if current.ended_at.is_some() {
        return Err(ProxyError::Ended);
    }
    let mut update = proxy::ActiveModel {
        id: Set(current.id),
        updated_at: Set(now),
        ..Default::default()
    };
    if let Some(scopes) = scopes {
        update.scopes = Set(scopes.to_stored());
    }
    if let Some(valid_to) = valid_to {
        update.valid_to = Set(valid_to);
    }
    let model = update.update(&*txn).await?;
    record(&*txn, actor, &model, EventType::Changed, now).await?;
    txn.commit().await?;
    Ok(model)
}

/// Ends a proxy now; ending an ended proxy changes nothing.
pub async fn end(
    db: &DatabaseConnection,
    actor: &Actor,
    patient_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<proxy::Model, ProxyError> {
    let txn = begin_write(db).await?;
    let current = find(&*txn, patient_id, id)
        .await?
        .ok_or(ProxyError::NotFound)?;
    if current.ended_at.is_some() {
        txn.rollback().await?;
        return Ok(current);
    }
    let model = proxy::ActiveModel {
        id: Set(current.id),
        ended_at: Set(Some(now)),
        updated_at: Set(now),
        ..Default::default()
    }
    .update(&*txn)
    .await?;
    record(&*txn, actor, &model, EventType::Ended, now).await?;
    txn.commit().await?;
    Ok(model)
}

/// Sets or clears the protected-address flag of the person `pid`, registering them as a
/// patient first if needed, so the flag is there before their first visit is.
pub async fn set_protected_address(
    db: &DatabaseConnection,
    pid: &NationalIdentityNumber,
    protected: bool,
    now: DateTime<Utc>,
) -> Result<Uuid, DbErr> {
    let txn = begin_write(db).await?;
    let id = crate::store::find_or_register(&*txn, pid, now).await?;
    patient::ActiveModel {
        id: Set(id),
        protected_address: Set(protected),
        ..Default::default()
    }
    .update(&*txn)
    .await?;
    txn.commit().await?;
    Ok(id)
}

/// A step in a proxy's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The patient granted it.
    Granted,
    /// Staff registered it.
    Registered,
    /// Its scopes or end changed.
    Changed,
    /// It was ended.
    Ended,
}

homecare_core::stored_enum!(EventType, "proxy event type", pb::proxy_event::Type, {
    Granted => "granted", Granted;
    Registered => "registered", Registered;
    Changed => "changed", Changed;
    Ended => "ended", Ended;
});

async fn record<C: ConnectionTrait>(
    db: &C,
    actor: &Actor,
    proxy: &proxy::Model,
    event_type: EventType,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    proxy_event::ActiveModel {
        proxy_id: Set(proxy.id),
        patient_id: Set(Some(proxy.patient_id)),
        occurred_at: Set(now),
        event_type: Set(event_type.as_stored().to_owned()),
        actor_kind: Set(actor.kind().as_stored().to_owned()),
        actor_subject: Set(actor.subject()),
        actor_name: Set(actor.name().map(str::to_owned)),
        scopes: Set(proxy.scopes.clone()),
        valid_to: Set(proxy.valid_to),
        ..Default::default()
    }
    .insert(db)
    .await?;
    access_log::record(
        db,
        actor,
        proxy.patient_id,
        Action::WriteProxies,
        Some(proxy.id.to_string()),
        now,
    )
    .await
}

async fn by_request_id<C: ConnectionTrait>(
    db: &C,
    patient_id: Uuid,
    request_id: &str,
) -> Result<Option<proxy::Model>, DbErr> {
    let select = proxy::Entity::find()
        .filter(proxy::Column::PatientId.eq(patient_id))
        .filter(proxy::Column::RequestId.eq(request_id));
    first_row(db, select)
        .await?
        .map(|row| proxy::Model::from_query_result(&row, ""))
        .transpose()
}
