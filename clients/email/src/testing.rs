//! A real SMTP server on loopback for tests (`mailin-embedded`): it accepts every message,
//! or refuses them with a chosen reply, and hands what it received to the test.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::{Handler, Response, Server, SslConfig, response};
use tokio::sync::watch;

/// A message as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The envelope sender.
    pub from: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The message as sent (headers and body, still encoded).
    pub data: String,
}

#[derive(Default)]
struct Shared {
    received: Vec<Received>,
    refuse: Option<Response>,
}

#[derive(Clone)]
struct Collect {
    shared: Arc<Mutex<Shared>>,
    count: Arc<watch::Sender<usize>>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collect {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.from = from.to_owned();
        self.to.clear();
        self.data.clear();
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        self.to.push(to.to_owned());
        response::OK
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        match &self.shared.lock().expect("mail server state").refuse {
            Some(refusal) => refusal.clone(),
            None => response::OK,
        }
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let received = Received {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            data: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
        };
        let count = {
            let mut shared = self.shared.lock().expect("mail server state");
            shared.received.push(received);
            shared.received.len()
        };
        self.count.send_replace(count);
        response::OK
    }
}

/// An SMTP server on a free loopback port, running until the process ends.
#[derive(Clone)]
pub struct MailServer {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    count: watch::Receiver<usize>,
}

impl MailServer {
    /// Starts one.
    pub fn start() -> MailServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let address = listener.local_addr().expect("its address");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (count, receiver) = watch::channel(0);
        let handler = Collect {
            shared: shared.clone(),
            count: Arc::new(count),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        let mut server = Server::new(handler);
        server
            .with_name("mail.test")
            .with_ssl(SslConfig::None)
            .expect("no TLS")
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        MailServer {
            address,
            shared,
            count: receiver,
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// From now on, answers every message's DATA with `code` (e.g. 550 or 451).
    pub fn refuse_with(&self, refusal: Option<Response>) {
        self.shared.lock().expect("mail server state").refuse = refusal;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .lock()
            .expect("mail server state")
            .received
            .clone()
    }

    /// Waits (at most `limit`) until at least `count` messages have arrived; returns them.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Received> {
        let mut seen = self.count.clone();
        let _ = tokio::time::timeout(limit, seen.wait_for(|arrived| *arrived >= count)).await;
        self.received()
    }
}

/// The replies a test may refuse with.
pub mod replies {
    pub use mailin_embedded::response::{INTERNAL_ERROR, NO_STORAGE};
}
