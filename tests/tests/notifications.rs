//! Notices end to end: from the RPC that causes them to a Twilio stand-in and a real SMTP
//! server on loopback, with quiet hours, merging, failures, restarts and status reports.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use homecare_proto::appointments::v1::{self as appointments, AppointmentEventType as Event};
use homecare_proto::common::v1::ActorKind;
use homecare_proto::notifications::v1::{
    self as pb, Channel, Channels, NoticeKind as Kind, NoticeStatus as Status, SkipReason,
};
use homecare_proto::patients::v1 as patients;
use homecare_tests::epj::FakeEpj;
use homecare_tests::messages::{new_thread, reply};
use homecare_tests::notices::{
    AUTH_TOKEN, CALLBACK_URL, FakeTwilio, MailServer, SENDER, configure_email, sid,
};
use homecare_tests::people::{ASTRID, KARI, OLA};
use homecare_tests::{
    Backend, TestServer, authorized, error_reason, on_every_backend, test_now, violated_fields,
    visit, visit_at,
};
use tonic::Code;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

on_every_backend!(
    each_kind_of_visit_notice_reaches_the_patient_with_nothing_sensitive,
    proxy_notices_go_to_the_holder_and_to_the_patient_when_staff_acted,
    a_holder_who_asked_hears_of_the_patients_visits_and_one_who_did_not_does_not,
    quiet_hours_hold_sms_from_nine_to_eight_but_not_email,
    quiet_hours_are_those_in_force_when_a_message_is_due,
    settings_changed_while_a_notice_waits_are_those_it_follows,
    a_retry_of_a_notice_the_provider_failed_sends_it_again_once,
    notices_within_the_merge_window_go_as_one,
    a_provider_down_then_up_loses_nothing_and_sends_nothing_twice,
    a_refusal_fails_the_notice_for_staff_who_send_it_again,
    notices_queued_before_a_restart_are_sent_once_after_it,
    status_reports_count_only_with_the_providers_signature,
    an_email_notice_has_subject_text_and_html_and_nothing_sensitive,
    settings_are_checked_field_by_field_and_read_back_as_stored,
    a_reply_is_told_and_a_receipt_goes_by_email_without_subject_or_text,
);

const PHONE: &str = "+4791234567";

/// What no notice may carry: identity numbers, the unit, the reason, service types, names.
fn forbidden() -> Vec<&'static str> {
    vec![
        ASTRID,
        KARI,
        OLA,
        "unit-a",
        "Hos datteren",
        "home_nursing",
        "HOME_NURSING",
        "Astrid",
        "Kari",
    ]
}

fn assert_nothing_sensitive(text: &str) {
    for value in forbidden() {
        assert!(!text.contains(value), "{value:?} in a notice: {text}");
    }
}

fn oslo(text: &str) -> DateTime<Utc> {
    chrono_tz::Europe::Oslo
        .from_local_datetime(
            &chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").expect("a time"),
        )
        .single()
        .expect("one instant")
        .with_timezone(&Utc)
}

fn kinds(notices: &[pb::Notice]) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = notices.iter().map(|notice| notice.kind()).collect();
    kinds.sort_by_key(|kind| *kind as i32);
    kinds
}

/// How many messages carried `notices`.
fn provider_ids(notices: &[pb::Notice]) -> usize {
    let ids: std::collections::BTreeSet<&str> = notices
        .iter()
        .map(|notice| notice.provider_id.as_str())
        .collect();
    ids.len()
}

fn sent(notice: &pb::Notice) -> bool {
    notice.status() == Status::Sent
}

async fn cancel_with_reason(
    server: &TestServer,
    patient: &str,
    appointment: &str,
    request_id: &str,
) {
    server
        .appointments()
        .cancel_appointment(authorized(
            &server.citizen_token(ASTRID),
            appointments::CancelAppointmentRequest {
                patient_id: patient.to_owned(),
                appointment_id: appointment.to_owned(),
                reason: "Hos datteren".to_owned(),
                request_id: request_id.to_owned(),
            },
        ))
        .await
        .expect("cancel");
}

