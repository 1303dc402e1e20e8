//! Proxies end to end: a relative acts for a patient only as far as, and only while, the
//! patient (or staff, from paper or a guardianship) allowed; every refusal; and the patient
//! sees who did what in their access log.

use chrono::Duration;
use homecare_proto::appointments::v1::{
    self as appointments, AppointmentEventType as Event, GetAppointmentRequest,
    ListAppointmentHistoryRequest, ListAppointmentsRequest,
};
use homecare_proto::common::v1::ActorKind;
use homecare_proto::patients::v1::{
    self as pb, ActorRole, EndProxyRequest, ListAccessLogRequest, ListProxiesRequest, ProxyBasis,
    ProxyState, RegisterProxyRequest, Relation, Scope, SetProtectedAddressRequest,
    UpdateProxyRequest,
};
use homecare_tests::epj::FakeEpj;
use homecare_tests::people::{
    ALMOST_ADULT, ASTRID, BJARNE, GUARDIAN, KARI, OLA, STRANGER, TEEN, YOUNG_PATIENT,
};
use homecare_tests::{
    Backend, TestServer, authorized, error_reason, grant_request, on_every_backend, test_now,
    violated_fields, visit,
};
use tonic::Code;

on_every_backend!(
    a_proxy_holder_reads_and_cancels_for_the_patient_who_sees_it_all_in_the_access_log,
    every_invalid_proxy_is_refused_at_the_moment_of_the_call,
    a_grant_follows_the_age_rules_to_the_day,
    a_protected_address_gets_no_new_proxy,
    bad_grants_name_every_wrong_field_and_store_nothing,
    a_repeated_grant_is_one_proxy_and_an_overlapping_one_is_refused,
    staff_register_paper_proxies_and_guardianships_of_their_own_patients,
    either_side_ends_a_proxy_and_its_history_is_kept,
);

const UNIT: &str = "unit-a";
const READ: Scope = Scope::ReadVisits;
const CANCEL: Scope = Scope::CancelVisits;

/// A server where ASTRID and BJARNE have a visit two days ahead; their patient ids.
async fn two_patients(backend: Backend) -> (TestServer, String, String) {
    let server = TestServer::start(backend).await;
    let astrid = server
        .own_patient_id_after(&visit("astrid-1", ASTRID, UNIT, 48))
        .await;
    let bjarne = server
        .own_patient_id_after(&visit("bjarne-1", BJARNE, "unit-b", 48))
        .await;
    (server, astrid, bjarne)
}

async fn list_visits(
    server: &TestServer,
    pid: &str,
    patient_id: &str,
) -> Result<Vec<appointments::Appointment>, tonic::Status> {
    server
        .appointments()
        .list_appointments(authorized(
            &server.citizen_token(pid),
            ListAppointmentsRequest {
                patient_id: patient_id.into(),
                ..Default::default()
            },
        ))
        .await
        .map(|response| response.into_inner().appointments)
}

async fn access_log(
    server: &TestServer,
    pid: &str,
    patient_id: &str,
) -> Result<Vec<pb::AccessLogEntry>, tonic::Status> {
    server
        .patients()
        .list_access_log(authorized(
            &server.citizen_token(pid),
            ListAccessLogRequest {
                patient_id: patient_id.into(),
                page_size: 200,
                page_token: String::new(),
            },
        ))
        .await
        .map(|response| response.into_inner().entries)
}

async fn end(
    server: &TestServer,
    token: &str,
    patient_id: &str,
    proxy_id: &str,
) -> Result<pb::Proxy, tonic::Status> {
    server
        .patients()
        .end_proxy(authorized(
            token,
            EndProxyRequest {
                patient_id: patient_id.into(),
                proxy_id: proxy_id.into(),
            },
        ))
        .await
        .map(|response| response.into_inner().proxy.expect("proxy"))
}

async fn list_proxies(server: &TestServer, token: &str, patient_id: &str) -> Vec<pb::Proxy> {
    server
        .patients()
        .list_proxies(authorized(
            token,
            ListProxiesRequest {
                patient_id: patient_id.into(),
            },
        ))
        .await
        .expect("list proxies")
        .into_inner()
        .proxies
}

fn denied(status: &tonic::Status, reason: &str) {
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(error_reason(status).as_deref(), Some(reason), "{status:?}");
}

