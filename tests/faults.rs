//! Fault tests over real sockets, through the whole proxy: a misbehaving Mastodon (down, slower
//! than the timeout, resetting mid-response, 500s, over the in-flight cap), misbehaving key
//! servers (hanging, slow-drip body, 10 MB body, redirect loop, redirect to loopback, invalid
//! JSON, wrong key id, behind a circuit breaker and a per-host cap) and misbehaving clients
//! (oversized bodies, slowloris, idle keep-alive, more connections than `max_connections`).
//!
//! Each test checks what the sender got, the `reason` the proxy recorded, and then that the
//! same proxy still forwards a valid delivery: a fault that leaked a task, a permit or a
//! connection slot would show up there as a hang (bounded by `within`) or a wrong status.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn upstream_results(metrics: &str, result: &str) -> f64 {
    metric_value(
        metrics,
        &format!("inboxguard_upstream_responses_total{{result=\"{result}\"}}"),
    )
    .unwrap_or(0.0)
}

/// A correctly signed `Create` by `actor` to `INBOX`.
async fn deliver_note(proxy: &Proxy, actor: &Actor) -> (StatusCode, HeaderMap, Bytes) {
    deliver(
        proxy,
        actor,
        &actor.activity("Create", note(actor, "hello")),
    )
    .await
}

/// Asserts a 503 with `Retry-After` and a JSON error body, and that the proxy counted it
/// under `reason`.
async fn assert_503(proxy: &Proxy, answer: (StatusCode, HeaderMap, Bytes), reason: &str) {
    let (status, headers, body) = answer;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{reason}: {body:?}"
    );
    assert!(headers.contains_key(header::RETRY_AFTER), "{headers:?}");
    assert_json_error(&body);
    let m = proxy.metrics().await;
    assert!(
        requests(&m, "rejected", reason) >= 1.0,
        "{reason} not counted"
    );
}

/// Asserts a 401 without `Retry-After` (the sender must not retry a refused key), counted
/// under `reason`.
async fn assert_401(proxy: &Proxy, answer: (StatusCode, HeaderMap, Bytes), reason: &str) {
    let (status, headers, body) = answer;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reason}: {body:?}");
    assert!(!headers.contains_key(header::RETRY_AFTER), "{headers:?}");
    assert_json_error(&body);
    let m = proxy.metrics().await;
    assert_eq!(
        requests(&m, "rejected", reason),
        1.0,
        "{reason} not counted"
    );
}

fn assert_json_error(body: &[u8]) {
    let value: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body:?}"));
    assert!(value["error"].as_str().is_some_and(|s| !s.is_empty()));
}

/// A healthy remote instance, to show that the proxy still serves after a fault.
struct Healthy {
    remote: RemoteInstance,
    actor: Actor,
}

impl Healthy {
    async fn start() -> Healthy {
        let remote = RemoteInstance::start("healthy.example").await;
        let actor = remote.add_actor("ok");
        Healthy { remote, actor }
    }

    /// The proxy forwards a valid delivery and Puma gets it.
    async fn assert_served(&self, proxy: &Proxy, puma: &RecordingUpstream) {
        let before = puma.count();
        let (status, _, body) = deliver_note(proxy, &self.actor).await;
        assert_eq!(status, StatusCode::ACCEPTED, "after the fault: {body:?}");
        assert_eq!(puma.count(), before + 1);
    }
}