async fn each_kind_of_visit_notice_reaches_the_patient_with_nothing_sensitive(backend: Backend) {
    let twilio = FakeTwilio::accepting().await;
    let epj = FakeEpj::healthy().await;
    epj.first_answer("PUT", 1, ResponseTemplate::new(400)).await;
    let server = TestServer::start_with(backend, |config| {
        twilio.configure(config);
        epj.configure(config);
        // Each notice its own message, to see each text.
        config.notifications.merge_window_seconds = 0;
    })
    .await;
    server.choose(ASTRID, Channels::Sms, "912 34 567", "").await;
    let mut changes = server.watch("unit-a", "").await;

    // Added within 48 hours: told. Added further ahead: not told.
    server.upsert(visit("v-soon", ASTRID, "unit-a", 24)).await;
    let patient = server.own_patient_id(ASTRID).await;
    server.upsert(visit("v-far", ASTRID, "unit-a", 72)).await;
    server.until_notices(ASTRID, 1, sent).await;
    // Moved by the care service.
    server.upsert(visit("v-far", ASTRID, "unit-a", 73)).await;
    // Cancelled by the care service.
    let mut cancelled = visit("v-off", ASTRID, "unit-a", 96);
    server.upsert(cancelled.clone()).await;
    cancelled.status = appointments::AppointmentStatus::Cancelled.into();
    server.upsert(cancelled).await;
    // Carried out.
    let mut done = visit("v-done", ASTRID, "unit-a", 100);
    server.upsert(done.clone()).await;
    done.status = appointments::AppointmentStatus::Completed.into();
    server.upsert(done).await;
    // The patient's own cancellations: the EPJ refuses the first, takes the second.
    let refused = server
        .planned_visit("v-refused", ASTRID, "unit-a", 120)
        .await;
    cancel_with_reason(&server, &patient, &refused, "cancel-1").await;
    changes.until(Event::CancellationFailed, 1).await;
    let taken = server.planned_visit("v-taken", ASTRID, "unit-a", 130).await;
    cancel_with_reason(&server, &patient, &taken, "cancel-2").await;
    changes.until(Event::CancellationConfirmed, 1).await;

    let notices = server.until_notices(ASTRID, 6, sent).await;
    assert_eq!(
        kinds(&notices),
        [
            Kind::VisitChanged,
            Kind::VisitCancelled,
            Kind::VisitAdded,
            Kind::CancellationConfirmed,
            Kind::CancellationFailed,
            Kind::VisitCompleted,
        ]
        .to_vec()
        .tap_sort()
    );
    assert!(
        notices
            .iter()
            .all(|notice| notice.channel() == Channel::Sms && sent(notice))
    );
    assert!(
        notices
            .iter()
            .all(|notice| notice.provider_id.starts_with("SM"))
    );
    assert!(notices.iter().all(|notice| notice.patient_id == patient));

    // Notices that arose together may share a message; every message was sent once.
    let messages = twilio.until(provider_ids(&notices)).await;
    assert_eq!(messages.len(), provider_ids(&notices), "{messages:?}");
    for message in &messages {
        assert_eq!(message.to, PHONE);
        let names: Vec<&str> = message.form.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["Body", "From", "StatusCallback", "To"]);
        assert!(
            message
                .form
                .contains(&("From".to_owned(), SENDER.to_owned()))
        );
        assert!(
            message
                .form
                .contains(&("StatusCallback".to_owned(), CALLBACK_URL.to_owned()))
        );
        assert!(
            message.body.starts_with("Hjemmetjenesten: "),
            "{}",
            message.body
        );
        assert!(
            message.body.contains("https://helsenorge.no"),
            "{}",
            message.body
        );
        assert_nothing_sensitive(&message.body);
        let segments = homecare_sms::segments(&message.body);
        assert_eq!(
            segments.encoding,
            homecare_sms::Encoding::Gsm7,
            "{}",
            message.body
        );
    }
    // The visit added 24 hours after 08:00 Oslo time is told in Oslo time.
    assert!(
        messages.iter().any(|message| message
            .body
            .contains("fått et nytt besøk 02.12.2026 kl. 08:00")),
        "{messages:?}"
    );
    server.stop().await;
}

trait TapSort {
    fn tap_sort(self) -> Self;
}

impl TapSort for Vec<Kind> {
    fn tap_sort(mut self) -> Self {
        self.sort_by_key(|kind| *kind as i32);
        self
    }
}

async fn register_for(server: &TestServer, patient: &str, holder: &str) -> patients::Proxy {
    server
        .patients()
        .register_proxy(authorized(
            &server.nurse_token("nurse-kari", &["unit-a"]),
            patients::RegisterProxyRequest {
                patient_id: patient.to_owned(),
                holder_national_id: holder.to_owned(),
                holder_name: "Ola Nordmann".to_owned(),
                patient_name: "Astrid Hansen".to_owned(),
                scopes: vec![patients::Scope::ReadVisits.into()],
                valid_time: None,
                basis: patients::ProxyBasis::PaperForm.into(),
                document_reference: "2026/1".to_owned(),
                request_id: format!("register-{holder}"),
                ..Default::default()
            },
        ))
        .await
        .expect("register")
        .into_inner()
        .proxy
        .expect("proxy")
}

async fn end_proxy(server: &TestServer, token: &str, patient: &str, proxy: &str) {
    server
        .patients()
        .end_proxy(authorized(
            token,
            patients::EndProxyRequest {
                patient_id: patient.to_owned(),
                proxy_id: proxy.to_owned(),
            },
        ))
        .await
        .expect("end");
}

