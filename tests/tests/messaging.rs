//! Secure messaging over gRPC, on SQLite and PostgreSQL: writing and receipts, drafts, who
//! sees what, the staff inbox, late cancellations as requests, and attachments.

use chrono::{DateTime, Datelike as _, TimeZone as _, Utc};
use homecare_core::timestamp::to_proto;
use homecare_proto::appointments::v1 as appointments;
use homecare_proto::common::v1::ActorKind;
use homecare_proto::messaging::v1 as pb;
use homecare_proto::patients::v1::Scope;
use homecare_tests::messages::{elf_bytes, new_thread, pdf_bytes, reply};
use homecare_tests::people::{ASTRID, BJARNE, KARI};
use homecare_tests::{
    Backend, TestServer, authorized, error_metadata, error_reason, on_every_backend, test_now,
    violated_fields, visit, visit_at,
};
use tonic::Code;

on_every_backend!(
    a_citizen_writes_and_gets_a_receipt_due_the_first_working_day_after,
    the_due_date_skips_easter_and_weekends_and_follows_the_clocks,
    a_retry_returns_the_same_receipt_and_a_reused_request_id_is_refused,
    bad_text_is_refused_naming_the_field_and_nothing_is_stored,
    other_patients_and_other_units_see_nothing,
    a_proxy_needs_the_messaging_scope_and_the_patient_sees_who_wrote,
    a_draft_is_seen_by_its_author_only_until_sent,
    staff_answer_reassign_and_close_from_their_inbox,
    a_late_cancellation_becomes_a_request_to_the_visit_s_unit,
    attachments_are_typed_by_their_bytes_and_bounded,
    office_files_are_typed_by_their_package_in_any_order_of_parts,
    units_file_names_and_download_chunks_are_as_the_contract_says,
    an_upload_cut_off_halfway_leaves_nothing,
    staff_follow_their_units_in_a_resumable_stream,
    every_kind_of_step_wakes_the_inbox_streams,
    an_inbox_stream_from_now_skips_threads_started_before_it_while_a_transaction_is_open,
    the_inbox_of_several_units_pages_in_one_order,
    staff_attach_a_file_to_an_answer_and_the_patient_downloads_it,
);

fn oslo(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Oslo
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("a time in Oslo")
        .to_utc()
}

fn date(year: i32, month: u32, day: u32) -> homecare_proto::google::Date {
    homecare_proto::google::Date {
        year,
        month: i32::try_from(month).unwrap(),
        day: i32::try_from(day).unwrap(),
    }
}

/// A stream of unit-a's inbox from now, as the holder of `token` follows it.
async fn inbox_stream(
    server: &TestServer,
    token: &str,
) -> tonic::Streaming<pb::WatchInboxResponse> {
    server
        .messaging()
        .watch_inbox(authorized(
            token,
            pb::WatchInboxRequest {
                care_unit_id: "unit-a".into(),
                resume_token: String::new(),
            },
        ))
        .await
        .expect("watch")
        .into_inner()
}

/// A server where Astrid has a visit in unit-a, and her patient id.
async fn with_visit(backend: Backend) -> (TestServer, String) {
    let server = TestServer::start(backend).await;
    let patient = server
        .own_patient_id_after(&visit("v-1", ASTRID, "unit-a", 72))
        .await;
    (server, patient)
}

fn nurse(server: &TestServer, unit: &str) -> String {
    server.nurse_token(&format!("nurse-{unit}"), &[unit])
}

async fn a_citizen_writes_and_gets_a_receipt_due_the_first_working_day_after(backend: Backend) {
    let (server, patient) = with_visit(backend).await;
    let recipients = server
        .messaging()
        .list_message_recipients(authorized(
            &server.citizen_token(ASTRID),
            pb::ListMessageRecipientsRequest {
                patient_id: patient.clone(),
            },
        ))
        .await
        .expect("recipients")
        .into_inner()
        .recipients;
    let units: Vec<(&str, bool)> = recipients
        .iter()
        .map(|unit| (unit.care_unit_id.as_str(), unit.general_inquiries))
        .collect();
    assert_eq!(units, [("unit-a", false), ("general-inquiries", true)]);

    // Tuesday 1 December 2026, 08:00 in Oslo.
    let sent = server
        .create_thread(
            ASTRID,
            new_thread(
                &patient,
                "unit-a",
                "Ny tid for besøk",
                "Kan dere komme etter ti?",
            ),
        )
        .await
        .expect("sent");
    let receipt = sent.receipt.expect("a receipt");
    assert_eq!(receipt.receive_time, Some(to_proto(test_now())));
    assert_eq!(
        receipt.reply_due_time,
        Some(to_proto(oslo(2026, 12, 3, 0, 0)))
    );
    // Due by the end of Wednesday: the day itself, for a portal that shows the date.
    assert_eq!(receipt.reply_due_date, Some(date(2026, 12, 2)));
    assert_eq!(receipt.subject, "Ny tid for besøk");
    assert!(receipt.reference.starts_with("M-"), "{}", receipt.reference);
    let thread = sent.thread.expect("thread");
    assert_eq!(thread.due_date, Some(date(2026, 12, 2)));
    assert_eq!(thread.status(), pb::ThreadStatus::Sent);
    assert_eq!(thread.care_unit_id, "unit-a");

    // To general inquiries when no unit fits; another unit is refused.
    let general = server
        .create_thread(
            ASTRID,
            new_thread(&patient, "", "Spørsmål", "Hvem kan jeg ringe?"),
        )
        .await
        .expect("sent");
    assert_eq!(
        general.thread.expect("thread").care_unit_id,
        "general-inquiries"
    );
    let refused = server
        .create_thread(ASTRID, new_thread(&patient, "unit-z", "Spørsmål", "Hei"))
        .await
        .expect_err("not a unit of hers");
    assert_eq!(violated_fields(&refused), ["care_unit_id"]);

    // The text is stored as sent, and the citizen sees both threads, newest first.
    let threads = server
        .threads_seen_by(ASTRID, &patient)
        .await
        .expect("list");
    assert_eq!(threads.len(), 2);
    assert_eq!(threads[0].subject, "Spørsmål");
    let seen = server
        .thread_seen_by(&server.citizen_token(ASTRID), &patient, &thread.id)
        .await
        .expect("thread");
    assert_eq!(seen.messages[0].text, "Kan dere komme etter ti?");
    assert_eq!(seen.messages[0].author(), ActorKind::Patient);
    assert_eq!(
        seen.messages[0].author_kind(),
        pb::AuthorKind::Patient,
        "still filled"
    );
    server.stop().await;
}