async fn a_proxy_holder_reads_and_cancels_for_the_patient_who_sees_it_all_in_the_access_log(
    backend: Backend,
) {
    let epj = FakeEpj::healthy().await;
    let server = TestServer::start_with(backend, |config| epj.configure(config)).await;
    let astrid = server
        .own_patient_id_after(&visit("astrid-1", ASTRID, UNIT, 48))
        .await;
    let proxy = server
        .grant(ASTRID, &astrid, KARI, &[READ, CANCEL])
        .await
        .expect("granted");
    assert_eq!(proxy.state(), ProxyState::Active);

    // Kari is no patient herself: she sees Astrid only, with what the proxy allows.
    let represented = server.represented(KARI).await.expect("represented");
    assert_eq!(represented.len(), 1);
    assert_eq!(represented[0].patient_id, astrid);
    assert_eq!(represented[0].relation(), Relation::Proxy);
    assert_eq!(represented[0].display_name, "Astrid Hansen");
    assert_eq!(represented[0].proxy_id, proxy.id);
    assert_eq!(represented[0].scopes, [i32::from(READ), i32::from(CANCEL)]);

    let visits = list_visits(&server, KARI, &astrid).await.expect("list");
    assert_eq!(visits.len(), 1);
    let mut stream = server.watch(UNIT, "").await;
    let cancelled = server
        .cancel(KARI, &astrid, &visits[0].id, "kari-1")
        .await
        .expect("cancelled by the proxy");
    let cancellation = cancelled.cancellation.expect("cancellation");
    assert_eq!(cancellation.requested_by(), ActorKind::Proxy);
    assert_eq!(cancellation.requested_by_name, "Kari Nordmann");
    stream.until(Event::CancellationConfirmed, 1).await;

    let history = server
        .appointments()
        .list_appointment_history(authorized(
            &server.citizen_token(ASTRID),
            ListAppointmentHistoryRequest {
                patient_id: astrid.clone(),
                appointment_id: visits[0].id.clone(),
            },
        ))
        .await
        .expect("history")
        .into_inner()
        .events;
    let requested = history
        .iter()
        .find(|event| event.r#type() == Event::CancellationRequested)
        .expect("requested");
    assert_eq!(requested.actor_kind(), ActorKind::Proxy);
    assert_eq!(requested.actor, proxy.id);
    assert_eq!(requested.actor_name, "Kari Nordmann");

    let updates = epj.updates_of("astrid-1").await;
    assert_eq!(updates.len(), 1);
    assert_eq!(
        updates[0]["extension"][0]["extension"],
        serde_json::json!([
            {"url": "role", "valueCode": "proxy"},
            {"url": "name", "valueString": "Kari Nordmann"},
        ])
    );

    // Astrid sees who did what: Kari's read and cancellation, the EPJ's writes; never an
    // identity number; and her own doings are not there.
    let log = access_log(&server, ASTRID, &astrid).await.expect("log");
    let by_kari: Vec<&str> = log
        .iter()
        .filter(|entry| entry.actor_kind() == ActorKind::Proxy)
        .map(|entry| entry.action.as_str())
        .collect();
    assert_eq!(
        by_kari,
        ["appointments.write", "appointments.read"],
        "newest first"
    );
    assert!(
        log.iter()
            .all(|entry| entry.on_behalf_of_patient_id == astrid)
    );
    let kari_entry = log
        .iter()
        .find(|entry| entry.actor_kind() == ActorKind::Proxy)
        .unwrap();
    assert_eq!(kari_entry.actor_name, "Kari Nordmann");
    // The deprecated role is still filled, with its own numbers, for clients that read it.
    assert!(
        log.iter()
            .all(|entry| same_kind(entry.actor_kind(), entry.actor_role()))
    );
    assert_eq!(kari_entry.actor_role(), ActorRole::Proxy);
    assert_eq!(kari_entry.proxy_id, proxy.id);
    assert!(
        log.iter().any(
            |entry| entry.actor_kind() == ActorKind::System && entry.actor_name == "epj-system"
        )
    );
    assert!(
        log.iter()
            .all(|entry| entry.actor_kind() != ActorKind::Patient)
    );
    let printed = format!("{log:?}");
    assert!(!printed.contains(KARI) && !printed.contains(ASTRID));

    // Kari cannot read the log without the scope.
    denied(
        &access_log(&server, KARI, &astrid).await.unwrap_err(),
        "PROXY_SCOPE_MISSING",
    );
    server.stop().await;
}

async fn every_invalid_proxy_is_refused_at_the_moment_of_the_call(backend: Backend) {
    let (server, astrid, bjarne) = two_patients(backend).await;
    let visit_id = list_visits(&server, ASTRID, &astrid).await.unwrap()[0]
        .id
        .clone();
    let bjarnes_visit = list_visits(&server, BJARNE, &bjarne).await.unwrap()[0]
        .id
        .clone();

    // Reading only: cancelling is out of scope.
    let reader = server.grant(ASTRID, &astrid, KARI, &[READ]).await.unwrap();
    list_visits(&server, KARI, &astrid).await.expect("reads");
    denied(
        &server
            .cancel(KARI, &astrid, &visit_id, "k-1")
            .await
            .unwrap_err(),
        "PROXY_SCOPE_MISSING",
    );

    // Someone with no proxy at all cannot tell Astrid exists.
    let unknown = list_visits(&server, STRANGER, &astrid).await.unwrap_err();
    let random = list_visits(&server, STRANGER, &uuid::Uuid::new_v4().to_string())
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(unknown.message(), random.message());
    // Nor reach Bjarne's visit through Astrid's proxy.
    let crossed = server
        .appointments()
        .get_appointment(authorized(
            &server.citizen_token(KARI),
            GetAppointmentRequest {
                patient_id: astrid.clone(),
                appointment_id: bjarnes_visit,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(crossed.code(), Code::NotFound);
    // A holder cannot pass the proxy on.
    denied(
        &server
            .grant_with(KARI, grant_request(&astrid, OLA, &[READ]))
            .await
            .unwrap_err(),
        "PATIENT_ONLY",
    );

    // Not yet valid, then valid exactly from its start, then expired exactly at its end.
    let starts = test_now() + Duration::hours(1);
    let ends = starts + Duration::hours(2);
    let mut window = grant_request(&bjarne, OLA, &[READ]);
    window.valid_time = Some(homecare_core::timestamp::to_proto(starts));
    window.end_time = Some(homecare_core::timestamp::to_proto(ends));
    server.grant_with(BJARNE, window).await.expect("granted");
    denied(
        &list_visits(&server, OLA, &bjarne).await.unwrap_err(),
        "PROXY_NOT_YET_VALID",
    );
    assert!(server.represented(OLA).await.unwrap().is_empty());
    server.clock.set(starts);
    list_visits(&server, OLA, &bjarne)
        .await
        .expect("valid from its start");
    assert_eq!(server.represented(OLA).await.unwrap().len(), 1);
    server.clock.set(ends - Duration::seconds(1));
    list_visits(&server, OLA, &bjarne)
        .await
        .expect("valid to its end");
    server.clock.set(ends);
    denied(
        &list_visits(&server, OLA, &bjarne).await.unwrap_err(),
        "PROXY_EXPIRED",
    );
    assert!(server.represented(OLA).await.unwrap().is_empty());

    // Ended by the patient: refused from that moment, and gone from the holder's list.
    end(&server, &server.citizen_token(ASTRID), &astrid, &reader.id)
        .await
        .expect("ended");
    denied(
        &list_visits(&server, KARI, &astrid).await.unwrap_err(),
        "PROXY_ENDED",
    );
    assert!(server.represented(KARI).await.unwrap().is_empty());
    server.stop().await;
}

async fn a_grant_follows_the_age_rules_to_the_day(backend: Backend) {
    let server = TestServer::start(backend).await;
    let astrid = server
        .own_patient_id_after(&visit("astrid-1", ASTRID, UNIT, 48))
        .await;
    let young = server
        .own_patient_id_after(&visit("young-1", YOUNG_PATIENT, UNIT, 48))
        .await;

    let teen = server
        .grant(ASTRID, &astrid, TEEN, &[READ])
        .await
        .unwrap_err();
    assert_eq!(teen.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&teen), ["holder_national_id"]);

    // Turns 18 on 2 December, in Oslo: at 23:59:59 on the 1st (22:59:59Z) still 17.
    server.clock.set("2026-12-01T22:59:59Z".parse().unwrap());
    let day_before = server
        .grant(ASTRID, &astrid, ALMOST_ADULT, &[READ])
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&day_before), ["holder_national_id"]);
    server.clock.set("2026-12-01T23:00:00Z".parse().unwrap());
    server
        .grant(ASTRID, &astrid, ALMOST_ADULT, &[READ])
        .await
        .expect("18 from the first second of the birthday");

    let too_young = server
        .grant(YOUNG_PATIENT, &young, KARI, &[READ])
        .await
        .unwrap_err();
    assert_eq!(too_young.code(), Code::FailedPrecondition);
    assert_eq!(
        error_reason(&too_young).as_deref(),
        Some("GRANTOR_TOO_YOUNG")
    );
    assert!(server.represented(KARI).await.unwrap().is_empty());
    server.stop().await;
}

async fn a_protected_address_gets_no_new_proxy(backend: Backend) {
    let server = TestServer::start(backend).await;
    let astrid = server
        .own_patient_id_after(&visit("astrid-1", ASTRID, UNIT, 48))
        .await;
    let protect = |token: String| {
        let mut client = server.patients();
        async move {
            client
                .set_protected_address(authorized(
                    &token,
                    SetProtectedAddressRequest {
                        national_id: ASTRID.into(),
                        protected_address: true,
                    },
                ))
                .await
        }
    };
    let citizen = protect(server.citizen_token(ASTRID)).await.unwrap_err();
    assert_eq!(citizen.code(), Code::PermissionDenied);
    protect(server.epj_token()).await.expect("flag set");

    let refused = server
        .grant(ASTRID, &astrid, KARI, &[READ])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&refused).as_deref(), Some("PROTECTED_ADDRESS"));
    let mut paper = register_request(&astrid, GUARDIAN, ProxyBasis::PaperForm);
    paper.request_id = "paper-1".into();
    let by_staff = server
        .patients()
        .register_proxy(authorized(&nurse(&server, UNIT), paper))
        .await
        .unwrap_err();
    assert_eq!(
        error_reason(&by_staff).as_deref(),
        Some("PROTECTED_ADDRESS")
    );
    assert_eq!(server.count_rows("proxies").await, 0);
    server.stop().await;
}

