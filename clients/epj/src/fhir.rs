//! The EPJ over FHIR R4 REST: read the `Appointment`, and update it to `cancelled` with the
//! cancellation reason `pat-cpp`, guarded by `If-Match` on the version just read.

use std::time::{Duration, SystemTime};

use reqwest::header::{ACCEPT, CONTENT_TYPE, ETAG, IF_MATCH, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use crate::{Cancellation, Epj, EpjError, Registered, RequestedBy};

const FHIR_JSON: &str = "application/fhir+json";
/// FHIR's code system for appointment cancellation reasons.
const CANCELLATION_REASON_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason";
/// The extension that tells staff who cancelled: `role` (`patient` or `proxy`) and, for a
/// proxy, the holder's `name`.
pub const REQUESTED_BY_EXTENSION: &str =
    "https://homecare.example.org/fhir/StructureDefinition/cancellation-requested-by";
/// How much of an EPJ error text is kept: enough for staff to act on.
const MAX_REASON_CHARS: usize = 500;

/// Where and how to reach a FHIR R4 EPJ.
#[derive(Debug, Clone)]
pub struct FhirEpjConfig {
    /// The FHIR base, such as `https://epj.example.no/fhir`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`, if set; never printed.
    pub bearer_token: Option<SecretString>,
    /// The longest one HTTP request may take.
    pub timeout: Duration,
}

/// An EPJ that speaks FHIR R4 REST.
#[derive(Debug, Clone)]
pub struct FhirEpj {
    http: reqwest::Client,
    base_url: String,
    bearer_token: Option<SecretString>,
}

impl FhirEpj {
    /// A client for the EPJ `config` describes.
    pub fn new(config: FhirEpjConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()?;
        Ok(Self {
            http,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            bearer_token: config.bearer_token,
        })
    }

    fn appointment_url(&self, epj_id: &str) -> String {
        // EPJ ids are FHIR ids ([A-Za-z0-9.-]), so they need no escaping in a path.
        format!("{}/Appointment/{epj_id}", self.base_url)
    }

    fn request(&self, method: reqwest::Method, url: &str, key: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, url)
            .header(ACCEPT, FHIR_JSON)
            .header("Idempotency-Key", key);
        match &self.bearer_token {
            Some(token) => request.bearer_auth(token.expose_secret()),
            None => request,
        }
    }
}

#[async_trait::async_trait]
impl Epj for FhirEpj {
    async fn cancel_appointment(
        &self,
        cancellation: &Cancellation,
    ) -> Result<Registered, EpjError> {
        let url = self.appointment_url(&cancellation.epj_id);
        let key = &cancellation.idempotency_key;

        let response = self
            .request(reqwest::Method::GET, &url, key)
            .send()
            .await
            .map_err(transport_error)?;
        let response = successful(response).await?;
        let etag = header_text(&response, ETAG);
        let mut resource: Value = response
            .json()
            .await
            .map_err(|_| refused("the EPJ's Appointment is not valid JSON"))?;
        if resource.get("resourceType").and_then(Value::as_str) != Some("Appointment") {
            return Err(refused(
                "the EPJ answered with something that is not an Appointment",
            ));
        }
        let version_id = version_of(&resource).or(etag.as_deref().and_then(version_from_etag));
        if resource.get("status").and_then(Value::as_str) == Some("cancelled") {
            return Ok(Registered {
                version_id,
                already_cancelled: true,
            });
        }

        resource["status"] = json!("cancelled");
        let mut reason = json!({
            "coding": [{
                "system": CANCELLATION_REASON_SYSTEM,
                "code": "pat-cpp",
                "display": "Patient: Canceled via Patient Portal",
            }],
        });
        if let Some(text) = &cancellation.reason {
            reason["text"] = json!(text);
        }
        resource["cancelationReason"] = reason;
        set_requested_by(&mut resource, &cancellation.requested_by);

        let mut update = self
            .request(reqwest::Method::PUT, &url, key)
            .header(CONTENT_TYPE, FHIR_JSON);
        if let Some(version) = &version_id {
            update = update.header(IF_MATCH, format!("W/\"{version}\""));
        }
        let response = update
            .body(resource.to_string())
            .send()
            .await
            .map_err(transport_error)?;
        let response = successful(response).await?;
        let etag = header_text(&response, ETAG);
        // A server may answer with the resource, an OperationOutcome, or nothing.
        let body: Option<Value> = response.json().await.ok();
        let version_id = body
            .as_ref()
            .and_then(version_of)
            .or(etag.as_deref().and_then(version_from_etag));
        Ok(Registered {
            version_id,
            already_cancelled: false,
        })
    }
}

