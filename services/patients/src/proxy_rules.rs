//! The rules of proxies ("fullmakt") that need no database: who may hold and grant one, what
//! a request for one must say, and what a patient may not do to a guardianship. What needs
//! the database (overlap, protected address, request ids, ended proxies) is in
//! [`crate::proxy`], and is enforced in the transaction that writes.

use chrono::{DateTime, Utc};
use homecare_core::NationalIdentityNumber;
use homecare_core::identifier::RequestId;
use homecare_core::status::FieldViolations;
use homecare_core::text::parse_display_name;
use homecare_core::timestamp;
use uuid::Uuid;

use crate::actor::{Actor, Via};
use crate::entity::proxy;
use crate::proxy::{Basis, NewProxy};
use crate::scope::{self, Scopes};

/// The youngest a patient may be to grant a proxy.
pub const MIN_GRANTOR_AGE: u32 = 16;
/// The youngest a person may be to hold a proxy.
pub const MIN_HOLDER_AGE: u32 = 18;

/// A rule of proxies that a request broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyRuleError {
    /// The holder is the patient.
    #[error("a patient cannot be their own proxy")]
    OwnProxy,
    /// The patient is too young to grant a proxy.
    #[error("a patient must be {MIN_GRANTOR_AGE} or older to grant a proxy")]
    GrantorTooYoung,
    /// The patient tried to change or end a guardianship.
    #[error("a guardianship is changed or ended by the care service, not by the patient")]
    Guardianship,
}

/// What a grant or registration asked for, checked.
/// A proxy's terms from a grant or registration, checked field by field.
pub struct ProxyFields {
    /// Who may act.
    pub holder: NationalIdentityNumber,
    /// The holder's name.
    pub holder_name: String,
    /// The patient's name, as the holder will see it.
    pub patient_name: String,
    /// What it allows.
    pub scopes: Scopes,
    /// The start asked for; `None`: from now.
    pub requested_from: Option<DateTime<Utc>>,
    /// The start: as asked, or now.
    pub valid_from: DateTime<Utc>,
    /// The end; `None`: until ended.
    pub valid_to: Option<DateTime<Utc>>,
    /// The caller's idempotency key.
    pub request_id: RequestId,
}

impl ProxyFields {
    /// The proxy to make from these fields.
    pub fn into_new(
        self,
        patient_id: Uuid,
        basis: Basis,
        document_reference: Option<String>,
        actor: &Actor,
    ) -> NewProxy {
        // What was asked for, not what "now" made of it: a retry a second later is the same
        // request.
        let micros = |time: Option<DateTime<Utc>>| {
            time.map_or_else(String::new, |time| time.timestamp_micros().to_string())
        };
        let request_fingerprint = homecare_core::idempotency::fingerprint([
            self.holder.expose(),
            self.holder_name.as_str(),
            self.patient_name.as_str(),
            self.scopes.to_stored().as_str(),
            micros(self.requested_from).as_str(),
            micros(self.valid_to).as_str(),
            basis.as_stored(),
            document_reference.as_deref().unwrap_or_default(),
            actor.kind().as_stored(),
            actor.subject().as_str(),
        ]);
        NewProxy {
            patient_id,
            holder: self.holder,
            holder_name: self.holder_name,
            patient_name: self.patient_name,
            scopes: self.scopes,
            basis,
            document_reference,
            valid_from: self.valid_from,
            valid_to: self.valid_to,
            request_id: self.request_id,
            request_fingerprint,
        }
    }
}

/// The rules on the patient a proxy is for: never their own proxy, and 16 or older to grant
/// one (a guardian is appointed for whoever needs one, whatever their age).
pub fn check_grantor(
    grantor: &NationalIdentityNumber,
    holder: &NationalIdentityNumber,
    basis: Basis,
    today: chrono::NaiveDate,
) -> Result<(), ProxyRuleError> {
    if holder == grantor {
        return Err(ProxyRuleError::OwnProxy);
    }
    if basis != Basis::Guardianship && grantor.age_on(today) < MIN_GRANTOR_AGE {
        return Err(ProxyRuleError::GrantorTooYoung);
    }
    Ok(())
}

/// Checks a grant's or registration's fields, recording each wrong one in `violations`.
#[allow(clippy::too_many_arguments)]
pub fn check_proxy_fields(
    violations: &mut FieldViolations,
    identity_rules: homecare_core::IdentityRules,
    holder_national_id: &str,
    holder_name: &str,
    patient_name: &str,
    scopes: &[i32],
    valid_time: Option<&prost_types::Timestamp>,
    end_time: Option<&prost_types::Timestamp>,
    request_id: &str,
    now: DateTime<Utc>,
    today: chrono::NaiveDate,
) -> Option<ProxyFields> {
    let holder = violations
        .check(
            "holder_national_id",
            identity_rules.parse(holder_national_id),
        )
        .and_then(|holder| {
            if holder.age_on(today) < MIN_HOLDER_AGE {
                violations.add(
                    "holder_national_id",
                    format!("the holder must be {MIN_HOLDER_AGE} or older"),
                );
                None
            } else {
                Some(holder)
            }
        });
    let holder_name = violations.check("holder_name", parse_display_name(holder_name));
    let patient_name = violations.check("patient_name", parse_display_name(patient_name));
    let scopes = violations.check("scopes", scope::parse_scopes(scopes));
    let requested_from = violations
        .check("valid_time", timestamp::optional(valid_time))
        .and_then(|from| match from {
            Some(from) if from < now => {
                violations.add(
                    "valid_time",
                    "must not be in the past; leave it unset for now",
                );
                None
            }
            from => Some(from),
        });
    let valid_from = requested_from.map(|from| from.unwrap_or(now));
    let valid_to = violations
        .check("end_time", timestamp::optional(end_time))
        .and_then(|to| match (to, valid_from) {
            (Some(to), Some(from)) if to <= from => {
                violations.add("end_time", "must be after valid_time (or now)");
                None
            }
            (to, _) => Some(to),
        });
    let request_id = violations.check("request_id", RequestId::parse(request_id));
    Some(ProxyFields {
        holder: holder?,
        holder_name: holder_name?,
        patient_name: patient_name?,
        scopes: scopes?,
        requested_from: requested_from?,
        valid_from: valid_from?,
        valid_to: valid_to?,
        request_id: request_id?,
    })
}

