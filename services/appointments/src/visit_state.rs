//! Where a visit stands, and how a cancellation made through this service moves it: the one
//! place that decides, as a pure type; storage persists what it decides.
//!
//! ```text
//!  planned ──requested──▶ cancelled, pending_epj ──confirmed──▶ cancelled, confirmed
//!                               │        ▲
//!                 refused ◀─────┤        └──────retried───── (any failed cancellation)
//!   (planned, failed)           │
//!                               └──gave up──▶ cancelled, failed
//! ```
//! The EPJ may replan a visit at any time ([`VisitState::replanned`]): while the patient's
//! cancellation is on its way the visit stays cancelled; otherwise the EPJ's status stands,
//! and a cancellation the EPJ planned the visit again over is over.

use crate::domain::{AppointmentStatus, CancellationState, UnknownStoredValue};
use crate::entity;

/// A visit's status and the state of a cancellation made through this service, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitState {
    /// Where the visit stands.
    pub status: AppointmentStatus,
    /// How far a cancellation through this service has come; `None` when there is none.
    pub cancellation: Option<CancellationState>,
}

impl VisitState {
    /// The state of a cancellation on its way to the EPJ: what the worker confirms or fails.
    pub const PENDING_EPJ: VisitState = VisitState {
        status: AppointmentStatus::Cancelled,
        cancellation: Some(CancellationState::PendingEpj),
    };

    /// The state stored on `visit`.
    pub fn of(visit: &entity::Model) -> Result<Self, UnknownStoredValue> {
        Ok(Self {
            status: AppointmentStatus::from_stored(&visit.status)?,
            cancellation: visit
                .cancellation_state
                .as_deref()
                .map(CancellationState::from_stored)
                .transpose()?,
        })
    }

    /// Whether a cancellation is on its way to the EPJ.
    pub fn is_pending_epj(self) -> bool {
        self.cancellation == Some(CancellationState::PendingEpj)
    }

    /// The patient (or their proxy) cancelled; the rules (`cancellation::check`) allowed it.
    /// Only a planned visit can be cancelled.
    pub fn requested(self) -> Option<Self> {
        (self.status == AppointmentStatus::Planned).then_some(Self::PENDING_EPJ)
    }

    /// The EPJ registered the cancellation. Only one on its way is confirmed; the status
    /// stays as it is (the EPJ may have sent the visit as completed meanwhile).
    pub fn confirmed(self) -> Option<Self> {
        self.is_pending_epj().then_some(Self {
            status: self.status,
            cancellation: Some(CancellationState::Confirmed),
        })
    }

    /// The EPJ refused the cancellation: the visit goes ahead as the EPJ has it, so it is
    /// planned again here, and the failure shown to staff.
    pub fn refused(self) -> Option<Self> {
        self.is_pending_epj().then_some(Self {
            status: AppointmentStatus::Planned,
            cancellation: Some(CancellationState::Failed),
        })
    }

    /// The EPJ never answered, however often it was tried: the patient's cancellation stands
    /// here, and staff must register it by hand.
    pub fn gave_up(self) -> Option<Self> {
        self.is_pending_epj().then_some(Self {
            status: self.status,
            cancellation: Some(CancellationState::Failed),
        })
    }

    /// Staff sent a failed cancellation again: cancelled and on its way, whatever the EPJ
    /// did with the visit meanwhile (staff decide that it is cancelled).
    pub fn retried(self) -> Self {
        Self::PENDING_EPJ
    }