/// Polls `cond` every 20 ms until it holds (bounded by `HANG_GUARD`).
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Polls the proxy's metrics until `inboxguard_connections_active` is 0: every connection a
/// test opened has been closed and its task has ended.
async fn wait_no_connections(proxy: &Proxy) {
    within("connections to close", async {
        loop {
            let m = proxy.metrics().await;
            if metric_value(&m, "inboxguard_connections_active") == Some(0.0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// RawServer: a TCP server that writes exactly the bytes a test wants, when it wants
// ---------------------------------------------------------------------------------------

/// What a [`RawServer`] does with one request (read up to the end of its body).
#[derive(Clone)]
enum Raw {
    /// Write these bytes, then close the connection (FIN).
    Write(Bytes),
    /// Write `head`, then `body` one byte per `every`.
    Drip {
        head: Bytes,
        body: Bytes,
        every: Duration,
    },
}

type RawHandler = Arc<dyn Fn(&str) -> Raw + Send + Sync>;

/// Serves one request per connection with whatever its handler says for the request path.
struct RawServer {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    handler: Arc<Mutex<RawHandler>>,
    task: JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

impl RawServer {
    async fn start(handler: impl Fn(&str) -> Raw + Send + Sync + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        RawServer::start_on(listener, handler)
    }

    /// Serves on an existing listener (e.g. one bound earlier to refuse connections).
    fn start_on(
        listener: TcpListener,
        handler: impl Fn(&str) -> Raw + Send + Sync + 'static,
    ) -> RawServer {
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Mutex<RawHandler>> = Arc::new(Mutex::new(Arc::new(handler)));
        let (count, current) = (requests.clone(), handler.clone());
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                while connections.try_join_next().is_some() {}
                let (count, current) = (count.clone(), current.clone());
                connections.spawn(async move {
                    let _ = serve_raw_connection(stream, count, current).await;
                });
            }
        });
        RawServer {
            addr,
            requests,
            handler,
            task,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn set_handler(&self, handler: impl Fn(&str) -> Raw + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Arc::new(handler);
    }
}

async fn serve_raw_connection(
    mut stream: TcpStream,
    count: Arc<AtomicUsize>,
    handler: Arc<Mutex<RawHandler>>,
) -> std::io::Result<()> {
    // The whole request (head and Content-Length body) is read before answering: closing a
    // socket with unread input makes the kernel send RST, which could destroy the answer
    // before the proxy reads it.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let content_length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + content_length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_string();
    count.fetch_add(1, Ordering::SeqCst);
    let handler = handler.lock().unwrap().clone();
    match handler(&path) {
        Raw::Write(bytes) => {
            stream.write_all(&bytes).await?;
            stream.shutdown().await?;
            // Wait for the peer to close too, so our FIN is not followed by a RST.
            let _ = stream.read(&mut chunk).await;
        }
        Raw::Drip { head, body, every } => {
            stream.write_all(&head).await?;
            for byte in body.iter() {
                tokio::time::sleep(every).await;
                stream.write_all(&[*byte]).await?;
            }
        }
    }
    Ok(())
}

/// A complete HTTP/1.1 response with a Content-Length.
fn http_response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Bytes {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    Bytes::from(out)
}

fn redirect_to(location: &str) -> Raw {
    Raw::Write(http_response("302 Found", &[("Location", location)], b""))
}

/// An actor whose documents a [`RawServer`] serves: a [`RemoteInstance`] only mints the
/// actor (host, ids, RSA key); the raw server, pinned to the same host, answers for it.
async fn raw_actor(host: &str, name: &str) -> (RemoteInstance, Actor) {
    let mint = RemoteInstance::start(host).await;
    let actor = mint.add_actor(name);
    (mint, actor)
}

fn actor_json(actor: &Actor) -> String {
    actor_document(
        &actor.host,
        &actor.username,
        &actor.key().public_key_pem().unwrap(),
    )
}

// ---------------------------------------------------------------------------------------
// Upstream (Mastodon) faults
// ---------------------------------------------------------------------------------------

/// Mastodon sends its status line and part of a body, then closes. The proxy streams
/// responses, so the sender sees either that status and then a body that ends early (for
/// Content-Length, a short body; for chunked, no final chunk), or, when the cut comes before
/// the proxy's first write, a connection closed without a complete head. Never a complete
/// 2xx. The proxy's own metrics count the delivery as forwarded with a 2xx result: the head is
/// what it records.
///
/// hyper's verdict on a body whose connection closed before it was complete: an
/// `UnexpectedEof` I/O error (`IncompleteBody`) under a body error.
fn ends_early(err: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::UnexpectedEof;
        }
        source = e.source();
    }
    false
}

#[tokio::test]
async fn upstream_resetting_mid_response_never_gives_the_sender_a_complete_answer() {
    let healthy = Healthy::start().await;
    let truncations = [
        // 100 bytes announced, 10 sent.
        Bytes::from_static(
            b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"queued\":",
        ),
        // Chunked, closed before the terminating chunk.
        Bytes::from_static(
            b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\na\r\n{\"queued\":\r\n",
        ),
    ];
    let cut = Arc::new(Mutex::new(truncations[0].clone()));
    let current = cut.clone();
    let puma = RawServer::start(move |_| Raw::Write(current.lock().unwrap().clone())).await;
    let proxy = Proxy::builder(puma.addr)
        .remote(&healthy.remote)
        .start()
        .await;
    proxy.wait_ready().await;

    for (i, bytes) in truncations.iter().enumerate() {
        *cut.lock().unwrap() = bytes.clone();
        let body = healthy
            .actor
            .activity("Create", note(&healthy.actor, "cut"));
        let signed = healthy.actor.sign_post(INBOX, LOCAL, &body);
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = INBOX.parse().unwrap();
        *request.headers_mut() = signed;
        let response = within(
            "truncated response head",
            request_on_new_connection(proxy.proxy_addr, request),
        )
        .await;
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                let incomplete = err
                    .downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_incomplete_message);
                assert!(incomplete, "case {i}: {err:?}");
                continue;
            }
        };
        assert_eq!(response.status(), StatusCode::ACCEPTED, "case {i}");
        let body = within("truncated response body", response.into_body().collect()).await;
        let err = body.expect_err("a truncated body must not arrive as complete");
        assert!(ends_early(&err), "case {i}: {err:?}");
    }
    assert_eq!(puma.requests(), 2);

    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "forwarded", "forwarded"), 2.0);
    assert_eq!(upstream_results(&m, "2xx"), 2.0);

    // Puma recovers: a new pooled connection, a complete answer.
    puma.set_handler(|_| {
        Raw::Write(http_response(
            "202 Accepted",
            &[("Content-Type", "application/json")],
            b"{\"queued\":true}",
        ))
    });
    let (status, _, body) = deliver_note(&proxy, &healthy.actor).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(&body[..], b"{\"queued\":true}");
    wait_no_connections(&proxy).await;
}