async fn the_due_date_skips_easter_and_weekends_and_follows_the_clocks(backend: Backend) {
    let (server, patient) = with_visit(backend).await;
    for (received, due, day) in [
        // Wednesday evening before Easter 2027: Tuesday after Easter Monday.
        (
            oslo(2027, 3, 24, 20, 30),
            oslo(2027, 3, 31, 0, 0),
            date(2027, 3, 30),
        ),
        // A Friday: the end of Monday.
        (
            oslo(2026, 12, 4, 9, 0),
            oslo(2026, 12, 8, 0, 0),
            date(2026, 12, 7),
        ),
        // Friday 23 October 2026 in summer time: Monday 26th ends in winter time.
        (
            oslo(2026, 10, 23, 15, 0),
            oslo(2026, 10, 27, 0, 0),
            date(2026, 10, 26),
        ),
    ] {
        server.clock.set(received);
        let receipt = server
            .create_thread(ASTRID, new_thread(&patient, "unit-a", "Spørsmål", "Hei"))
            .await
            .expect("sent")
            .receipt
            .expect("receipt");
        assert_eq!(receipt.reply_due_time, Some(to_proto(due)), "{received}");
        assert_eq!(receipt.reply_due_date, Some(day), "{received}");
    }
    assert_eq!(
        oslo(2026, 10, 27, 0, 0),
        Utc.with_ymd_and_hms(2026, 10, 26, 23, 0, 0).unwrap()
    );
    server.stop().await;
}

async fn a_retry_returns_the_same_receipt_and_a_reused_request_id_is_refused(backend: Backend) {
    let (server, patient) = with_visit(backend).await;
    let request = new_thread(&patient, "unit-a", "Spørsmål", "Hei");
    let first = server
        .create_thread(ASTRID, request.clone())
        .await
        .expect("sent");
    server.clock.set(test_now() + chrono::Duration::minutes(5));
    let again = server
        .create_thread(ASTRID, request.clone())
        .await
        .expect("the retry");
    assert_eq!(first.receipt, again.receipt);
    assert_eq!(server.count_rows("message_threads").await, 1);

    let mut other = request;
    other.text = "Noe annet".into();
    let refused = server
        .create_thread(ASTRID, other)
        .await
        .expect_err("another request");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&refused).as_deref(), Some("REQUEST_ID_REUSED"));
    assert_eq!(server.count_rows("messages").await, 1);
    server.stop().await;
}

async fn bad_text_is_refused_naming_the_field_and_nothing_is_stored(backend: Backend) {
    let (server, patient) = with_visit(backend).await;
    let mut request = new_thread(&patient, "unit-a", "Hei\u{202E}der", &"x".repeat(10_001));
    request.attachment_ids = vec!["not-an-id".into()];
    request.request_id = String::new();
    let refused = server
        .create_thread(ASTRID, request)
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&refused),
        ["subject", "text", "attachment_ids[0]", "request_id"]
    );
    let long_subject = new_thread(&patient, "unit-a", &"æ".repeat(201), "Hei");
    assert_eq!(
        violated_fields(
            &server
                .create_thread(ASTRID, long_subject)
                .await
                .unwrap_err()
        ),
        ["subject"]
    );
    let invisible = new_thread(&patient, "unit-a", "Hei", "Hei\u{200B}");
    assert_eq!(
        violated_fields(&server.create_thread(ASTRID, invisible).await.unwrap_err()),
        ["text"]
    );
    assert_eq!(server.count_rows("message_threads").await, 0);
    assert_eq!(server.count_rows("message_events").await, 0);
    server.stop().await;
}

