//! When a patient may cancel a visit: the rules, as a pure function of the visit, the policy
//! and the time.

use std::collections::HashMap;

use chrono::{DateTime, Days, Duration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::{AppointmentStatus, ServiceType};
use homecare_core::calendar::{self, start_of_day};

/// How long before a visit a patient must cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CutOff {
    /// This many hours (of elapsed time) before the window opens.
    Hours(u32),
    /// By the end of the `n`th working day before the visit's day, in the municipality's
    /// time zone: with 1, a Monday visit must be cancelled by Friday midnight, and a visit on
    /// the Tuesday after Easter by the Wednesday before it.
    WorkingDays(u32),
}

impl CutOff {
    /// The last instant, exclusive, at which a visit opening at `start` may be cancelled.
    pub fn deadline(self, start: DateTime<Utc>, time_zone: Tz) -> DateTime<Utc> {
        match self {
            CutOff::Hours(hours) => start - Duration::hours(i64::from(hours)),
            CutOff::WorkingDays(days) => {
                let visit_day = calendar::day_of(start, time_zone);
                calendar::working_days_before(visit_day, days.max(1))
                    .and_then(|day| day.checked_add_days(Days::new(1)))
                    .map_or(DateTime::<Utc>::MIN_UTC, |day| start_of_day(day, time_zone))
            }
        }
    }
}

/// Which cut-off applies to which visit: a care unit's own rule first, then the service
/// type's, then the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationPolicy {
    /// For visits with no more specific rule.
    pub default: CutOff,
    /// By service type.
    pub service_types: HashMap<ServiceType, CutOff>,
    /// By care unit id.
    pub care_units: HashMap<String, CutOff>,
    /// Where days are counted.
    pub time_zone: Tz,
}

impl CancellationPolicy {
    /// The policy with one cut-off for every visit.
    pub fn uniform(cut_off: CutOff, time_zone: Tz) -> Self {
        Self {
            default: cut_off,
            service_types: HashMap::new(),
            care_units: HashMap::new(),
            time_zone,
        }
    }

    /// The cut-off for a visit of `service_type` by `care_unit`.
    pub fn cut_off(&self, care_unit: &str, service_type: ServiceType) -> CutOff {
        self.care_units
            .get(care_unit)
            .or_else(|| self.service_types.get(&service_type))
            .copied()
            .unwrap_or(self.default)
    }
}

/// What the rules need to know of a visit.
#[derive(Debug, Clone, Copy)]
pub struct VisitFacts<'a> {
    /// Where it stands.
    pub status: AppointmentStatus,
    /// When the window opens.
    pub window_start: DateTime<Utc>,
    /// Whether the EPJ lets the patient cancel it.
    pub citizen_cancellable: bool,
    /// Who carries it out.
    pub care_unit: &'a str,
    /// What help it gives.
    pub service_type: ServiceType,
}

/// Why a visit cannot be cancelled by the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It is not planned: already cancelled or carried out.
    #[error("only a planned visit can be cancelled")]
    NotPlanned,
    /// Its window has opened.
    #[error("the visit has already started")]
    AlreadyStarted,
    /// The EPJ does not let the patient cancel it (e.g. medication): call the service.
    #[error("this visit cannot be cancelled here; call the home-care service")]
    NotCitizenCancellable,
    /// Too close to the visit.
    #[error("the deadline for cancelling this visit has passed")]
    DeadlinePassed {
        /// The deadline that was missed.
        deadline: DateTime<Utc>,
    },
}

impl Refusal {
    /// The stable reason sent in ErrorInfo.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NotPlanned => "NOT_PLANNED",
            Refusal::AlreadyStarted => "ALREADY_STARTED",
            Refusal::NotCitizenCancellable => "NOT_CITIZEN_CANCELLABLE",
            Refusal::DeadlinePassed { .. } => "CANCELLATION_DEADLINE_PASSED",
        }
    }
}

