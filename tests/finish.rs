//! The finish phase (access log + metrics) runs exactly once per request, also for a request
//! whose future is dropped (client reset, drain past the grace period), and pass-through
//! requests get an access-log line too; what the access log and the dry-run warning say.
//! Through the whole proxy on loopback, with the log captured as JSON.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::{HeaderMap, Method, StatusCode};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const INBOX: &str = "/users/bob/inbox";

/// Every log line of this test binary, as JSON.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The capture, installed as the global subscriber before anything logs (so no call site is
/// cached as unheard). Tests hold the returned guard so that each reads only its own lines.
async fn capture() -> (tokio::sync::MutexGuard<'static, ()>, Captured) {
    static LOG: OnceLock<Captured> = OnceLock::new();
    // Held across awaits for a whole test; each test has its own runtime.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let serial = SERIAL.lock().await;
    let log = LOG
        .get_or_init(|| {
            let log = Captured::default();
            let writer = log.clone();
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_writer(move || writer.clone())
                .init();
            log
        })
        .clone();
    log.0.lock().unwrap().clear();
    (serial, log)
}

/// The access-log lines (target `inboxguard::access`) with this `message`.
fn access_lines(log: &Captured, message: &str) -> Vec<serde_json::Value> {
    lines(log, |v| {
        v["target"] == "inboxguard::access" && v["message"] == message
    })
}

/// The captured lines that `keep` accepts.
fn lines(log: &Captured, keep: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| keep(v))
        .collect()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    within(what, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// A sender that sends the head and part of the body, then resets the connection: the
/// request is logged and counted once, whichever way the proxy notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reset_mid_body_is_finished_exactly_once() {
    let (_serial, log) = capture().await;
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr()).start().await;
    proxy.wait_ready().await;

    let mut stream = tokio::net::TcpStream::connect(proxy.proxy_addr)
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /users/bob/inbox HTTP/1.1\r\nHost: local.test\r\n\
              Content-Type: application/activity+json\r\nContent-Length: 1000\r\n\r\n{\"type\":",
        )
        .await
        .unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Linger 0: closing sends a reset, not a FIN.
    stream.set_zero_linger().unwrap();
    drop(stream);

    wait_for("the reset request's access-log line", || {
        !access_lines(&log, "inbox").is_empty()
    })
    .await;
    // Time for a second finish, if there were one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = access_lines(&log, "inbox");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let reason = lines[0]["reason"].as_str().unwrap();
    assert!(
        ["cancelled", "body_read_error"].contains(&reason),
        "{reason}"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "inboxguard_requests_total"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            &format!(r#"inboxguard_requests_total{{decision="rejected",reason="{reason}"}}"#)
        ),
        1.0
    );
    assert_eq!(puma.count(), 0);
}

/// A delivery still waiting on a hung Mastodon when the drain's grace period ends is
/// dropped with its connection; the drop guard logs it once, as `cancelled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_by_the_drain_is_finished_exactly_once() {
    let (_serial, log) = capture().await;
    let puma = RecordingUpstream::start().await;
    puma.hang();
    let remote = RemoteInstance::start("remote.test").await;
    let actor = remote.add_actor("alice");
    let proxy = Proxy::builder(puma.addr())
        .remote(&remote)
        .configure(|c| {
            c.server.shutdown_grace_secs = 1;
            c.upstream.timeout_secs = 60;
        })
        .start()
        .await;
    proxy.wait_ready().await;

    let body = actor.activity("Create", serde_json::json!("http://local.test/notes/1"));
    let headers = actor.sign_post(INBOX, "local.test", &body);
    let delivery = tokio::spawn(try_send(
        proxy.proxy_addr,
        Method::POST,
        INBOX,
        headers,
        body,
    ));
    wait_for("the delivery reaches the upstream", || puma.count() == 1).await;
    assert!(access_lines(&log, "inbox").is_empty());
    within("shutdown", proxy.shutdown())
        .await
        .expect("clean shutdown");
    let outcome = within("the dropped delivery", delivery).await.unwrap();
    assert!(outcome.is_err(), "{outcome:?}");

    let lines = access_lines(&log, "inbox");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["reason"], "cancelled", "{line}");
    assert_eq!(line["decision"], "rejected", "{line}");
    assert_eq!(line["key_host"], "remote.test", "{line}");
}

/// A pass-through request is logged with its method, its path (never the query, which can
/// carry tokens) and Mastodon's status; it is not an inbox request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_through_request_gets_an_access_log_line() {
    let (_serial, log) = capture().await;
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr()).start().await;
    proxy.wait_ready().await;

    let (status, _, _) = send(
        proxy.proxy_addr,
        Method::GET,
        "/api/v1/timelines/public?access_token=secret",
        HeaderMap::new(),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let lines = access_lines(&log, "passthrough");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["path"], "/api/v1/timelines/public", "{line}");
    assert_eq!(line["status"], 202, "{line}");
    assert_eq!(line["decision"], "forwarded", "{line}");
    assert!(!line.to_string().contains("secret"), "{line}");
    assert!(access_lines(&log, "inbox").is_empty());
    let metrics = proxy.metrics().await;
    assert_eq!(metric_sum(&metrics, "inboxguard_requests_total"), 0.0);
    assert_eq!(
        metric_value(&metrics, "inboxguard_passthrough_requests_total"),
        Some(1.0)
    );
}