async fn proxy_notices_go_to_the_holder_and_to_the_patient_when_staff_acted(backend: Backend) {
    let twilio = FakeTwilio::accepting().await;
    let server = TestServer::start_with(backend, |config| {
        twilio.configure(config);
        config.notifications.merge_window_seconds = 0;
        // No poll within the test: the proxies' topic is what wakes the notifier.
        config.notifications.poll_millis = 3_600_000;
    })
    .await;
    server.choose(ASTRID, Channels::Sms, PHONE, "").await;
    server.choose(KARI, Channels::Sms, "+4798765432", "").await;
    // Staff reach the patient through a visit of their unit.
    server.upsert(visit("v-1", ASTRID, "unit-a", 72)).await;
    let patient = server.own_patient_id(ASTRID).await;

    let kari = server
        .grant(ASTRID, &patient, KARI, &[patients::Scope::ReadVisits])
        .await
        .expect("grant");
    server
        .patients()
        .update_proxy(authorized(
            &server.citizen_token(ASTRID),
            patients::UpdateProxyRequest {
                patient_id: patient.clone(),
                proxy_id: kari.id.clone(),
                scopes: vec![
                    patients::Scope::ReadVisits.into(),
                    patients::Scope::CancelVisits.into(),
                ],
                end_time: None,
                update_mask: vec!["scopes".into()],
            },
        ))
        .await
        .expect("update");
    let ola = register_for(&server, &patient, OLA).await;
    let nurse = server.nurse_token("nurse-kari", &["unit-a"]);
    end_proxy(&server, &nurse, &patient, &kari.id).await;
    end_proxy(&server, &server.citizen_token(ASTRID), &patient, &ola.id).await;

    let kari_notices = server.until_notices(KARI, 3, sent).await;
    assert_eq!(
        kinds(&kari_notices),
        [Kind::ProxyGranted, Kind::ProxyChanged, Kind::ProxyEnded]
    );
    // Told of a registration and of an ending by staff; not of the ending she made herself.
    let astrid_notices = server.until_notices(ASTRID, 2, sent).await;
    assert_eq!(
        kinds(&astrid_notices),
        [Kind::ProxyEnded, Kind::ProxyRegistered]
    );
    // Ola made no settings: his notices are kept as skipped, for lack of a contact.
    let ola_notices = server
        .until_notices(OLA, 2, |notice| notice.status() == Status::Skipped)
        .await;
    assert_eq!(kinds(&ola_notices), [Kind::ProxyGranted, Kind::ProxyEnded]);
    assert!(
        ola_notices
            .iter()
            .all(|notice| notice.skip_reason() == SkipReason::NoContact)
    );
    let messages = provider_ids(&kari_notices) + provider_ids(&astrid_notices);
    for message in twilio.until(messages).await {
        assert_nothing_sensitive(&message.body);
    }
    assert_eq!(twilio.received().await.len(), messages);

    // Staff listing the patient's notices see who was told: the patient, or a holder by the
    // name the proxy gives, never an identity number.
    let listed = server
        .notifications()
        .list_patient_notices(authorized(
            &nurse,
            pb::ListPatientNoticesRequest {
                patient_id: patient.clone(),
                page_size: 200,
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .notices;
    let told = |kind: ActorKind| {
        let mut names: Vec<String> = listed
            .iter()
            .filter(|notice| notice.recipient_kind() == kind)
            .map(|notice| notice.recipient_name.clone())
            .collect();
        names.sort();
        names
    };
    assert_eq!(told(ActorKind::Patient), ["", ""]);
    let holders = told(ActorKind::Proxy);
    assert_eq!(holders.len(), 5, "{holders:?}");
    assert_eq!(
        holders
            .iter()
            .filter(|name| *name == "Kari Nordmann")
            .count(),
        3,
        "{holders:?}"
    );
    assert!(
        holders
            .iter()
            .all(|name| !name.is_empty() && !name.contains(OLA))
    );
    server.stop().await;
}

async fn follow(
    server: &TestServer,
    holder: &str,
    patient: &str,
    enabled: bool,
) -> Result<(), tonic::Status> {
    server
        .notifications()
        .set_patient_notifications(authorized(
            &server.citizen_token(holder),
            pb::SetPatientNotificationsRequest {
                patient_id: patient.to_owned(),
                enabled,
            },
        ))
        .await
        .map(|_| ())
}

async fn a_holder_who_asked_hears_of_the_patients_visits_and_one_who_did_not_does_not(
    backend: Backend,
) {
    let twilio = FakeTwilio::accepting().await;
    let server = TestServer::start_with(backend, |config| {
        twilio.configure(config);
        // Each notice its own message, to see each text.
        config.notifications.merge_window_seconds = 0;
    })
    .await;
    server.upsert(visit("v-1", ASTRID, "unit-a", 72)).await;
    let patient = server.own_patient_id(ASTRID).await;
    server.choose(KARI, Channels::Sms, "+4798765432", "").await;
    server.choose(OLA, Channels::Sms, "+4797777777", "").await;
    server
        .grant(ASTRID, &patient, KARI, &[patients::Scope::ReadVisits])
        .await
        .expect("grant");
    server
        .grant(ASTRID, &patient, OLA, &[patients::Scope::ReadAccessLog])
        .await
        .expect("grant");
    follow(&server, KARI, &patient, true).await.expect("follow");
    // Without a scope to see visits or messages, a holder cannot ask for notices.
    let refused = follow(&server, OLA, &patient, true)
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // The patient's own notices follow her own settings.
    let own = follow(&server, ASTRID, &patient, true)
        .await
        .expect_err("refused");
    assert_eq!(own.code(), Code::FailedPrecondition);
    // A stranger's patient id is not found.
    let unknown = follow(&server, KARI, &uuid::Uuid::new_v4().to_string(), true)
        .await
        .expect_err("refused");
    assert_eq!(unknown.code(), Code::NotFound);
    // The grant's SMS has gone, so the visit's notice is a message of its own.
    server
        .until_notices(KARI, 1, |notice| {
            notice.kind() == Kind::ProxyGranted && sent(notice)
        })
        .await;

    server.upsert(visit("v-soon", ASTRID, "unit-a", 24)).await;
    let kari = server
        .until_notices(KARI, 2, |notice| {
            (notice.kind() == Kind::ProxyGranted || notice.kind() == Kind::VisitAdded)
                && sent(notice)
        })
        .await;
    assert_eq!(kinds(&kari), [Kind::VisitAdded, Kind::ProxyGranted]);
    let to_kari: Vec<_> = twilio
        .until(3)
        .await
        .into_iter()
        .filter(|message| message.to == "+4798765432")
        .collect();
    assert!(
        to_kari.iter().any(|message| message
            .body
            .contains("En du er fullmektig for har fått et nytt besøk")),
        "{to_kari:?}"
    );
    // Ola hears of his own proxy only. Astrid made no settings: skipped.
    let astrid = server
        .until_notices(ASTRID, 1, |notice| notice.kind() == Kind::VisitAdded)
        .await;
    assert_eq!(astrid[0].skip_reason(), SkipReason::NoContact);
    assert_eq!(
        kinds(&server.until_notices(OLA, 1, |_| true).await),
        [Kind::ProxyGranted]
    );

    // Kari changes her mind: the next visit is not told to her.
    follow(&server, KARI, &patient, false)
        .await
        .expect("unfollow");
    server.upsert(visit("v-sooner", ASTRID, "unit-a", 20)).await;
    server
        .until_notices(ASTRID, 2, |notice| notice.kind() == Kind::VisitAdded)
        .await;
    assert_eq!(
        kinds(&server.notices_of(KARI).await),
        [Kind::VisitAdded, Kind::ProxyGranted]
    );
    server.stop().await;
}

/// When the SMS messages still waiting are due.
async fn due_of_queued(server: &TestServer) -> Vec<DateTime<Utc>> {
    use homecare_notifications::entity::delivery;
    use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
    delivery::Entity::find()
        .filter(delivery::Column::State.eq("pending"))
        .filter(delivery::Column::Channel.eq("sms"))
        .all(&server.db)
        .await
        .expect("deliveries")
        .into_iter()
        .map(|row| row.next_attempt_at)
        .collect()
}

/// Waits (at most 10 seconds) until the waiting SMS are due at `expected` (the worker holds a
/// message for quiet hours once it is due to go); their due times then.
async fn until_due_of_queued(
    server: &TestServer,
    expected: &[DateTime<Utc>],
) -> Vec<DateTime<Utc>> {
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(10);
    loop {
        let due = due_of_queued(server).await;
        if due == expected || tokio::time::Instant::now() >= deadline {
            return due;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
}

fn quiet_hours(start: &str, end: &str) -> Option<homecare_notifications::config::QuietHoursConfig> {
    Some(homecare_notifications::config::QuietHoursConfig {
        start: start.to_owned(),
        end: end.to_owned(),
    })
}

/// A server whose SMS provider is `twilio`, where Astrid, who chose SMS, was told of a visit
/// added for tomorrow (the provider's first message).
async fn a_first_sms_sent(backend: Backend) -> (FakeTwilio, TestServer) {
    let twilio = FakeTwilio::accepting().await;
    let server = TestServer::start_with(backend, |config| twilio.configure(config)).await;
    server.choose(ASTRID, Channels::Sms, PHONE, "").await;
    server.upsert(visit("v-1", ASTRID, "unit-a", 24)).await;
    server.until_notices(ASTRID, 1, sent).await;
    (twilio, server)
}

/// A server whose SMS provider is `twilio`, where a visit added at `night` (on 1 December)
/// left Astrid's SMS held for the quiet hours until eight the next morning.
async fn an_sms_held_until_eight(
    backend: Backend,
    night: DateTime<Utc>,
) -> (FakeTwilio, TestServer) {
    let twilio = FakeTwilio::accepting().await;
    let server = TestServer::start_with(backend, |config| {
        twilio.configure(config);
        config.notifications.merge_window_seconds = 0;
    })
    .await;
    server.choose(ASTRID, Channels::Sms, PHONE, "").await;
    server.clock.set(night);
    server
        .upsert(visit_at(
            "v-1",
            ASTRID,
            "unit-a",
            oslo("2026-12-02 10:00:00"),
        ))
        .await;
    let eight = oslo("2026-12-02 08:00:00");
    assert_eq!(until_due_of_queued(&server, &[eight]).await, [eight]);
    (twilio, server)
}

/// Quiet hours are those in force when a message is due to go, not when it was queued: an
/// SMS held at night follows the quiet hours a restart brings (ending at seven instead of
/// eight), and goes at once when a restart switches them off (start = end).
async fn quiet_hours_are_those_in_force_when_a_message_is_due(backend: Backend) {
    let (twilio, server) = an_sms_held_until_eight(backend, oslo("2026-12-01 22:30:00")).await;

    let server = server
        .restart(|config| config.notifications.sms_quiet_hours = quiet_hours("22:00", "07:00"))
        .await;
    let seven = oslo("2026-12-02 07:00:00");
    assert_eq!(until_due_of_queued(&server, &[seven]).await, [seven]);
    assert!(
        twilio.received().await.is_empty(),
        "still quiet at half past ten"
    );

    let server = server
        .restart(|config| config.notifications.sms_quiet_hours = quiet_hours("08:00", "08:00"))
        .await;
    assert_eq!(
        twilio.until(1).await.len(),
        1,
        "no quiet hours: it goes now"
    );
    let notices = server.until_notices(ASTRID, 1, sent).await;
    assert_eq!(notices.len(), 1);
    assert!(sent(&notices[0]));
    assert_eq!(twilio.received().await.len(), 1, "once");
    server.stop().await;
}

/// What the citizen chooses while an SMS waits for quiet hours to end is what it follows when
/// it goes: the number she gave since, and nothing at all once she opted out.
async fn settings_changed_while_a_notice_waits_are_those_it_follows(backend: Backend) {
    let (twilio, server) = an_sms_held_until_eight(backend, oslo("2026-12-01 23:00:00")).await;
    let eight = oslo("2026-12-02 08:00:00");
    server
        .choose(ASTRID, Channels::Sms, "+4798765432", "")
        .await;
    server.clock.set(eight);
    let received = twilio.until(1).await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].to, "+4798765432",
        "the number in force when it went"
    );

    // The next night another waits, and she opts out meanwhile: it is skipped, unsent.
    server.clock.set(oslo("2026-12-02 23:00:00"));
    server
        .upsert(visit_at(
            "v-2",
            ASTRID,
            "unit-a",
            oslo("2026-12-03 10:00:00"),
        ))
        .await;
    let next_eight = oslo("2026-12-03 08:00:00");
    assert_eq!(
        until_due_of_queued(&server, &[next_eight]).await,
        [next_eight]
    );
    server.choose(ASTRID, Channels::None, "", "").await;
    server.clock.set(next_eight);
    let notices = server
        .until_notices(ASTRID, 1, |notice| notice.status() == Status::Skipped)
        .await;
    let skipped: Vec<_> = notices
        .iter()
        .filter(|notice| notice.status() == Status::Skipped)
        .collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].skip_reason(), SkipReason::OptedOut);
    assert_eq!(twilio.received().await.len(), 1, "nothing more was sent");
    server.stop().await;
}

/// An SMS the provider took and later reported failed (a signed status report, ErrorCode
/// 30008) is listed for staff as failed; their retry sends it again, once, and the notice
/// shows the new message's provider id; a late report on the old message changes nothing.
async fn a_retry_of_a_notice_the_provider_failed_sends_it_again_once(backend: Backend) {
    let (twilio, server) = a_first_sms_sent(backend).await;
    let first = sid(0);
    let failed = [
        ("AccountSid", homecare_tests::notices::ACCOUNT),
        ("ErrorCode", "30008"),
        ("MessageSid", first.as_str()),
        ("MessageStatus", "failed"),
    ];
    assert_eq!(
        report(&server, &failed, Some(signed(&failed, AUTH_TOKEN))).await,
        200
    );
    let patient = server.own_patient_id(ASTRID).await;
    let nurse = server.nurse_token("nurse-kari", &["unit-a"]);
    let listed = server.failed_notices(&nurse, &patient).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].error_code, "30008");
    assert_eq!(listed[0].provider_id, first);

    let retried = server
        .retry_notice(&nurse, &patient, &listed[0].id)
        .await
        .expect("retry");
    assert_eq!(retried.status(), Status::Queued);
    assert_eq!(
        retried.error_code, "",
        "the old error is gone with the new attempt"
    );
    let received = twilio.until(2).await;
    assert_eq!(received.len(), 2, "sent again");
    assert_eq!(received[1].to, PHONE);
    let notices = server.until_notices(ASTRID, 1, sent).await;
    assert!(sent(&notices[0]), "{:?}", notices[0]);
    assert_eq!(notices[0].provider_id, sid(1), "the new message's id");
    assert!(server.failed_notices(&nurse, &patient).await.is_empty());

    // A late report on the first message does not touch the notice any more.
    let late = [
        ("AccountSid", homecare_tests::notices::ACCOUNT),
        ("MessageSid", first.as_str()),
        ("MessageStatus", "undelivered"),
    ];
    assert_eq!(
        report(&server, &late, Some(signed(&late, AUTH_TOKEN))).await,
        200
    );
    assert_eq!(server.notices_of(ASTRID).await[0].status(), Status::Sent);
    // A second retry finds nothing failed, and nothing more is sent.
    let again = server
        .retry_notice(&nurse, &patient, &listed[0].id)
        .await
        .expect_err("not failed");
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(twilio.received().await.len(), 2);
    server.stop().await;
}