#[tokio::test]
async fn upstream_500s_are_passed_through_to_the_sender() {
    let healthy = Healthy::start().await;
    let puma = RecordingUpstream::start().await;
    puma.fail();
    puma.set_response_body("Puma is on fire");
    let proxy = Proxy::builder(puma.addr())
        .remote(&healthy.remote)
        .start()
        .await;
    proxy.wait_ready().await;

    let (status, headers, body) = deliver_note(&proxy, &healthy.actor).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(&body[..], b"Puma is on fire", "Mastodon's own body");
    // Mastodon's answer, not the proxy's: no Retry-After invented on the way.
    assert!(!headers.contains_key(header::RETRY_AFTER));
    assert_eq!(puma.count(), 1);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "forwarded", "forwarded"), 1.0);
    assert_eq!(upstream_results(&m, "5xx"), 1.0);

    puma.set_status(StatusCode::ACCEPTED);
    healthy.assert_served(&proxy, &puma).await;
}

/// Nothing listens where Mastodon should be: the socket is bound (so no one else can take the
/// port) but not listening, so connections are refused. Once it listens, deliveries resume.
#[tokio::test]
async fn upstream_down_gives_502_and_deliveries_resume_when_it_is_back() {
    let healthy = Healthy::start().await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let puma_addr = socket.local_addr().unwrap();
    let proxy = Proxy::builder(puma_addr)
        .remote(&healthy.remote)
        .start()
        .await;
    proxy.wait_ready().await;

    let (status, headers, body) = deliver_note(&proxy, &healthy.actor).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body:?}");
    assert!(headers.contains_key(header::RETRY_AFTER), "{headers:?}");
    assert_json_error(&body);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "upstream_unreachable"), 1.0);
    assert_eq!(upstream_results(&m, "unreachable"), 1.0);
    assert_eq!(
        metric_value(&m, "inboxguard_upstream_in_flight"),
        Some(0.0),
        "the slot was given back"
    );

    let puma = RawServer::start_on(socket.listen(64).unwrap(), |_| {
        Raw::Write(http_response("202 Accepted", &[], b""))
    });
    let (status, _, body) = deliver_note(&proxy, &healthy.actor).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body:?}");
    assert_eq!(puma.requests(), 1);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "forwarded", "forwarded"), 1.0);
    assert_eq!(upstream_results(&m, "2xx"), 1.0);
}

/// Mastodon takes the request and never answers: 504 after `upstream.timeout_secs`, the
/// in-flight slot is given back, and the proxy forwards again once Mastodon answers.
#[tokio::test]
async fn upstream_slower_than_the_timeout_gets_504_with_retry_after() {
    let healthy = Healthy::start().await;
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&healthy.remote)
        .configure(|c| c.upstream.timeout_secs = 1)
        .start()
        .await;
    proxy.wait_ready().await;
    puma.hang();

    let (status, headers, body) = deliver_note(&proxy, &healthy.actor).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body:?}");
    assert!(headers.contains_key(header::RETRY_AFTER), "{headers:?}");
    assert_json_error(&body);
    assert_eq!(puma.count(), 1, "the request did reach Mastodon");
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "upstream_timeout"), 1.0);
    assert_eq!(upstream_results(&m, "timeout"), 1.0);
    assert_eq!(
        metric_value(&m, "inboxguard_upstream_in_flight"),
        Some(0.0),
        "the slot was given back"
    );

    puma.answer();
    healthy.assert_served(&proxy, &puma).await;
}

