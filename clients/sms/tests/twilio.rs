//! The Twilio client against a real HTTP server on loopback (wiremock playing Twilio), and
//! against Prism serving Twilio's published contract when `HOMECARE_TWILIO_PRISM_URL` names
//! one (`.ci/run` starts it).

use std::time::Duration;

use base64::Engine as _;
use homecare_sms::{Credentials, OutgoingSms, Sender, Sms as _, SmsError, Twilio, TwilioConfig};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "an-auth-token";

fn client(base_url: &str, sender: Sender) -> Twilio {
    Twilio::new(TwilioConfig {
        base_url: base_url.to_owned(),
        account_sid: ACCOUNT.to_owned(),
        credentials: Credentials::AuthToken(TOKEN.to_owned().into()),
        sender,
        status_callback: Some("https://homecare.example/callbacks/sms/status".to_owned()),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn message() -> OutgoingSms {
    OutgoingSms {
        to: "+4791234567".to_owned(),
        body: "Besøket ditt er endret. Logg inn på helsenorge.no for å se.".to_owned(),
    }
}

fn created() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(serde_json::json!({
        "sid": "SM0123456789abcdef0123456789abcdef",
        "status": "queued",
    }))
}

fn form_of(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

#[tokio::test]
async fn sends_the_exact_form_with_basic_auth_and_reads_the_sid() {
    let twilio = MockServer::start().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}"));
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        )))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(created())
        .expect(1)
        .mount(&twilio)
        .await;
    let accepted = client(&twilio.uri(), Sender::From("AasKommune".to_owned()))
        .send(&message())
        .await
        .unwrap();
    assert_eq!(accepted.provider_id, "SM0123456789abcdef0123456789abcdef");
    assert_eq!(accepted.status, "queued");
    let requests = twilio.received_requests().await.unwrap();
    let mut form = form_of(&requests[0].body);
    form.sort();
    assert_eq!(
        form,
        [
            ("Body", message().body.as_str()),
            ("From", "AasKommune"),
            (
                "StatusCallback",
                "https://homecare.example/callbacks/sms/status"
            ),
            ("To", "+4791234567"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
    );
}

#[tokio::test]
async fn a_messaging_service_replaces_from_and_an_api_key_replaces_the_account() {
    let twilio = MockServer::start().await;
    let basic = base64::engine::general_purpose::STANDARD.encode("SKkey:key-secret");
    Mock::given(method("POST"))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .respond_with(created())
        .expect(1)
        .mount(&twilio)
        .await;
    let service = format!("MG{}", "b".repeat(32));
    let client = Twilio::new(TwilioConfig {
        base_url: twilio.uri(),
        account_sid: ACCOUNT.to_owned(),
        credentials: Credentials::ApiKey {
            sid: "SKkey".to_owned(),
            secret: "key-secret".to_owned().into(),
        },
        sender: Sender::MessagingService(service.clone()),
        status_callback: None,
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    client.send(&message()).await.unwrap();
    let requests = twilio.received_requests().await.unwrap();
    let form = form_of(&requests[0].body);
    assert!(form.contains(&("MessagingServiceSid".to_owned(), service)));
    assert!(
        !form
            .iter()
            .any(|(name, _)| name == "From" || name == "StatusCallback")
    );
}

#[tokio::test]
async fn a_429_or_5xx_is_temporary_with_retry_after_and_other_4xx_are_refused_with_the_code() {
    let twilio = MockServer::start().await;
    let sender = || client(&twilio.uri(), Sender::From("AasKommune".to_owned()));
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "7"))
        .up_to_n_times(1)
        .mount(&twilio)
        .await;
    assert_eq!(
        sender().send(&message()).await,
        Err(SmsError::Temporary {
            reason: "HTTP 429".to_owned(),
            retry_after: Some(Duration::from_secs(7)),
        })
    );
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&twilio)
        .await;
    assert!(matches!(
        sender().send(&message()).await,
        Err(SmsError::Temporary {
            retry_after: None,
            ..
        })
    ));
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "code": 21211,
            "message": "The 'To' number is not a valid phone number.",
            "status": 400,
        })))
        .mount(&twilio)
        .await;
    match sender().send(&message()).await {
        Err(SmsError::Refused { reason, code }) => {
            assert_eq!(code.as_deref(), Some("21211"));
            assert!(reason.starts_with("HTTP 400 (code 21211)"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn no_server_is_temporary() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let result = client(&format!("http://{address}"), Sender::From("Aas".to_owned()))
        .send(&message())
        .await;
    assert!(
        matches!(result, Err(SmsError::Temporary { .. })),
        "{result:?}"
    );
}

/// Prism validates each request against Twilio's published contract and answers 422 to one
/// that breaks it; the client's requests pass, in both sender forms.
#[tokio::test]
async fn requests_conform_to_the_published_contract() {
    let Ok(prism) = std::env::var("HOMECARE_TWILIO_PRISM_URL") else {
        eprintln!("HOMECARE_TWILIO_PRISM_URL is not set: the contract check runs in .ci/run");
        return;
    };
    for sender in [
        Sender::From("+4790000000".to_owned()),
        Sender::MessagingService(format!("MG{}", "a".repeat(32))),
    ] {
        let accepted = client(&prism, sender.clone()).send(&message()).await;
        let accepted = accepted.unwrap_or_else(|error| panic!("{sender:?}: {error}"));
        assert!(accepted.provider_id.starts_with("SM"), "{accepted:?}");
    }
    // And Prism does check: the same request without `To` is refused.
    let broken = reqwest::Client::new()
        .post(format!(
            "{prism}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        ))
        .basic_auth(ACCOUNT, Some(TOKEN))
        .form(&[("Body", "x"), ("From", "+4790000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status().as_u16(), 422);
}
