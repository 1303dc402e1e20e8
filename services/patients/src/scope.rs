//! What a proxy allows, and whether it allows something at a given instant.
//!
//! Plain values and functions, no database: every call by a proxy holder goes through
//! [`authorize`], and its unit tests cover every state a proxy can be in.

use chrono::{DateTime, Utc};
use homecare_proto::patients::v1 as pb;

/// One thing a proxy can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// See the patient's visits and their history.
    ReadVisits,
    /// Cancel the patient's visits.
    CancelVisits,
    /// Write to the care service and read the answers.
    Messaging,
    /// See the patient's access log.
    ReadAccessLog,
}

homecare_core::stored_enum!(Scope, "scope", pb::Scope, {
    ReadVisits => "read_visits", ReadVisits;
    CancelVisits => "cancel_visits", CancelVisits;
    Messaging => "messaging", Messaging;
    ReadAccessLog => "read_access_log", ReadAccessLog;
});

impl Scope {
    fn bit(self) -> u8 {
        match self {
            Scope::ReadVisits => 1,
            Scope::CancelVisits => 2,
            Scope::Messaging => 4,
            Scope::ReadAccessLog => 8,
        }
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Scopes(u8);

impl Scopes {
    /// No scope.
    pub const NONE: Scopes = Scopes(0);

    /// Every scope: what a patient has over their own data.
    pub fn all() -> Scopes {
        Scope::ALL.iter().copied().collect()
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in both sets.
    pub fn union(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }

    /// The scopes in this set that `other` lacks.
    pub fn without(self, other: Scopes) -> Scopes {
        Scopes(self.0 & !other.0)
    }

    /// The scopes, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(move |scope| self.contains(*scope))
    }

    /// The stored form: names separated by commas.
    pub fn to_stored(self) -> String {
        self.iter()
            .map(Scope::as_stored)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The set from its stored form.
    pub fn from_stored(text: &str) -> Result<Scopes, UnknownScope> {
        text.split(',')
            .filter(|name| !name.is_empty())
            .map(|name| Scope::from_stored(name).map_err(|_| UnknownScope(name.to_owned())))
            .collect()
    }

    /// The contract's values.
    pub fn to_proto(self) -> Vec<i32> {
        self.iter().map(|scope| scope.to_proto().into()).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |bits, scope| bits | scope.bit()))
    }
}

/// A stored scope this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stored scope {0:?}")]
pub struct UnknownScope(String);

/// The scopes a request asked for: at least one, each known, and cancelling only with
/// reading (a holder who cannot see visits cannot know which to cancel).
pub fn parse_scopes(values: &[i32]) -> Result<Scopes, String> {
    let mut scopes = Scopes::NONE;
    for value in values {
        let scope = Scope::from_proto(*value)
            .map_err(|_| "contains a value that is not a known scope".to_owned())?;
        scopes = scopes.union([scope].into_iter().collect());
    }
    if scopes.is_empty() {
        return Err("must name at least one scope".into());
    }
    if scopes.contains(Scope::CancelVisits) && !scopes.contains(Scope::ReadVisits) {
        return Err("SCOPE_CANCEL_VISITS needs SCOPE_READ_VISITS".into());
    }
    Ok(scopes)
}

/// What a grantor may pass on: never more than they have. The patient has every scope over
/// their own data; the scopes returned are those asked for beyond that.
pub fn beyond_grantor(grantor_has: Scopes, requested: Scopes) -> Result<(), Scopes> {
    let excess = requested.without(grantor_has);
    if excess.is_empty() {
        Ok(())
    } else {
        Err(excess)
    }
}

/// When and what a proxy allows, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTerms {
    /// What it allows.
    pub scopes: Scopes,
    /// The first instant it is valid.
    pub valid_from: DateTime<Utc>,
    /// The first instant it is no longer valid; `None` when open-ended.
    pub valid_to: Option<DateTime<Utc>>,
    /// When someone ended it.
    pub ended_at: Option<DateTime<Utc>>,
}

/// Where a proxy stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyState {
    /// Its validity has not begun.
    NotYetValid,
    /// It can be used.
    Active,
    /// Its validity is over.
    Expired,
    /// Someone ended it.
    Ended,
}

impl ProxyTerms {
    /// The state at `now`. Validity includes `valid_from` and excludes `valid_to`; an ended
    /// proxy is ended whatever its window says.
    pub fn state_at(&self, now: DateTime<Utc>) -> ProxyState {
        if self.ended_at.is_some_and(|ended| ended <= now) {
            ProxyState::Ended
        } else if now < self.valid_from {
            ProxyState::NotYetValid
        } else if self.valid_to.is_some_and(|to| to <= now) {
            ProxyState::Expired
        } else {
            ProxyState::Active
        }
    }

    /// Whether it allows `scope` at `now`.
    pub fn allows(&self, scope: Scope, now: DateTime<Utc>) -> bool {
        self.state_at(now) == ProxyState::Active && self.scopes.contains(scope)
    }

