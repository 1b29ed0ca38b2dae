//! End to end through the in-process proxy: RFC 9421 signed deliveries (our hand-written
//! signer in tests/common and the independent Python `http-message-signatures` package),
//! Ed25519 keys for both formats, FEP-521a Multikey keys, requests carrying both formats,
//! Mastodon's RFC 9421 acceptance floor, and relayed activities.

// Helpers outside `#[test]` functions panic on a broken harness by design.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::{HeaderValue, Method, StatusCode};
use inboxguard::signature::SigningKey;
use std::path::Path;

const INBOX_HOST: &str = "local.example";

struct Setup {
    puma: RecordingUpstream,
    remote: RemoteInstance,
    proxy: Proxy,
}

/// A proxy in front of a recording upstream, with one remote instance `remote.test` and
/// `blocklist` (plain format: every line suspended).
/// These tests deliver one activity several ways (two formats, two schemes), so duplicate
/// suppression, which has tests of its own, is off here.
const DELIVER_TWICE: &str = "[activities]\ndedupe_window = \"0s\"";

async fn setup(blocklist: &str) -> Setup {
    setup_with(blocklist, "").await
}

/// [`setup`] with raw TOML added to the config (`[signatures]` and the like).
async fn setup_with(blocklist: &str, toml: &str) -> Setup {
    let puma = RecordingUpstream::start().await;
    let remote = RemoteInstance::start("remote.test").await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&remote)
        .blocklist_file("blocklist.txt", blocklist)
        .toml(DELIVER_TWICE)
        .toml(toml)
        .start()
        .await;
    proxy.wait_ready().await;
    Setup {
        puma,
        remote,
        proxy,
    }
}

