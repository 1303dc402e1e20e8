//! Finding and registering patients by identity number.

use chrono::{DateTime, Utc};
use homecare_core::NationalIdentityNumber;
use homecare_core::db::first_row;
use sea_orm::ColumnTrait;
use sea_orm::sea_query::{
    Expr, ExprTrait as _, IntoColumnRef, OnConflict, Query, SubQueryStatement,
};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::entity::patient;

/// The id of the patient with identity number `pid`, if the service knows them.
pub async fn find_id_by_national_id<C: ConnectionTrait>(
    db: &C,
    pid: &NationalIdentityNumber,
) -> Result<Option<Uuid>, DbErr> {
    let select = patient::Entity::find()
        .select_only()
        .column(patient::Column::Id)
        .filter(patient::Column::NationalId.eq(pid.expose()));
    first_row(db, select)
        .await?
        .map(|row| row.try_get::<Uuid>("", "id"))
        .transpose()
}

/// The id of the patient with identity number `pid`, registering them first if needed.
///
/// Safe against two callers registering the same person at once: the unique index decides,
/// and both get the same id.
pub async fn find_or_register<C: ConnectionTrait>(
    db: &C,
    pid: &NationalIdentityNumber,
    now: DateTime<Utc>,
) -> Result<Uuid, DbErr> {
    if let Some(id) = find_id_by_national_id(db, pid).await? {
        return Ok(id);
    }
    let candidate = patient::ActiveModel {
        id: Set(homecare_core::ids::new_id(now)),
        national_id: Set(pid.expose().to_owned()),
        created_at: Set(now),
        protected_address: Set(false),
    };
    let insert = patient::Entity::insert(candidate).on_conflict(
        OnConflict::column(patient::Column::NationalId)
            .do_nothing()
            .to_owned(),
    );
    // With DO NOTHING, a lost race inserts no row; that is expected, not an error.
    match insert.exec_without_returning(db).await {
        Ok(_) => {}
        Err(DbErr::RecordNotInserted) => {}
        Err(error) => return Err(error),
    }
    find_id_by_national_id(db, pid)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("patient just registered".into()))
}

/// The identity number of the patient whose id is in `patient_id`, as an expression another
/// context's query can select beside its own columns (a subquery on the patients' key).
pub fn national_id_by(patient_id: impl IntoColumnRef) -> Expr {
    Expr::SubQuery(
        None,
        Box::new(SubQueryStatement::SelectStatement(
            Query::select()
                .column((patient::Entity, patient::Column::NationalId))
                .from(patient::Entity)
                .and_where(Expr::col((patient::Entity, patient::Column::Id)).equals(patient_id))
                .to_owned(),
        )),
    )
}

/// The identity number of the patient with `id`, if there is one.
pub async fn national_id_of<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<Option<String>, DbErr> {
    let select = patient::Entity::find_by_id(id)
        .select_only()
        .column(patient::Column::NationalId);
    first_row(db, select)
        .await?
        .map(|row| row.try_get::<String>("", "national_id"))
        .transpose()
}

/// The names proxy holders go by for the patients they hold proxies of, per (patient,
/// holder's identity number) of `pairs`: the latest proxy's, ended or not. For telling staff
/// who was told of something, never by identity number.
pub async fn holder_names<C: ConnectionTrait>(
    db: &C,
    pairs: &[(Uuid, &str)],
) -> Result<std::collections::HashMap<(Uuid, String), String>, DbErr> {
    use sea_orm::QueryOrder as _;
    let mut names = std::collections::HashMap::new();
    if pairs.is_empty() {
        return Ok(names);
    }
    let proxies = crate::entity::proxy::Entity::find()
        .filter(
            crate::entity::proxy::Column::PatientId
                .is_in(pairs.iter().map(|(patient, _)| *patient)),
        )
        .filter(
            crate::entity::proxy::Column::HolderNationalId
                .is_in(pairs.iter().map(|(_, holder)| *holder)),
        )
        .order_by_asc(crate::entity::proxy::Column::CreatedAt)
        .all(db)
        .await?;
    for proxy in proxies {
        names.insert(
            (proxy.patient_id, proxy.holder_national_id),
            proxy.holder_name,
        );
    }
    Ok(names)
}