#[tokio::test]
async fn upstream_over_max_in_flight_gets_503_with_retry_after() {
    let healthy = Healthy::start().await;
    let second = healthy.remote.add_actor("second");
    let puma = RecordingUpstream::start().await;
    puma.hang();
    let proxy = Proxy::builder(puma.addr())
        .remote(&healthy.remote)
        .configure(|c| {
            c.upstream.max_in_flight = 1;
            c.upstream.timeout_secs = 2;
        })
        .start()
        .await;
    proxy.wait_ready().await;
    // Warm the key cache for `second`, so its delivery reaches the upstream stage at once.
    {
        puma.answer();
        let (status, _, _) = deliver_note(&proxy, &second).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        puma.hang();
    }

    let first = {
        let (addr, actor) = (proxy.proxy_addr, healthy.actor.clone());
        tokio::spawn(async move {
            let body = actor.activity("Create", note(&actor, "first"));
            let headers = actor.sign_post(INBOX, LOCAL, &body);
            send(addr, Method::POST, INBOX, headers, body).await
        })
    };
    // The first delivery holds the only slot once Puma has it.
    wait_until("first delivery at Puma", || puma.count() == 2).await;
    let answer = deliver_note(&proxy, &second).await;
    assert_503(&proxy, answer, "upstream_overloaded").await;
    assert_eq!(puma.count(), 2, "the overflow never reached Puma");

    // The hanging one ends with the upstream timeout and frees its slot.
    let (status, _, _) = within("first delivery", first).await.unwrap();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "upstream_overloaded"), 1.0);
    assert_eq!(upstream_results(&m, "overloaded"), 1.0);
    assert_eq!(requests(&m, "rejected", "upstream_timeout"), 1.0);
    assert_eq!(
        metric_value(&m, "inboxguard_upstream_in_flight"),
        Some(0.0),
        "the slot was given back"
    );

    puma.answer();
    healthy.assert_served(&proxy, &puma).await;
}

// ---------------------------------------------------------------------------------------
// Key server faults
// ---------------------------------------------------------------------------------------

/// A proxy in front of a [`RecordingUpstream`] with `raw` pinned as `host` and the healthy
/// remote pinned as itself.
async fn proxy_with_raw_host(
    puma: &RecordingUpstream,
    healthy: &Healthy,
    host: &str,
    raw: &RawServer,
    configure: impl FnOnce(&mut inboxguard::config::Config) + Send + 'static,
) -> Proxy {
    let proxy = Proxy::builder(puma.addr())
        .remote(&healthy.remote)
        .resolve(host, raw.addr)
        .configure(configure)
        .start()
        .await;
    proxy.wait_ready().await;
    proxy
}

/// The key server accepts the fetch and never answers: 503 + `Retry-After` after
/// `key_fetch.timeout_secs`, and nothing reaches Mastodon.
#[tokio::test]
async fn key_server_hanging_times_out_with_503() {
    let healthy = Healthy::start().await;
    let remote = RemoteInstance::start("hanging.example").await;
    let stuck = remote.add_actor("stuck");
    remote.set_delay(Some(Duration::from_secs(600)));
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&healthy.remote)
        .remote(&remote)
        .configure(|c| c.key_fetch.timeout_secs = 1)
        .start()
        .await;
    proxy.wait_ready().await;

    let answer = deliver_note(&proxy, &stuck).await;
    assert_503(&proxy, answer, "key_timeout").await;
    assert_eq!(remote.key_fetches(&stuck), 1);
    assert_eq!(puma.count(), 0);
    let m = proxy.metrics().await;
    assert_eq!(
        metric_value(&m, "inboxguard_key_fetches_total{result=\"timeout\"}"),
        Some(1.0)
    );
    healthy.assert_served(&proxy, &puma).await;
}

