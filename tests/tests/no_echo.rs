//! Two properties of every RPC, driven by the contracts themselves.
//!
//! Nothing a client sends comes back in an error: an identity number, or a 10,000-character
//! string, put in any string field of any RPC never appears in the status message or its
//! details, and the status always fits in its headers (the client sees our code, not
//! RESOURCE_EXHAUSTED).
//!
//! Driven by the contracts themselves: every method of every service in the descriptor set,
//! every string field (nested ones too), called as a citizen, a nurse and the EPJ account.
//! Each call starts from a valid request for that method, so the probe reaches the checks
//! behind validation as well, and a method added without a valid request here fails the test.

use std::collections::BTreeMap;
use std::str::FromStr as _;

use bytes::{Buf as _, BufMut as _};
use homecare_proto::appointments::v1 as appointments;
use homecare_proto::messaging::v1 as messaging;
use homecare_proto::notifications::v1 as notifications;
use homecare_proto::patients::v1 as patients;
use homecare_tests::epj::FakeEpj;
use homecare_tests::messages::{new_thread, pdf_bytes};
use homecare_tests::people::{ASTRID, BJARNE, KARI, OLA};
use homecare_tests::{
    Backend, TestServer, authorized, grant_request, on_every_backend, test_now, visit,
};
use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

on_every_backend!(
    no_string_field_of_any_rpc_comes_back_in_an_error,
    every_read_by_someone_else_goes_to_the_access_log
);

/// A distinctive run that never occurs in our own texts; any echo of the long probe, whole
/// or cut, contains it.
const MARKER: &str = "Zq9Zq9";

fn long_probe() -> String {
    "Zq9".repeat(3_334)[..10_000].to_owned()
}

/// Messages travel as bytes, so that one client can call every method.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut bytes = vec![0; src.remaining()];
        src.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

/// A method of the contracts: its path, request type and whether it streams its answer.
struct Method {
    path: String,
    input: String,
    server_streaming: bool,
}

fn contracts() -> (Vec<Method>, BTreeMap<String, DescriptorProto>) {
    let set = FileDescriptorSet::decode(homecare_proto::FILE_DESCRIPTOR_SET).expect("descriptors");
    let mut methods = Vec::new();
    let mut messages = BTreeMap::new();
    for file in &set.file {
        let package = file.package();
        for message in &file.message_type {
            messages.insert(format!(".{package}.{}", message.name()), message.clone());
        }
        for service in &file.service {
            for method in &service.method {
                methods.push(Method {
                    path: format!("/{package}.{}/{}", service.name(), method.name()),
                    input: method.input_type().to_owned(),
                    server_streaming: method.server_streaming(),
                });
            }
        }
    }
    (methods, messages)
}

/// Every string field reachable in `message`, as paths of field numbers.
fn string_paths(
    message: &str,
    messages: &BTreeMap<String, DescriptorProto>,
    depth: usize,
) -> Vec<Vec<u32>> {
    let Some(descriptor) = messages.get(message) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for field in &descriptor.field {
        let number = u32::try_from(field.number()).expect("field number");
        match field.r#type() {
            Type::String => paths.push(vec![number]),
            Type::Message if depth < 3 && field.label() != Label::Repeated => {
                for mut inner in string_paths(field.type_name(), messages, depth + 1) {
                    inner.insert(0, number);
                    paths.push(inner);
                }
            }
            _ => {}
        }
    }
    paths
}

fn put_varint(buffer: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buffer.push((value as u8) | 0x80);
        value >>= 7;
    }
    buffer.push(value as u8);
}

/// The wire form of `value` at `path`: a length-delimited field in each enclosing message.
/// Appended to a valid message, it replaces that string (or adds to a repeated one).
fn encode_at(path: &[u32], value: &[u8]) -> Vec<u8> {
    let (first, rest) = path.split_first().expect("a path");
    let payload = if rest.is_empty() {
        value.to_vec()
    } else {
        encode_at(rest, value)
    };
    let mut out = Vec::new();
    put_varint(&mut out, u64::from(*first) << 3 | 2);
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(&payload);
    out
}

