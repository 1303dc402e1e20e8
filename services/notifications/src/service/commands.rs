//! Each RPC's request checked into a command: every wrong field named at once
//! (INVALID_ARGUMENT with a violation per field), no value sent echoed. Settings are checked
//! by `TryFrom` for [`crate::settings::Settings`]; patient ids are resolved, and a bad one
//! named, by `Actors`.

use homecare_core::all_checked;
use homecare_core::paging::{self, Cursor, QueryKey};
use homecare_core::status::FieldViolations;
use homecare_proto::notifications::v1 as pb;
use uuid::Uuid;

/// One page of notices: the caller's own (ListMyNotices) or a patient's, for staff
/// (ListPatientNotices).
pub(super) struct NoticesPage {
    pub(super) page_size: u64,
    pub(super) cursor: Option<Cursor>,
    pub(super) query_key: QueryKey,
}

impl NoticesPage {
    fn decode(
        page_size: i32,
        page_token: &str,
        query_key: QueryKey,
    ) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        let size = violations.check("page_size", paging::page_size(page_size));
        let cursor = violations.check("page_token", Cursor::decode(page_token, &query_key));
        let (page_size, cursor) = all_checked!(violations; size, cursor)?;
        Ok(Self {
            page_size,
            cursor,
            query_key,
        })
    }
}

impl TryFrom<&pb::ListMyNoticesRequest> for NoticesPage {
    type Error = FieldViolations;

    fn try_from(request: &pb::ListMyNoticesRequest) -> Result<Self, FieldViolations> {
        Self::decode(
            request.page_size,
            &request.page_token,
            QueryKey::named("my-notices"),
        )
    }
}

impl TryFrom<&pb::ListPatientNoticesRequest> for NoticesPage {
    type Error = FieldViolations;

    fn try_from(request: &pb::ListPatientNoticesRequest) -> Result<Self, FieldViolations> {
        Self::decode(
            request.page_size,
            &request.page_token,
            QueryKey::named("patient-notices")
                .with("patient", &request.patient_id)
                .with("failed", request.only_failed),
        )
    }
}

/// Staff sending a failed notice again (RetryNotice).
pub(super) struct RetryNotice {
    pub(super) notice_id: Uuid,
}

impl TryFrom<&pb::RetryNoticeRequest> for RetryNotice {
    type Error = FieldViolations;

    fn try_from(request: &pb::RetryNoticeRequest) -> Result<Self, FieldViolations> {
        Ok(Self {
            notice_id: FieldViolations::single(
                "notice_id",
                homecare_core::identifier::parse_id(&request.notice_id, "notice_id"),
            )?,
        })
    }
}