async fn bad_grants_name_every_wrong_field_and_store_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let astrid = server
        .own_patient_id_after(&visit("astrid-1", ASTRID, UNIT, 48))
        .await;
    let mut bad = grant_request(&astrid, "12345678901", &[CANCEL]);
    bad.holder_name = "  ".into();
    bad.patient_name = "Astrid\nHansen".into();
    bad.valid_time = Some(homecare_core::timestamp::to_proto(
        test_now() - Duration::hours(1),
    ));
    bad.end_time = Some(homecare_core::timestamp::to_proto(
        test_now() - Duration::hours(2),
    ));
    bad.request_id = "not a request id".into();
    let refused = server.grant_with(ASTRID, bad).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(
        fields,
        [
            "holder_name",
            "holder_national_id",
            "patient_name",
            "request_id",
            "scopes",
            "valid_time",
        ]
    );
    assert!(!refused.message().contains("12345678901"));

    let own = server
        .grant(ASTRID, &astrid, ASTRID, &[READ])
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&own), ["holder_national_id"]);
    let no_scope = server.grant(ASTRID, &astrid, KARI, &[]).await.unwrap_err();
    assert_eq!(violated_fields(&no_scope), ["scopes"]);
    assert_eq!(server.count_rows("proxies").await, 0);
    server.stop().await;
}