#[tokio::test]
async fn key_server_dripping_its_body_times_out_with_503() {
    let healthy = Healthy::start().await;
    let (_mint, drip) = raw_actor("drip.example", "drip").await;
    let document = Bytes::from(actor_json(&drip));
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/activity+json\r\nContent-Length: {}\r\n\r\n",
        document.len()
    );
    // Every byte arrives well within any per-read timeout; the whole takes minutes.
    let server = RawServer::start(move |_| Raw::Drip {
        head: Bytes::from(head.clone()),
        body: document.clone(),
        every: Duration::from_millis(200),
    })
    .await;
    let puma = RecordingUpstream::start().await;
    let proxy = proxy_with_raw_host(&puma, &healthy, "drip.example", &server, |c| {
        c.key_fetch.timeout_secs = 1
    })
    .await;

    let answer = deliver_note(&proxy, &drip).await;
    assert_503(&proxy, answer, "key_timeout").await;
    assert_eq!(server.requests(), 1);
    assert_eq!(puma.count(), 0);
    let m = proxy.metrics().await;
    assert_eq!(
        metric_value(&m, "inboxguard_key_fetches_total{result=\"timeout\"}"),
        Some(1.0)
    );
    healthy.assert_served(&proxy, &puma).await;
}

#[tokio::test]
async fn ten_megabyte_key_documents_are_refused_at_the_cap() {
    let healthy = Healthy::start().await;
    let (_mint, declared) = raw_actor("huge.example", "declared").await;
    let (_mint2, streamed) = raw_actor("huge.example", "streamed").await;
    const TEN_MB: usize = 10 * 1024 * 1024;
    // A JSON string that never ends within the cap: only the size can stop it.
    let mut big = b"{\"id\":\"".to_vec();
    big.resize(TEN_MB, b'a');
    let big = Bytes::from(big);
    // The same 10 MB as one chunk without a Content-Length, so only the read cap stops it.
    let chunked = {
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/activity+json\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            big.len()
        )
        .into_bytes();
        out.extend_from_slice(&big);
        out.extend_from_slice(b"\r\n0\r\n\r\n");
        Bytes::from(out)
    };
    let declared_answer = http_response(
        "200 OK",
        &[("Content-Type", "application/activity+json")],
        &big,
    );
    let declared_path = declared.path();
    let server = RawServer::start(move |path| {
        if path == declared_path {
            Raw::Write(declared_answer.clone())
        } else {
            Raw::Write(chunked.clone())
        }
    })
    .await;
    let puma = RecordingUpstream::start().await;
    let proxy = proxy_with_raw_host(&puma, &healthy, "huge.example", &server, |_| {}).await;

    for actor in [&declared, &streamed] {
        let (status, headers, body) = deliver_note(&proxy, actor).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", actor.username);
        assert!(!headers.contains_key(header::RETRY_AFTER));
        assert_json_error(&body);
    }
    assert_eq!(server.requests(), 2);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "key_too_large"), 2.0);
    assert_eq!(puma.count(), 0);
    healthy.assert_served(&proxy, &puma).await;
}

#[tokio::test]
async fn redirect_loops_are_refused() {
    let healthy = Healthy::start().await;
    let (_mint, looping) = raw_actor("loop.example", "loop").await;
    let server = RawServer::start(|path| {
        if path == "/users/loop" {
            redirect_to("http://loop.example/elsewhere")
        } else {
            redirect_to("http://loop.example/users/loop")
        }
    })
    .await;
    let puma = RecordingUpstream::start().await;
    let proxy = proxy_with_raw_host(&puma, &healthy, "loop.example", &server, |_| {}).await;

    let answer = deliver_note(&proxy, &looping).await;
    assert_401(&proxy, answer, "key_too_many_redirects").await;
    // The original GET and the one redirect followed; the second redirect is not.
    assert_eq!(server.requests(), 2);
    healthy.assert_served(&proxy, &puma).await;
}

/// `evil.example` is pinned (the operator's choice, exempt from the address check) and
/// redirects to 127.0.0.1, which is not: with private addresses refused, the redirect target
/// is never contacted.
#[tokio::test]
async fn redirect_to_loopback_is_refused_without_private_addresses() {
    let healthy = Healthy::start().await;
    let (_mint, evil) = raw_actor("evil.example", "evil").await;
    let document = actor_json(&evil);
    let target = RawServer::start(move |_| {
        Raw::Write(http_response(
            "200 OK",
            &[("Content-Type", "application/activity+json")],
            document.as_bytes(),
        ))
    })
    .await;
    let location = format!("http://127.0.0.1:{}/users/evil", target.addr.port());
    let server = RawServer::start(move |_| redirect_to(&location)).await;
    let puma = RecordingUpstream::start().await;
    let proxy = proxy_with_raw_host(&puma, &healthy, "evil.example", &server, |c| {
        c.key_fetch.allow_private_addresses = false
    })
    .await;

    let answer = deliver_note(&proxy, &evil).await;
    assert_401(&proxy, answer, "key_forbidden_address").await;
    assert_eq!(server.requests(), 1);
    assert_eq!(target.requests(), 0, "the loopback target was contacted");
    assert_eq!(puma.count(), 0);
    healthy.assert_served(&proxy, &puma).await;
}

