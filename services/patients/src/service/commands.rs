//! Each RPC's request checked into a command: every wrong field named at once
//! (INVALID_ARGUMENT with a violation per field), no value sent echoed. A handler decodes
//! with `Command::try_from(request)?`, or `decode` where the check needs the identity rules
//! or the time, at the point where it always checked its fields. Patient ids are resolved,
//! and a bad one named, by `Actors`; calls without other fields (GetTermsStatus,
//! ListRepresentedPatients, ListProxies) have no command.

use chrono::{DateTime, NaiveDate, Utc};
use homecare_core::paging::{self, Cursor, QueryKey};
use homecare_core::status::FieldViolations;
use homecare_core::text::parse_line;
use homecare_core::{IdentityRules, NationalIdentityNumber, all_checked, timestamp};
use homecare_proto::patients::v1 as pb;
use uuid::Uuid;

use crate::proxy::Basis;
use crate::proxy_rules::{ProxyFields, check_proxy_fields};
use crate::scope::{self, Scopes};

/// The longest document reference accepted.
const MAX_DOCUMENT_REFERENCE_LEN: usize = 128;

/// What a new proxy's fields are checked against.
pub(super) struct ProxyChecks {
    pub(super) identity_rules: IdentityRules,
    pub(super) now: DateTime<Utc>,
    pub(super) today: NaiveDate,
}

impl ProxyChecks {
    fn fields(
        &self,
        violations: &mut FieldViolations,
        request: ProxyRequest<'_>,
    ) -> Option<ProxyFields> {
        check_proxy_fields(
            violations,
            self.identity_rules,
            request.holder_national_id,
            request.holder_name,
            request.patient_name,
            request.scopes,
            request.valid_time,
            request.end_time,
            request.request_id,
            self.now,
            self.today,
        )
    }
}

/// The fields GrantProxy and RegisterProxy share, which their messages name alike.
macro_rules! proxy_request {
    ($request:expr) => {
        ProxyRequest {
            holder_national_id: &$request.holder_national_id,
            holder_name: &$request.holder_name,
            patient_name: &$request.patient_name,
            scopes: &$request.scopes,
            valid_time: $request.valid_time.as_ref(),
            end_time: $request.end_time.as_ref(),
            request_id: &$request.request_id,
        }
    };
}

/// The fields GrantProxy and RegisterProxy share.
struct ProxyRequest<'a> {
    holder_national_id: &'a str,
    holder_name: &'a str,
    patient_name: &'a str,
    scopes: &'a [i32],
    valid_time: Option<&'a prost_types::Timestamp>,
    end_time: Option<&'a prost_types::Timestamp>,
    request_id: &'a str,
}

/// A citizen's new proxy (GrantProxy).
pub(super) struct GrantProxy {
    pub(super) fields: ProxyFields,
}

impl GrantProxy {
    pub(super) fn decode(
        request: &pb::GrantProxyRequest,
        checks: &ProxyChecks,
    ) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let fields = checks.fields(&mut violations, proxy_request!(request));
        let (fields,) = all_checked!(violations; fields)?;
        Ok(Self { fields })
    }
}

/// A proxy staff register from a paper form or a guardianship (RegisterProxy).
pub(super) struct RegisterProxy {
    pub(super) fields: ProxyFields,
    pub(super) basis: Basis,
    pub(super) document_reference: String,
}

impl RegisterProxy {
    pub(super) fn decode(
        request: &pb::RegisterProxyRequest,
        checks: &ProxyChecks,
    ) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let fields = checks.fields(&mut violations, proxy_request!(request));
        let basis = match pb::ProxyBasis::try_from(request.basis) {
            Ok(pb::ProxyBasis::PaperForm) => Some(Basis::PaperForm),
            Ok(pb::ProxyBasis::Guardianship) => Some(Basis::Guardianship),
            _ => {
                violations.add(
                    "basis",
                    "must be PROXY_BASIS_PAPER_FORM or PROXY_BASIS_GUARDIANSHIP",
                );
                None
            }
        };
        let document_reference = violations.check(
            "document_reference",
            parse_line(&request.document_reference, MAX_DOCUMENT_REFERENCE_LEN),
        );
        let (fields, basis, document_reference) =
            all_checked!(violations; fields, basis, document_reference)?;
        Ok(Self {
            fields,
            basis,
            document_reference,
        })
    }
}