async fn quiet_hours_hold_sms_from_nine_to_eight_but_not_email(backend: Backend) {
    let twilio = FakeTwilio::accepting().await;
    let mail = MailServer::start();
    let server = TestServer::start_with(backend, |config| {
        twilio.configure(config);
        configure_email(&mail, config);
        config.notifications.merge_window_seconds = 0;
    })
    .await;
    server
        .choose(ASTRID, Channels::SmsAndEmail, PHONE, "astrid@example.no")
        .await;
    // A second before nine: the SMS goes at once.
    server.clock.set(oslo("2026-12-01 20:59:59"));
    server
        .upsert(visit_at(
            "v-1",
            ASTRID,
            "unit-a",
            oslo("2026-12-02 10:00:00"),
        ))
        .await;
    server.until_notices(ASTRID, 2, sent).await;
    assert_eq!(twilio.until(1).await.len(), 1);

    // At nine: the e-mail goes, the SMS waits until eight in the morning.
    server.clock.set(oslo("2026-12-01 21:00:00"));
    server
        .upsert(visit_at(
            "v-2",
            ASTRID,
            "unit-a",
            oslo("2026-12-02 11:00:00"),
        ))
        .await;
    server
        .until_notices(ASTRID, 3, |notice| {
            notice.channel() == Channel::Email && sent(notice) || notice.status() == Status::Queued
        })
        .await;
    assert_eq!(mail.wait_for(2, StdDuration::from_secs(10)).await.len(), 2);
    // After midnight, another: it joins the waiting SMS.
    server.clock.set(oslo("2026-12-02 00:30:00"));
    server
        .upsert(visit_at(
            "v-3",
            ASTRID,
            "unit-a",
            oslo("2026-12-02 12:00:00"),
        ))
        .await;
    mail.wait_for(3, StdDuration::from_secs(10)).await;
    // The mail reaches the server before its notice is marked sent: wait for that too, or the
    // e-mail's notice would still count as queued below.
    server
        .until_notices(ASTRID, 3, |notice| {
            notice.channel() == Channel::Email && sent(notice)
        })
        .await;
    server
        .until_notices(ASTRID, 2, |notice| notice.status() == Status::Queued)
        .await;
    assert_eq!(
        until_due_of_queued(&server, &[oslo("2026-12-02 08:00:00")]).await,
        [oslo("2026-12-02 08:00:00")]
    );
    // A second before eight nothing moves; at eight the two go as one SMS.
    server.clock.set(oslo("2026-12-02 07:59:59"));
    server.upsert(visit("v-far", ASTRID, "unit-a", 200)).await;
    let before_eight = server
        .until_notices(ASTRID, 2, |notice| notice.status() == Status::Queued)
        .await;
    assert_eq!(
        before_eight
            .iter()
            .filter(|notice| notice.status() == Status::Queued)
            .count(),
        2
    );
    assert_eq!(twilio.received().await.len(), 1);
    server.clock.set(oslo("2026-12-02 08:00:00"));
    let all = server.until_notices(ASTRID, 6, sent).await;
    assert_eq!(all.iter().filter(|notice| sent(notice)).count(), 6);
    let messages = twilio.until(2).await;
    assert_eq!(messages.len(), 2);
    assert!(
        messages[1].body.contains("Du har 2 nye varsler om besøk."),
        "{}",
        messages[1].body
    );
    server.stop().await;
}

