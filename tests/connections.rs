//! Connection deadlines over real sockets, for clients that never get as far as a request:
//! a dripped HTTP/2 preface, an HTTP/2 connection kept up by PINGs alone, a silent h2c
//! connection, HTTP/1.1 heads sent one byte at a time, and heads hyper refuses before the
//! pipeline (431, 400). Each connection must be closed within its limit plus half a second
//! and counted in `inboxguard_connection_errors_total{kind}`.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The HTTP/2 connection preface a client sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame, and the acknowledgement of the server's.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
const SETTINGS_ACK: &[u8] = &[0, 0, 0, 4, 1, 0, 0, 0, 0];
const SLACK: Duration = Duration::from_millis(500);

fn ping_frame(n: u8) -> Vec<u8> {
    let mut f = vec![0, 0, 8, 6, 0, 0, 0, 0, 0];
    f.extend_from_slice(&[n; 8]);
    f
}

/// A HEADERS frame (END_STREAM | END_HEADERS) on stream 1 for `GET /healthcheck`, encoded
/// with HPACK static-table indices and one literal, so no HPACK library is needed.
fn get_headers_frame() -> Vec<u8> {
    let authority = b"mastodon.local";
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    block.push(0x04); // :path, literal without indexing, indexed name 4
    block.push(12);
    block.extend_from_slice(b"/healthcheck");
    block.push(0x01); // :authority, literal without indexing, indexed name 1
    block.push(authority.len() as u8);
    block.extend_from_slice(authority);
    let len = block.len();
    let mut f = vec![0, 0, len as u8, 1, 0x05, 0, 0, 0, 1];
    f.extend_from_slice(&block);
    f
}

