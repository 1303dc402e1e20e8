//! A thread's life, in plain values: who may write when, where it stands, and when its answer
//! is due. Storage persists what these functions decide.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use homecare_core::calendar;
use homecare_proto::messaging::v1 as pb;

/// What a thread is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    /// A question or a message to the care service.
    Inquiry,
    /// A request to cancel a visit the citizen could not cancel themself.
    CancellationRequest,
}

homecare_core::stored_enum!(ThreadKind, "thread kind", pb::ThreadKind, {
    Inquiry => "inquiry", Inquiry;
    CancellationRequest => "cancellation_request", CancellationRequest;
});

/// Where a thread stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadStatus {
    /// Not sent: seen by its author only.
    Draft,
    /// Waiting for the care service.
    Sent,
    /// The care service answered last.
    Answered,
    /// Closed by the care service.
    Closed,
}

homecare_core::stored_enum!(ThreadStatus, "thread status", pb::ThreadStatus, {
    Draft => "draft", Draft;
    Sent => "sent", Sent;
    Answered => "answered", Answered;
    Closed => "closed", Closed;
});

/// A step in a thread's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepType {
    /// A citizen sent the thread's first message.
    ThreadStarted,
    /// A citizen wrote again.
    CitizenReplied,
    /// Staff answered.
    StaffReplied,
    /// A staff member read messages they had not read.
    ReadByStaff,
    /// Staff moved the thread to another unit.
    Reassigned,
    /// Staff closed the thread.
    Closed,
}

homecare_core::stored_enum!(StepType, "message event type", pb::InboxEventType, {
    ThreadStarted => "thread_started", ThreadStarted;
    CitizenReplied => "citizen_replied", CitizenReplied;
    StaffReplied => "staff_replied", StaffReplied;
    ReadByStaff => "read_by_staff", ReadByStaff;
    Reassigned => "reassigned", Reassigned;
    Closed => "closed", Closed;
});

/// Why a step is not possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The thread is closed.
    #[error("the thread is closed; start a new thread that refers to it")]
    Closed,
    /// The thread was never sent (staff never see drafts; this is a fault of ours).
    #[error("the thread was not sent")]
    NotSent,
}

/// Inbox order: cancellation requests waiting for an answer, then other threads waiting for
/// one, then those waiting for the citizen. Closed threads and drafts come after every open
/// thread, so that the inbox is one range of an index: `priority` below [`Priority::Closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// A cancellation request waiting for an answer.
    CancellationRequest = 0,
    /// Waiting for the care service's answer.
    Waiting = 1,
    /// Answered; waiting for the citizen, if for anyone.
    Answered = 2,
    /// Closed: not in the inbox.
    Closed = 3,
    /// Not sent: not in the inbox.
    Draft = 4,
}

/// A thread's status, its due time and its place in the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadState {
    /// Where it stands.
    pub status: ThreadStatus,
    /// What it is.
    pub kind: ThreadKind,
    /// When the care service's answer is (or was last) due; unset for a draft.
    pub due_at: Option<DateTime<Utc>>,
}

impl ThreadState {
    /// Its place in the inbox.
    pub fn priority(&self) -> Priority {
        match (self.status, self.kind) {
            (ThreadStatus::Sent, ThreadKind::CancellationRequest) => Priority::CancellationRequest,
            (ThreadStatus::Sent, ThreadKind::Inquiry) => Priority::Waiting,
            (ThreadStatus::Answered, _) => Priority::Answered,
            (ThreadStatus::Closed, _) => Priority::Closed,
            (ThreadStatus::Draft, _) => Priority::Draft,
        }
    }

    /// Whether the answer is late at `now`.
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.status == ThreadStatus::Sent && self.due_at.is_some_and(|due| due <= now)
    }

    /// A citizen's message was received; `due` is when an answer to it would be due. A
    /// thread already waiting keeps its earlier due time: the care service owes the first
    /// answer by then.
    pub fn citizen_wrote(self, due: DateTime<Utc>) -> Result<ThreadState, StepError> {
        let due_at = match self.status {
            ThreadStatus::Closed => return Err(StepError::Closed),
            ThreadStatus::Sent => self.due_at.map_or(due, |earlier| earlier.min(due)),
            ThreadStatus::Draft | ThreadStatus::Answered => due,
        };
        Ok(ThreadState {
            status: ThreadStatus::Sent,
            due_at: Some(due_at),
            ..self
        })
    }

    /// Staff answered. The due time stays as it was, for the record.
    pub fn staff_replied(self) -> Result<ThreadState, StepError> {
        match self.status {
            ThreadStatus::Closed => Err(StepError::Closed),
            ThreadStatus::Draft => Err(StepError::NotSent),
            ThreadStatus::Sent | ThreadStatus::Answered => Ok(ThreadState {
                status: ThreadStatus::Answered,
                ..self
            }),
        }
    }

    /// Staff moved it to another unit: nothing changes but the unit; the due time is the
    /// one promised when it was received.
    pub fn reassigned(self) -> Result<ThreadState, StepError> {
        match self.status {
            ThreadStatus::Closed => Err(StepError::Closed),
            ThreadStatus::Draft => Err(StepError::NotSent),
            ThreadStatus::Sent | ThreadStatus::Answered => Ok(self),
        }
    }

    /// Staff closed it. Closing a closed thread changes nothing.
    pub fn closed(self) -> Result<ThreadState, StepError> {
        match self.status {
            ThreadStatus::Draft => Err(StepError::NotSent),
            _ => Ok(ThreadState {
                status: ThreadStatus::Closed,
                ..self
            }),
        }
    }
}