    /// Its state in the contract.
    pub fn state_to_proto(&self, now: DateTime<Utc>) -> pb::ProxyState {
        match self.state_at(now) {
            ProxyState::NotYetValid => pb::ProxyState::NotYetValid,
            ProxyState::Active => pb::ProxyState::Active,
            ProxyState::Expired => pb::ProxyState::Expired,
            ProxyState::Ended => pb::ProxyState::Ended,
        }
    }
}

/// Why a holder may not do something for a patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyRefusal {
    /// The holder has never held a proxy for this patient: to them the patient does not
    /// exist (NOT_FOUND).
    #[error("no proxy for this patient")]
    NoProxy,
    /// Every proxy they held was ended.
    #[error("the proxy was ended")]
    Ended,
    /// Their proxy is not valid yet.
    #[error("the proxy is not valid yet")]
    NotYetValid,
    /// Their proxy's validity is over.
    #[error("the proxy has expired")]
    Expired,
    /// A valid proxy, but it does not allow this.
    #[error("the proxy does not allow this")]
    ScopeMissing(Scope),
}

impl ProxyRefusal {
    /// The stable reason carried in the error.
    pub fn reason(self) -> &'static str {
        match self {
            ProxyRefusal::NoProxy => "NO_PROXY",
            ProxyRefusal::Ended => "PROXY_ENDED",
            ProxyRefusal::NotYetValid => "PROXY_NOT_YET_VALID",
            ProxyRefusal::Expired => "PROXY_EXPIRED",
            ProxyRefusal::ScopeMissing(_) => "PROXY_SCOPE_MISSING",
        }
    }

    /// How telling the refusal is, when a holder has several proxies for one patient and none
    /// allows the call: the one closest to allowing it is reported.
    fn rank(self) -> u8 {
        match self {
            ProxyRefusal::NoProxy => 0,
            ProxyRefusal::Ended => 1,
            ProxyRefusal::Expired => 2,
            ProxyRefusal::NotYetValid => 3,
            ProxyRefusal::ScopeMissing(_) => 4,
        }
    }
}

/// The proxy among `proxies` (all a holder holds for one patient) that allows `scope` at
/// `now`, or why none does.
pub fn authorize<T: AsRef<ProxyTerms>>(
    proxies: &[T],
    scope: Scope,
    now: DateTime<Utc>,
) -> Result<&T, ProxyRefusal> {
    let mut refusal = ProxyRefusal::NoProxy;
    for proxy in proxies {
        let terms = proxy.as_ref();
        let this = match terms.state_at(now) {
            ProxyState::Active if terms.scopes.contains(scope) => return Ok(proxy),
            ProxyState::Active => ProxyRefusal::ScopeMissing(scope),
            ProxyState::NotYetValid => ProxyRefusal::NotYetValid,
            ProxyState::Expired => ProxyRefusal::Expired,
            ProxyState::Ended => ProxyRefusal::Ended,
        };
        if this.rank() > refusal.rank() {
            refusal = this;
        }
    }
    Err(refusal)
}

impl AsRef<ProxyTerms> for ProxyTerms {
    fn as_ref(&self) -> &ProxyTerms {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone as _};
    use proptest::prelude::*;

    fn at(hour: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + Duration::hours(hour)
    }

    fn read_only() -> Scopes {
        [Scope::ReadVisits].into_iter().collect()
    }

    fn terms(from: i64, to: Option<i64>, ended: Option<i64>, scopes: Scopes) -> ProxyTerms {
        ProxyTerms {
            scopes,
            valid_from: at(from),
            valid_to: to.map(at),
            ended_at: ended.map(at),
        }
    }

    /// Every state of one proxy (valid 10:00 to 20:00, reading only), at and around each
    /// boundary, for a read and a cancellation.
    #[test]
    fn one_proxy_in_every_state() {
        let window = terms(10, Some(20), None, read_only());
        let ended_at_15 = terms(10, Some(20), Some(15), read_only());
        let open_ended = terms(10, None, None, read_only());
        let cases: &[(&ProxyTerms, i64, Scope, Result<(), ProxyRefusal>)] = &[
            (
                &window,
                9,
                Scope::ReadVisits,
                Err(ProxyRefusal::NotYetValid),
            ),
            (&window, 10, Scope::ReadVisits, Ok(())),
            (&window, 19, Scope::ReadVisits, Ok(())),
            (&window, 20, Scope::ReadVisits, Err(ProxyRefusal::Expired)),
            (&window, 30, Scope::ReadVisits, Err(ProxyRefusal::Expired)),
            (
                &window,
                12,
                Scope::CancelVisits,
                Err(ProxyRefusal::ScopeMissing(Scope::CancelVisits)),
            ),
            (
                &window,
                9,
                Scope::CancelVisits,
                Err(ProxyRefusal::NotYetValid),
            ),
            (&ended_at_15, 14, Scope::ReadVisits, Ok(())),
            (
                &ended_at_15,
                15,
                Scope::ReadVisits,
                Err(ProxyRefusal::Ended),
            ),
            (
                &ended_at_15,
                25,
                Scope::ReadVisits,
                Err(ProxyRefusal::Ended),
            ),
            (&open_ended, 10, Scope::ReadVisits, Ok(())),
            (&open_ended, 10_000, Scope::ReadVisits, Ok(())),
            (
                &open_ended,
                10_000,
                Scope::ReadAccessLog,
                Err(ProxyRefusal::ScopeMissing(Scope::ReadAccessLog)),
            ),
        ];
        for (proxy, hour, scope, expected) in cases {
            let answer = authorize(std::slice::from_ref(*proxy), *scope, at(*hour)).map(|_| ());
            assert_eq!(answer, *expected, "{proxy:?} at {hour}:00 for {scope:?}");
        }
    }