/// Reads frames (or bytes) until the proxy closes the connection; returns when it closed
/// (measured from `since`) and whether a GOAWAY frame (type 7) came before.
async fn until_closed(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    since: Instant,
) -> (Duration, Vec<u8>) {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return (since.elapsed(), seen),
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether the server's byte stream holds a GOAWAY frame.
fn has_goaway(mut bytes: &[u8]) -> bool {
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        if bytes[3] == 7 {
            return true;
        }
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    false
}

async fn proxy_with(header_secs: u64, idle_secs: u64) -> (Proxy, RecordingUpstream) {
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .configure(move |c| {
            c.server.header_read_timeout_secs = header_secs;
            c.server.idle_timeout_secs = idle_secs;
        })
        .start()
        .await;
    proxy.wait_ready().await;
    (proxy, puma)
}

async fn connection_errors(proxy: &Proxy, kind: &str) -> f64 {
    let m = proxy.metrics().await;
    metric_value(
        &m,
        &format!("inboxguard_connection_errors_total{{kind=\"{kind}\"}}"),
    )
    .unwrap_or(0.0)
}

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

#[tokio::test]
async fn a_dripped_http2_preface_is_cut_at_the_header_deadline_on_every_connection() {
    let (proxy, puma) = proxy_with(2, 3600).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
        let start = Instant::now();
        let (reader, mut writer) = stream.into_split();
        let drip = tokio::spawn(async move {
            // One byte every 150 ms: the preface alone would take 3.6 s.
            for byte in PREFACE.iter().chain(SETTINGS).cycle() {
                if writer.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        });
        clients.push((tokio::spawn(until_closed(reader, start)), drip));
    }
    for (closed, drip) in clients {
        let (after, _) = within("dripping connection closed", closed).await.unwrap();
        assert!(
            after < Duration::from_secs(2) + SLACK,
            "closed after {after:?}"
        );
        assert!(
            after >= Duration::from_millis(1900),
            "closed early: {after:?}"
        );
        within("dripper stopped", drip).await.unwrap();
    }
    assert_eq!(connection_errors(&proxy, "header_timeout").await, 20.0);
    assert_eq!(puma.count(), 0);
    wait_no_connections(&proxy).await;
}

#[tokio::test]
async fn an_http2_connection_sending_only_pings_cannot_hold_a_slot() {
    // No request at all: the first HEADERS frame is due within the header deadline, PINGs or not.
    let (proxy, _puma) = proxy_with(2, 3600).await;
    let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
    let start = Instant::now();
    let (reader, mut writer) = stream.into_split();
    writer.write_all(PREFACE).await.unwrap();
    writer.write_all(SETTINGS).await.unwrap();
    writer.write_all(SETTINGS_ACK).await.unwrap();
    let pinger = tokio::spawn(async move {
        for n in 0..=255u8 {
            if writer.write_all(&ping_frame(n)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let (after, _) = within("pinging connection closed", until_closed(reader, start)).await;
    assert!(
        after < Duration::from_secs(2) + SLACK,
        "closed after {after:?}"
    );
    within("pinger stopped", pinger).await.unwrap();
    assert_eq!(connection_errors(&proxy, "header_timeout").await, 1.0);

    // After a real request, PINGs are not activity: GOAWAY at the idle timeout, and the
    // connection is gone a short linger later even though the client never closes it.
    let (proxy, puma) = proxy_with(3600, 1).await;
    let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
    let (reader, mut writer) = stream.into_split();
    writer.write_all(PREFACE).await.unwrap();
    writer.write_all(SETTINGS).await.unwrap();
    writer.write_all(SETTINGS_ACK).await.unwrap();
    writer.write_all(&get_headers_frame()).await.unwrap();
    let start = Instant::now();
    let pinger = tokio::spawn(async move {
        for n in 0..=255u8 {
            if writer.write_all(&ping_frame(n)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let (after, seen) = within("pinging connection closed", until_closed(reader, start)).await;
    within("pinger stopped", pinger).await.unwrap();
    assert_eq!(puma.count(), 1, "the request was passed through");
    assert!(has_goaway(&seen), "no GOAWAY before the close");
    // Idle 1 s after the response, then at most the 2 s close linger.
    assert!(
        after < Duration::from_secs(3) + SLACK,
        "closed after {after:?}"
    );
    assert_eq!(connection_errors(&proxy, "close_timeout").await, 1.0);
    wait_no_connections(&proxy).await;
}

#[tokio::test]
async fn a_silent_h2c_connection_is_cut_at_the_header_deadline() {
    let (proxy, _puma) = proxy_with(2, 3600).await;
    let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
    let start = Instant::now();
    let (reader, mut writer) = stream.into_split();
    writer.write_all(PREFACE).await.unwrap();
    writer.write_all(SETTINGS).await.unwrap();
    let (after, _) = within("silent connection closed", until_closed(reader, start)).await;
    assert!(
        after < Duration::from_secs(2) + SLACK,
        "closed after {after:?}"
    );
    assert!(
        after >= Duration::from_millis(1900),
        "closed early: {after:?}"
    );
    assert_eq!(connection_errors(&proxy, "header_timeout").await, 1.0);
    drop(writer);

    // A connection that sends nothing at all, not even a preface.
    let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
    let start = Instant::now();
    let (reader, _writer) = stream.into_split();
    let (after, _) = within("silent connection closed", until_closed(reader, start)).await;
    assert!(
        after < Duration::from_secs(2) + SLACK,
        "closed after {after:?}"
    );
    assert_eq!(connection_errors(&proxy, "header_timeout").await, 2.0);
    wait_no_connections(&proxy).await;
}

/// Writes `head` a byte every 100 ms, then `x`s, until the connection is gone.
fn drip_head(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    head: &'static [u8],
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for byte in head.iter().chain(std::iter::repeat(&b'x')) {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The proxy closes `reader`'s connection within `deadline` of `start`, and the dripper ends.
async fn cut_within(
    reader: tokio::net::tcp::OwnedReadHalf,
    start: Instant,
    drip: tokio::task::JoinHandle<()>,
    deadline: Duration,
) {
    let (after, _) = within("slowloris closed", until_closed(reader, start)).await;
    assert!(after < deadline + SLACK, "closed after {after:?}");
    within("dripper stopped", drip).await.unwrap();
}

#[tokio::test]
async fn http1_heads_are_cut_within_the_header_deadline_first_and_on_keep_alive() {
    let (proxy, puma) = proxy_with(2, 3600).await;

    // The first head, dripped.
    let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
    let start = Instant::now();
    let (reader, writer) = stream.into_split();
    let drip = drip_head(
        writer,
        b"POST /users/alice/inbox HTTP/1.1\r\nHost: mastodon.local\r\n",
    );
    cut_within(reader, start, drip, Duration::from_secs(2)).await;

    // A second head on a keep-alive connection, dripped after a complete first request.
    let stream = TcpStream::connect(proxy.proxy_addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(b"GET /healthcheck HTTP/1.1\r\nHost: mastodon.local\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    within("first response", reader.read_exact(&mut first))
        .await
        .unwrap();
    assert!(first.starts_with(b"HTTP/1.1 2"), "{first:?}");
    let start = Instant::now();
    let drip = drip_head(
        writer,
        b"GET /healthcheck HTTP/1.1\r\nHost: mastodon.local\r\n",
    );
    cut_within(reader, start, drip, Duration::from_secs(2)).await;
    assert_eq!(puma.count(), 1);
    assert!(connection_errors(&proxy, "header_timeout").await >= 2.0);
    wait_no_connections(&proxy).await;
}

#[tokio::test]
async fn heads_hyper_refuses_are_counted() {
    let (proxy, puma) = proxy_with(10, 3600).await;

    let big = format!(
        "POST /inbox HTTP/1.1\r\nHost: mastodon.local\r\nX-Big: {}\r\n\r\n",
        "a".repeat(128 * 1024)
    );
    let answer = send_raw(proxy.proxy_addr, big.as_bytes()).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(connection_errors(&proxy, "header_too_large").await, 1.0);

    let bad = b"POST /inbox HTTP/1.1\r\nHost: mastodon.local\r\nContent-Length: abc\r\n\r\n";
    let answer = send_raw(proxy.proxy_addr, bad).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(connection_errors(&proxy, "bad_request").await, 1.0);

    assert_eq!(puma.count(), 0);
    // Control: a well-formed request still goes through.
    let (status, _) = get_text(proxy.proxy_addr, "/healthcheck").await;
    assert!(status.is_success(), "{status}");
    assert_eq!(puma.count(), 1);
    wait_no_connections(&proxy).await;
}