/// A valid request for each method, on the data `setup` made.
fn valid_requests(ids: &Ids) -> BTreeMap<String, Vec<u8>> {
    let p = |name| format!("/homecare.patients.v1.PatientService/{name}");
    let a = |name| format!("/homecare.appointments.v1.AppointmentService/{name}");
    let n = |name| format!("/homecare.notifications.v1.NotificationService/{name}");
    let m = |name| format!("/homecare.messaging.v1.MessagingService/{name}");
    let mut grant = grant_request(&ids.patient, OLA, &[patients::Scope::ReadVisits]);
    grant.request_id = "grant-probe".into();
    let entries: Vec<(String, Vec<u8>)> = vec![
        (
            p("GetTermsStatus"),
            patients::GetTermsStatusRequest {}.encode_to_vec(),
        ),
        (
            p("AcceptTerms"),
            patients::AcceptTermsRequest {
                terms_version: "1".into(),
            }
            .encode_to_vec(),
        ),
        (
            p("ListRepresentedPatients"),
            patients::ListRepresentedPatientsRequest {}.encode_to_vec(),
        ),
        (p("GrantProxy"), grant.encode_to_vec()),
        (
            p("RegisterProxy"),
            patients::RegisterProxyRequest {
                patient_id: ids.patient.clone(),
                holder_national_id: OLA.into(),
                holder_name: "Ola Nordmann".into(),
                patient_name: "Astrid Hansen".into(),
                scopes: vec![patients::Scope::ReadVisits.into()],
                valid_time: None,
                end_time: None,
                request_id: "register-probe".into(),
                basis: patients::ProxyBasis::PaperForm.into(),
                document_reference: "2026/123-4".into(),
            }
            .encode_to_vec(),
        ),
        (
            p("UpdateProxy"),
            patients::UpdateProxyRequest {
                patient_id: ids.patient.clone(),
                proxy_id: ids.proxy.clone(),
                scopes: vec![patients::Scope::ReadVisits.into()],
                end_time: None,
                update_mask: vec!["scopes".into()],
            }
            .encode_to_vec(),
        ),
        (
            p("EndProxy"),
            patients::EndProxyRequest {
                patient_id: ids.patient.clone(),
                proxy_id: ids.proxy.clone(),
            }
            .encode_to_vec(),
        ),
        (
            p("ListProxies"),
            patients::ListProxiesRequest {
                patient_id: ids.patient.clone(),
            }
            .encode_to_vec(),
        ),
        (
            p("ListAccessLog"),
            patients::ListAccessLogRequest {
                patient_id: ids.patient.clone(),
                page_size: 0,
                page_token: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            p("SetProtectedAddress"),
            patients::SetProtectedAddressRequest {
                national_id: ASTRID.into(),
                protected_address: false,
            }
            .encode_to_vec(),
        ),
        (
            a("ListAppointments"),
            appointments::ListAppointmentsRequest {
                patient_id: ids.patient.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            a("GetAppointment"),
            appointments::GetAppointmentRequest {
                patient_id: ids.patient.clone(),
                appointment_id: ids.appointment.clone(),
            }
            .encode_to_vec(),
        ),
        (
            a("ListCareUnitAppointments"),
            appointments::ListCareUnitAppointmentsRequest {
                care_unit_id: "unit-a".into(),
                date: "2026-12-03".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            a("UpsertAppointment"),
            visit("v-probe", BJARNE, "unit-a", 72).encode_to_vec(),
        ),
        (
            a("CancelAppointment"),
            appointments::CancelAppointmentRequest {
                patient_id: ids.patient.clone(),
                appointment_id: ids.appointment.clone(),
                reason: "Hos datteren".into(),
                request_id: "cancel-probe".into(),
            }
            .encode_to_vec(),
        ),
        (
            a("ListAppointmentHistory"),
            appointments::ListAppointmentHistoryRequest {
                patient_id: ids.patient.clone(),
                appointment_id: ids.appointment.clone(),
            }
            .encode_to_vec(),
        ),
        (
            a("WatchCareUnitChanges"),
            appointments::WatchCareUnitChangesRequest {
                care_unit_id: "unit-a".into(),
                resume_token: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            a("ListFailedEpjDeliveries"),
            appointments::ListFailedEpjDeliveriesRequest {
                care_unit_id: "unit-a".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            a("RetryEpjDelivery"),
            appointments::RetryEpjDeliveryRequest {
                delivery_id: uuid::Uuid::new_v4().to_string(),
            }
            .encode_to_vec(),
        ),
        (
            n("GetNotificationSettings"),
            notifications::GetNotificationSettingsRequest {}.encode_to_vec(),
        ),
        (
            n("UpdateNotificationSettings"),
            notifications::UpdateNotificationSettingsRequest {
                channels: notifications::Channels::SmsAndEmail.into(),
                phone_number: "+4791234567".into(),
                email_address: "astrid@example.no".into(),
                language: notifications::Language::Nb.into(),
            }
            .encode_to_vec(),
        ),
        (
            n("SetPatientNotifications"),
            notifications::SetPatientNotificationsRequest {
                patient_id: ids.patient.clone(),
                enabled: true,
            }
            .encode_to_vec(),
        ),
        (
            n("ListMyNotices"),
            notifications::ListMyNoticesRequest::default().encode_to_vec(),
        ),
        (
            n("ListPatientNotices"),
            notifications::ListPatientNoticesRequest {
                patient_id: ids.patient.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            n("RetryNotice"),
            notifications::RetryNoticeRequest {
                patient_id: ids.patient.clone(),
                notice_id: uuid::Uuid::new_v4().to_string(),
            }
            .encode_to_vec(),
        ),
        (
            m("ListMessageRecipients"),
            messaging::ListMessageRecipientsRequest {
                patient_id: ids.patient.clone(),
            }
            .encode_to_vec(),
        ),
        (
            m("UploadAttachment"),
            messaging::UploadAttachmentRequest {
                part: Some(messaging::upload_attachment_request::Part::Info(
                    messaging::AttachmentInfo {
                        patient_id: ids.patient.clone(),
                        thread_id: ids.thread.clone(),
                        file_name: "vedtak.pdf".into(),
                    },
                )),
            }
            .encode_to_vec(),
        ),
        (
            m("DownloadAttachment"),
            messaging::DownloadAttachmentRequest {
                patient_id: ids.patient.clone(),
                attachment_id: ids.attachment.clone(),
            }
            .encode_to_vec(),
        ),
        (
            m("CreateThread"),
            messaging::CreateThreadRequest {
                request_id: "create-probe".into(),
                ..new_thread(&ids.patient, "unit-a", "Spørsmål", "Hei")
            }
            .encode_to_vec(),
        ),
        (
            m("ReplyToThread"),
            messaging::ReplyToThreadRequest {
                patient_id: ids.patient.clone(),
                thread_id: ids.thread.clone(),
                text: "Hei igjen".into(),
                request_id: "reply-probe".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            m("UpdateDraft"),
            messaging::UpdateDraftRequest {
                patient_id: ids.patient.clone(),
                message_id: ids.draft.clone(),
                text: "Utkast".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            m("SendDraft"),
            messaging::SendDraftRequest {
                patient_id: ids.patient.clone(),
                message_id: ids.draft.clone(),
                request_id: "send-probe".into(),
            }
            .encode_to_vec(),
        ),
        (
            m("DeleteDraft"),
            messaging::DeleteDraftRequest {
                patient_id: ids.patient.clone(),
                message_id: ids.draft.clone(),
            }
            .encode_to_vec(),
        ),
        (
            m("ListThreads"),
            messaging::ListThreadsRequest {
                patient_id: ids.patient.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            m("GetThread"),
            messaging::GetThreadRequest {
                patient_id: ids.patient.clone(),
                thread_id: ids.thread.clone(),
            }
            .encode_to_vec(),
        ),
        (
            m("MarkThreadRead"),
            messaging::MarkThreadReadRequest {
                patient_id: ids.patient.clone(),
                thread_id: ids.thread.clone(),
                read: true,
            }
            .encode_to_vec(),
        ),
        (
            m("ListInbox"),
            messaging::ListInboxRequest {
                care_unit_id: "unit-a".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            m("ReassignThread"),
            messaging::ReassignThreadRequest {
                thread_id: ids.thread.clone(),
                care_unit_id: "unit-a".into(),
            }
            .encode_to_vec(),
        ),
        (
            m("CloseThread"),
            messaging::CloseThreadRequest {
                thread_id: uuid::Uuid::new_v4().to_string(),
            }
            .encode_to_vec(),
        ),
        (
            m("WatchInbox"),
            messaging::WatchInboxRequest {
                care_unit_id: "unit-a".into(),
                resume_token: String::new(),
            }
            .encode_to_vec(),
        ),
    ];
    entries.into_iter().collect()
}

struct Ids {
    patient: String,
    appointment: String,
    proxy: String,
    thread: String,
    draft: String,
    attachment: String,
}

/// A thread of the patient's in unit-a with an attachment, and a reply draft of hers.
async fn messaging_ids(server: &TestServer, patient: &str) -> (String, String, String) {
    let token = server.citizen_token(ASTRID);
    let attachment = server
        .upload(
            &token,
            messaging::AttachmentInfo {
                patient_id: patient.into(),
                thread_id: String::new(),
                file_name: "vedtak.pdf".into(),
            },
            &pdf_bytes(4096),
            1024,
        )
        .await
        .expect("upload")
        .id;
    let mut request = new_thread(patient, "unit-a", "Spørsmål", "Hei");
    request.attachment_ids = vec![attachment.clone()];
    let thread = server
        .create_thread(ASTRID, request)
        .await
        .expect("thread")
        .thread
        .expect("thread")
        .id;
    let draft = server
        .messaging()
        .reply_to_thread(authorized(
            &token,
            messaging::ReplyToThreadRequest {
                patient_id: patient.into(),
                thread_id: thread.clone(),
                text: "Utkast".into(),
                draft: true,
                ..Default::default()
            },
        ))
        .await
        .expect("draft")
        .into_inner()
        .message
        .expect("message")
        .id;
    (thread, draft, attachment)
}

/// A client for any method, ready, and the path of `method`.
async fn ready_client(
    server: &TestServer,
    method: &Method,
) -> (
    tonic::client::Grpc<tonic::transport::Channel>,
    tonic::codegen::http::uri::PathAndQuery,
) {
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_str(&method.path).expect("path");
    (grpc, path)
}

/// The status of calling `path` with `body` as `token`, if the call failed (for a stream:
/// at its start or in its first message).
async fn call(
    server: &TestServer,
    method: &Method,
    token: &str,
    body: Vec<u8>,
) -> Option<tonic::Status> {
    let (mut grpc, path) = ready_client(server, method).await;
    let request = authorized(token, body);
    if method.server_streaming {
        let mut stream = match grpc.server_streaming(request, path, RawCodec).await {
            Ok(response) => response.into_inner(),
            Err(status) => return Some(status),
        };
        // The first message or error, if one comes at once; a healthy idle stream is no echo.
        match tokio::time::timeout(std::time::Duration::from_millis(200), stream.message()).await {
            Ok(Err(status)) => Some(status),
            _ => None,
        }
    } else {
        grpc.unary(request, path, RawCodec).await.err()
    }
}

async fn no_string_field_of_any_rpc_comes_back_in_an_error(backend: Backend) {
    let server = TestServer::start(backend).await;
    let appointment = server
        .upsert(visit("v-1", ASTRID, "unit-a", 72))
        .await
        .appointment
        .expect("appointment")
        .id;
    let patient = server.own_patient_id(ASTRID).await;
    let proxy = server
        .grant(ASTRID, &patient, KARI, &[patients::Scope::ReadVisits])
        .await
        .expect("grant")
        .id;
    let (thread, draft, attachment) = messaging_ids(&server, &patient).await;
    let ids = Ids {
        patient,
        appointment,
        proxy,
        thread,
        draft,
        attachment,
    };
    let valid = valid_requests(&ids);
    let (methods, messages) = contracts();
    let missing: Vec<&str> = methods
        .iter()
        .map(|method| method.path.as_str())
        .filter(|path| !valid.contains_key(*path))
        .collect();
    assert!(missing.is_empty(), "no valid request for {missing:?}");

    let tokens = [
        server.citizen_token(ASTRID),
        server.nurse_token("nurse-probe", &["unit-a"]),
        server.epj_token(),
    ];
    let long = long_probe();
    let probes: [(&str, &str); 2] = [(BJARNE, BJARNE), (&long, MARKER)];
    let mut calls = 0;
    for method in &methods {
        let paths = string_paths(&method.input, &messages, 0);
        assert!(
            !paths.is_empty() || valid[&method.path].is_empty(),
            "{}",
            method.path
        );
        for path in &paths {
            for (probe, evidence) in probes {
                for token in &tokens {
                    let mut body = valid[&method.path].clone();
                    body.extend(encode_at(path, probe.as_bytes()));
                    calls += 1;
                    let Some(status) = call(&server, method, token, body).await else {
                        continue;
                    };
                    let shown = format!("{} {:?}", status.message(), status.details());
                    let what = format!("{} field {path:?}: {status:?}", method.path);
                    assert!(!status.message().contains(evidence), "echoed: {what}");
                    assert!(
                        !String::from_utf8_lossy(status.details()).contains(evidence),
                        "echoed in details: {what}"
                    );
                    assert!(
                        !matches!(
                            status.code(),
                            Code::ResourceExhausted | Code::Internal | Code::Unknown
                        ),
                        "{what}"
                    );
                    assert!(shown.len() < 4096, "too long: {what}");
                }
            }
        }
    }
    assert!(calls > 100, "the contracts were walked: {calls} calls");

    // A bad value repeated to the size limit is one violation, not thousands.
    let status = server
        .patients()
        .update_proxy(authorized(
            &tokens[0],
            patients::UpdateProxyRequest {
                patient_id: ids.patient.clone(),
                proxy_id: ids.proxy.clone(),
                update_mask: vec!["holder".into(); 6_000],
                ..Default::default()
            },
        ))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().len() < 512, "{}", status.message());
    server.stop().await;
}

/// Reads of the caller's own data only: nothing of a patient's is disclosed to another.
const OWN_DATA: [&str; 4] = [
    "GetTermsStatus",
    "ListRepresentedPatients",
    "GetNotificationSettings",
    "ListMyNotices",
];

/// The answer to a unary call of `method`: its bytes, or the status.
async fn unary_answer(
    server: &TestServer,
    method: &Method,
    token: &str,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let (mut grpc, path) = ready_client(server, method).await;
    grpc.unary(authorized(token, body), path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

/// Every read RPC (List, Get, Watch) that shows a patient's data to someone other than the
/// patient (a nurse of the patient's unit, a proxy holder) leaves a row in the access log
/// before the answer arrives. A read RPC added to the contracts is covered at once, and must
/// show data to one of the two: the test cannot pass by reading nothing.
async fn every_read_by_someone_else_goes_to_the_access_log(backend: Backend) {
    // An EPJ that refuses the first cancellation, so that staff have a failed delivery to list.
    let epj = FakeEpj::healthy().await;
    epj.first_answer("PUT", 1, wiremock::ResponseTemplate::new(400))
        .await;
    let server = TestServer::start_with(backend, |config| epj.configure(config)).await;
    let mut changes = server.watch("unit-a", "").await;
    let refused = server
        .upsert(visit("v-refused", ASTRID, "unit-a", 48))
        .await
        .appointment
        .expect("appointment")
        .id;
    let astrid = server.own_patient_id(ASTRID).await;
    server
        .cancel(ASTRID, &astrid, &refused, "refused-cancel")
        .await
        .expect("cancel");
    changes
        .until(appointments::AppointmentEventType::CancellationFailed, 1)
        .await;
    let visit_at = test_now() + chrono::Duration::hours(72);
    let appointment = server
        .upsert(visit("v-1", ASTRID, "unit-a", 72))
        .await
        .appointment
        .expect("appointment")
        .id;
    let patient = server.own_patient_id(ASTRID).await;
    let proxy = server
        .grant(
            ASTRID,
            &patient,
            KARI,
            &[
                patients::Scope::ReadVisits,
                patients::Scope::ReadAccessLog,
                patients::Scope::Messaging,
            ],
        )
        .await
        .expect("grant")
        .id;
    let (thread, draft, attachment) = messaging_ids(&server, &patient).await;
    let ids = Ids {
        patient,
        appointment,
        proxy,
        thread,
        draft,
        attachment,
    };
    // The grant is told to its holder (a notice about the patient, skipped: no settings),
    // so that staff have notices of the patient to list.
    server.until_rows("notices", 1).await;
    let mut valid = valid_requests(&ids);
    // The day the visit is on, so that the unit's list shows it.
    let day = visit_at
        .with_timezone(&chrono_tz::Europe::Oslo)
        .date_naive()
        .to_string();
    valid.insert(
        "/homecare.appointments.v1.AppointmentService/ListCareUnitAppointments".into(),
        appointments::ListCareUnitAppointmentsRequest {
            care_unit_id: "unit-a".into(),
            date: day,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let others = [
        ("nurse", server.nurse_token("nurse-reader", &["unit-a"])),
        ("proxy holder", server.citizen_token(KARI)),
    ];
    let (methods, _) = contracts();
    let mut reads = 0;
    for method in &methods {
        let name = method.path.rsplit('/').next().expect("a method name");
        let is_read = ["List", "Get", "Watch"]
            .iter()
            .any(|verb| name.starts_with(verb));
        if !is_read || OWN_DATA.contains(&name) {
            continue;
        }
        reads += 1;
        let mut disclosed_to = Vec::new();
        for (who, token) in &others {
            let before = server.count_rows("access_log_entries").await;
            let disclosed = if method.server_streaming {
                stream_discloses(
                    &server,
                    method,
                    token,
                    valid[&method.path].clone(),
                    &ids.patient,
                )
                .await
            } else {
                matches!(
                    unary_answer(&server, method, token, valid[&method.path].clone()).await,
                    Ok(bytes) if !bytes.is_empty()
                )
            };
            if disclosed {
                let after = server.count_rows("access_log_entries").await;
                assert!(
                    after > before,
                    "{} showed a patient's data to a {who} without an access-log row",
                    method.path
                );
                disclosed_to.push(*who);
            }
        }
        assert!(
            !disclosed_to.is_empty(),
            "{} showed nothing to a nurse or a proxy holder: give it a request that does",
            method.path
        );
    }
    assert!(reads >= 6, "the contracts were walked: {reads} read RPCs");
    server.stop().await;
}

/// Whether a stream of `method` delivers a message once a visit of unit-a changes and the
/// patient `patient` writes to unit-a.
async fn stream_discloses(
    server: &TestServer,
    method: &Method,
    token: &str,
    body: Vec<u8>,
    patient: &str,
) -> bool {
    let (mut grpc, path) = ready_client(server, method).await;
    let Ok(response) = grpc
        .server_streaming(authorized(token, body), path, RawCodec)
        .await
    else {
        return false;
    };
    let mut stream = response.into_inner();
    server.upsert(visit("v-stream", BJARNE, "unit-a", 96)).await;
    server
        .create_thread(ASTRID, new_thread(patient, "unit-a", "Strøm", "Hei"))
        .await
        .expect("a thread");
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.message()).await,
        Ok(Ok(Some(_)))
    )
}
