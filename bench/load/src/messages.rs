//! The messaging scenarios (`--messages`): the server's RSS while 16 clients upload a 10 MB
//! attachment each at once (its growth over the idle server: the bytes must be streamed, not
//! buffered); messages sent per second without attachments and with one 1 MB attachment;
//! and the staff inbox listed at 8 streams once the unit holds 10,000 open threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use homecare_proto::messaging::v1 as pb;
use homecare_proto::messaging::v1::messaging_service_client::MessagingServiceClient;
use homecare_server::dev_keys::TokenMinter;
use sea_orm::ConnectionTrait as _;
use tonic::transport::Channel;

use crate::{Args, ScenarioResult, authorized, own_patient_id, run_scenario, server_memory};

/// The unit every load thread goes to, and whose inbox is listed.
const UNIT: &str = "general-inquiries";
/// Open threads in the inbox when it is listed.
const INBOX_THREADS: usize = 10_000;

/// A PDF of `size` bytes (its header, then padding).
fn pdf(size: usize) -> Vec<u8> {
    let mut bytes =
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec();
    bytes.resize(size, b' ');
    bytes
}

fn client(channel: &Channel) -> MessagingServiceClient<Channel> {
    MessagingServiceClient::new(channel.clone())
}

/// Uploads `bytes` for `patient_id` in 128 KiB chunks.
async fn upload(
    channel: &Channel,
    token: &str,
    patient_id: &str,
    bytes: Arc<Vec<u8>>,
) -> Result<pb::Attachment, tonic::Status> {
    let info = pb::UploadAttachmentRequest {
        part: Some(pb::upload_attachment_request::Part::Info(
            pb::AttachmentInfo {
                patient_id: patient_id.to_owned(),
                thread_id: String::new(),
                file_name: "vedlegg.pdf".into(),
            },
        )),
    };
    // Chunks are made as they are sent: the client does not hold a second copy either.
    let chunks = (0..bytes.len().div_ceil(128 * 1024)).map(move |n| {
        let end = ((n + 1) * 128 * 1024).min(bytes.len());
        pb::UploadAttachmentRequest {
            part: Some(pb::upload_attachment_request::Part::Chunk(
                bytes[n * 128 * 1024..end].to_vec(),
            )),
        }
    });
    let parts = tokio_stream::iter(std::iter::once(info).chain(chunks));
    client(channel)
        .upload_attachment(authorized(token, parts))
        .await
        .map(|response| response.into_inner().attachment.unwrap_or_default())
}

fn thread_request(patient_id: &str, attachment: Option<String>) -> pb::CreateThreadRequest {
    pb::CreateThreadRequest {
        patient_id: patient_id.to_owned(),
        care_unit_id: UNIT.into(),
        subject: "Spørsmål om besøket".into(),
        text: "Hei! Kan dere komme litt senere på torsdag? Mvh".into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        attachment_ids: attachment.into_iter().collect(),
        ..Default::default()
    }
}

/// One citizen writing: their token and patient id.
#[derive(Clone)]
struct Writer {
    token: Arc<str>,
    patient_id: Arc<str>,
}