#[tokio::test]
async fn invalid_json_and_wrong_key_ids_are_refused() {
    let healthy = Healthy::start().await;
    let remote = RemoteInstance::start("odd.example").await;
    let broken = remote.add_actor("broken");
    let liar = remote.add_actor("liar");
    remote.serve_raw(
        &broken.path(),
        StatusCode::OK,
        "application/activity+json",
        "{\"id\": \"http://odd.example/users/broken\", \"publicKey\": {",
    );
    // The document's key is another key than the keyId the request names.
    let doc = actor_document("odd.example", "liar", &liar.key().public_key_pem().unwrap())
        .replace("#main-key", "#other-key");
    remote.serve_raw(
        &liar.path(),
        StatusCode::OK,
        "application/activity+json",
        doc,
    );
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&healthy.remote)
        .remote(&remote)
        .start()
        .await;
    proxy.wait_ready().await;

    let answer = deliver_note(&proxy, &broken).await;
    assert_401(&proxy, answer, "key_invalid_json").await;
    let answer = deliver_note(&proxy, &liar).await;
    assert_401(&proxy, answer, "key_id_mismatch").await;
    assert_eq!(remote.key_fetches(&broken), 1);
    assert_eq!(remote.key_fetches(&liar), 1);
    assert_eq!(puma.count(), 0);
    healthy.assert_served(&proxy, &puma).await;
}

/// Two distinct keyIds time out on one host; the breaker opens; a third distinct keyId is
/// refused without any request reaching the host.
#[tokio::test]
async fn circuit_breaker_opens_after_consecutive_failures() {
    let healthy = Healthy::start().await;
    let remote = RemoteInstance::start("hanging.example").await;
    let actors: Vec<Actor> = ["a", "b", "c"]
        .iter()
        .map(|n| remote.add_actor(n))
        .collect();
    remote.set_delay(Some(Duration::from_secs(60)));
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&healthy.remote)
        .remote(&remote)
        .configure(|c| {
            c.key_fetch.timeout_secs = 1;
            c.key_fetch.circuit_breaker_failures = 2;
        })
        .start()
        .await;
    proxy.wait_ready().await;

    for actor in &actors[..2] {
        let answer = deliver_note(&proxy, actor).await;
        assert_503(&proxy, answer, "key_timeout").await;
    }
    assert_eq!(remote.total_gets(), 2);
    let answer = deliver_note(&proxy, &actors[2]).await;
    assert_503(&proxy, answer, "key_circuit_open").await;
    assert_eq!(remote.total_gets(), 2, "an open circuit fetches nothing");

    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "key_timeout"), 2.0);
    assert_eq!(requests(&m, "rejected", "key_circuit_open"), 1.0);
    assert_eq!(puma.count(), 0);
    // Other hosts are not affected by one host's open circuit.
    healthy.assert_served(&proxy, &puma).await;
}

#[tokio::test]
async fn per_host_fetch_cap_sheds_the_second_concurrent_fetch() {
    let healthy = Healthy::start().await;
    let remote = RemoteInstance::start("busy.example").await;
    let (a, b) = (remote.add_actor("a"), remote.add_actor("b"));
    remote.set_delay(Some(Duration::from_secs(60)));
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&healthy.remote)
        .remote(&remote)
        .configure(|c| {
            c.key_fetch.timeout_secs = 2;
            c.key_fetch.max_concurrent_fetches_per_host = 1;
        })
        .start()
        .await;
    proxy.wait_ready().await;

    let first = {
        let (addr, a) = (proxy.proxy_addr, a.clone());
        tokio::spawn(async move {
            let body = a.activity("Create", json!("http://mastodon.local/users/alice"));
            let headers = a.sign_post(INBOX, LOCAL, &body);
            send(addr, Method::POST, INBOX, headers, body).await
        })
    };
    wait_until("first key fetch under way", || remote.total_gets() == 1).await;
    let answer = deliver_note(&proxy, &b).await;
    assert_503(&proxy, answer, "key_overloaded").await;
    assert_eq!(remote.key_fetches(&b), 0, "the second fetch never started");

    let (status, _, _) = within("first delivery", first).await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "key_overloaded"), 1.0);
    assert_eq!(requests(&m, "rejected", "key_timeout"), 1.0);
    assert_eq!(puma.count(), 0);
    healthy.assert_served(&proxy, &puma).await;
}