async fn notices_within_the_merge_window_go_as_one(backend: Backend) {
    let (twilio, server) = a_first_sms_sent(backend).await;
    assert_eq!(twilio.until(1).await.len(), 1);
    // Within the two minutes after it, three more changes wait and go as one.
    server.clock.set(test_now() + Duration::seconds(30));
    server.upsert(visit("v-2", ASTRID, "unit-a", 25)).await;
    server.upsert(visit("v-3", ASTRID, "unit-a", 26)).await;
    server.upsert(visit("v-1", ASTRID, "unit-a", 27)).await;
    server
        .until_notices(ASTRID, 3, |notice| notice.status() == Status::Queued)
        .await;
    assert_eq!(
        due_of_queued(&server).await,
        [test_now() + Duration::seconds(120)]
    );
    server.clock.set(test_now() + Duration::seconds(120));
    server.until_notices(ASTRID, 4, sent).await;
    let messages = twilio.until(2).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[1].body.contains("Du har 3 nye varsler om besøk."),
        "{}",
        messages[1].body
    );
    server.stop().await;
}

async fn a_provider_down_then_up_loses_nothing_and_sends_nothing_twice(backend: Backend) {
    let twilio = FakeTwilio {
        server: wiremock::MockServer::start().await,
    };
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&twilio.server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&twilio.server)
        .await;
    twilio.mount_accepting().await;
    let server = TestServer::start_with(backend, |config| twilio.configure(config)).await;
    server.choose(ASTRID, Channels::Sms, PHONE, "").await;
    server.upsert(visit("v-1", ASTRID, "unit-a", 24)).await;
    // Retries are scheduled by the server's clock: let a minute pass, a second at a time.
    for _ in 0..60 {
        if twilio.received().await.len() >= 4 {
            break;
        }
        let now = homecare_core::Clock::now(&*server.clock);
        server.clock.set(now + Duration::seconds(1));
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    let notices = server.until_notices(ASTRID, 1, sent).await;
    assert_eq!(notices[0].provider_id, sid(0));
    // Three failed attempts, one that went through, and no more.
    let attempts = twilio.until(4).await;
    assert_eq!(attempts.len(), 4);
    assert!(
        attempts
            .iter()
            .all(|attempt| attempt.body == attempts[0].body)
    );
    server.stop().await;
    assert_eq!(twilio.received().await.len(), 4);
}