/// When the answer to a message received at `received` is due: the end of the first working
/// day after the day of receipt, in `zone` (weekends and Norwegian public holidays skipped).
pub fn reply_due(received: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
    let day = calendar::day_of(received, zone);
    calendar::working_days_after(day, 1).map_or(DateTime::<Utc>::MAX_UTC, |due_day| {
        calendar::end_of_day(due_day, zone)
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    const OSLO: Tz = chrono_tz::Europe::Oslo;

    fn oslo(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        OSLO.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap()
            .to_utc()
    }

    #[test]
    fn an_evening_message_before_easter_is_due_the_tuesday_after() {
        // Wednesday 24 March 2027, 20:30: Maundy Thursday, Good Friday, the weekend and
        // Easter Monday are not working days; the answer is due at the end of Tuesday 30
        // March (midnight in Oslo, summer time since 28 March).
        let due = reply_due(oslo(2027, 3, 24, 20, 30), OSLO);
        assert_eq!(due, oslo(2027, 3, 31, 0, 0));
        assert_eq!(due, Utc.with_ymd_and_hms(2027, 3, 30, 22, 0, 0).unwrap());
    }

    #[test]
    fn a_friday_message_is_due_at_the_end_of_monday() {
        // Friday 4 December 2026, 09:00 → end of Monday 7 December.
        assert_eq!(
            reply_due(oslo(2026, 12, 4, 9, 0), OSLO),
            oslo(2026, 12, 8, 0, 0)
        );
        // Saturday and Sunday count from their own day: also Monday.
        assert_eq!(
            reply_due(oslo(2026, 12, 5, 23, 59), OSLO),
            oslo(2026, 12, 8, 0, 0)
        );
    }

    #[test]
    fn the_due_time_is_midnight_in_oslo_across_a_change_of_clocks() {
        // Friday 23 October 2026, 15:00 summer time; clocks go back on Sunday 25th. Due at
        // the end of Monday 26th: 23:00 UTC (winter time), not 22:00.
        let due = reply_due(oslo(2026, 10, 23, 15, 0), OSLO);
        assert_eq!(due, Utc.with_ymd_and_hms(2026, 10, 26, 23, 0, 0).unwrap());
        // Friday 27 March 2026, winter time; clocks go forward on Sunday 29th: due at the end
        // of Monday 30th, 22:00 UTC.
        let due = reply_due(oslo(2026, 3, 27, 10, 0), OSLO);
        assert_eq!(due, Utc.with_ymd_and_hms(2026, 3, 30, 22, 0, 0).unwrap());
    }

    #[test]
    fn a_message_just_after_midnight_counts_from_its_own_day_in_oslo() {
        // 23:30 UTC on Thursday 3 December is 00:30 on Friday 4 December in Oslo.
        let received = Utc.with_ymd_and_hms(2026, 12, 3, 23, 30, 0).unwrap();
        assert_eq!(reply_due(received, OSLO), oslo(2026, 12, 8, 0, 0));
    }

    fn state(status: ThreadStatus, due_at: Option<DateTime<Utc>>) -> ThreadState {
        ThreadState {
            status,
            kind: ThreadKind::Inquiry,
            due_at,
        }
    }

    #[test]
    fn a_waiting_thread_keeps_its_first_due_time_and_an_answered_one_gets_a_new_one() {
        let first = oslo(2026, 12, 2, 0, 0);
        let later = oslo(2026, 12, 3, 0, 0);
        let sent = state(ThreadStatus::Draft, None)
            .citizen_wrote(first)
            .unwrap();
        assert_eq!(sent, state(ThreadStatus::Sent, Some(first)));
        assert_eq!(sent.citizen_wrote(later).unwrap().due_at, Some(first));
        let answered = sent.staff_replied().unwrap();
        assert_eq!(answered.status, ThreadStatus::Answered);
        assert!(!answered.overdue(later + chrono::Duration::days(9)));
        assert_eq!(answered.citizen_wrote(later).unwrap().due_at, Some(later));
    }

    #[test]
    fn a_closed_thread_takes_no_message_and_no_reassignment() {
        let closed = state(ThreadStatus::Sent, Some(oslo(2026, 12, 2, 0, 0)))
            .closed()
            .unwrap();
        assert_eq!(
            closed.citizen_wrote(oslo(2026, 12, 3, 0, 0)),
            Err(StepError::Closed)
        );
        assert_eq!(closed.staff_replied(), Err(StepError::Closed));
        assert_eq!(closed.reassigned(), Err(StepError::Closed));
        assert_eq!(closed.closed(), Ok(closed));
        assert_eq!(
            state(ThreadStatus::Draft, None).staff_replied(),
            Err(StepError::NotSent)
        );
    }

    #[test]
    fn cancellation_requests_come_first_while_waiting_and_overdue_is_past_due() {
        let due = oslo(2026, 12, 2, 8, 0);
        let request = ThreadState {
            status: ThreadStatus::Sent,
            kind: ThreadKind::CancellationRequest,
            due_at: Some(due),
        };
        assert!(request.priority() < state(ThreadStatus::Sent, Some(due)).priority());
        assert!(
            state(ThreadStatus::Sent, Some(due)).priority()
                < state(ThreadStatus::Answered, Some(due)).priority()
        );
        assert_eq!(
            request.staff_replied().unwrap().priority(),
            Priority::Answered
        );
        assert!(!request.overdue(due - chrono::Duration::seconds(1)));
        assert!(request.overdue(due));
    }
}