    #[test]
    fn no_proxy_is_not_found_rather_than_denied() {
        let none: [ProxyTerms; 0] = [];
        assert_eq!(
            authorize(&none, Scope::ReadVisits, at(0)).map(|_| ()),
            Err(ProxyRefusal::NoProxy)
        );
    }

    #[test]
    fn of_several_proxies_a_valid_one_with_the_scope_wins() {
        let ended = terms(0, None, Some(5), Scopes::all());
        let current = terms(5, None, None, read_only());
        let proxies = [ended, current.clone()];
        assert_eq!(authorize(&proxies, Scope::ReadVisits, at(6)), Ok(&current));
        // The ended one had the scope, but only the current one counts.
        assert_eq!(
            authorize(&proxies, Scope::CancelVisits, at(6)).map(|_| ()),
            Err(ProxyRefusal::ScopeMissing(Scope::CancelVisits))
        );
    }

    #[test]
    fn scopes_round_trip_through_storage() {
        for bits in 0..16u8 {
            let scopes = Scopes(bits);
            assert_eq!(Scopes::from_stored(&scopes.to_stored()), Ok(scopes));
        }
        assert!(Scopes::from_stored("read_visits,fly").is_err());
    }

    #[test]
    fn requested_scopes_are_checked() {
        let read = i32::from(pb::Scope::ReadVisits);
        let cancel = i32::from(pb::Scope::CancelVisits);
        assert!(parse_scopes(&[]).is_err());
        assert!(parse_scopes(&[0]).is_err());
        assert!(parse_scopes(&[99]).is_err());
        assert!(parse_scopes(&[cancel]).is_err(), "cancel without read");
        assert_eq!(
            parse_scopes(&[read, cancel, read]).map(|s| s.iter().count()),
            Ok(2)
        );
    }

    #[test]
    fn a_grant_never_exceeds_what_the_grantor_has() {
        assert_eq!(beyond_grantor(Scopes::all(), Scopes::all()), Ok(()));
        assert_eq!(
            beyond_grantor(read_only(), Scopes::all()),
            Err(Scopes::all().without(read_only()))
        );
    }

    /// A step in the life of the proxies between one holder and one patient.
    #[derive(Debug, Clone)]
    enum Step {
        Grant {
            from: i64,
            to: Option<i64>,
            scopes: u8,
        },
        End {
            which: usize,
            at: i64,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..100i64, proptest::option::of(1..60i64), 0..16u8).prop_map(
                |(from, length, scopes)| Step::Grant {
                    from,
                    to: length.map(|length| from + length),
                    scopes,
                }
            ),
            (0..8usize, 0..120i64).prop_map(|(which, at)| Step::End { which, at }),
        ]
    }

    proptest! {
        /// Whatever was granted, ended and expired, a call is allowed exactly when one proxy
        /// is, at that instant, begun, not over, not ended, and has the scope; and what is
        /// allowed is that proxy.
        #[test]
        fn nothing_reaches_beyond_a_currently_valid_proxy(
            steps in proptest::collection::vec(step(), 0..8),
            now in 0..130i64,
            scope in proptest::sample::select(Scope::ALL.to_vec()),
        ) {
            let mut proxies: Vec<ProxyTerms> = Vec::new();
            for step in steps {
                match step {
                    Step::Grant { from, to, scopes } => {
                        proxies.push(terms(from, to, None, Scopes(scopes)));
                    }
                    Step::End { which, at: hour } => {
                        if let Some(proxy) = proxies.get_mut(which)
                            && proxy.ended_at.is_none()
                        {
                            proxy.ended_at = Some(at(hour));
                        }
                    }
                }
            }
            let now = at(now);
            let valid = |p: &ProxyTerms| {
                p.valid_from <= now
                    && p.valid_to.is_none_or(|to| now < to)
                    && p.ended_at.is_none_or(|ended| now < ended)
                    && p.scopes.contains(scope)
            };
            match authorize(&proxies, scope, now) {
                Ok(chosen) => prop_assert!(valid(chosen), "allowed through {chosen:?}"),
                Err(refusal) => {
                    prop_assert!(!proxies.iter().any(valid), "refused {refusal:?} though one is valid");
                    prop_assert_eq!(refusal == ProxyRefusal::NoProxy, proxies.is_empty());
                }
            }
        }
    }
}