/// A sender that declares a body over `max_body_bytes` and sends it anyway reads its 413, and
/// the connection stays usable: the proxy reads and discards the refused body instead of
/// closing on unread input (a close that the kernel turns into a reset, which can destroy the
/// 413 before the sender reads it).
#[tokio::test]
async fn oversized_bodies_get_their_413_and_the_connection_survives() {
    let healthy = Healthy::start().await;
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&healthy.remote)
        .configure(|c| c.server.max_body_bytes = 64 * 1024)
        .start()
        .await;
    proxy.wait_ready().await;

    let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    for i in 0..3 {
        let body = healthy
            .actor
            .activity("Create", note(&healthy.actor, &"x".repeat(100_000)));
        let mut request = Request::new(Full::new(Bytes::from(body.clone())));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = INBOX.parse().unwrap();
        *request.headers_mut() = healthy.actor.sign_post(INBOX, LOCAL, &body);
        within("oversized request", sender.ready())
            .await
            .unwrap_or_else(|e| {
                panic!("request {i}: the proxy closed the connection after a 413: {e}")
            });
        let response = within("oversized request", sender.send_request(request))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "request {i}"
        );
        within("413 body", response.into_body().collect())
            .await
            .unwrap();
    }
    within("valid request on the same connection", sender.ready())
        .await
        .unwrap();
    let response = within(
        "valid request",
        sender.send_request(signed_request(&healthy.actor)),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 1);
    let m = proxy.metrics().await;
    assert_eq!(requests(&m, "rejected", "body_too_large"), 3.0);
}

// ---------------------------------------------------------------------------------------
// Client faults: slowloris and idle keep-alive connections
// ---------------------------------------------------------------------------------------