pub fn is_guardianship(model: &proxy::Model) -> bool {
    Basis::from_stored(&model.basis).ok() == Some(Basis::Guardianship)
}

/// A guardianship is decided by the authorities, not the patient: the patient cannot change
/// or end it here (the guardian, or staff, can end it).
pub fn refuse_if_patient_on_guardianship(
    actor: &Actor,
    model: &proxy::Model,
) -> Result<(), ProxyRuleError> {
    if actor.via == Via::SelfService && is_guardianship(model) {
        return Err(ProxyRuleError::Guardianship);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone as _};

    use super::*;

    fn born(year: i32, month: u32, day: u32) -> NationalIdentityNumber {
        let date = NaiveDate::from_ymd_opt(year, month, day).unwrap();
        (500..1000)
            .find_map(|individual| NationalIdentityNumber::synthesize(date, individual))
            .or_else(|| {
                (0..500).find_map(|individual| NationalIdentityNumber::synthesize(date, individual))
            })
            .unwrap()
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
    }

    #[test]
    fn a_patient_grants_from_sixteen_and_never_to_themself_a_guardianship_at_any_age() {
        let adult = born(1950, 5, 17);
        let fifteen = born(2011, 12, 2);
        let sixteen = born(2010, 12, 1);
        assert_eq!(
            check_grantor(&adult, &adult, Basis::GrantedByPatient, today()),
            Err(ProxyRuleError::OwnProxy)
        );
        assert_eq!(
            check_grantor(&fifteen, &adult, Basis::GrantedByPatient, today()),
            Err(ProxyRuleError::GrantorTooYoung)
        );
        assert_eq!(
            check_grantor(&fifteen, &adult, Basis::PaperForm, today()),
            Err(ProxyRuleError::GrantorTooYoung)
        );
        assert_eq!(
            check_grantor(&sixteen, &adult, Basis::GrantedByPatient, today()),
            Ok(())
        );
        assert_eq!(
            check_grantor(&fifteen, &adult, Basis::Guardianship, today()),
            Ok(())
        );
    }

    #[test]
    fn a_holder_is_an_adult_and_a_proxy_ends_after_it_starts() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let check = |holder: &NationalIdentityNumber, end: Option<DateTime<Utc>>| {
            let mut violations = FieldViolations::new();
            let fields = check_proxy_fields(
                &mut violations,
                homecare_core::IdentityRules::PRODUCTION,
                holder.expose(),
                "Kari Holder",
                "Astrid Patient",
                &[homecare_proto::patients::v1::Scope::ReadVisits.into()],
                None,
                end.map(timestamp::to_proto).as_ref(),
                "request-1",
                now,
                today(),
            );
            (fields.is_some(), violations.to_string())
        };
        assert_eq!(check(&born(1980, 1, 1), None), (true, String::new()));
        let (made, why) = check(&born(2008, 12, 2), None);
        assert!(!made);
        assert!(
            why.starts_with("holder_national_id: the holder must be 18"),
            "{why}"
        );
        let (made, why) = check(&born(1980, 1, 1), Some(now));
        assert!(!made);
        assert!(why.starts_with("end_time:"), "{why}");
    }

    #[test]
    fn only_the_patient_is_refused_a_guardianship() {
        let guardianship = proxy::Model {
            id: Uuid::nil(),
            patient_id: Uuid::nil(),
            holder_national_id: String::new(),
            holder_name: String::new(),
            patient_name: String::new(),
            scopes: String::new(),
            basis: Basis::Guardianship.as_stored().into(),
            document_reference: None,
            valid_from: Utc::now(),
            valid_to: None,
            ended_at: None,
            request_id: String::new(),
            request_fingerprint: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let patient = Actor {
            via: Via::SelfService,
        };
        let staff = Actor {
            via: Via::Staff {
                subject: "nurse".into(),
                name: None,
                care_units: vec![],
            },
        };
        assert_eq!(
            refuse_if_patient_on_guardianship(&patient, &guardianship),
            Err(ProxyRuleError::Guardianship)
        );
        assert_eq!(
            refuse_if_patient_on_guardianship(&staff, &guardianship),
            Ok(())
        );
        let paper = proxy::Model {
            basis: Basis::PaperForm.as_stored().into(),
            ..guardianship
        };
        assert_eq!(refuse_if_patient_on_guardianship(&patient, &paper), Ok(()));
    }
}