async fn a_refusal_fails_the_notice_for_staff_who_send_it_again(backend: Backend) {
    let twilio = FakeTwilio {
        server: wiremock::MockServer::start().await,
    };
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "code": 21211, "message": "The 'To' number is not valid.", "status": 400
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&twilio.server)
        .await;
    twilio.mount_accepting().await;
    let server = TestServer::start_with(backend, |config| twilio.configure(config)).await;
    server.choose(ASTRID, Channels::Sms, PHONE, "").await;
    server.upsert(visit("v-1", ASTRID, "unit-a", 24)).await;
    let patient = server.own_patient_id(ASTRID).await;
    let failed = server
        .until_notices(ASTRID, 1, |notice| notice.status() == Status::Failed)
        .await;
    assert_eq!(failed[0].error_code, "21211");
    assert!(
        failed[0].last_error.is_empty(),
        "the citizen does not see the provider's text"
    );
    assert_eq!(twilio.received().await.len(), 1, "a refusal is not retried");

    let nurse = server.nurse_token("nurse-kari", &["unit-a"]);
    let before = server.count_rows("access_log_entries").await;
    let listed = server.failed_notices(&nurse, &patient).await;
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].last_error.contains("21211"),
        "{}",
        listed[0].last_error
    );
    assert!(server.count_rows("access_log_entries").await > before);
    // Staff of another unit do not find the patient.
    let other = server
        .notifications()
        .list_patient_notices(authorized(
            &server.nurse_token("nurse-b", &["unit-b"]),
            pb::ListPatientNoticesRequest {
                patient_id: patient.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("not found");
    assert_eq!(other.code(), Code::NotFound);

    let retried = server
        .retry_notice(&nurse, &patient, &listed[0].id)
        .await
        .expect("retry");
    assert_eq!(retried.status(), Status::Queued);
    server.until_notices(ASTRID, 1, sent).await;
    assert_eq!(twilio.until(2).await.len(), 2);
    // Only a failed notice can be sent again.
    let again = server
        .retry_notice(&nurse, &patient, &listed[0].id)
        .await
        .expect_err("not failed");
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&again).as_deref(), Some("NOT_FAILED"));
    server.stop().await;
}

async fn notices_queued_before_a_restart_are_sent_once_after_it(backend: Backend) {
    let twilio = FakeTwilio::accepting().await;
    // No SMS provider yet: the notice waits.
    let server = TestServer::start(backend).await;
    server.choose(ASTRID, Channels::Sms, PHONE, "").await;
    server.upsert(visit("v-1", ASTRID, "unit-a", 24)).await;
    server
        .until_notices(ASTRID, 1, |notice| notice.status() == Status::Queued)
        .await;
    let server = server.restart(|config| twilio.configure(config)).await;
    let notices = server.until_notices(ASTRID, 1, sent).await;
    assert_eq!(notices.len(), 1);
    assert_eq!(twilio.until(1).await.len(), 1);
    server.stop().await;
    assert_eq!(twilio.received().await.len(), 1);
}