    /// The EPJ sent the visit with `epj_status`: the state after its plan is applied.
    pub fn replanned(self, epj_status: AppointmentStatus) -> Self {
        if self.is_pending_epj() && epj_status == AppointmentStatus::Planned {
            // The EPJ has not seen the patient's cancellation yet; it is on its way.
            return Self::PENDING_EPJ;
        }
        if !self.is_pending_epj() && epj_status != AppointmentStatus::Cancelled {
            // Staff planned (or carried out) the visit in the EPJ: an earlier cancellation is
            // over.
            return Self {
                status: epj_status,
                cancellation: None,
            };
        }
        Self {
            status: epj_status,
            cancellation: self.cancellation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLANNED: VisitState = VisitState {
        status: AppointmentStatus::Planned,
        cancellation: None,
    };

    fn state(status: AppointmentStatus, cancellation: Option<CancellationState>) -> VisitState {
        VisitState {
            status,
            cancellation,
        }
    }

    #[test]
    fn a_cancellation_goes_to_the_epj_and_is_confirmed() {
        let pending = PLANNED
            .requested()
            .expect("a planned visit can be cancelled");
        assert_eq!(pending, VisitState::PENDING_EPJ);
        assert_eq!(
            pending.confirmed(),
            Some(state(
                AppointmentStatus::Cancelled,
                Some(CancellationState::Confirmed)
            ))
        );
    }

    #[test]
    fn only_a_planned_visit_can_be_cancelled() {
        for status in [AppointmentStatus::Cancelled, AppointmentStatus::Completed] {
            assert_eq!(state(status, None).requested(), None);
        }
        assert_eq!(VisitState::PENDING_EPJ.requested(), None);
    }

    #[test]
    fn a_refusal_plans_the_visit_again_and_giving_up_leaves_it_cancelled() {
        assert_eq!(
            VisitState::PENDING_EPJ.refused(),
            Some(state(
                AppointmentStatus::Planned,
                Some(CancellationState::Failed)
            ))
        );
        assert_eq!(
            VisitState::PENDING_EPJ.gave_up(),
            Some(state(
                AppointmentStatus::Cancelled,
                Some(CancellationState::Failed)
            ))
        );
    }

    #[test]
    fn the_epj_s_answers_touch_only_a_cancellation_on_its_way() {
        for settled in [
            PLANNED,
            PLANNED.replanned(AppointmentStatus::Completed),
            VisitState::PENDING_EPJ.confirmed().unwrap(),
            VisitState::PENDING_EPJ.gave_up().unwrap(),
        ] {
            assert_eq!(settled.confirmed(), None, "{settled:?}");
            assert_eq!(settled.refused(), None, "{settled:?}");
            assert_eq!(settled.gave_up(), None, "{settled:?}");
        }
    }

    #[test]
    fn staff_retry_sends_a_failed_cancellation_again() {
        let failed = VisitState::PENDING_EPJ.refused().unwrap();
        assert_eq!(failed.retried(), VisitState::PENDING_EPJ);
    }

    #[test]
    fn an_epj_replan_keeps_a_cancellation_on_its_way_and_ends_a_settled_one() {
        // The EPJ has not seen the cancellation: still cancelled, still on its way.
        assert_eq!(
            VisitState::PENDING_EPJ.replanned(AppointmentStatus::Planned),
            VisitState::PENDING_EPJ
        );
        // The EPJ took it: its status stands.
        assert_eq!(
            VisitState::PENDING_EPJ.replanned(AppointmentStatus::Cancelled),
            VisitState::PENDING_EPJ
        );
        // Staff planned a failed or confirmed cancellation's visit again: the cancellation
        // is over.
        let confirmed = VisitState::PENDING_EPJ.confirmed().unwrap();
        assert_eq!(confirmed.replanned(AppointmentStatus::Planned), PLANNED);
        let gave_up = VisitState::PENDING_EPJ.gave_up().unwrap();
        assert_eq!(
            gave_up.replanned(AppointmentStatus::Completed),
            state(AppointmentStatus::Completed, None)
        );
        // Cancelled in the EPJ too: the record of the cancellation stays.
        assert_eq!(confirmed.replanned(AppointmentStatus::Cancelled), confirmed);
        assert_eq!(
            PLANNED.replanned(AppointmentStatus::Completed).cancellation,
            None
        );
    }
}