/// Runs the messaging scenarios on a server whose citizens `pids` each have one visit.
pub(crate) async fn run(
    args: &Args,
    channel: &Channel,
    tokens: &TokenMinter,
    pids: &[String],
    server_pid: u32,
    schema: Option<&str>,
) -> anyhow::Result<()> {
    let ttl = chrono::Duration::hours(2);
    let mut writers = Vec::with_capacity(pids.len());
    for pid in pids {
        let token = tokens.citizen(pid, ttl)?;
        let patient_id = own_patient_id(channel, &token).await?;
        writers.push(Writer {
            token: token.into(),
            patient_id: patient_id.into(),
        });
    }

    // 16 uploads of 10 MB at once, against the idle server's RSS.
    let (_, idle_rss) = server_memory(server_pid)?;
    let peak = Arc::new(AtomicU64::new(idle_rss));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (peak, sampling) = (peak.clone(), sampling.clone());
        async move {
            while sampling.load(Ordering::Relaxed) {
                if let Ok((_, rss)) = server_memory(server_pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let ten_mb = Arc::new(pdf(10 * 1024 * 1024));
    let started = Instant::now();
    let mut uploads = tokio::task::JoinSet::new();
    for (n, writer) in writers.iter().cycle().take(16).enumerate() {
        let (channel, writer) = (channel.clone(), writer.clone());
        let mut bytes = (*ten_mb).clone();
        // Distinct content, so that each is stored anew.
        bytes[100..108].copy_from_slice(&(n as u64).to_be_bytes());
        let bytes = Arc::new(bytes);
        uploads
            .spawn(async move { upload(&channel, &writer.token, &writer.patient_id, bytes).await });
    }
    drop(ten_mb);
    let mut uploaded = 0;
    while let Some(result) = uploads.join_next().await {
        result?.context("a 10 MB upload")?;
        uploaded += 1;
    }
    let upload_seconds = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    sampler.await?;
    let upload_peak = peak.load(Ordering::Relaxed);

    let next = Arc::new(AtomicUsize::new(0));
    let plain = {
        let (channel, writers, next) = (channel.clone(), Arc::new(writers.clone()), next.clone());
        move || {
            let writer = writers[next.fetch_add(1, Ordering::Relaxed) % writers.len()].clone();
            let mut client = client(&channel);
            async move {
                client
                    .create_thread(authorized(
                        &writer.token,
                        thread_request(&writer.patient_id, None),
                    ))
                    .await
                    .is_ok_and(|response| response.into_inner().receipt.is_some())
            }
        }
    };
    let sent = run_scenario("send_message", args, plain).await;

    let one_mb = Arc::new(pdf(1024 * 1024));
    let with_attachment = {
        let (channel, writers, next) = (channel.clone(), Arc::new(writers.clone()), next.clone());
        move || {
            let writer = writers[next.fetch_add(1, Ordering::Relaxed) % writers.len()].clone();
            let mut bytes = (*one_mb).clone();
            bytes[100..116].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            let channel = channel.clone();
            async move {
                let Ok(attachment) =
                    upload(&channel, &writer.token, &writer.patient_id, Arc::new(bytes)).await
                else {
                    return false;
                };
                client(&channel)
                    .create_thread(authorized(
                        &writer.token,
                        thread_request(&writer.patient_id, Some(attachment.id)),
                    ))
                    .await
                    .is_ok_and(|response| response.into_inner().receipt.is_some())
            }
        }
    };
    let sent_with_attachment = run_scenario("send_with_1mb_file", args, with_attachment).await;

    // Top the unit's inbox up to 10,000 open threads, then list it at 8 streams.
    let staff = tokens.staff("load-nurse", &["nurse"], &[UNIT], ttl)?;
    let open = count_open(channel, &staff).await?;
    let mut top_up = tokio::task::JoinSet::new();
    for n in open..INBOX_THREADS {
        let writer = writers[n % writers.len()].clone();
        let channel = channel.clone();
        top_up.spawn(async move {
            client(&channel)
                .create_thread(authorized(
                    &writer.token,
                    thread_request(&writer.patient_id, None),
                ))
                .await
                .map(|_| ())
        });
        if top_up.len() >= 32 {
            top_up.join_next().await.context("top-up")???;
        }
    }
    while let Some(result) = top_up.join_next().await {
        result??;
    }
    let inbox_open = count_open(channel, &staff).await?;
    // The tables were filled a moment ago; autovacuum would analyze them soon after. Without
    // statistics PostgreSQL expects a handful of rows and sorts the whole unit instead of
    // reading the inbox index in order (measured: 23 ms against 0.06 ms a page).
    if let (Some(url), Some(schema)) = (&args.database_url, schema) {
        let db = sea_orm::Database::connect(url.as_str()).await?;
        db.execute_unprepared(&format!(
            "ANALYZE {schema}.message_threads, {schema}.messages, {schema}.message_reads"
        ))
        .await?;
        db.close().await?;
    }
    let list = {
        let (channel, staff) = (channel.clone(), Arc::<str>::from(staff.as_str()));
        move || {
            let mut client = client(&channel);
            let staff = staff.clone();
            async move {
                client
                    .list_inbox(authorized(
                        &staff,
                        pb::ListInboxRequest {
                            care_unit_id: UNIT.into(),
                            page_size: 50,
                            page_token: String::new(),
                        },
                    ))
                    .await
                    .is_ok_and(|response| response.into_inner().threads.len() == 50)
            }
        }
    };
    let mut eight = args.clone();
    eight.concurrency = 8;
    let inbox = run_scenario("list_inbox", &eight, list).await;

    let (peak_rss, rss) = server_memory(server_pid)?;
    println!(
        "backend: {}  concurrency: {}  seconds: {}  citizens: {}",
        if args.database_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        args.concurrency,
        args.seconds,
        writers.len()
    );
    println!(
        "16 concurrent 10 MB uploads: {uploaded} stored in {upload_seconds:.1}s; server RSS \
         idle {:.1} MB, peak during uploads {:.1} MB (+{:.1} MB)",
        idle_rss as f64 / 1024.0,
        upload_peak as f64 / 1024.0,
        upload_peak.saturating_sub(idle_rss) as f64 / 1024.0
    );
    println!(
        "{:<20} {:>12} {:>10} {:>10} {:>8}",
        "scenario", "requests/s", "p50 ms", "p99 ms", "errors"
    );
    print_row(&sent);
    print_row(&sent_with_attachment);
    println!("(list_inbox: 8 streams, page of 50, {inbox_open} open threads in the unit)");
    print_row(&inbox);
    println!(
        "server RSS: peak {:.1} MB, now {:.1} MB",
        peak_rss as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    Ok(())
}

fn print_row(result: &ScenarioResult) {
    println!(
        "{:<20} {:>12.0} {:>10.2} {:>10.2} {:>8}",
        result.name,
        result.per_second(),
        result.p50.as_secs_f64() * 1e3,
        result.p99.as_secs_f64() * 1e3,
        result.errors
    );
}

/// The open threads of the unit, counted through the inbox's pages.
async fn count_open(channel: &Channel, staff: &str) -> anyhow::Result<usize> {
    let mut count = 0;
    let mut token = String::new();
    loop {
        let page = client(channel)
            .list_inbox(authorized(
                staff,
                pb::ListInboxRequest {
                    care_unit_id: UNIT.into(),
                    page_size: 200,
                    page_token: token,
                },
            ))
            .await?
            .into_inner();
        count += page.threads.len();
        if page.next_page_token.is_empty() {
            return Ok(count);
        }
        token = page.next_page_token;
    }
}