async fn report(
    server: &TestServer,
    params: &[(&str, &str)],
    signature: Option<String>,
) -> reqwest::StatusCode {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/callbacks/sms/status", server.address))
        .form(params);
    if let Some(signature) = signature {
        request = request.header("X-Twilio-Signature", signature);
    }
    request.send().await.expect("report").status()
}

fn signed(params: &[(&str, &str)], key: &str) -> String {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    homecare_sms::signature(key.as_bytes(), CALLBACK_URL, &owned)
}

async fn status_reports_count_only_with_the_providers_signature(backend: Backend) {
    let (_twilio, server) = a_first_sms_sent(backend).await;
    let first = sid(0);
    let delivered = [
        ("AccountSid", homecare_tests::notices::ACCOUNT),
        ("MessageSid", first.as_str()),
        ("MessageStatus", "delivered"),
    ];
    assert_eq!(report(&server, &delivered, None).await, 403);
    assert_eq!(
        report(&server, &delivered, Some(signed(&delivered, "wrong"))).await,
        403
    );
    assert_eq!(
        report(&server, &delivered, Some("garbage".to_owned())).await,
        403
    );
    assert_eq!(server.notices_of(ASTRID).await[0].status(), Status::Sent);

    assert_eq!(
        report(&server, &delivered, Some(signed(&delivered, AUTH_TOKEN))).await,
        200
    );
    assert_eq!(
        server.notices_of(ASTRID).await[0].status(),
        Status::Delivered
    );
    // A late "sent" does not take it back.
    let late = [("MessageSid", first.as_str()), ("MessageStatus", "sent")];
    assert_eq!(
        report(&server, &late, Some(signed(&late, AUTH_TOKEN))).await,
        200
    );
    assert_eq!(
        server.notices_of(ASTRID).await[0].status(),
        Status::Delivered
    );
    // An unknown message: 200, and nothing changes.
    let unknown_sid = sid(99);
    let unknown = [
        ("MessageSid", unknown_sid.as_str()),
        ("MessageStatus", "failed"),
    ];
    assert_eq!(
        report(&server, &unknown, Some(signed(&unknown, AUTH_TOKEN))).await,
        200
    );

    // An undelivered message keeps the provider's error code.
    server.clock.set(test_now() + Duration::minutes(10));
    server.upsert(visit("v-2", ASTRID, "unit-a", 24)).await;
    server.until_notices(ASTRID, 2, sent).await;
    let second = sid(1);
    let undelivered = [
        ("ErrorCode", "30005"),
        ("MessageSid", second.as_str()),
        ("MessageStatus", "undelivered"),
    ];
    assert_eq!(
        report(
            &server,
            &undelivered,
            Some(signed(&undelivered, AUTH_TOKEN))
        )
        .await,
        200
    );
    let notices = server.notices_of(ASTRID).await;
    assert_eq!(notices[0].status(), Status::Undelivered);
    assert_eq!(notices[0].error_code, "30005");
    assert_eq!(notices[1].status(), Status::Delivered);
    server.stop().await;
}

async fn an_email_notice_has_subject_text_and_html_and_nothing_sensitive(backend: Backend) {
    let mail = MailServer::start();
    let server = TestServer::start_with(backend, |config| configure_email(&mail, config)).await;
    server
        .choose(ASTRID, Channels::Email, "", "astrid@example.no")
        .await;
    server.upsert(visit("v-1", ASTRID, "unit-a", 24)).await;
    let notices = server.until_notices(ASTRID, 1, sent).await;
    assert_eq!(notices[0].channel(), Channel::Email);
    let received = mail.wait_for(1, StdDuration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, ["astrid@example.no"]);
    let data = &received[0].data;
    assert!(data.contains("multipart/alternative"), "{data}");
    let subject = data
        .lines()
        .find(|line| line.starts_with("Subject: "))
        .expect("a subject");
    assert!(
        subject.is_ascii() && subject.contains("=?utf-8?"),
        "{subject}"
    );
    assert!(
        data.contains("@as.kommune.test>"),
        "a Message-ID per notice: {data}"
    );
    assert_nothing_sensitive(data);
    server.stop().await;
}

async fn settings_are_checked_field_by_field_and_read_back_as_stored(backend: Backend) {
    let server = TestServer::start(backend).await;
    let update = |request: pb::UpdateNotificationSettingsRequest| {
        let mut client = server.notifications();
        let token = server.citizen_token(ASTRID);
        async move {
            client
                .update_notification_settings(authorized(&token, request))
                .await
        }
    };
    let refused = update(pb::UpdateNotificationSettingsRequest {
        channels: Channels::SmsAndEmail.into(),
        phone_number: "12 34".into(),
        email_address: "astrid(at)example.no".into(),
        language: 9,
    })
    .await
    .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&refused),
        ["phone_number", "email_address", "language"]
    );
    assert!(!refused.message().contains("12 34"));
    let missing = update(pb::UpdateNotificationSettingsRequest {
        channels: Channels::Sms.into(),
        ..Default::default()
    })
    .await
    .expect_err("refused");
    assert_eq!(violated_fields(&missing), ["phone_number"]);
    assert_eq!(server.count_rows("notification_settings").await, 0);

    let stored = update(pb::UpdateNotificationSettingsRequest {
        channels: Channels::Sms.into(),
        phone_number: "912 34 567".into(),
        email_address: String::new(),
        language: pb::Language::Nn.into(),
    })
    .await
    .expect("stored")
    .into_inner()
    .settings
    .expect("settings");
    assert_eq!(stored.phone_number, PHONE);
    let read = server
        .notifications()
        .get_notification_settings(authorized(
            &server.citizen_token(ASTRID),
            pb::GetNotificationSettingsRequest {},
        ))
        .await
        .expect("read")
        .into_inner()
        .settings
        .expect("settings");
    assert_eq!(read, stored);
    assert_eq!(read.language(), pb::Language::Nn);
    // Staff have no settings of their own here.
    let staff = server
        .notifications()
        .get_notification_settings(authorized(
            &server.nurse_token("nurse", &["unit-a"]),
            pb::GetNotificationSettingsRequest {},
        ))
        .await
        .expect_err("citizens only");
    assert_eq!(staff.code(), Code::PermissionDenied);
    server.stop().await;
}