async fn a_repeated_grant_is_one_proxy_and_an_overlapping_one_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let astrid = server
        .own_patient_id_after(&visit("astrid-1", ASTRID, UNIT, 48))
        .await;
    let request = grant_request(&astrid, KARI, &[READ]);
    let first = server.grant_with(ASTRID, request.clone()).await.unwrap();
    let again = server.grant_with(ASTRID, request).await.unwrap();
    assert_eq!(first.id, again.id);
    let overlapping = server
        .grant(ASTRID, &astrid, KARI, &[READ, CANCEL])
        .await
        .unwrap_err();
    assert_eq!(overlapping.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&overlapping).as_deref(), Some("PROXY_EXISTS"));
    assert_eq!(server.count_rows("proxies").await, 1);
    assert_eq!(server.count_rows("proxy_events").await, 1);
    server.stop().await;
}

fn nurse(server: &TestServer, unit: &str) -> String {
    server
        .tokens
        .named_staff(
            "nurse-17",
            Some("Nina Sykepleier"),
            &["nurse"],
            &[unit],
            Duration::minutes(10),
        )
        .expect("token")
}

fn register_request(patient_id: &str, holder: &str, basis: ProxyBasis) -> RegisterProxyRequest {
    RegisterProxyRequest {
        patient_id: patient_id.into(),
        holder_national_id: holder.into(),
        holder_name: "Gunnar Verge".into(),
        patient_name: "Astrid Hansen".into(),
        scopes: vec![
            i32::from(READ),
            i32::from(CANCEL),
            i32::from(Scope::ReadAccessLog),
        ],
        valid_time: None,
        end_time: None,
        request_id: uuid::Uuid::new_v4().to_string(),
        basis: basis.into(),
        document_reference: "SAK-2026/4711".into(),
    }
}