async fn post(proxy: &Proxy, signed: &Signed) -> (StatusCode, String) {
    let (status, _, body) = send(
        proxy.proxy_addr,
        Method::POST,
        "/inbox",
        signed.headers.clone(),
        signed.body.clone(),
    )
    .await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn rejected(metrics: &str, reason: &str) -> f64 {
    metric_value(
        metrics,
        &format!(r#"inboxguard_requests_total{{decision="rejected",reason="{reason}"}}"#),
    )
    .unwrap_or(0.0)
}

fn forwarded(metrics: &str) -> f64 {
    metric_value(
        metrics,
        r#"inboxguard_requests_total{decision="forwarded",reason="forwarded"}"#,
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn rsa_v1_5_signed_post_is_forwarded_byte_identical() {
    let s = setup("").await;
    let alice = s.remote.add_actor("alice");
    let body = alice.activity(
        "Follow",
        serde_json::json!("https://local.example/users/bob"),
    );
    let signed = alice.sign_rfc9421("/inbox", INBOX_HOST, &body, &Rfc9421Options::default());
    let (status, text) = post(&s.proxy, &signed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");

    let got = s.puma.only();
    assert_eq!(got.target(), "/inbox");
    assert_eq!(&got.body[..], &body[..]);
    for name in ["signature-input", "signature", "content-digest", "host"] {
        assert_eq!(
            got.header(name),
            signed.headers[name].to_str().unwrap(),
            "{name}"
        );
    }
    assert_eq!(s.remote.key_fetches(&alice), 1);
    let m = s.proxy.metrics().await;
    assert_eq!(forwarded(&m), 1.0);
    // Not relayed: the signer is the actor.
    assert_eq!(
        metric_sum(&m, "inboxguard_relayed_requests_total"),
        0.0,
        "{m}"
    );
}

#[tokio::test]
async fn ed25519_end_to_end_for_both_formats() {
    let s = setup("").await;
    let ed = s
        .remote
        .add_actor_with_key("edna", SigningKey::generate_ed25519().unwrap());

    // RFC 9421, the key type deciding the algorithm, then with an explicit alg.
    for alg in [None, Some("ed25519")] {
        let body = ed.activity("Like", serde_json::json!("https://local.example/notes/1"));
        let opts = Rfc9421Options {
            alg: alg.map(str::to_string),
            ..Rfc9421Options::default()
        };
        let signed = ed.sign_rfc9421("/inbox", INBOX_HOST, &body, &opts);
        let (status, text) = post(&s.proxy, &signed).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{alg:?}: {text}");
    }
    // An alg for another key type is refused.
    let body = ed.activity("Like", serde_json::json!("https://local.example/notes/2"));
    let opts = Rfc9421Options {
        alg: Some("rsa-v1_5-sha256".into()),
        ..Rfc9421Options::default()
    };
    let (status, _) = post(
        &s.proxy,
        &ed.sign_rfc9421("/inbox", INBOX_HOST, &body, &opts),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // draft-cavage hs2019 with the same Ed25519 key.
    let body = ed.activity(
        "Announce",
        serde_json::json!("https://local.example/notes/3"),
    );
    let opts = SignOptions {
        algorithm: Some("hs2019".into()),
        ..SignOptions::default()
    };
    let signed = ed.sign_post_with("/inbox", INBOX_HOST, &body, &opts);
    let (status, text) = post(&s.proxy, &signed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    // ...but rsa-sha256 cannot be an Ed25519 signature.
    let opts = SignOptions::default();
    let signed = ed.sign_post_with("/inbox", INBOX_HOST, &body, &opts);
    let (status, _) = post(&s.proxy, &signed).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    assert_eq!(s.puma.count(), 3);
    let m = s.proxy.metrics().await;
    assert_eq!(rejected(&m, "rfc9421_key_type_mismatch"), 1.0, "{m}");
    assert_eq!(rejected(&m, "key_type_mismatch"), 1.0, "{m}");
}

#[tokio::test]
async fn actor_publishing_only_a_multikey() {
    let s = setup("").await;
    let mo = s.remote.add_multikey_actor("mo");
    assert!(mo.key_id.ends_with("#ed25519-key"));
    let body = mo.activity(
        "Follow",
        serde_json::json!("https://local.example/users/bob"),
    );
    let signed = mo.sign_rfc9421("/inbox", INBOX_HOST, &body, &Rfc9421Options::default());
    let (status, text) = post(&s.proxy, &signed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    // The cached Multikey also verifies a cavage hs2019 delivery.
    let opts = SignOptions {
        algorithm: Some("hs2019".into()),
        ..SignOptions::default()
    };
    let signed = mo.sign_post_with("/inbox", INBOX_HOST, &body, &opts);
    let (status, text) = post(&s.proxy, &signed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert_eq!(s.puma.count(), 2);
    assert_eq!(s.remote.key_fetches(&mo), 1);
}

#[tokio::test]
async fn a_request_with_both_formats_is_rfc9421() {
    let s = setup("").await;
    let alice = s.remote.add_actor("alice");
    let body = alice.activity(
        "Follow",
        serde_json::json!("https://local.example/users/bob"),
    );

    // RFC 9421 headers plus cavage's Date and Digest: verified as RFC 9421, forwarded.
    let mut signed = alice.sign_rfc9421("/inbox", INBOX_HOST, &body, &Rfc9421Options::default());
    let cavage = alice.sign_post("/inbox", INBOX_HOST, &body);
    for name in ["date", "digest"] {
        signed.headers.insert(name, cavage[name].clone());
    }
    let (status, text) = post(&s.proxy, &signed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");

    // A valid cavage signature with a Signature-Input beside it: RFC 9421 rules apply, and
    // the cavage `Signature` is no RFC 9421 dictionary. Mastodon refuses it too.
    let mut both = cavage.clone();
    both.insert(
        "signature-input",
        HeaderValue::from_static(r#"sig1=("@method" "@target-uri");created=1"#),
    );
    let (status, text) = post(
        &s.proxy,
        &Signed {
            headers: both,
            body: body.clone(),
        },
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("RFC 9421"), "{text}");
    // Alone, the same cavage request passes.
    let (status, _) = post(
        &s.proxy,
        &Signed {
            headers: cavage,
            body,
        },
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(s.puma.count(), 2);
}

#[tokio::test]
async fn acceptance_floor_and_digest_errors() {
    let s = setup("").await;
    let alice = s.remote.add_actor("alice");
    let body = alice.activity(
        "Follow",
        serde_json::json!("https://local.example/users/bob"),
    );
    let cases: Vec<(Rfc9421Options, StatusCode, &str)> = vec![
        (
            Rfc9421Options {
                covered: vec!["@method".into(), "content-digest".into()],
                ..Rfc9421Options::default()
            },
            StatusCode::UNAUTHORIZED,
            "rfc9421_missing_component",
        ),
        (
            Rfc9421Options {
                covered: vec!["@method".into(), "@target-uri".into()],
                ..Rfc9421Options::default()
            },
            StatusCode::UNAUTHORIZED,
            "content_digest_not_signed",
        ),
        (
            Rfc9421Options {
                tamper_body: true,
                ..Rfc9421Options::default()
            },
            StatusCode::UNAUTHORIZED,
            "content_digest_mismatch",
        ),
        (
            Rfc9421Options {
                content_digest: Some("sha-256=not-a-byte-sequence".into()),
                ..Rfc9421Options::default()
            },
            StatusCode::BAD_REQUEST,
            "content_digest_malformed",
        ),
        (
            Rfc9421Options {
                created_offset: -2 * 3600,
                ..Rfc9421Options::default()
            },
            StatusCode::UNAUTHORIZED,
            "outside_window",
        ),
    ];
    for (opts, want_status, reason) in &cases {
        let signed = alice.sign_rfc9421("/inbox", INBOX_HOST, &body, opts);
        let (status, text) = post(&s.proxy, &signed).await;
        assert_eq!(status, *want_status, "{reason}: {text}");
        let m = s.proxy.metrics().await;
        assert_eq!(rejected(&m, reason), 1.0, "{reason}\n{m}");
    }
    // Every one of them is refused before any key fetch.
    assert_eq!(s.remote.total_gets(), 0);
    assert_eq!(s.puma.count(), 0);

    // Signed for http:// while this instance is https (server.public_scheme): the
    // @target-uri differs, so the signature fails after the key fetch.
    let opts = Rfc9421Options {
        scheme: "http".into(),
        ..Rfc9421Options::default()
    };
    let (status, _) = post(
        &s.proxy,
        &alice.sign_rfc9421("/inbox", INBOX_HOST, &body, &opts),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let m = s.proxy.metrics().await;
    assert_eq!(rejected(&m, "bad_signature"), 1.0, "{m}");
}

fn sha512_base64(data: &[u8]) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, data);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Mastodon reads only the `sha-256` member of `Content-Digest`: without one the request is
/// refused whatever else it offers, and other members are never compared.
#[tokio::test]
async fn mastodon_requires_sha256_content_digest() {
    let s = setup("").await;
    let alice = s.remote.add_actor("alice");
    let body = alice.activity(
        "Follow",
        serde_json::json!("https://local.example/users/bob"),
    );
    let sign = |content_digest: String| {
        let opts = Rfc9421Options {
            content_digest: Some(content_digest),
            ..Rfc9421Options::default()
        };
        alice.sign_rfc9421("/inbox", INBOX_HOST, &body, &opts)
    };

    // A correct sha-512 alone: refused with Mastodon's words, before any key fetch.
    let (status, text) = post(
        &s.proxy,
        &sign(format!("sha-512=:{}:", sha512_base64(&body))),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(
        text.contains(
            "Mastodon only supports SHA-256 in Content-Digest header. Offered algorithms: sha-512"
        ),
        "{text}"
    );
    assert_eq!(s.remote.total_gets(), 0);
    assert_eq!(s.puma.count(), 0);
    let m = s.proxy.metrics().await;
    assert_eq!(rejected(&m, "content_digest_unsupported"), 1.0, "{m}");

    // A correct sha-256 beside a wrong sha-512: the sha-512 is not looked at, forwarded.
    let wrong = sha512_base64(b"another body");
    let signed = sign(format!(
        "sha-512=:{wrong}:, sha-256=:{}:",
        sha256_base64(&body)
    ));
    let (status, text) = post(&s.proxy, &signed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert_eq!(s.puma.count(), 1);
    assert_eq!(&s.puma.only().body[..], &body[..]);

    // The control: a wrong sha-256 beside a correct sha-512 is refused.
    let signed = sign(format!(
        "sha-256=:{}:, sha-512=:{}:",
        sha256_base64(b"another body"),
        sha512_base64(&body)
    ));
    let (status, text) = post(&s.proxy, &signed).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    let m = s.proxy.metrics().await;
    assert_eq!(rejected(&m, "content_digest_mismatch"), 1.0, "{m}");
    assert_eq!(s.puma.count(), 1);
}

/// Mastodon verifies an RSA key's RFC 9421 signature as rsa-v1_5-sha256 only, so it refuses
/// `alg="rsa-pss-sha512"`; so does inboxguard, before the key fetch, unless
/// `signatures.allow_rsa_pss` says the upstream accepts PSS.
#[tokio::test]
async fn mastodon_refuses_rsa_pss_signatures() {
    let pss = Rfc9421Options {
        alg: Some("rsa-pss-sha512".into()),
        ..Rfc9421Options::default()
    };
    let s = setup("").await;
    let alice = s.remote.add_actor("alice");
    let body = alice.activity(
        "Follow",
        serde_json::json!("https://local.example/users/bob"),
    );
    let (status, text) = post(
        &s.proxy,
        &alice.sign_rfc9421("/inbox", INBOX_HOST, &body, &pss),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("rsa-v1_5-sha256 only"), "{text}");
    assert_eq!(s.remote.total_gets(), 0, "refused before the key fetch");
    assert_eq!(s.puma.count(), 0);
    let m = s.proxy.metrics().await;
    assert_eq!(rejected(&m, "rfc9421_rsa_pss_refused"), 1.0, "{m}");
    // The control: the same actor's rsa-v1_5-sha256 signature passes.
    let v1_5 = alice.sign_rfc9421("/inbox", INBOX_HOST, &body, &Rfc9421Options::default());
    assert_eq!(post(&s.proxy, &v1_5).await.0, StatusCode::ACCEPTED);

    // Allowed: the PSS signature is verified as PSS and forwarded.
    let s = setup_with("", "[signatures]\nallow_rsa_pss = true").await;
    let alice = s.remote.add_actor("alice");
    let signed = alice.sign_rfc9421("/inbox", INBOX_HOST, &body, &pss);
    let (status, text) = post(&s.proxy, &signed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert_eq!(&s.puma.only().body[..], &body[..]);
    // A PKCS#1 v1.5 signature labelled PSS does not verify.
    let mut mislabelled =
        alice.sign_rfc9421("/inbox", INBOX_HOST, &body, &Rfc9421Options::default());
    let input = mislabelled.headers["signature-input"]
        .to_str()
        .unwrap()
        .to_string();
    mislabelled.headers.insert(
        "signature-input",
        HeaderValue::from_str(&format!("{input};alg=\"rsa-pss-sha512\"")).unwrap(),
    );
    let (status, text) = post(&s.proxy, &mislabelled).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert_eq!(s.puma.count(), 1);
}

#[tokio::test]
async fn trusted_forwarded_proto_and_public_scheme_choose_the_target_uri_scheme() {
    let puma = RecordingUpstream::start().await;
    let remote = RemoteInstance::start("remote.test").await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&remote)
        .configure(|c| c.server.public_scheme = inboxguard::config::PublicScheme::Http)
        .toml(DELIVER_TWICE)
        .start()
        .await;
    proxy.wait_ready().await;
    let alice = remote.add_actor("alice");
    let body = alice.activity(
        "Follow",
        serde_json::json!("https://local.example/users/bob"),
    );
    let http = Rfc9421Options {
        scheme: "http".into(),
        ..Rfc9421Options::default()
    };
    let (status, text) = post(
        &proxy,
        &alice.sign_rfc9421("/inbox", INBOX_HOST, &body, &http),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    // A TLS edge says https: that wins over public_scheme (trust_forwarded_proto = true).
    let mut signed = alice.sign_rfc9421("/inbox", INBOX_HOST, &body, &Rfc9421Options::default());
    signed
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static("https"));
    let (status, text) = post(&proxy, &signed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert_eq!(puma.count(), 2);
}

#[tokio::test]
async fn suspended_key_host_is_refused_without_a_fetch() {
    let s = setup("remote.test\n").await;
    let alice = s.remote.add_actor("alice");
    let body = alice.activity(
        "Follow",
        serde_json::json!("https://local.example/users/bob"),
    );
    let signed = alice.sign_rfc9421("/inbox", INBOX_HOST, &body, &Rfc9421Options::default());
    let (status, text) = post(&s.proxy, &signed).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert_eq!(s.remote.total_gets(), 0);
    assert_eq!(s.puma.count(), 0);
    let m = s.proxy.metrics().await;
    assert_eq!(rejected(&m, "suspended_key_host"), 1.0, "{m}");
}

#[tokio::test]
async fn relayed_activities_answer_to_both_hosts() {
    let puma = RecordingUpstream::start().await;
    let relay = RemoteInstance::start("relay.test").await;
    let origin = RemoteInstance::start("origin.test").await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&relay)
        .remote(&origin)
        .blocklist_file("blocklist.txt", "banned.test\n")
        .start()
        .await;
    proxy.wait_ready().await;
    let relay_actor = relay.add_actor("relay");
    let author = origin.add_actor("author");

    // The relay signs an activity whose actor lives on origin.test: forwarded, counted.
    let body = author.activity(
        "Create",
        serde_json::json!({"id": "http://origin.test/notes/1", "type": "Note"}),
    );
    let signed = relay_actor.sign_rfc9421("/inbox", INBOX_HOST, &body, &Rfc9421Options::default());
    let (status, text) = post(&proxy, &signed).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert_eq!(&puma.only().body[..], &body[..]);
    // Only the signer's key is fetched; the embedded proof is Mastodon's to check.
    assert_eq!(
        (relay.key_fetches(&relay_actor), origin.total_gets()),
        (1, 0)
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            r#"inboxguard_relayed_requests_total{decision="forwarded"}"#
        ),
        Some(1.0),
        "{m}"
    );

    // The same relay carrying an actor from a suspended host: 403 before any key work.
    let banned: serde_json::Value = serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": "http://banned.test/activities/1",
        "type": "Create",
        "actor": "http://banned.test/users/spammer",
        "object": {"id": "http://banned.test/notes/1", "type": "Note"},
    });
    let body = banned.to_string().into_bytes();
    let signed = relay_actor.sign_rfc9421("/inbox", INBOX_HOST, &body, &Rfc9421Options::default());
    let (status, text) = post(&proxy, &signed).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert_eq!(puma.count(), 1);
    assert_eq!(relay.key_fetches(&relay_actor), 1);
    let m = proxy.metrics().await;
    assert_eq!(rejected(&m, "suspended_actor_host"), 1.0, "{m}");
}

// ---------------------------------------------------------------------------------------
// The independent signer: Python `http-message-signatures` (PyPI)
// ---------------------------------------------------------------------------------------

/// Whether the Python package is importable (see `python_can_import`).
fn python_signer_available() -> bool {
    python_can_import("rfc9421 independent signer", "http_message_signatures")
}

/// Signs a POST to `url` with `tests/independent/rfc9421_sign.py`.
fn python_sign(
    dir: &Path,
    alg: &str,
    key: &SigningKey,
    key_id: &str,
    url: &str,
    body: &[u8],
) -> http::HeaderMap {
    let key_file = dir.join(format!("{alg}.pem"));
    std::fs::write(&key_file, key.private_key_pem().unwrap()).unwrap();
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, body).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/rfc9421_sign.py");
    let out = python_command()
        .arg(script)
        .args([
            alg,
            key_file.to_str().unwrap(),
            key_id,
            url,
            body_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "signer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fields: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&out.stdout).unwrap();
    let mut h = http::HeaderMap::new();
    for (k, v) in fields {
        h.insert(
            http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    h.insert(http::header::HOST, HeaderValue::from_static(INBOX_HOST));
    h
}

#[tokio::test]
async fn independent_python_signer_end_to_end() {
    if !python_signer_available() {
        return;
    }
    // PSS is off by default (Mastodon refuses it; see `mastodon_refuses_rsa_pss_signatures`).
    let s = setup_with("", "[signatures]\nallow_rsa_pss = true").await;
    let dir = tempfile::tempdir().unwrap();
    let rsa = s.remote.add_actor("rosa");
    let ed = s
        .remote
        .add_actor_with_key("edna", SigningKey::generate_ed25519().unwrap());
    let url = format!("https://{INBOX_HOST}/users/bob/inbox");
    let mut sent = 0;
    for (actor, alg) in [
        (&rsa, "rsa-v1_5-sha256"),
        (&rsa, "rsa-pss-sha512"),
        (&ed, "ed25519"),
    ] {
        let body = actor.activity(
            "Follow",
            serde_json::json!("https://local.example/users/bob"),
        );
        let headers = python_sign(dir.path(), alg, &actor.key(), &actor.key_id, &url, &body);
        let input = headers["signature-input"].to_str().unwrap().to_string();
        assert!(input.contains(&format!("alg=\"{alg}\"")), "{input}");
        let (status, _, resp) = send(
            s.proxy.proxy_addr,
            Method::POST,
            "/users/bob/inbox",
            headers.clone(),
            body.clone(),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "{alg}: {}",
            String::from_utf8_lossy(&resp)
        );
        sent += 1;
        let got = s.puma.requests().pop().unwrap();
        assert_eq!(&got.body[..], &body[..]);
        assert_eq!(
            got.header("signature"),
            headers["signature"].to_str().unwrap()
        );

        // One changed body byte: the library's Content-Digest no longer matches.
        let mut tampered = body.clone();
        tampered[2] ^= 1;
        let (status, _, _) = send(
            s.proxy.proxy_addr,
            Method::POST,
            "/users/bob/inbox",
            headers,
            tampered,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{alg}");
    }
    assert_eq!(s.puma.count(), sent);
}
