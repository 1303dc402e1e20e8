//! Notices on their way out: a Twilio stand-in on loopback (wiremock) and a real SMTP server
//! (`homecare_email::testing`), wired into a server's configuration.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub use homecare_email::testing::{MailServer, Received};
use homecare_proto::notifications::v1 as pb;
use homecare_server::config::Config;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::{TestServer, authorized};

/// The test account.
pub const ACCOUNT: &str = "AC00000000000000000000000000000001";
/// Its auth token, which also signs status reports.
pub const AUTH_TOKEN: &str = "test-auth-token";
/// The sender name.
pub const SENDER: &str = "AasKommune";
/// The status report URL as the provider is told it (behind a proxy in production).
pub const CALLBACK_URL: &str = "https://homecare.test/callbacks/sms/status";

/// One SMS as the provider received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// Every form field, sorted.
    pub form: Vec<(String, String)>,
    /// `To`.
    pub to: String,
    /// `Body`.
    pub body: String,
}

/// Answers each message with a new SID, `SM` and 32 hex digits.
struct NewSid(AtomicUsize);

impl Respond for NewSid {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        ResponseTemplate::new(201).set_body_json(json!({
            "sid": sid(n),
            "status": "queued",
        }))
    }
}

/// The SID of the `n`-th message the stand-in took (from 0).
pub fn sid(n: usize) -> String {
    format!("SM{n:032x}")
}

/// A Twilio stand-in: a real HTTP server on loopback.
pub struct FakeTwilio {
    /// The server; tests mount failures on it.
    pub server: MockServer,
}

impl FakeTwilio {
    /// One that takes every message.
    pub async fn accepting() -> FakeTwilio {
        let twilio = FakeTwilio {
            server: MockServer::start().await,
        };
        twilio.mount_accepting().await;
        twilio
    }

    /// Mounts taking every message (again, after `server.reset()`).
    pub async fn mount_accepting(&self) {
        Mock::given(method("POST"))
            .and(path(format!(
                "/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
            )))
            .respond_with(NewSid(AtomicUsize::new(0)))
            .mount(&self.server)
            .await;
    }

    /// Points `config` at this provider, with quick retries and polls.
    pub fn configure(&self, config: &mut Config) {
        let sms = &mut config.notifications.sms;
        sms.base_url = self.server.uri();
        sms.account_sid = ACCOUNT.to_owned();
        sms.auth_token = Some(AUTH_TOKEN.to_owned().into());
        sms.from = SENDER.to_owned();
        sms.status_callback_url = Some(CALLBACK_URL.to_owned());
        quick(&mut sms.pacing);
    }

    /// Every message received (successful or not), in order.
    pub async fn received(&self) -> Vec<Sms> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|request| request.method.as_str() == "POST")
            .map(|request| {
                let mut form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
                    .into_owned()
                    .collect();
                form.sort();
                let field = |name: &str| {
                    form.iter()
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| value.clone())
                        .unwrap_or_default()
                };
                Sms {
                    to: field("To"),
                    body: field("Body"),
                    form: form.clone(),
                }
            })
            .collect()
    }

    /// Waits (at most 10 seconds) until `count` messages have arrived; returns all there
    /// are then.
    pub async fn until(&self, count: usize) -> Vec<Sms> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let received = self.received().await;
            if received.len() >= count || tokio::time::Instant::now() >= deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Quick retries and polls for tests.
pub fn quick(pacing: &mut homecare_server::config::Pacing) {
    pacing.retry_base_millis = 20;
    pacing.retry_cap_seconds = 1;
    pacing.idle_poll_millis = 50;
}

/// Points `config` at `mail` for e-mail.
pub fn configure_email(mail: &MailServer, config: &mut Config) {
    let email = &mut config.notifications.email;
    email.host = "127.0.0.1".to_owned();
    email.port = mail.port();
    email.security = "plain".to_owned();
    email.from = "Hjemmetjenesten i Ås <varsel@as.kommune.test>".to_owned();
    quick(&mut email.pacing);
}

impl TestServer {
    /// A client of the notification service.
    pub fn notifications(
        &self,
    ) -> pb::notification_service_client::NotificationServiceClient<tonic::transport::Channel> {
        pb::notification_service_client::NotificationServiceClient::new(self.channel.clone())
    }

    /// The citizen `pid` chooses `channels` with a phone number and an e-mail address.
    pub async fn choose(&self, pid: &str, channels: pb::Channels, phone: &str, email: &str) {
        self.notifications()
            .update_notification_settings(authorized(
                &self.citizen_token(pid),
                pb::UpdateNotificationSettingsRequest {
                    channels: channels.into(),
                    phone_number: phone.to_owned(),
                    email_address: email.to_owned(),
                    language: pb::Language::Nb.into(),
                },
            ))
            .await
            .expect("settings");
    }

    /// The patient's failed notices as the staff member holding `token` lists them (the
    /// read goes to the patient's access log).
    pub async fn failed_notices(&self, token: &str, patient_id: &str) -> Vec<pb::Notice> {
        self.notifications()
            .list_patient_notices(authorized(
                token,
                pb::ListPatientNoticesRequest {
                    patient_id: patient_id.to_owned(),
                    only_failed: true,
                    ..Default::default()
                },
            ))
            .await
            .expect("list")
            .into_inner()
            .notices
    }

    /// Staff's RetryNotice of the patient's notice `notice_id`, as `token`'s holder.
    pub async fn retry_notice(
        &self,
        token: &str,
        patient_id: &str,
        notice_id: &str,
    ) -> Result<pb::Notice, tonic::Status> {
        self.notifications()
            .retry_notice(authorized(
                token,
                pb::RetryNoticeRequest {
                    patient_id: patient_id.to_owned(),
                    notice_id: notice_id.to_owned(),
                },
            ))
            .await
            .map(|response| response.into_inner().notice.expect("the notice"))
    }

    /// The notices the citizen `pid` has had, newest first.
    pub async fn notices_of(&self, pid: &str) -> Vec<pb::Notice> {
        self.notifications()
            .list_my_notices(authorized(
                &self.citizen_token(pid),
                pb::ListMyNoticesRequest {
                    page_size: 200,
                    page_token: String::new(),
                },
            ))
            .await
            .expect("notices")
            .into_inner()
            .notices
    }

    /// Waits (at most 10 seconds) until the citizen `pid` has `count` notices for which
    /// `done` holds; returns all their notices then, newest first.
    pub async fn until_notices(
        &self,
        pid: &str,
        count: usize,
        done: impl Fn(&pb::Notice) -> bool,
    ) -> Vec<pb::Notice> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notices = self.notices_of(pid).await;
            if notices.iter().filter(|notice| done(notice)).count() >= count
                || tokio::time::Instant::now() >= deadline
            {
                return notices;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
