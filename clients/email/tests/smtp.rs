//! The SMTP sender against a real SMTP server on loopback.

use std::time::Duration;

use homecare_email::testing::{MailServer, replies};
use homecare_email::{Email as _, EmailError, OutgoingEmail, Security, Smtp, SmtpConfig};

fn sender(server: &MailServer) -> Smtp {
    Smtp::new(&SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port: server.port(),
        security: Security::PlainOnLoopback,
        credentials: None,
        from: "Hjemmetjenesten i Ås <varsel@as.kommune.test>".to_owned(),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

fn message() -> OutgoingEmail {
    OutgoingEmail {
        to: "kari@example.test".to_owned(),
        subject: "Besøket ditt er endret – åpne portalen".to_owned(),
        text: "Besøket ditt 24.12.2026 kl. 08:00 er endret.".to_owned(),
        html: "<p>Besøket ditt 24.12.2026 kl. 08:00 er endret.</p>".to_owned(),
        message_id: "0193a1b2-0000-7000-8000-000000000001".to_owned(),
    }
}

#[tokio::test]
async fn a_message_arrives_as_text_and_html_with_its_id_and_an_encoded_subject() {
    let server = MailServer::start();
    sender(&server).send(&message()).await.unwrap();
    let received = server.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.from, "varsel@as.kommune.test");
    assert_eq!(mail.to, ["kari@example.test"]);
    let data = &mail.data;
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(data.contains("text/plain; charset=utf-8"), "{data}");
    assert!(data.contains("text/html; charset=utf-8"), "{data}");
    assert!(
        data.contains("Message-ID: <0193a1b2-0000-7000-8000-000000000001@as.kommune.test>"),
        "{data}"
    );
    // Non-ASCII headers are encoded words, never raw bytes.
    let subject = data
        .lines()
        .find(|line| line.starts_with("Subject:"))
        .expect("a subject");
    assert!(subject.contains("=?utf-8?"), "{subject}");
    assert!(subject.is_ascii(), "{subject}");
    let from = data.lines().find(|line| line.starts_with("From:")).unwrap();
    assert!(
        from.is_ascii() && from.contains("<varsel@as.kommune.test>"),
        "{from}"
    );
}

#[tokio::test]
async fn a_5xx_is_refused_and_a_4xx_or_no_server_is_temporary() {
    let server = MailServer::start();
    server.refuse_with(Some(replies::NO_STORAGE));
    let refused = sender(&server).send(&message()).await;
    assert!(
        matches!(refused, Err(EmailError::Refused { ref reason }) if reason.contains("552")),
        "{refused:?}"
    );
    server.refuse_with(Some(replies::INTERNAL_ERROR));
    let temporary = sender(&server).send(&message()).await;
    assert!(
        matches!(temporary, Err(EmailError::Temporary { ref reason }) if reason.contains("451")),
        "{temporary:?}"
    );
    assert!(server.received().is_empty());

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nobody = Smtp::new(&SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port,
        security: Security::PlainOnLoopback,
        credentials: None,
        from: "varsel@as.kommune.test".to_owned(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    assert!(matches!(
        nobody.send(&message()).await,
        Err(EmailError::Temporary { .. })
    ));
}

#[test]
fn plain_smtp_is_only_for_loopback() {
    let config = |host: &str| SmtpConfig {
        host: host.to_owned(),
        port: 25,
        security: Security::PlainOnLoopback,
        credentials: None,
        from: "varsel@as.kommune.test".to_owned(),
        timeout: Duration::from_secs(5),
    };
    assert!(Smtp::new(&config("smtp.example.test")).is_err());
    assert!(Smtp::new(&config("127.0.0.1")).is_ok());
    assert!(
        Smtp::new(&SmtpConfig {
            from: "not an address".to_owned(),
            ..config("127.0.0.1")
        })
        .is_err()
    );
}
