//! The SMS provider's delivery reports: `POST /callbacks/sms/status`, plain HTTP beside gRPC.
//!
//! Each report is checked against `X-Twilio-Signature` (HMAC-SHA1 with the account's auth
//! token over the URL the provider called, as configured, and the sorted form parameters).
//! A missing or wrong signature is 403 and changes nothing; a report on a message this
//! service does not know is 200 and changes nothing, so the provider stops retrying it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use homecare_core::Clock;
use sea_orm::DatabaseConnection;
use secrecy::{ExposeSecret as _, SecretString};

use crate::sink::{ProviderStatus, record_report};

/// Where reports arrive.
pub const PATH: &str = "/callbacks/sms/status";

/// Largest report accepted; Twilio's are well under 2 KiB.
const MAX_REPORT_BYTES: usize = 16 * 1024;

/// What checking and recording a report needs.
pub struct StatusReports {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    auth_token: Option<SecretString>,
    public_url: String,
}

impl StatusReports {
    /// Reports recorded in `db`, signed with `auth_token` (none: every report is refused)
    /// for `public_url` (the URL the provider calls, as given to it in `StatusCallback`).
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        auth_token: Option<SecretString>,
        public_url: String,
    ) -> Self {
        Self {
            db,
            clock,
            auth_token,
            public_url,
        }
    }

    /// The route.
    pub fn routes(self) -> axum::Router {
        axum::Router::new()
            .route(PATH, post(report))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_REPORT_BYTES))
            .with_state(Arc::new(self))
    }
}

async fn report(
    State(reports): State<Arc<StatusReports>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|value| value.to_str().ok());
    let (Some(token), Some(signature)) = (&reports.auth_token, signature) else {
        return StatusCode::FORBIDDEN;
    };
    if !homecare_sms::verify_signature(
        token.expose_secret().as_bytes(),
        &reports.public_url,
        &params,
        signature,
    ) {
        tracing::warn!("an SMS status report with a bad signature was refused");
        return StatusCode::FORBIDDEN;
    }
    let value = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let (Some(provider_id), Some(status)) = (
        value("MessageSid"),
        value("MessageStatus").and_then(ProviderStatus::from_twilio),
    ) else {
        return StatusCode::OK;
    };
    let error_code = value("ErrorCode").filter(|code| !code.is_empty());
    match record_report(
        &reports.db,
        provider_id,
        status,
        error_code,
        reports.clock.now(),
    )
    .await
    {
        Ok(known) => {
            if !known {
                tracing::info!("an SMS status report on an unknown message was ignored");
            }
            StatusCode::OK
        }
        Err(error) => {
            tracing::warn!(%error, "could not record an SMS status report");
            // The provider retries a failed callback.
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
