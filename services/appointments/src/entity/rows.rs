//! Visits read from many rows at once (a unit's day, a patient's list), column by position.
//!
//! sea-orm's derived reader finds every column by name in every row, and turns each NULL
//! into an error whose message it formats before it becomes `None`; a visit has 21 columns,
//! 8 of them mostly NULL. Over a unit's day of 300 visits that was about 40 % of the
//! server's time on the call. This reads the same columns with the same sqlx decoders, the
//! positions found once per result.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sqlx::{self, ColumnIndex, Decode, Row, Type};
use sea_orm::{DbErr, FromQueryResult, QueryResult, RuntimeErr};
use uuid::Uuid;

use super::appointment::Model;

/// The columns of [`Model`], in the order of its fields.
const COLUMNS: [&str; 21] = [
    "id",
    "epj_id",
    "patient_id",
    "care_unit_id",
    "window_start",
    "window_end",
    "service_type",
    "status",
    "citizen_cancellable",
    "epj_version_id",
    "version",
    "created_at",
    "updated_at",
    "cancellation_state",
    "cancellation_reason",
    "cancellation_request_id",
    "cancellation_request_fingerprint",
    "cancellation_requested_at",
    "cancellation_requested_by",
    "cancellation_requested_by_name",
    "cancellation_failure_reason",
];

/// The visits of `rows`, each row holding every column of the visits' table.
pub fn visits(rows: &[QueryResult]) -> Result<Vec<Model>, DbErr> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    if let Some(row) = first.try_as_pg_row() {
        let at = positions(row)?;
        return rows
            .iter()
            .map(|row| read(row.try_as_pg_row().ok_or_else(mixed)?, &at))
            .collect();
    }
    if let Some(row) = first.try_as_sqlite_row() {
        let at = positions(row)?;
        return rows
            .iter()
            .map(|row| read(row.try_as_sqlite_row().ok_or_else(mixed)?, &at))
            .collect();
    }
    rows.iter()
        .map(|row| Model::from_query_result(row, ""))
        .collect()
}

fn mixed() -> DbErr {
    DbErr::Custom("rows of one result from two kinds of database".into())
}

/// Where each of [`COLUMNS`] is in `row`.
fn positions<R: Row>(row: &R) -> Result<[usize; COLUMNS.len()], DbErr> {
    let mut at = [0; COLUMNS.len()];
    for (position, name) in at.iter_mut().zip(COLUMNS) {
        *position = row
            .columns()
            .iter()
            .position(|column| sqlx::Column::name(column) == name)
            .ok_or_else(|| DbErr::Custom(format!("visits' column {name} not read")))?;
    }
    Ok(at)
}

fn read<R>(row: &R, at: &[usize; COLUMNS.len()]) -> Result<Model, DbErr>
where
    R: Row,
    usize: ColumnIndex<R>,
    Uuid: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    DateTime<Utc>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let failed = |error: sqlx::Error| DbErr::Query(RuntimeErr::SqlxError(Arc::new(error)));
    Ok(Model {
        id: row.try_get(at[0]).map_err(failed)?,
        epj_id: row.try_get(at[1]).map_err(failed)?,
        patient_id: row.try_get(at[2]).map_err(failed)?,
        care_unit_id: row.try_get(at[3]).map_err(failed)?,
        window_start: row.try_get(at[4]).map_err(failed)?,
        window_end: row.try_get(at[5]).map_err(failed)?,
        service_type: row.try_get(at[6]).map_err(failed)?,
        status: row.try_get(at[7]).map_err(failed)?,
        citizen_cancellable: row.try_get(at[8]).map_err(failed)?,
        epj_version_id: row.try_get(at[9]).map_err(failed)?,
        version: row.try_get(at[10]).map_err(failed)?,
        created_at: row.try_get(at[11]).map_err(failed)?,
        updated_at: row.try_get(at[12]).map_err(failed)?,
        cancellation_state: row.try_get(at[13]).map_err(failed)?,
        cancellation_reason: row.try_get(at[14]).map_err(failed)?,
        cancellation_request_id: row.try_get(at[15]).map_err(failed)?,
        cancellation_request_fingerprint: row.try_get(at[16]).map_err(failed)?,
        cancellation_requested_at: row.try_get(at[17]).map_err(failed)?,
        cancellation_requested_by: row.try_get(at[18]).map_err(failed)?,
        cancellation_requested_by_name: row.try_get(at[19]).map_err(failed)?,
        cancellation_failure_reason: row.try_get(at[20]).map_err(failed)?,
    })
}

#[cfg(test)]
mod tests {
    use sea_orm::{Iden, Iterable};

    use super::COLUMNS;
    use crate::entity::appointment::Column;

    #[test]
    fn every_column_of_the_visits_is_read_into_its_field() {
        let entity: Vec<String> = Column::iter().map(|column| column.to_string()).collect();
        assert_eq!(entity, COLUMNS);
    }
}