/// Whether the patient may cancel `visit` at `now` under `policy`. A deadline is exclusive:
/// at the deadline itself it is too late.
pub fn check(
    visit: VisitFacts<'_>,
    policy: &CancellationPolicy,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    if visit.status != AppointmentStatus::Planned {
        return Err(Refusal::NotPlanned);
    }
    if visit.window_start <= now {
        return Err(Refusal::AlreadyStarted);
    }
    if !visit.citizen_cancellable {
        return Err(Refusal::NotCitizenCancellable);
    }
    let deadline = policy
        .cut_off(visit.care_unit, visit.service_type)
        .deadline(visit.window_start, policy.time_zone);
    if now >= deadline {
        return Err(Refusal::DeadlinePassed { deadline });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Oslo;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn visit(start: &str) -> VisitFacts<'static> {
        VisitFacts {
            status: AppointmentStatus::Planned,
            window_start: utc(start),
            citizen_cancellable: true,
            care_unit: "unit-a",
            service_type: ServiceType::HomeNursing,
        }
    }

    #[test]
    fn an_hours_cut_off_is_exclusive_at_the_deadline() {
        let policy = CancellationPolicy::uniform(CutOff::Hours(24), Oslo);
        let v = visit("2026-12-02T08:00:00Z");
        let deadline = utc("2026-12-01T08:00:00Z");
        assert_eq!(
            check(v, &policy, deadline - Duration::microseconds(1)),
            Ok(())
        );
        assert_eq!(
            check(v, &policy, deadline),
            Err(Refusal::DeadlinePassed { deadline })
        );
    }

    #[test]
    fn hours_are_elapsed_time_across_the_daylight_saving_change() {
        // Clocks go forward at 02:00 on Sunday 28 March 2027: 08:00 local on the Sunday is
        // 06:00Z, and 24 hours earlier is 06:00Z on Saturday, which is 07:00 local.
        let policy = CancellationPolicy::uniform(CutOff::Hours(24), Oslo);
        assert_eq!(
            policy.default.deadline(utc("2027-03-28T06:00:00Z"), Oslo),
            utc("2027-03-27T06:00:00Z")
        );
    }

    #[test]
    fn working_days_end_at_local_midnight_on_both_sides_of_daylight_saving() {
        let policy = CancellationPolicy::uniform(CutOff::WorkingDays(1), Oslo);
        // Winter: a Tuesday visit → end of Monday = 23:00Z.
        assert_eq!(
            policy.default.deadline(utc("2026-12-08T08:00:00Z"), Oslo),
            utc("2026-12-07T23:00:00Z")
        );
        // Summer time from 28 March 2027: a visit on Wednesday 31 March → end of Tuesday
        // 30 March, which is 22:00Z.
        assert_eq!(
            policy.default.deadline(utc("2027-03-31T06:00:00Z"), Oslo),
            utc("2027-03-30T22:00:00Z")
        );
        // A Monday visit right after the change, 29 March 2027 is Easter Monday, so take
        // Tuesday 30 March: the working day before is Wednesday 24 March (CET), ending 23:00Z.
        assert_eq!(
            policy.default.deadline(utc("2027-03-30T06:00:00Z"), Oslo),
            utc("2027-03-24T23:00:00Z")
        );
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let mut policy = CancellationPolicy::uniform(CutOff::Hours(24), Oslo);
        policy
            .service_types
            .insert(ServiceType::PracticalHelp, CutOff::WorkingDays(2));
        policy.care_units.insert("unit-b".into(), CutOff::Hours(2));
        assert_eq!(
            policy.cut_off("unit-a", ServiceType::HomeNursing),
            CutOff::Hours(24)
        );
        assert_eq!(
            policy.cut_off("unit-a", ServiceType::PracticalHelp),
            CutOff::WorkingDays(2)
        );
        assert_eq!(
            policy.cut_off("unit-b", ServiceType::PracticalHelp),
            CutOff::Hours(2)
        );
    }

    #[test]
    fn each_rule_refuses_on_its_own() {
        let policy = CancellationPolicy::uniform(CutOff::Hours(1), Oslo);
        let now = utc("2026-12-01T07:00:00Z");
        let upcoming = visit("2026-12-03T08:00:00Z");
        assert_eq!(check(upcoming, &policy, now), Ok(()));
        for status in [AppointmentStatus::Cancelled, AppointmentStatus::Completed] {
            let v = VisitFacts { status, ..upcoming };
            assert_eq!(check(v, &policy, now), Err(Refusal::NotPlanned));
        }
        let started = visit("2026-12-01T07:00:00Z");
        assert_eq!(check(started, &policy, now), Err(Refusal::AlreadyStarted));
        let critical = VisitFacts {
            citizen_cancellable: false,
            service_type: ServiceType::Medication,
            ..upcoming
        };
        assert_eq!(
            check(critical, &policy, now),
            Err(Refusal::NotCitizenCancellable)
        );
    }
}