async fn a_reply_is_told_and_a_receipt_goes_by_email_without_subject_or_text(backend: Backend) {
    let twilio = FakeTwilio::accepting().await;
    let mail = MailServer::start();
    let server = TestServer::start_with(backend, |config| {
        twilio.configure(config);
        configure_email(&mail, config);
        config.notifications.merge_window_seconds = 0;
    })
    .await;
    let patient = server
        .own_patient_id_after(&visit("v-1", ASTRID, "unit-a", 72))
        .await;
    server
        .choose(
            ASTRID,
            Channels::SmsAndEmail,
            "912 34 567",
            "astrid@example.no",
        )
        .await;
    // Kari follows her mother with the messaging scope, by SMS only, with no address.
    server
        .grant(ASTRID, &patient, KARI, &[patients::Scope::Messaging])
        .await
        .expect("grant");
    // The grant is decided (skipped: Kari has no contact yet) before she chooses SMS, so
    // that her one SMS below is the answer's, however late the notifier reads the grant.
    let granted = server
        .until_notices(KARI, 1, |notice| notice.kind() == Kind::ProxyGranted)
        .await;
    assert!(granted.iter().any(|notice| {
        notice.kind() == Kind::ProxyGranted && notice.status() == Status::Skipped
    }));
    server.choose(KARI, Channels::Sms, "+4791111111", "").await;
    server
        .notifications()
        .set_patient_notifications(authorized(
            &server.citizen_token(KARI),
            pb::SetPatientNotificationsRequest {
                patient_id: patient.clone(),
                enabled: true,
            },
        ))
        .await
        .expect("with the messaging scope, Kari follows the answers");

    // Astrid writes: a receipt by e-mail only.
    let thread = server
        .create_thread(
            ASTRID,
            new_thread(&patient, "unit-a", "Sårbehandling", "Såret blør igjen"),
        )
        .await
        .expect("sent")
        .thread
        .expect("thread");
    let notices = server
        .until_notices(ASTRID, 1, |notice| {
            notice.kind() == Kind::MessageReceived && sent(notice)
        })
        .await;
    let receipts: Vec<&pb::Notice> = notices
        .iter()
        .filter(|notice| notice.kind() == Kind::MessageReceived)
        .collect();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].channel(), Channel::Email);
    // Kari writes too (SMS only, no address): her receipt is skipped for want of one.
    server
        .messaging()
        .reply_to_thread(authorized(
            &server.citizen_token(KARI),
            reply(&patient, &thread.id, "Hun trenger hjelp i dag"),
        ))
        .await
        .expect("Kari writes");
    let karis = server
        .until_notices(KARI, 1, |notice| notice.kind() == Kind::MessageReceived)
        .await;
    let kari_receipt = karis
        .iter()
        .find(|notice| notice.kind() == Kind::MessageReceived)
        .expect("Kari's receipt");
    assert_eq!(kari_receipt.status(), Status::Skipped);
    assert_eq!(kari_receipt.skip_reason(), SkipReason::NoContact);

    // Staff answer: Astrid hears by SMS and e-mail, Kari by SMS, for her mother.
    server
        .messaging()
        .reply_to_thread(authorized(
            &server.nurse_token("nurse-a", &["unit-a"]),
            reply("", &thread.id, "Vi kommer innom kl. 14"),
        ))
        .await
        .expect("answered");
    let notices = server
        .until_notices(ASTRID, 2, |notice| {
            notice.kind() == Kind::MessageReply && sent(notice)
        })
        .await;
    let mut replies: Vec<Channel> = notices
        .iter()
        .filter(|notice| notice.kind() == Kind::MessageReply)
        .map(|notice| notice.channel())
        .collect();
    replies.sort_by_key(|channel| *channel as i32);
    assert_eq!(replies, [Channel::Sms, Channel::Email]);
    let karis = server
        .until_notices(KARI, 1, |notice| {
            notice.kind() == Kind::MessageReply && sent(notice)
        })
        .await;
    let kari_reply = karis
        .iter()
        .find(|notice| notice.kind() == Kind::MessageReply)
        .expect("Kari hears of the answer");
    assert_eq!(kari_reply.channel(), Channel::Sms);
    let texts = twilio.until(2).await;
    assert_eq!(texts.len(), 2, "Astrid's and Kari's SMS");
    let emails = mail.wait_for(2, StdDuration::from_secs(10)).await;
    assert_eq!(emails.len(), 2, "the receipt and the reply");
    for text in texts
        .iter()
        .map(|sms| sms.body.clone())
        .chain(emails.iter().map(|mail| mail.data.clone()))
    {
        assert_nothing_sensitive(&text);
        for secret in ["Sårbehandling", "Såret", "blør", "kl. 14", "trenger hjelp"] {
            assert!(!text.contains(secret), "{secret:?} in a notice: {text}");
        }
    }
    server.stop().await;
}
