//! Deliveries signed by an implementation that shares no code with inboxguard or its test
//! harness: the Python `httpsig` package from PyPI, driven by tests/independent/httpsig_sign.py.
//! Without python3 or `httpsig` the tests are skipped, except under `CI=true`, where they fail.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::{HeaderMap, Method, StatusCode};
use std::path::{Path, PathBuf};

const INBOX: &str = "/users/bob/inbox";
const LOCAL_HOST: &str = "local.test";

/// Whether the independent signer can run (see `python_can_import`).
fn signer_available(test: &str) -> bool {
    python_can_import(test, "httpsig")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/httpsig_sign.py")
}

/// Signs a POST of `body` to `INBOX` as `actor` with the Python signer; the headers it made.
fn python_sign(dir: &Path, actor: &Actor, body: &[u8]) -> HeaderMap {
    let key_file = dir.join("private.pem");
    std::fs::write(&key_file, actor.key().private_key_pem().unwrap()).unwrap();
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, body).unwrap();
    let out = python_command()
        .arg(script())
        .arg(&key_file)
        .arg(&actor.key_id)
        .arg(LOCAL_HOST)
        .arg(INBOX)
        .arg(&body_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "httpsig_sign.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let signed: std::collections::BTreeMap<String, String> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| {
            panic!(
                "httpsig_sign.py printed no JSON object ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
    let pairs: Vec<(&str, &str)> = signed
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let headers = headers(&pairs);
    // The signer is not inboxguard's: make sure it really signed what the proxy will check.
    let signature = headers
        .get("signature")
        .expect("httpsig produced a Signature header")
        .to_str()
        .unwrap();
    assert!(
        signature.contains(&format!("keyId=\"{}\"", actor.key_id)),
        "{signature}"
    );
    assert!(signature.contains("digest"), "{signature}");
    headers
}

struct Setup {
    puma: RecordingUpstream,
    _remote: RemoteInstance,
    actor: Actor,
    proxy: Proxy,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let puma = RecordingUpstream::start().await;
    let remote = RemoteInstance::start("remote.test").await;
    let actor = remote.add_actor("pyalice");
    let proxy = Proxy::builder(puma.addr()).remote(&remote).start().await;
    proxy.wait_ready().await;
    Setup {
        puma,
        _remote: remote,
        actor,
        proxy,
        dir: tempfile::tempdir().unwrap(),
    }
}

#[tokio::test]
async fn a_delivery_signed_by_python_httpsig_is_forwarded_unchanged() {
    if !signer_available("a_delivery_signed_by_python_httpsig_is_forwarded_unchanged") {
        return;
    }
    let s = setup().await;
    let body = s.actor.activity(
        "Create",
        serde_json::json!({"id": "http://remote.test/notes/1", "type": "Note",
                           "content": "signed in Python, caf\u{e9} \u{1f418}"}),
    );
    let headers = python_sign(s.dir.path(), &s.actor, &body);
    let (status, _, answer) = within(
        "delivery",
        send(
            s.proxy.proxy_addr,
            Method::POST,
            INBOX,
            headers.clone(),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let got = s.puma.only();
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.target(), INBOX);
    assert_eq!(&got.body[..], &body[..], "body not forwarded byte for byte");
    for name in ["host", "date", "digest", "content-type", "signature"] {
        assert_eq!(
            got.header(name),
            headers.get(name).unwrap().to_str().unwrap(),
            "{name} changed on the way"
        );
    }
    let metrics = s.proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "inboxguard_requests_total{decision=\"forwarded\",reason=\"forwarded\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_body_changed_after_python_signed_it_is_refused() {
    if !signer_available("a_body_changed_after_python_signed_it_is_refused") {
        return;
    }
    let s = setup().await;
    let body = s
        .actor
        .activity("Create", serde_json::json!("http://remote.test/notes/2"));
    let headers = python_sign(s.dir.path(), &s.actor, &body);
    let tampered = String::from_utf8(body)
        .unwrap()
        .replace("notes/2", "notes/3")
        .into_bytes();
    let (status, _, answer) = within(
        "delivery",
        send(s.proxy.proxy_addr, Method::POST, INBOX, headers, tampered),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(
        s.puma.count(),
        0,
        "a tampered delivery reached the upstream"
    );
    let metrics = s.proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "inboxguard_requests_total{decision=\"rejected\",reason=\"digest_mismatch\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}