/// Reads until the proxy closes the connection (EOF or reset); what was read before.
async fn read_until_closed(stream: &mut tokio::net::tcp::OwnedReadHalf) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn slowloris_request_heads_are_cut_off_by_the_header_read_timeout() {
    let healthy = Healthy::start().await;
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&healthy.remote)
        .configure(|c| c.server.header_read_timeout_secs = 1)
        .start()
        .await;
    proxy.wait_ready().await;

    let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // One byte every 100 ms, for far longer than the test guard: only the proxy can end it.
    let dripper = tokio::spawn(async move {
        let head = b"POST /users/alice/inbox HTTP/1.1\r\nHost: mastodon.local\r\n";
        let mut bytes = head.iter().copied().chain(std::iter::repeat(b'x'));
        loop {
            let byte = bytes.next().unwrap_or(b'x');
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let answer = within(
        "slowloris connection closed",
        read_until_closed(&mut reader),
    )
    .await;
    // hyper answers 408 on a header read timeout (or just closes); never anything else.
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    within("dripper stopped", dripper).await.unwrap();
    assert_eq!(puma.count(), 0);
    wait_no_connections(&proxy).await;
    healthy.assert_served(&proxy, &puma).await;
}

/// A signed delivery by `actor`, as a request for hyper's connection-level clients.
fn signed_request(actor: &Actor) -> Request<Full<Bytes>> {
    let body = actor.activity("Create", note(actor, "once"));
    let mut request = Request::new(Full::new(Bytes::from(body.clone())));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = INBOX.parse().unwrap();
    *request.headers_mut() = actor.sign_post(INBOX, LOCAL, &body);
    request
}

/// hyper's HTTP/1.1 server also runs `header_read_timeout` while a keep-alive connection
/// waits for its next request, so it closes idle HTTP/1.1 connections by itself.
#[tokio::test]
async fn idle_http1_keep_alive_connections_are_closed_by_the_header_read_timeout() {
    let healthy = Healthy::start().await;
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&healthy.remote)
        .configure(|c| {
            c.server.header_read_timeout_secs = 1;
            // Long, so that only the header read timeout can close the connection.
            c.server.idle_timeout_secs = 3600;
        })
        .start()
        .await;
    proxy.wait_ready().await;

    let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let response = within(
        "request",
        sender.send_request(signed_request(&healthy.actor)),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    within("body", response.into_body().collect())
        .await
        .unwrap();
    // hyper's client connection future ends when the server closes the socket.
    within("idle connection closed by the proxy", connection)
        .await
        .unwrap()
        .expect("a clean close");
    wait_no_connections(&proxy).await;
    healthy.assert_served(&proxy, &puma).await;
}

/// `server.idle_timeout_secs` closes idle connections of either protocol, and never one with a
/// request in flight: here the first request waits on Puma for longer than the idle timeout.
#[tokio::test]
async fn idle_timeout_closes_idle_connections_but_not_busy_ones() {
    let healthy = Healthy::start().await;
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&healthy.remote)
        .configure(|c| {
            c.server.idle_timeout_secs = 1;
            // Long, so that only the idle timeout can close HTTP/1.1 connections.
            c.server.header_read_timeout_secs = 3600;
        })
        .start()
        .await;
    proxy.wait_ready().await;
    // Cache the key first, so the slow part of the next request is Puma alone.
    healthy.assert_served(&proxy, &puma).await;
    puma.set_delay(Some(Duration::from_millis(2500)));

    // HTTP/1.1 keep-alive.
    let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let h1 = tokio::spawn(connection);
    let response = within(
        "h1 request",
        sender.send_request(signed_request(&healthy.actor)),
    )
    .await
    .expect("a busy connection is not idle");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    within("h1 body", response.into_body().collect())
        .await
        .unwrap();
    within("idle h1 connection closed", h1)
        .await
        .unwrap()
        .expect("a clean close");

    // h2c with prior knowledge: hyper's HTTP/2 server has no idle timeout of its own.
    let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    let h2 = tokio::spawn(connection);
    let mut request = signed_request(&healthy.actor);
    *request.uri_mut() = format!("http://{LOCAL}{INBOX}").parse().unwrap();
    request.headers_mut().remove(header::HOST);
    let response = within("h2 request", sender.send_request(request))
        .await
        .expect("a busy connection is not idle");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    within("h2 body", response.into_body().collect())
        .await
        .unwrap();
    within("idle h2 connection closed (GOAWAY)", h2)
        .await
        .unwrap()
        .expect("a clean close");

    assert_eq!(puma.count(), 3);
    wait_no_connections(&proxy).await;
    puma.set_delay(None);
    healthy.assert_served(&proxy, &puma).await;
}

/// Past `server.max_connections` a new connection waits in the kernel's backlog, costing the
/// proxy nothing; it is served as soon as an open connection closes.
#[tokio::test]
async fn connections_past_max_connections_wait_until_a_slot_frees() {
    let healthy = Healthy::start().await;
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&healthy.remote)
        .configure(|c| {
            c.server.max_connections = 2;
            // Long, so that only the test closes the connections it holds.
            c.server.header_read_timeout_secs = 3600;
            c.server.idle_timeout_secs = 3600;
        })
        .start()
        .await;
    proxy.wait_ready().await;

    // Two keep-alive connections, each used once, then held open.
    let mut held = Vec::new();
    for _ in 0..2 {
        let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        let response = within(
            "request on a held connection",
            sender.send_request(signed_request(&healthy.actor)),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        within("body", response.into_body().collect())
            .await
            .unwrap();
        held.push((sender, connection));
    }
    let m = proxy.metrics().await;
    assert_eq!(metric_value(&m, "inboxguard_connections_active"), Some(2.0));

    // The third connects (the kernel completes the handshake) but is not accepted yet.
    let third = {
        let (addr, request) = (proxy.proxy_addr, signed_request(&healthy.actor));
        tokio::spawn(async move { request_on_new_connection(addr, request).await })
    };
    // Whatever the machine's load, the third cannot be answered while both slots are held;
    // the pause only gives a wrongly accepted connection the chance to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "served past max_connections");
    assert_eq!(puma.count(), 2);
    let m = proxy.metrics().await;
    assert_eq!(metric_value(&m, "inboxguard_connections_active"), Some(2.0));

    // Closing one held connection frees its slot for the waiting one.
    let (sender, connection) = held.remove(0);
    drop(sender);
    within("held connection closed", connection)
        .await
        .unwrap()
        .unwrap();
    let response = within("third connection served", third)
        .await
        .unwrap()
        .expect("the waiting connection is served");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 3);
    let m = proxy.metrics().await;
    assert!(metric_value(&m, "inboxguard_connections_active").unwrap_or(f64::MAX) <= 2.0);
    drop(held);
    healthy.assert_served(&proxy, &puma).await;
}