/// A sender that resets the connection while Mastodon has not answered yet: hyper drops the
/// request's future, and the drop guard logs and counts it once, as `cancelled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reset_while_mastodon_thinks_is_finished_exactly_once() {
    let (_serial, log) = capture().await;
    let puma = RecordingUpstream::start().await;
    puma.hang();
    let remote = RemoteInstance::start("remote.test").await;
    let actor = remote.add_actor("alice");
    let proxy = Proxy::builder(puma.addr())
        .remote(&remote)
        .configure(|c| c.upstream.timeout_secs = 60)
        .start()
        .await;
    proxy.wait_ready().await;

    let body = actor.activity("Create", serde_json::json!("http://local.test/notes/1"));
    let mut head = format!(
        "POST {INBOX} HTTP/1.1\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in &actor.sign_post(INBOX, "local.test", &body) {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(proxy.proxy_addr)
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    wait_for("the delivery reaches the upstream", || puma.count() == 1).await;
    assert!(access_lines(&log, "inbox").is_empty());
    stream.set_zero_linger().unwrap();
    drop(stream);

    wait_for("the reset request's access-log line", || {
        !access_lines(&log, "inbox").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = access_lines(&log, "inbox");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["reason"], "cancelled", "{line}");
    assert_eq!(line["actor"], "http://remote.test/users/alice", "{line}");
    let metrics = proxy.metrics().await;
    assert_eq!(metric_sum(&metrics, "inboxguard_requests_total"), 1.0);
    assert_eq!(
        metric_value(
            &metrics,
            r#"inboxguard_requests_total{decision="rejected",reason="cancelled"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
}

/// A request refused while its signature is parsed is logged with the format its headers
/// announce: RFC 9421 once `Signature-Input` is there, draft-cavage with `Signature` alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_refused_while_parsed_is_logged_with_its_format() {
    let (_serial, log) = capture().await;
    let puma = RecordingUpstream::start().await;
    let remote = RemoteInstance::start("remote.test").await;
    let alice = remote.add_actor("alice");
    let proxy = Proxy::builder(puma.addr()).remote(&remote).start().await;
    proxy.wait_ready().await;
    let body = alice.activity("Follow", serde_json::json!("https://local.test/users/bob"));

    // RFC 9421 without @target-uri covered, and one whose Signature-Input is no dictionary.
    let uncovered = Rfc9421Options {
        covered: vec!["@method".into(), "content-digest".into()],
        ..Rfc9421Options::default()
    };
    let mut garbled = alice.sign_rfc9421(INBOX, "local.test", &body, &Rfc9421Options::default());
    garbled
        .headers
        .insert("signature-input", http::HeaderValue::from_static("(((("));
    let mut unsigned = alice.sign_post(INBOX, "local.test", &body);
    unsigned.remove("signature");
    let requests = [
        (
            alice
                .sign_rfc9421(INBOX, "local.test", &body, &uncovered)
                .headers,
            "rfc9421_missing_component",
            "rfc9421",
        ),
        (garbled.headers, "rfc9421_malformed", "rfc9421"),
        (
            alice
                .sign_post_with(
                    INBOX,
                    "local.test",
                    &body,
                    &SignOptions {
                        algorithm: Some("rsa-sha512".into()),
                        ..SignOptions::default()
                    },
                )
                .headers,
            "unsupported_algorithm",
            "cavage",
        ),
        (unsigned, "not_signed", "-"),
    ];
    for (headers, _, _) in &requests {
        let (status, _, _) = send(
            proxy.proxy_addr,
            Method::POST,
            INBOX,
            headers.clone(),
            body.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let logged = access_lines(&log, "inbox");
    assert_eq!(logged.len(), requests.len(), "{logged:?}");
    for (line, (_, reason, format)) in logged.iter().zip(&requests) {
        assert_eq!(line["reason"], *reason, "{line}");
        assert_eq!(line["signature_format"], *format, "{line}");
    }
    assert_eq!(remote.total_gets(), 0);
    assert_eq!(puma.count(), 0);
}

/// The warning for a dry-run rule names the rule as an operator finds it: domain, source,
/// line and severity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_warning_names_the_rule_source_line_and_severity() {
    let (_serial, log) = capture().await;
    let puma = RecordingUpstream::start().await;
    let remote = RemoteInstance::start("preview.example").await;
    let pat = remote.add_actor("pat");
    let proxy = Proxy::builder(puma.addr())
        .remote(&remote)
        .blocklist_file(
            "preview.csv",
            "#domain,#severity\nother.example,silence\npreview.example,suspend\n",
        )
        .configure(|c| c.blocklists[0].dry_run = true)
        .start()
        .await;
    proxy.wait_ready().await;

    let body = pat.activity(
        "Create",
        serde_json::json!("http://preview.example/statuses/1"),
    );
    assert_eq!(
        deliver_status(&proxy, &pat, &body).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(puma.count(), 1);

    let warnings = lines(&log, |v| {
        v["message"] == "dry-run rule would have stopped this request; forwarding it"
    });
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert_eq!(w["level"], "WARN", "{w}");
    assert_eq!(w["reason"], "suspended_key_host", "{w}");
    assert_eq!(w["rule"], "preview.example", "{w}");
    assert!(
        w["rule_source"].as_str().unwrap().ends_with("preview.csv"),
        "{w}"
    );
    assert_eq!(w["rule_line"], 3, "{w}");
    assert_eq!(w["rule_severity"], "suspend", "{w}");
    // No Rust debug dump of the decision.
    assert!(w.get("would").is_none(), "{w}");
    assert!(
        !w.to_string().contains("WouldStop") && !w.to_string().contains("rule: DomainRule"),
        "{w}"
    );
}