async fn other_patients_and_other_units_see_nothing(backend: Backend) {
    let (server, astrid) = with_visit(backend).await;
    let bjarne = server
        .own_patient_id_after(&visit("v-2", BJARNE, "unit-b", 72))
        .await;
    let thread = server
        .create_thread(ASTRID, new_thread(&astrid, "unit-a", "Spørsmål", "Hei"))
        .await
        .expect("sent")
        .thread
        .expect("thread")
        .id;
    let not_found = |status: tonic::Status| {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    };
    // Bjarne, with his own patient id or with Astrid's.
    not_found(
        server
            .thread_seen_by(&server.citizen_token(BJARNE), &bjarne, &thread)
            .await
            .unwrap_err(),
    );
    not_found(
        server
            .thread_seen_by(&server.citizen_token(BJARNE), &astrid, &thread)
            .await
            .unwrap_err(),
    );
    not_found(
        server
            .messaging()
            .reply_to_thread(authorized(
                &server.citizen_token(BJARNE),
                reply(&bjarne, &thread, "Hei"),
            ))
            .await
            .unwrap_err(),
    );
    // Staff of another unit: as if it did not exist, for every staff call.
    let other_unit = nurse(&server, "unit-b");
    not_found(
        server
            .thread_seen_by(&other_unit, "", &thread)
            .await
            .unwrap_err(),
    );
    not_found(
        server
            .messaging()
            .reply_to_thread(authorized(&other_unit, reply("", &thread, "Svar")))
            .await
            .unwrap_err(),
    );
    not_found(
        server
            .messaging()
            .close_thread(authorized(
                &other_unit,
                pb::CloseThreadRequest {
                    thread_id: thread.clone(),
                },
            ))
            .await
            .unwrap_err(),
    );
    not_found(
        server
            .messaging()
            .list_inbox(authorized(
                &other_unit,
                pb::ListInboxRequest {
                    care_unit_id: "unit-a".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err(),
    );
    assert!(server.inbox("unit-b").await.expect("inbox").is_empty());
    assert_eq!(server.inbox("unit-a").await.expect("inbox").len(), 1);
    // A bad page size and a bad page token are named together.
    let refused = server
        .messaging()
        .list_inbox(authorized(
            &nurse(&server, "unit-a"),
            pb::ListInboxRequest {
                care_unit_id: "unit-a".into(),
                page_size: -1,
                page_token: "not-a-token".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["page_size", "page_token"]);
    server.stop().await;
}

async fn a_proxy_needs_the_messaging_scope_and_the_patient_sees_who_wrote(backend: Backend) {
    let (server, patient) = with_visit(backend).await;
    let proxy = server
        .grant(ASTRID, &patient, KARI, &[Scope::ReadVisits])
        .await
        .expect("grant");
    let refused = server
        .threads_seen_by(KARI, &patient)
        .await
        .expect_err("no messaging scope");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = server
        .create_thread(KARI, new_thread(&patient, "unit-a", "Spørsmål", "Hei"))
        .await
        .expect_err("no messaging scope");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(server.count_rows("message_threads").await, 0);

    server
        .patients()
        .update_proxy(authorized(
            &server.citizen_token(ASTRID),
            homecare_proto::patients::v1::UpdateProxyRequest {
                patient_id: patient.clone(),
                proxy_id: proxy.id.clone(),
                scopes: vec![Scope::ReadVisits.into(), Scope::Messaging.into()],
                end_time: None,
                update_mask: vec!["scopes".into()],
            },
        ))
        .await
        .expect("add the messaging scope");
    let sent = server
        .create_thread(
            KARI,
            new_thread(&patient, "unit-a", "Om mor", "Hei fra Kari"),
        )
        .await
        .expect("sent by the proxy");
    assert!(sent.receipt.is_some());
    let threads = server
        .threads_seen_by(ASTRID, &patient)
        .await
        .expect("list");
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0].started_by(), ActorKind::Proxy);
    assert_eq!(
        threads[0].started_by_kind(),
        pb::AuthorKind::Proxy,
        "still filled"
    );
    assert_eq!(threads[0].started_by_name, "Kari Nordmann");
    // The proxy's read of the patient's threads is in the patient's access log.
    let before = server
        .count_rows("access_log_entries WHERE action = 'messages.read'")
        .await;
    server.threads_seen_by(KARI, &patient).await.expect("list");
    assert_eq!(
        server
            .count_rows("access_log_entries WHERE action = 'messages.read'")
            .await,
        before + 1
    );
    server.stop().await;
}

async fn a_draft_is_seen_by_its_author_only_until_sent(backend: Backend) {
    let (server, patient) = with_visit(backend).await;
    server
        .grant(ASTRID, &patient, KARI, &[Scope::Messaging])
        .await
        .expect("grant");
    let mut request = new_thread(&patient, "unit-a", "Utkast", "Skriver senere");
    request.draft = true;
    request.request_id = String::new();
    let draft = server.create_thread(KARI, request).await.expect("draft");
    assert!(draft.receipt.is_none());
    let thread = draft.thread.expect("thread");
    let message = draft.message.expect("message");
    assert_eq!(thread.status(), pb::ThreadStatus::Draft);
    assert!(message.draft);

    assert_eq!(
        server.threads_seen_by(KARI, &patient).await.unwrap().len(),
        1
    );
    assert!(
        server
            .threads_seen_by(ASTRID, &patient)
            .await
            .unwrap()
            .is_empty()
    );
    let hidden = server
        .thread_seen_by(&server.citizen_token(ASTRID), &patient, &thread.id)
        .await
        .expect_err("the patient does not see the proxy's draft");
    assert_eq!(hidden.code(), Code::NotFound);
    assert!(server.inbox("unit-a").await.unwrap().is_empty());
    let hidden = server
        .thread_seen_by(&nurse(&server, "unit-a"), "", &thread.id)
        .await
        .expect_err("staff do not see drafts");
    assert_eq!(hidden.code(), Code::NotFound);
    // Only its author can edit, send or delete it.
    let refused = server
        .messaging()
        .send_draft(authorized(
            &server.citizen_token(ASTRID),
            pb::SendDraftRequest {
                patient_id: patient.clone(),
                message_id: message.id.clone(),
                request_id: "send-1".into(),
            },
        ))
        .await
        .expect_err("not her draft");
    assert_eq!(refused.code(), Code::NotFound);

    let updated = server
        .messaging()
        .update_draft(authorized(
            &server.citizen_token(KARI),
            pb::UpdateDraftRequest {
                patient_id: patient.clone(),
                message_id: message.id.clone(),
                subject: "Medisiner".into(),
                care_unit_id: "unit-a".into(),
                sensitive: true,
                text: "Ferdig skrevet".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("edited")
        .into_inner();
    assert_eq!(updated.message.expect("message").text, "Ferdig skrevet");
    let sent = server
        .messaging()
        .send_draft(authorized(
            &server.citizen_token(KARI),
            pb::SendDraftRequest {
                patient_id: patient.clone(),
                message_id: message.id.clone(),
                request_id: "send-1".into(),
            },
        ))
        .await
        .expect("sent")
        .into_inner();
    let receipt = sent.receipt.expect("receipt");
    assert_eq!(
        receipt.subject, "",
        "a sensitive subject is not in the receipt"
    );
    assert_eq!(
        sent.thread.expect("thread").status(),
        pb::ThreadStatus::Sent
    );
    assert_eq!(
        server
            .threads_seen_by(ASTRID, &patient)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(server.inbox("unit-a").await.unwrap().len(), 1);

    // A reply draft is deleted without trace; the thread stays.
    let mut draft_reply = reply(&patient, &thread.id, "Kanskje");
    draft_reply.draft = true;
    let reply_draft = server
        .messaging()
        .reply_to_thread(authorized(&server.citizen_token(ASTRID), draft_reply))
        .await
        .expect("reply draft")
        .into_inner()
        .message
        .expect("message");
    let seen = server
        .thread_seen_by(&nurse(&server, "unit-a"), "", &thread.id)
        .await
        .expect("thread");
    assert_eq!(seen.messages.len(), 1, "staff do not see the reply draft");
    server
        .messaging()
        .delete_draft(authorized(
            &server.citizen_token(ASTRID),
            pb::DeleteDraftRequest {
                patient_id: patient.clone(),
                message_id: reply_draft.id,
            },
        ))
        .await
        .expect("deleted");
    assert_eq!(server.count_rows("messages").await, 1);
    server.stop().await;
}

async fn staff_answer_reassign_and_close_from_their_inbox(backend: Backend) {
    let (server, patient) = with_visit(backend).await;
    let citizen = server.citizen_token(ASTRID);
    let first = server
        .create_thread(ASTRID, new_thread(&patient, "unit-a", "Først", "Hei"))
        .await
        .unwrap()
        .thread
        .unwrap();
    server.clock.set(test_now() + chrono::Duration::days(1));
    let second = server
        .create_thread(
            ASTRID,
            new_thread(&patient, "unit-a", "Senere", "Hei igjen"),
        )
        .await
        .unwrap()
        .thread
        .unwrap();
    // Oldest due first; the first is overdue two days later.
    server.clock.set(test_now() + chrono::Duration::days(2));
    let inbox = server.inbox("unit-a").await.unwrap();
    let order: Vec<(&str, bool)> = inbox
        .iter()
        .map(|thread| (thread.subject.as_str(), thread.overdue))
        .collect();
    assert_eq!(order, [("Først", true), ("Senere", false)]);
    assert_eq!(inbox[0].unread_count, 1);

    let staff = nurse(&server, "unit-a");
    let log_before = server
        .count_rows("access_log_entries WHERE action = 'messages.read' AND actor_kind = 'staff'")
        .await;
    let read = server
        .thread_seen_by(&staff, "", &first.id)
        .await
        .expect("read");
    assert_eq!(
        server
            .count_rows(
                "access_log_entries WHERE action = 'messages.read' AND actor_kind = 'staff'"
            )
            .await,
        log_before + 1
    );
    assert_eq!(read.messages[0].text, "Hei");
    let answered = server
        .messaging()
        .reply_to_thread(authorized(&staff, reply("", &first.id, "Vi kommer kl. 10")))
        .await
        .expect("answered")
        .into_inner();
    assert!(answered.receipt.is_none());
    assert_eq!(
        answered.thread.unwrap().status(),
        pb::ThreadStatus::Answered
    );
    // The citizen has one unread answer; reading it, and marking it unread again.
    let mine = server.threads_seen_by(ASTRID, &patient).await.unwrap();
    let first_seen = mine.iter().find(|thread| thread.id == first.id).unwrap();
    assert_eq!(first_seen.unread_count, 1);
    assert_eq!(first_seen.status(), pb::ThreadStatus::Answered);
    let opened = server
        .thread_seen_by(&citizen, &patient, &first.id)
        .await
        .unwrap();
    assert_eq!(opened.messages.len(), 2);
    assert_eq!(opened.messages[1].author(), ActorKind::Staff);
    assert_eq!(
        opened.messages[1].author_kind(),
        pb::AuthorKind::Staff,
        "still filled"
    );
    let mine = server.threads_seen_by(ASTRID, &patient).await.unwrap();
    assert_eq!(
        mine.iter()
            .find(|thread| thread.id == first.id)
            .unwrap()
            .unread_count,
        0
    );
    let unread = server
        .messaging()
        .mark_thread_read(authorized(
            &citizen,
            pb::MarkThreadReadRequest {
                patient_id: patient.clone(),
                thread_id: first.id.clone(),
                read: false,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unread.thread.unwrap().unread_count, 1);

    // Reassigned: it moves with its history and its due time.
    let before = server
        .thread_seen_by(&staff, "", &second.id)
        .await
        .unwrap()
        .thread
        .unwrap();
    let moved = server
        .messaging()
        .reassign_thread(authorized(
            &staff,
            pb::ReassignThreadRequest {
                thread_id: second.id.clone(),
                care_unit_id: "unit-b".into(),
            },
        ))
        .await
        .expect("reassigned")
        .into_inner()
        .thread
        .unwrap();
    assert_eq!(moved.care_unit_id, "unit-b");
    assert_eq!(moved.due_time, before.due_time);
    assert_eq!(
        server
            .thread_seen_by(&staff, "", &second.id)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let there = server
        .thread_seen_by(&nurse(&server, "unit-b"), "", &second.id)
        .await
        .expect("the new unit reads it");
    let steps: Vec<pb::InboxEventType> = there.history.iter().map(|step| step.r#type()).collect();
    assert_eq!(
        steps,
        [
            pb::InboxEventType::ThreadStarted,
            pb::InboxEventType::ReadByStaff,
            pb::InboxEventType::Reassigned,
            pb::InboxEventType::ReadByStaff,
        ]
    );
    assert_eq!(there.history[2].from_care_unit_id, "unit-a");

    // Closed: no more replies; a new thread may follow on from it.
    server
        .messaging()
        .close_thread(authorized(
            &staff,
            pb::CloseThreadRequest {
                thread_id: first.id.clone(),
            },
        ))
        .await
        .expect("closed");
    let refused = server
        .messaging()
        .reply_to_thread(authorized(&citizen, reply(&patient, &first.id, "Takk")))
        .await
        .expect_err("closed");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&refused).as_deref(), Some("THREAD_CLOSED"));
    let mut follow_on = new_thread(&patient, "unit-a", "Oppfølging", "Ett spørsmål til");
    follow_on.previous_thread_id = first.id.clone();
    let follow_on = server
        .create_thread(ASTRID, follow_on)
        .await
        .expect("a new thread")
        .thread
        .unwrap();
    assert_eq!(follow_on.previous_thread_id, first.id);
    assert!(
        server
            .inbox("unit-a")
            .await
            .unwrap()
            .iter()
            .all(|thread| thread.id != first.id),
        "a closed thread leaves the inbox"
    );
    server.stop().await;
}

async fn a_late_cancellation_becomes_a_request_to_the_visit_s_unit(backend: Backend) {
    let server = TestServer::start(backend).await;
    // Ten hours ahead: past the 24-hour cut-off.
    let start = test_now() + chrono::Duration::hours(10);
    let visit = server
        .upsert(visit_at("v-late", ASTRID, "unit-c", start))
        .await
        .appointment
        .unwrap();
    let patient = server.own_patient_id(ASTRID).await;
    let refused = server
        .cancel(ASTRID, &patient, &visit.id, "late-cancel")
        .await
        .expect_err("too late");
    assert_eq!(
        error_reason(&refused).as_deref(),
        Some("CANCELLATION_DEADLINE_PASSED")
    );
    assert_eq!(
        error_metadata(&refused, "alternative").as_deref(),
        Some("SEND_CANCELLATION_REQUEST")
    );
    // An earlier thread waits in the same unit, due before the request.
    server.clock.set(test_now() - chrono::Duration::days(3));
    server
        .upsert(visit_at(
            "v-old",
            ASTRID,
            "unit-c",
            test_now() + chrono::Duration::days(9),
        ))
        .await;
    server
        .create_thread(ASTRID, new_thread(&patient, "unit-c", "Gammelt", "Hei"))
        .await
        .unwrap();
    server.clock.set(test_now());

    let history = || server.history_seen_by(ASTRID, &patient, &visit.id);
    // Read (and kept) before the request: the request must still show at once.
    assert_eq!(
        history().await.last().unwrap().r#type(),
        appointments::AppointmentEventType::Created
    );

    let mut request = new_thread(&patient, "", "Avlyse i dag", "Jeg er hos datteren");
    request.appointment_id = visit.id.clone();
    let sent = server.create_thread(ASTRID, request).await.expect("sent");
    let thread = sent.thread.unwrap();
    assert_eq!(thread.kind(), pb::ThreadKind::CancellationRequest);
    assert_eq!(thread.care_unit_id, "unit-c");
    assert_eq!(thread.appointment_id, visit.id);
    let receipt = sent.receipt.unwrap();
    assert_eq!(receipt.reply_due_time, Some(to_proto(start)));
    let local = start.with_timezone(&chrono_tz::Europe::Oslo);
    assert_eq!(
        receipt.reply_due_date,
        Some(date(local.year(), local.month(), local.day())),
        "the visit's day"
    );
    let inbox = server.inbox("unit-c").await.unwrap();
    assert_eq!(inbox[0].id, thread.id, "cancellation requests come first");
    assert_eq!(inbox.len(), 2);
    assert_eq!(
        history().await.last().unwrap().r#type(),
        appointments::AppointmentEventType::CancellationRequestSent
    );
    // A visit already begun cannot be asked about.
    let mut over = new_thread(&patient, "", "Avlyse", "Hei");
    over.appointment_id = visit.id.clone();
    server.clock.set(start + chrono::Duration::minutes(1));
    let refused = server.create_thread(ASTRID, over).await.unwrap_err();
    assert_eq!(error_reason(&refused).as_deref(), Some("VISIT_NOT_OPEN"));
    server.stop().await;
}

async fn attachments_are_typed_by_their_bytes_and_bounded(backend: Backend) {
    let (server, patient) = with_visit(backend).await;
    let citizen = server.citizen_token(ASTRID);
    let info = |name: &str| pb::AttachmentInfo {
        patient_id: patient.clone(),
        thread_id: String::new(),
        file_name: name.into(),
    };
    let pdf = pdf_bytes(300 * 1024);
    let uploaded = server
        .upload(&citizen, info("vedtak.pdf"), &pdf, 64 * 1024)
        .await
        .expect("a PDF");
    assert_eq!(uploaded.media_type, "application/pdf");
    assert_eq!(uploaded.size_bytes, 300 * 1024);
    let mut request = new_thread(&patient, "unit-a", "Vedtak", "Se vedlegg");
    request.attachment_ids = vec![uploaded.id.clone()];
    let sent = server.create_thread(ASTRID, request).await.expect("sent");
    let receipt = sent.receipt.unwrap();
    assert_eq!(receipt.attachments.len(), 1);
    assert_eq!(receipt.attachments[0].file_name, "vedtak.pdf");
    assert_eq!(receipt.attachments[0].size_bytes, 300 * 1024);
    let staff = nurse(&server, "unit-a");
    let logged = server
        .count_rows("access_log_entries WHERE action = 'messages.read'")
        .await;
    let (found, bytes) = server
        .download(&staff, "", &uploaded.id)
        .await
        .expect("staff of the unit download it");
    assert_eq!(found.file_name, "vedtak.pdf");
    assert!(bytes == pdf, "the bytes come back as sent");
    assert_eq!(
        server
            .count_rows("access_log_entries WHERE action = 'messages.read'")
            .await,
        logged + 1
    );
    let other = server
        .download(&nurse(&server, "unit-b"), "", &uploaded.id)
        .await
        .expect_err("not their unit");
    assert_eq!(other.code(), Code::NotFound);
    let files_before = server.blob_files();
    let rows_before = server.count_rows("message_attachments").await;

    // A PDF name on executable bytes, a picture with a PDF name, text, too large: refused,
    // naming the attachment, and nothing stored.
    for (name, bytes) in [
        ("brev.pdf", elf_bytes(200 * 1024)),
        ("brev.pdf", elf_bytes(1000)),
        ("notat.pdf", b"just some text".to_vec()),
        ("stort.pdf", pdf_bytes(10 * 1024 * 1024 + 1)),
    ] {
        let refused = server
            .upload(&citizen, info(name), &bytes, 128 * 1024)
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{name}: {refused:?}");
        assert_eq!(violated_fields(&refused), ["attachment"], "{name}");
    }
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    let refused = server
        .upload(&citizen, info("bilde.pdf"), &png, 1024)
        .await
        .expect_err("the name says PDF, the bytes PNG");
    assert_eq!(violated_fields(&refused), ["attachment"]);
    assert_eq!(server.count_rows("message_attachments").await, rows_before);
    assert_eq!(server.blob_files(), files_before, "no orphan blob");

    // Three of 9 MB are more than a message may carry.
    let mut ids = Vec::new();
    for n in 0..3u8 {
        let mut big = pdf_bytes(9 * 1024 * 1024);
        big[100] = n;
        ids.push(
            server
                .upload(&citizen, info(&format!("del{n}.pdf")), &big, 128 * 1024)
                .await
                .expect("9 MB")
                .id,
        );
    }
    let mut request = new_thread(&patient, "unit-a", "Mye", "Tre filer");
    request.attachment_ids = ids;
    let refused = server.create_thread(ASTRID, request).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["attachment_ids"]);
    assert_eq!(server.count_rows("message_threads").await, 1);
    server.stop().await;
}

/// DOCX and XLSX files are known by what their package declares, whatever order their
/// writer stored the parts in: docProps before the workbook, docProps right after the
/// package's relationships, a minimal three-part document, a document stored back to front
/// and one large enough that its declarations come past the first chunks. A zip that is no
/// Office package, a package whose main part is missing or is a template or has macros, an
/// executable with an Office name, and a workbook named as a document are refused, naming
/// the attachment, and leave nothing stored.
async fn office_files_are_typed_by_their_package_in_any_order_of_parts(backend: Backend) {
    use homecare_tests::messages::{
        DOCX_MAIN, XLSX_MAIN, content_types, package_relationships, zip_of,
    };
    let (server, patient) = with_visit(backend).await;
    let citizen = server.citizen_token(ASTRID);
    let info = |name: &str| pb::AttachmentInfo {
        patient_id: patient.clone(),
        thread_id: String::new(),
        file_name: name.into(),
    };
    let docx_types = content_types("/word/document.xml", DOCX_MAIN);
    let xlsx_types = content_types("/xl/workbook.xml", XLSX_MAIN);
    let docx_rels = package_relationships("word/document.xml");
    let xlsx_rels = package_relationships("xl/workbook.xml");
    let core: &[u8] = b"<cp:coreProperties xmlns:cp=\"x\"/>";
    let body: &[u8] = b"<w:document xmlns:w=\"x\"><w:body/></w:document>";
    let workbook: &[u8] = b"<workbook xmlns=\"x\"/>";
    // Incompressible filler, so the file is larger than the first bytes the type is read from.
    let filler: Vec<u8> = (0..400_000u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let docx_word = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    let xlsx_sheet = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
    let accepted = [
        (
            "regneark.xlsx",
            zip_of(&[
                ("docProps/core.xml", core),
                ("docProps/app.xml", core),
                ("[Content_Types].xml", &xlsx_types),
                ("_rels/.rels", &xlsx_rels),
                ("xl/workbook.xml", workbook),
            ]),
            xlsx_sheet,
        ),
        (
            "brev.docx",
            zip_of(&[
                ("_rels/.rels", &docx_rels),
                ("docProps/core.xml", core),
                ("[Content_Types].xml", &docx_types),
                ("word/document.xml", body),
            ]),
            docx_word,
        ),
        (
            "minimal.docx",
            zip_of(&[
                ("[Content_Types].xml", &docx_types),
                ("_rels/.rels", &docx_rels),
                ("word/document.xml", body),
            ]),
            docx_word,
        ),
        (
            "baklengs.DOCX",
            zip_of(&[
                ("word/media/image1.png", &filler),
                ("word/document.xml", body),
                ("_rels/.rels", &docx_rels),
                ("[Content_Types].xml", &docx_types),
            ]),
            docx_word,
        ),
    ];
    for (name, bytes, media_type) in &accepted {
        let uploaded = server
            .upload(&citizen, info(name), bytes, 64 * 1024)
            .await
            .unwrap_or_else(|error| panic!("{name} accepted: {error:?}"));
        assert_eq!(uploaded.media_type, *media_type, "{name}");
        assert_eq!(uploaded.size_bytes as usize, bytes.len(), "{name}");
        let (_, stored) = server
            .download(&citizen, &patient, &uploaded.id)
            .await
            .expect("download");
        assert!(stored == *bytes, "{name}: the bytes come back as sent");
    }
    let rows_before = server.count_rows("message_attachments").await;
    let files_before = server.blob_files();

    let template = content_types(
        "/word/document.xml",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
    );
    let macros = content_types(
        "/word/document.xml",
        "application/vnd.ms-word.document.macroEnabled.main+xml",
    );
    let refused = [
        ("arkiv.docx", zip_of(&[("notat.txt", b"hei".as_slice())])),
        (
            "uten-dokument.docx",
            zip_of(&[
                ("[Content_Types].xml", &docx_types),
                ("_rels/.rels", &docx_rels),
            ]),
        ),
        (
            "mal.docx",
            zip_of(&[
                ("[Content_Types].xml", &template),
                ("_rels/.rels", &docx_rels),
                ("word/document.xml", body),
            ]),
        ),
        (
            "makro.docx",
            zip_of(&[
                ("[Content_Types].xml", &macros),
                ("_rels/.rels", &docx_rels),
                ("word/document.xml", body),
            ]),
        ),
        ("program.docx", elf_bytes(20_000)),
        ("program.xlsx", elf_bytes(300 * 1024)),
        ("regneark.docx", accepted[0].1.clone()),
    ];
    for (name, bytes) in &refused {
        let error = server
            .upload(&citizen, info(name), bytes, 64 * 1024)
            .await
            .expect_err(name);
        assert_eq!(error.code(), Code::InvalidArgument, "{name}: {error:?}");
        assert_eq!(violated_fields(&error), ["attachment"], "{name}");
    }
    assert_eq!(server.count_rows("message_attachments").await, rows_before);
    assert_eq!(server.blob_files(), files_before, "no orphan blob");
    server.stop().await;
}

/// What a client developer reads in messaging.proto holds: staff whose token names no care
/// unit are refused the inbox as they are a unit's day (PERMISSION_DENIED NO_CARE_UNIT); a
/// path as a file name is refused as a path; a download comes in chunks of 128 KiB.
async fn units_file_names_and_download_chunks_are_as_the_contract_says(backend: Backend) {
    let (server, patient) = with_visit(backend).await;
    let unitless = server.nurse_token("nurse-nowhere", &[]);
    let inbox = server
        .messaging()
        .list_inbox(authorized(&unitless, pb::ListInboxRequest::default()))
        .await
        .expect_err("no unit");
    let day = server
        .appointments()
        .list_care_unit_appointments(authorized(
            &unitless,
            appointments::ListCareUnitAppointmentsRequest {
                date: "2026-12-01".into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("no unit");
    for refused in [&inbox, &day] {
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert_eq!(error_reason(refused).as_deref(), Some("NO_CARE_UNIT"));
    }

    let citizen = server.citizen_token(ASTRID);
    let info = |name: &str| pb::AttachmentInfo {
        patient_id: patient.clone(),
        thread_id: String::new(),
        file_name: name.into(),
    };
    for name in ["mappe/brev.pdf", "mappe\\brev.pdf"] {
        let refused = server
            .upload(&citizen, info(name), &pdf_bytes(1000), 1000)
            .await
            .expect_err("a path");
        assert_eq!(violated_fields(&refused), ["info.file_name"]);
        assert!(
            refused.message().contains("without '/' or '\\'"),
            "{}",
            refused.message()
        );
        assert!(!refused.message().contains("mappe"), "not echoed");
    }

    let pdf = pdf_bytes(300 * 1024 + 5);
    let uploaded = server
        .upload(&citizen, info("vedtak.pdf"), &pdf, 100 * 1024)
        .await
        .expect("a PDF");
    let mut stream = server
        .messaging()
        .download_attachment(authorized(
            &citizen,
            pb::DownloadAttachmentRequest {
                patient_id: patient.clone(),
                attachment_id: uploaded.id,
            },
        ))
        .await
        .expect("download")
        .into_inner();
    let mut sizes = Vec::new();
    let mut bytes = Vec::new();
    while let Some(part) = stream.message().await.expect("healthy") {
        if let Some(pb::download_attachment_response::Part::Chunk(chunk)) = part.part {
            sizes.push(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
    }
    assert_eq!(sizes, [128 * 1024, 128 * 1024, 44 * 1024 + 5]);
    assert!(bytes == pdf);
    server.stop().await;
}

async fn an_upload_cut_off_halfway_leaves_nothing(backend: Backend) {
    let (server, patient) = with_visit(backend).await;
    let token = server.citizen_token(ASTRID);
    let (sender, receiver) = tokio::sync::mpsc::channel::<pb::UploadAttachmentRequest>(4);
    let mut client = server.messaging();
    let upload = tokio::spawn(async move {
        client
            .upload_attachment(authorized(
                &token,
                tokio_stream::wrappers::ReceiverStream::new(receiver),
            ))
            .await
    });
    sender
        .send(pb::UploadAttachmentRequest {
            part: Some(pb::upload_attachment_request::Part::Info(
                pb::AttachmentInfo {
                    patient_id: patient.clone(),
                    thread_id: String::new(),
                    file_name: "halv.pdf".into(),
                },
            )),
        })
        .await
        .unwrap();
    let pdf = pdf_bytes(2 * 1024 * 1024);
    for chunk in pdf.chunks(128 * 1024).take(8) {
        sender
            .send(pb::UploadAttachmentRequest {
                part: Some(pb::upload_attachment_request::Part::Chunk(chunk.to_vec())),
            })
            .await
            .unwrap();
    }
    // The first megabyte is staged in the store before the client goes away.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.blob_files().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!server.blob_files().is_empty(), "the upload was under way");
    upload.abort();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.blob_files().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(server.blob_files(), Vec::<std::path::PathBuf>::new());
    assert_eq!(server.count_rows("message_attachments").await, 0);
    drop(sender);
    server.stop().await;
}

async fn staff_follow_their_units_in_a_resumable_stream(backend: Backend) {
    let (server, patient) = with_visit(backend).await;
    let staff = nurse(&server, "unit-a");
    let mut stream = inbox_stream(&server, &staff).await;
    let next = async |stream: &mut tonic::Streaming<pb::WatchInboxResponse>| {
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
            .await
            .expect("in time")
            .expect("healthy")
            .expect("open")
    };
    server
        .create_thread(ASTRID, new_thread(&patient, "unit-a", "Åpent emne", "Hei"))
        .await
        .unwrap();
    let mut secret = new_thread(&patient, "unit-a", "Hemmelig emne", "Hei");
    secret.sensitive = true;
    let secret = server
        .create_thread(ASTRID, secret)
        .await
        .unwrap()
        .thread
        .unwrap();
    let first = next(&mut stream).await;
    let event = first.event.unwrap();
    assert_eq!(event.r#type(), pb::InboxEventType::ThreadStarted);
    assert_eq!(event.actor(), ActorKind::Patient);
    assert_eq!(event.subject, "Åpent emne");
    let second = next(&mut stream).await;
    assert_eq!(second.event.as_ref().unwrap().subject, "", "sensitive");
    assert_eq!(second.event.as_ref().unwrap().thread_id, secret.id);

    server
        .messaging()
        .reassign_thread(authorized(
            &staff,
            pb::ReassignThreadRequest {
                thread_id: secret.id.clone(),
                care_unit_id: "unit-b".into(),
            },
        ))
        .await
        .unwrap();
    let moved = next(&mut stream).await.event.unwrap();
    assert_eq!(moved.r#type(), pb::InboxEventType::Reassigned);
    assert_eq!(moved.actor(), ActorKind::Staff);
    assert_eq!(moved.from_care_unit_id, "unit-a");
    assert_eq!(moved.care_unit_id, "unit-b");

    // Resumed after the first event: the rest again, in order.
    drop(stream);
    let mut resumed = server
        .messaging()
        .watch_inbox(authorized(
            &staff,
            pb::WatchInboxRequest {
                care_unit_id: String::new(),
                resume_token: first.resume_token,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut resumed).await.resume_token, second.resume_token);
    assert_eq!(
        next(&mut resumed).await.event.unwrap().r#type(),
        pb::InboxEventType::Reassigned
    );
    server.stop().await;
}

/// Every kind of step a thread's history gets wakes the streams that follow its unit, at
/// once: with the streams' own look for unannounced steps an hour apart, a step that reaches
/// the stream within seconds was announced by the write that added it.
async fn every_kind_of_step_wakes_the_inbox_streams(backend: Backend) {
    let server = TestServer::start_with(backend, |config| {
        config.messaging.stream_poll_ms = 3_600_000;
    })
    .await;
    let patient = server
        .own_patient_id_after(&visit("v-1", ASTRID, "unit-a", 72))
        .await;
    let watcher = server.nurse_token("nurse-watching", &["unit-a"]);
    let staff = nurse(&server, "unit-a");
    let mut stream = inbox_stream(&server, &watcher).await;
    let mut next = async || {
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
            .await
            .expect("the step is announced")
            .expect("healthy")
            .expect("open")
            .event
            .expect("event")
            .r#type()
    };

    let thread = server
        .create_thread(ASTRID, new_thread(&patient, "unit-a", "Emne", "Hei"))
        .await
        .unwrap()
        .thread
        .unwrap();
    assert_eq!(next().await, pb::InboxEventType::ThreadStarted);
    server
        .thread_seen_by(&staff, "", &thread.id)
        .await
        .expect("staff read the thread");
    assert_eq!(next().await, pb::InboxEventType::ReadByStaff);
    server
        .messaging()
        .reply_to_thread(authorized(&staff, reply("", &thread.id, "Svar")))
        .await
        .expect("staff answer");
    assert_eq!(next().await, pb::InboxEventType::StaffReplied);
    server
        .messaging()
        .reply_to_thread(authorized(
            &server.citizen_token(ASTRID),
            reply(&patient, &thread.id, "Takk"),
        ))
        .await
        .expect("the patient answers");
    assert_eq!(next().await, pb::InboxEventType::CitizenReplied);
    server
        .messaging()
        .close_thread(authorized(
            &staff,
            pb::CloseThreadRequest {
                thread_id: thread.id.clone(),
            },
        ))
        .await
        .expect("close");
    assert_eq!(next().await, pb::InboxEventType::Closed);
    let other = server
        .create_thread(ASTRID, new_thread(&patient, "unit-a", "Annet", "Hei"))
        .await
        .unwrap()
        .thread
        .unwrap();
    assert_eq!(next().await, pb::InboxEventType::ThreadStarted);
    server
        .messaging()
        .reassign_thread(authorized(
            &staff,
            pb::ReassignThreadRequest {
                thread_id: other.id,
                care_unit_id: "unit-b".into(),
            },
        ))
        .await
        .expect("reassign");
    assert_eq!(next().await, pb::InboxEventType::Reassigned);
    server.stop().await;
}

/// A stream without a resume token starts with the next step, also when a thread started
/// just before it cannot yet be read in order (on PostgreSQL, while an older transaction
/// is still open elsewhere).
async fn an_inbox_stream_from_now_skips_threads_started_before_it_while_a_transaction_is_open(
    backend: Backend,
) {
    let (server, patient) = with_visit(backend).await;
    let staff = nurse(&server, "unit-a");
    let open = server.hold_a_transaction_open().await;
    server
        .create_thread(ASTRID, new_thread(&patient, "unit-a", "Før", "Hei"))
        .await
        .unwrap();
    let mut stream = inbox_stream(&server, &staff).await;
    server
        .create_thread(ASTRID, new_thread(&patient, "unit-a", "Etter", "Hei"))
        .await
        .unwrap();
    if let Some(open) = open {
        // Ends only now: both threads are readable from here on.
        open.rollback().await.expect("rollback");
    }
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
        .await
        .expect("in time")
        .expect("healthy")
        .expect("open");
    assert_eq!(
        first.event.unwrap().subject,
        "Etter",
        "not the thread before it"
    );
    server.stop().await;
}

async fn the_inbox_of_several_units_pages_in_one_order(backend: Backend) {
    let (server, astrid) = with_visit(backend).await;
    let bjarne = server
        .own_patient_id_after(&visit("v-2", BJARNE, "unit-b", 72))
        .await;
    // Five threads a day apart, alternating between the units; one answered.
    let mut sent = Vec::new();
    for day in 0..5 {
        server.clock.set(test_now() + chrono::Duration::days(day));
        let (pid, patient, unit) = if day % 2 == 0 {
            (ASTRID, &astrid, "unit-a")
        } else {
            (BJARNE, &bjarne, "unit-b")
        };
        sent.push(
            server
                .create_thread(pid, new_thread(patient, unit, &format!("Dag {day}"), "Hei"))
                .await
                .unwrap()
                .thread
                .unwrap()
                .id,
        );
    }
    let staff = server.nurse_token("nurse-ab", &["unit-a", "unit-b"]);
    server
        .messaging()
        .reply_to_thread(authorized(&staff, reply("", &sent[1], "Svar")))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = server
            .messaging()
            .list_inbox(authorized(
                &staff,
                pb::ListInboxRequest {
                    care_unit_id: String::new(),
                    page_size: 2,
                    page_token: token,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.threads.len() <= 2);
        seen.extend(page.threads.into_iter().map(|thread| thread.subject));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    // Waiting ones oldest due first across both units, then the answered one.
    assert_eq!(seen, ["Dag 0", "Dag 2", "Dag 3", "Dag 4", "Dag 1"]);
    server.stop().await;
}

async fn staff_attach_a_file_to_an_answer_and_the_patient_downloads_it(backend: Backend) {
    let (server, patient) = with_visit(backend).await;
    let thread = server
        .create_thread(
            ASTRID,
            new_thread(&patient, "unit-a", "Vedtak", "Kan jeg få vedtaket?"),
        )
        .await
        .unwrap()
        .thread
        .unwrap();
    let staff = nurse(&server, "unit-a");
    let info = |thread_id: &str| pb::AttachmentInfo {
        patient_id: String::new(),
        thread_id: thread_id.into(),
        file_name: "vedtak.pdf".into(),
    };
    // Staff upload for a thread of their unit only.
    let refused = server
        .upload(
            &nurse(&server, "unit-b"),
            info(&thread.id),
            &pdf_bytes(2048),
            1024,
        )
        .await
        .expect_err("not their unit");
    assert_eq!(refused.code(), Code::NotFound);
    let file = pdf_bytes(70 * 1024);
    let uploaded = server
        .upload(&staff, info(&thread.id), &file, 32 * 1024)
        .await
        .expect("uploaded");
    // A reply draft keeps it out of the patient's sight until it is sent.
    let mut answer = reply("", &thread.id, "Her er vedtaket.");
    answer.attachment_ids = vec![uploaded.id.clone()];
    answer.draft = true;
    let draft = server
        .messaging()
        .reply_to_thread(authorized(&staff, answer))
        .await
        .expect("draft")
        .into_inner()
        .message
        .unwrap();
    let citizen = server.citizen_token(ASTRID);
    let hidden = server
        .download(&citizen, &patient, &uploaded.id)
        .await
        .expect_err("on a draft");
    assert_eq!(hidden.code(), Code::NotFound);
    server
        .messaging()
        .send_draft(authorized(
            &staff,
            pb::SendDraftRequest {
                patient_id: String::new(),
                message_id: draft.id.clone(),
                request_id: "answer-1".into(),
            },
        ))
        .await
        .expect("sent");
    let seen = server
        .thread_seen_by(&citizen, &patient, &thread.id)
        .await
        .unwrap();
    assert_eq!(seen.thread.unwrap().status(), pb::ThreadStatus::Answered);
    let answer = seen.messages.last().unwrap();
    assert_eq!(answer.author(), ActorKind::Staff);
    assert_eq!(answer.attachments.len(), 1);
    let (found, bytes) = server
        .download(&citizen, &patient, &uploaded.id)
        .await
        .expect("the patient downloads it");
    assert_eq!(found.media_type, "application/pdf");
    assert!(bytes == file);
    server.stop().await;
}