/// The response if its status is a success, else the classified error.
async fn successful(response: Response) -> Result<Response, EpjError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = header_text(&response, RETRY_AFTER).and_then(|text| parse_retry_after(&text));
    let outcome = response
        .json::<Value>()
        .await
        .ok()
        .and_then(|body| operation_outcome_text(&body));
    let reason = match outcome {
        Some(text) => format!("HTTP {}: {text}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    };
    let reason = bounded(reason);
    if is_temporary(status) {
        Err(EpjError::Temporary {
            reason,
            retry_after,
        })
    } else {
        Err(EpjError::Refused { reason })
    }
}

/// Statuses that may succeed later. 409 and 412 mean the visit changed meanwhile; the next
/// attempt reads it again.
fn is_temporary(status: StatusCode) -> bool {
    status.is_server_error()
        || matches!(
            status,
            StatusCode::REQUEST_TIMEOUT
                | StatusCode::CONFLICT
                | StatusCode::PRECONDITION_FAILED
                | StatusCode::TOO_MANY_REQUESTS
        )
}

fn transport_error(error: reqwest::Error) -> EpjError {
    let reason = if error.is_timeout() {
        "the EPJ did not answer in time".to_owned()
    } else if error.is_connect() {
        "could not connect to the EPJ".to_owned()
    } else {
        "the connection to the EPJ failed".to_owned()
    };
    EpjError::Temporary {
        reason,
        retry_after: None,
    }
}

fn refused(reason: &str) -> EpjError {
    EpjError::Refused {
        reason: reason.to_owned(),
    }
}

fn header_text(response: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn version_of(resource: &Value) -> Option<String> {
    resource
        .pointer("/meta/versionId")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// `W/"3"` → `3`.
fn version_from_etag(etag: &str) -> Option<String> {
    let unquoted = etag.trim().trim_start_matches("W/").trim_matches('"');
    (!unquoted.is_empty()).then(|| unquoted.to_owned())
}

/// Retry-After as seconds or as an HTTP date.
fn parse_retry_after(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The human-readable part of a FHIR OperationOutcome.
fn operation_outcome_text(body: &Value) -> Option<String> {
    if body.get("resourceType").and_then(Value::as_str) != Some("OperationOutcome") {
        return None;
    }
    let texts: Vec<&str> = body
        .get("issue")?
        .as_array()?
        .iter()
        .filter_map(|issue| {
            issue
                .get("diagnostics")
                .or_else(|| issue.pointer("/details/text"))
                .and_then(Value::as_str)
        })
        .collect();
    (!texts.is_empty()).then(|| texts.join("; "))
}

fn bounded(text: String) -> String {
    if text.chars().count() <= MAX_REASON_CHARS {
        text
    } else {
        text.chars().take(MAX_REASON_CHARS).collect()
    }
}

/// Records on the resource who cancelled, replacing an earlier record of ours and keeping
/// every other extension.
fn set_requested_by(resource: &mut Value, requested_by: &RequestedBy) {
    let mut parts = vec![json!({
        "url": "role",
        "valueCode": match requested_by {
            RequestedBy::Patient => "patient",
            RequestedBy::Proxy { .. } => "proxy",
        },
    })];
    if let RequestedBy::Proxy { name } = requested_by {
        parts.push(json!({ "url": "name", "valueString": name }));
    }
    let ours = json!({ "url": REQUESTED_BY_EXTENSION, "extension": parts });
    let mut extensions: Vec<Value> = resource
        .get("extension")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    extensions.retain(|extension| extension["url"] != REQUESTED_BY_EXTENSION);
    extensions.push(ours);
    resource["extension"] = Value::Array(extensions);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(61));
        let parsed = parse_retry_after(&in_a_minute).expect("an HTTP date");
        assert!(parsed > Duration::from_secs(55) && parsed <= Duration::from_secs(61));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn etags_give_the_version() {
        assert_eq!(version_from_etag("W/\"7\""), Some("7".to_owned()));
        assert_eq!(version_from_etag("\"8\""), Some("8".to_owned()));
        assert_eq!(version_from_etag("W/\"\""), None);
    }

    #[test]
    fn only_passing_failures_are_temporary() {
        for code in [500, 502, 503, 504, 408, 409, 412, 429] {
            assert!(is_temporary(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 422] {
            assert!(!is_temporary(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }
}