/// A change of a proxy's scopes or end (UpdateProxy).
pub(super) struct UpdateProxy {
    pub(super) proxy_id: Uuid,
    /// The new scopes, when the mask names them.
    pub(super) scopes: Option<Scopes>,
    /// The new end (none: open-ended), when the mask names it.
    pub(super) valid_to: Option<Option<DateTime<Utc>>>,
}

impl UpdateProxy {
    /// The request, where a new end must be after `now`.
    pub(super) fn decode(
        request: &pb::UpdateProxyRequest,
        now: DateTime<Utc>,
    ) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let proxy_id = violations.check("proxy_id", parse_id(&request.proxy_id));
        let mut scopes = None;
        let mut valid_to = None;
        let mut unknown_paths = false;
        if request.update_mask.is_empty() {
            violations.add("update_mask", "must name scopes, end_time or both");
        }
        for path in &request.update_mask {
            match path.as_str() {
                "scopes" => {
                    scopes = violations.check("scopes", scope::parse_scopes(&request.scopes))
                }
                "end_time" => {
                    valid_to = violations
                        .check("end_time", timestamp::optional(request.end_time.as_ref()))
                        .and_then(|to| match to {
                            Some(to) if to <= now => {
                                violations.add(
                                    "end_time",
                                    "must be in the future; use EndProxy to end it now",
                                );
                                None
                            }
                            to => Some(to),
                        });
                }
                // The path is the caller's text: named by position, never repeated back.
                _ => unknown_paths = true,
            }
        }
        if unknown_paths {
            violations.add(
                "update_mask",
                "names a field that cannot be changed; only scopes and end_time can",
            );
        }
        let (proxy_id,) = all_checked!(violations; proxy_id)?;
        Ok(Self {
            proxy_id,
            scopes,
            valid_to,
        })
    }
}

/// Ending a proxy now (EndProxy).
pub(super) struct EndProxy {
    pub(super) proxy_id: Uuid,
}

impl TryFrom<&pb::EndProxyRequest> for EndProxy {
    type Error = FieldViolations;

    fn try_from(request: &pb::EndProxyRequest) -> Result<Self, FieldViolations> {
        Ok(Self {
            proxy_id: FieldViolations::single("proxy_id", parse_id(&request.proxy_id))?,
        })
    }
}

/// One page of a patient's access log (ListAccessLog).
pub(super) struct ListAccessLog {
    pub(super) page_size: u64,
    pub(super) cursor: Option<Cursor>,
    pub(super) query_key: QueryKey,
}

impl TryFrom<&pb::ListAccessLogRequest> for ListAccessLog {
    type Error = FieldViolations;

    fn try_from(request: &pb::ListAccessLogRequest) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let page_size = violations.check("page_size", paging::page_size(request.page_size));
        let query_key = QueryKey::named("access-log").with("patient", &request.patient_id);
        let cursor = violations.check(
            "page_token",
            Cursor::decode(&request.page_token, &query_key),
        );
        let (page_size, cursor) = all_checked!(violations; page_size, cursor)?;
        Ok(Self {
            page_size,
            cursor,
            query_key,
        })
    }
}

/// The terms version a citizen accepts (AcceptTerms).
pub(super) struct AcceptTerms {
    pub(super) version: String,
}

impl AcceptTerms {
    /// The request, which must name the version `in_force` (it is named in the refusal:
    /// it is ours, not the caller's).
    pub(super) fn decode(
        request: &pb::AcceptTermsRequest,
        in_force: &str,
    ) -> Result<Self, FieldViolations> {
        let version = &request.terms_version;
        let checked = if version.is_empty() {
            Err("is required".to_owned())
        } else if version != in_force {
            Err(format!("is not the version in force ({in_force})"))
        } else {
            Ok(version.clone())
        };
        Ok(Self {
            version: FieldViolations::single("terms_version", checked)?,
        })
    }
}

/// The EPJ's word that a person's address is protected, or no longer (SetProtectedAddress).
pub(super) struct SetProtectedAddress {
    pub(super) person: NationalIdentityNumber,
    pub(super) protected: bool,
}

impl SetProtectedAddress {
    pub(super) fn decode(
        request: &pb::SetProtectedAddressRequest,
        identity_rules: IdentityRules,
    ) -> Result<Self, FieldViolations> {
        Ok(Self {
            person: FieldViolations::single(
                "national_id",
                identity_rules.parse(&request.national_id),
            )?,
            protected: request.protected_address,
        })
    }
}

fn parse_id(text: &str) -> Result<Uuid, homecare_core::identifier::IdError> {
    homecare_core::identifier::parse_id(text, "id")
}