async fn staff_register_paper_proxies_and_guardianships_of_their_own_patients(backend: Backend) {
    let server = TestServer::start(backend).await;
    let astrid = server
        .own_patient_id_after(&visit("astrid-1", ASTRID, UNIT, 48))
        .await;
    let young = server
        .own_patient_id_after(&visit("young-1", YOUNG_PATIENT, UNIT, 48))
        .await;
    let register = |token: String, request: RegisterProxyRequest| {
        let mut client = server.patients();
        async move {
            client
                .register_proxy(authorized(&token, request))
                .await
                .map(|response| response.into_inner().proxy.expect("proxy"))
        }
    };

    // A nurse of another unit cannot tell Astrid exists; a citizen cannot register.
    let elsewhere = register(
        nurse(&server, "unit-b"),
        register_request(&astrid, GUARDIAN, ProxyBasis::Guardianship),
    )
    .await
    .unwrap_err();
    assert_eq!(elsewhere.code(), Code::NotFound);
    let citizen = register(
        server.citizen_token(ASTRID),
        register_request(&astrid, GUARDIAN, ProxyBasis::Guardianship),
    )
    .await
    .unwrap_err();
    assert_eq!(citizen.code(), Code::PermissionDenied);
    let no_basis = register(
        nurse(&server, UNIT),
        RegisterProxyRequest {
            document_reference: String::new(),
            ..register_request(&astrid, GUARDIAN, ProxyBasis::GrantedByPatient)
        },
    )
    .await
    .unwrap_err();
    let mut fields = violated_fields(&no_basis);
    fields.sort();
    assert_eq!(fields, ["basis", "document_reference"]);

    let guardianship = register(
        nurse(&server, UNIT),
        register_request(&astrid, GUARDIAN, ProxyBasis::Guardianship),
    )
    .await
    .expect("registered");
    assert_eq!(guardianship.basis(), ProxyBasis::Guardianship);
    assert_eq!(guardianship.document_reference, "SAK-2026/4711");
    assert_eq!(guardianship.history.len(), 1);
    assert_eq!(
        guardianship.history[0].r#type(),
        pb::proxy_event::Type::Registered
    );
    assert_eq!(guardianship.history[0].actor_kind(), ActorKind::Staff);
    assert_eq!(guardianship.history[0].actor_role(), ActorRole::Staff);
    assert_eq!(guardianship.history[0].actor_name, "Nina Sykepleier");

    let represented = server.represented(GUARDIAN).await.unwrap();
    assert_eq!(represented.len(), 1);
    assert_eq!(represented[0].relation(), Relation::Guardian);
    list_visits(&server, GUARDIAN, &astrid)
        .await
        .expect("the guardian reads");
    access_log(&server, GUARDIAN, &astrid)
        .await
        .expect("with the scope, the guardian reads the access log");

    // The patient sees it (without the archive reference), but cannot end a guardianship.
    let seen = list_proxies(&server, &server.citizen_token(ASTRID), &astrid).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].document_reference, "");
    denied(
        &end(
            &server,
            &server.citizen_token(ASTRID),
            &astrid,
            &guardianship.id,
        )
        .await
        .unwrap_err(),
        "GUARDIANSHIP",
    );
    let log = access_log(&server, ASTRID, &astrid).await.unwrap();
    assert!(
        log.iter()
            .any(|entry| entry.actor_kind() == ActorKind::Staff
                && entry.actor_name == "Nina Sykepleier"
                && entry.action == "proxies.write")
    );

    // A signed form needs a grantor of 16; a guardianship does not.
    let form = register(
        nurse(&server, UNIT),
        register_request(&young, KARI, ProxyBasis::PaperForm),
    )
    .await
    .unwrap_err();
    assert_eq!(error_reason(&form).as_deref(), Some("GRANTOR_TOO_YOUNG"));
    register(
        nurse(&server, UNIT),
        register_request(&young, KARI, ProxyBasis::Guardianship),
    )
    .await
    .expect("a guardian for a 15-year-old");
    server.stop().await;
}

