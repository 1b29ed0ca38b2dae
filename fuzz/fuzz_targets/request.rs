//! The fixed inbox request around the fuzzed parts, shared by the signature, Digest and
//! RFC 9421 targets: every header a fuzzed `headers=` list (or covered-component list) is
//! likely to name is present, with a correct Digest and a Date inside the window, so inputs
//! get past the cheap checks.

use http::{HeaderMap, HeaderValue, Method};
use inboxguard::config::SignatureConfig;
use inboxguard::signature::{prepare, PublicKey, RequestTarget, SigningKey};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

pub const BODY: &[u8] = br#"{"type":"Follow","actor":"https://remote.example/users/a"}"#;
pub const DATE: &str = "Sun, 05 Jan 2014 21:31:40 GMT";
pub const PATH: &str = "/users/alice/inbox?page=1";

/// Ten seconds after [`DATE`]: inside every window.
pub fn now() -> SystemTime {
    httpdate::parse_http_date(DATE).expect("DATE parses") + Duration::from_secs(10)
}

pub fn sha256_digest(body: &[u8]) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    format!(
        "SHA-256={}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

/// Host, Date, Digest (of `body`), Content-Type and Content-Length; no Signature.
pub fn base_headers(body: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("mastodon.local"));
    h.insert("date", HeaderValue::from_static(DATE));
    h.insert(
        "digest",
        HeaderValue::from_str(&sha256_digest(body)).expect("digest is a header value"),
    );
    h.insert(
        "content-type",
        HeaderValue::from_static("application/activity+json"),
    );
    h.insert("content-length", HeaderValue::from(body.len()));
    h
}

/// One RSA key per process: verification runs its real code path (and fails).
fn key() -> &'static PublicKey {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let signing = SigningKey::generate_rsa_2048().expect("key generation");
        PublicKey::from_pem(&signing.public_key_pem().expect("PEM")).expect("own key parses")
    })
}

/// Everything the pipeline does with a signature before the key fetch, and verification.
pub fn exercise(headers: &HeaderMap, body: &[u8]) {
    let cfg = SignatureConfig::default();
    let target = RequestTarget {
        scheme: "https",
        authority: headers.get("host").and_then(|h| h.to_str().ok()),
    };
    for method in [Method::POST, Method::GET] {
        if let Ok(prepared) = prepare(&method, PATH, headers, body, &target, now(), &cfg) {
            let _ = prepared.format();
            let _ = prepared.algorithm();
            let _ = prepared.signed_headers().count();
            let _ = prepared.created();
            let _ = prepared.signing_strings();
            let _ = prepared.verify(key());
        }
    }
}

/// RFC 9530 `Content-Digest` of `body` with SHA-256.
#[allow(dead_code)] // Used by the rfc9421 target only; each target includes this file.
pub fn sha256_content_digest(body: &[u8]) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}
