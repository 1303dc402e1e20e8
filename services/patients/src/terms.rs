//! The terms of use: a citizen accepts a version, and can use the service from one day later
//! (configurable), as the health portal promises.

use crate::error::AccessError;
use chrono::{DateTime, Duration, Utc};
use homecare_core::NationalIdentityNumber;
use homecare_core::db::first_row;
use homecare_proto::patients::v1 as pb;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

use crate::entity::terms_acceptance::{self, Column, Entity};

/// The terms in force and how long after a first acceptance the service opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermsPolicy {
    /// The version citizens must have accepted.
    pub version: String,
    /// From a citizen's first acceptance until they can use the service.
    pub activation_delay: Duration,
}

/// When an acceptance at `accepted_at` makes the service available, given when an earlier
/// acceptance (of any version) did or will. Only a citizen's first acceptance waits: someone
/// already in accepts a new version and goes on at once, and accepting a new version while
/// still waiting does not restart the wait.
pub fn available_from(
    earlier: Option<DateTime<Utc>>,
    accepted_at: DateTime<Utc>,
    delay: Duration,
) -> DateTime<Utc> {
    match earlier {
        Some(earlier) => earlier.max(accepted_at),
        None => accepted_at + delay,
    }
}

/// A citizen's acceptances, oldest first.
pub async fn acceptances<C: ConnectionTrait>(
    db: &C,
    pid: &NationalIdentityNumber,
) -> Result<Vec<terms_acceptance::Model>, DbErr> {
    Entity::find()
        .filter(Column::NationalId.eq(pid.expose()))
        .order_by_asc(Column::AcceptedAt)
        .all(db)
        .await
}

/// Records that the citizen accepted `version` at `now`; accepting a version again keeps the
/// first acceptance. Returns the acceptance of `version`.
pub async fn accept<C: ConnectionTrait>(
    db: &C,
    pid: &NationalIdentityNumber,
    version: &str,
    now: DateTime<Utc>,
    delay: Duration,
) -> Result<terms_acceptance::Model, DbErr> {
    let earlier = acceptances(db, pid)
        .await?
        .iter()
        .map(|acceptance| acceptance.available_from)
        .min();
    let row = terms_acceptance::ActiveModel {
        id: Set(homecare_core::ids::new_id(now)),
        national_id: Set(pid.expose().to_owned()),
        terms_version: Set(version.to_owned()),
        accepted_at: Set(now),
        available_from: Set(available_from(earlier, now, delay)),
    };
    let insert = Entity::insert(row).on_conflict(
        OnConflict::columns([Column::NationalId, Column::TermsVersion])
            .do_nothing()
            .to_owned(),
    );
    match insert.exec_without_returning(db).await {
        Ok(_) | Err(DbErr::RecordNotInserted) => {}
        Err(error) => return Err(error),
    }
    let select = Entity::find()
        .filter(Column::NationalId.eq(pid.expose()))
        .filter(Column::TermsVersion.eq(version));
    first_row(db, select)
        .await?
        .map(|row| {
            <terms_acceptance::Model as sea_orm::FromQueryResult>::from_query_result(&row, "")
        })
        .transpose()?
        .ok_or_else(|| DbErr::RecordNotFound("terms acceptance just written".into()))
}

/// The citizen's standing with the terms in force, as the contract shows it.
pub fn status_of(
    policy: &TermsPolicy,
    acceptances: &[terms_acceptance::Model],
    now: DateTime<Utc>,
) -> pb::TermsStatus {
    let latest = acceptances
        .iter()
        .max_by_key(|acceptance| acceptance.accepted_at);
    let current = acceptances
        .iter()
        .find(|acceptance| acceptance.terms_version == policy.version);
    pb::TermsStatus {
        current_version: policy.version.clone(),
        accepted_version: latest
            .map(|acceptance| acceptance.terms_version.clone())
            .unwrap_or_default(),
        accept_time: latest
            .map(|acceptance| homecare_core::timestamp::to_proto(acceptance.accepted_at)),
        available_time: current
            .map(|acceptance| homecare_core::timestamp::to_proto(acceptance.available_from)),
        available: current.is_some_and(|acceptance| acceptance.available_from <= now),
    }
}

/// The most citizens remembered as past the gate unless told otherwise.
const CAPACITY: u64 = 20_000;

/// How long a citizen is remembered: they stay through, this only lets unused entries go.
const TIME_TO_LIVE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Lets a citizen through only when they accepted the terms in force and the wait is over.
///
/// Who is through stays through (acceptances are never withdrawn, and the version in force
/// changes only with a restart), so they are remembered and cost no query afterwards.
#[derive(Debug)]
pub struct TermsGate {
    policy: TermsPolicy,
    through: homecare_core::cache::Cache<String, ()>,
}

impl TermsGate {
    /// A gate for `policy`.
    pub fn new(policy: TermsPolicy) -> Self {
        Self::with_capacity(policy, CAPACITY)
    }

    /// A gate for `policy` remembering at most `capacity` citizens as through.
    pub fn with_capacity(policy: TermsPolicy, capacity: u64) -> Self {
        Self {
            policy,
            through: homecare_core::cache::Cache::new("terms_gate", capacity, TIME_TO_LIVE),
        }
    }

    /// The terms in force.
    pub fn policy(&self) -> &TermsPolicy {
        &self.policy
    }

    /// Ok when `pid` may use the service at `now`; otherwise FAILED_PRECONDITION with
    /// TERMS_NOT_ACCEPTED (and the version to accept) or TERMS_NOT_YET_AVAILABLE (and when).
    pub async fn require<C: ConnectionTrait>(
        &self,
        db: &C,
        pid: &NationalIdentityNumber,
        now: DateTime<Utc>,
    ) -> Result<(), AccessError> {
        if self.through.get(pid.expose()).is_some() {
            return Ok(());
        }
        let select = Entity::find()
            .filter(Column::NationalId.eq(pid.expose()))
            .filter(Column::TermsVersion.eq(&self.policy.version));
        let current = first_row(db, select)
            .await?
            .map(|row| {
                <terms_acceptance::Model as sea_orm::FromQueryResult>::from_query_result(&row, "")
            })
            .transpose()?;
        let Some(current) = current else {
            return Err(AccessError::TermsNotAccepted {
                version: self.policy.version.clone(),
            });
        };
        if now < current.available_from {
            return Err(AccessError::TermsNotYetAvailable {
                available_from: current.available_from,
            });
        }
        self.through.insert(pid.expose().to_owned(), ());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn only_the_first_acceptance_waits() {
        let day = Duration::days(1);
        let t = |hour| Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap();
        assert_eq!(available_from(None, t(8), day), t(8) + day);
        // In already: a new version is usable at once.
        assert_eq!(available_from(Some(t(1)), t(8), day), t(8));
        // Still waiting: accepting a newer version does not restart the wait.
        assert_eq!(available_from(Some(t(8) + day), t(9), day), t(8) + day);
        assert_eq!(available_from(None, t(8), Duration::zero()), t(8));
    }
}