async fn either_side_ends_a_proxy_and_its_history_is_kept(backend: Backend) {
    let (server, astrid, _bjarne) = two_patients(backend).await;
    let proxy = server.grant(ASTRID, &astrid, KARI, &[READ]).await.unwrap();

    server.clock.set(test_now() + Duration::hours(1));
    let changed = server
        .patients()
        .update_proxy(authorized(
            &server.citizen_token(ASTRID),
            UpdateProxyRequest {
                patient_id: astrid.clone(),
                proxy_id: proxy.id.clone(),
                scopes: vec![i32::from(READ), i32::from(CANCEL)],
                end_time: None,
                update_mask: vec!["scopes".into()],
            },
        ))
        .await
        .expect("changed")
        .into_inner()
        .proxy
        .unwrap();
    assert_eq!(changed.scopes, [i32::from(READ), i32::from(CANCEL)]);
    let visit_id = list_visits(&server, KARI, &astrid).await.unwrap()[0]
        .id
        .clone();

    // The holder ends it herself.
    server.clock.set(test_now() + Duration::hours(2));
    let ended = end(&server, &server.citizen_token(KARI), &astrid, &proxy.id)
        .await
        .expect("ended by the holder");
    assert_eq!(ended.state(), ProxyState::Ended);
    denied(
        &server
            .cancel(KARI, &astrid, &visit_id, "k-9")
            .await
            .unwrap_err(),
        "PROXY_ENDED",
    );
    // Ending again changes nothing; a stranger cannot end it or see it.
    let again = end(&server, &server.citizen_token(ASTRID), &astrid, &proxy.id)
        .await
        .expect("already ended");
    assert_eq!(again.ended_time, ended.ended_time);
    let stranger = end(&server, &server.citizen_token(OLA), &astrid, &proxy.id)
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound);

    let proxies = list_proxies(&server, &server.citizen_token(ASTRID), &astrid).await;
    assert_eq!(proxies.len(), 1);
    assert!(
        proxies[0]
            .history
            .iter()
            .all(|event| same_kind(event.actor_kind(), event.actor_role()))
    );
    let history: Vec<(pb::proxy_event::Type, ActorKind, String)> = proxies[0]
        .history
        .iter()
        .map(|event| (event.r#type(), event.actor_kind(), event.actor_name.clone()))
        .collect();
    assert_eq!(
        history,
        [
            (
                pb::proxy_event::Type::Granted,
                ActorKind::Patient,
                String::new()
            ),
            (
                pb::proxy_event::Type::Changed,
                ActorKind::Patient,
                String::new()
            ),
            (
                pb::proxy_event::Type::Ended,
                ActorKind::Proxy,
                "Kari Nordmann".into()
            ),
        ]
    );
    assert_eq!(
        proxies[0].history[2].occur_time,
        Some(homecare_core::timestamp::to_proto(
            test_now() + Duration::hours(2)
        ))
    );
    server.stop().await;
}

/// Whether the deprecated role names the same kind of actor as the contract's kind.
#[allow(deprecated)]
fn same_kind(kind: ActorKind, role: ActorRole) -> bool {
    matches!(
        (kind, role),
        (ActorKind::Patient, ActorRole::Patient)
            | (ActorKind::Proxy, ActorRole::Proxy)
            | (ActorKind::Staff, ActorRole::Staff)
            | (ActorKind::System, ActorRole::System)
    )
}
