//! The fuzz targets' bodies, one function per target in `fuzz/fuzz_targets/`, so the targets
//! and `tests/fuzz_seeds.rs` (which runs every committed seed through them on the stable
//! toolchain) exercise the same code. Built only with the `test-util` feature.
//!
//! Each function must not panic on any input; the assertions inside are the properties the
//! fuzzer checks beyond "no crash".

use crate::activity::Facts;
use crate::config::{BlocklistFormat, SignatureConfig};
use crate::policy::host::normalize;
use crate::policy::sources::{
    parse_allow_json_bytes, parse_bytes, parse_fediseer_bytes, parse_json_bytes, FediseerList,
    FediseerSettings, ParsedSource,
};
use crate::signature::{prepare, PublicKey, RequestTarget, SigningKey};
use http::{HeaderMap, HeaderValue, Method};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

pub mod mastodon_reading;

/// Activity-fact extraction (`activity::Facts::parse`) on an arbitrary body, held against a
/// naive last-key-wins reader of the same body (`mastodon_reading`): wherever that reader
/// accepts a body, both read the same facts. The content facts read in the same pass must
/// not change the others.
pub fn activity_facts(data: &[u8]) {
    let ours = Facts::parse(data).map_err(|_| mastodon_reading::Refused);
    if let Ok(facts) = &ours {
        let _ = facts.is_self_delete_or_update();
    }
    // serde_json's `Value` stops at 128 levels, which the streaming reader skips without
    // recursion, so only the oracle's acceptances are compared.
    if let Ok(expected) = mastodon_reading::read(data) {
        assert_eq!(ours, Ok(expected), "{data:?}");
    }
    let with_content = Facts::parse_with_content(data).map(|mut f| {
        assert!(f.content.take().is_some());
        f
    });
    assert_eq!(
        with_content.map_err(|_| mastodon_reading::Refused),
        ours,
        "content reading changed the facts"
    );
}

/// Every rule-source parser on arbitrary file contents: a Mastodon CSV export, a plain list,
/// auto-detected, an inboxguard TOML rules file, a JSON domain-block list (Mastodon's admin
/// and public APIs, GoToSocial's export), a JSON domain-allow list and a Fediseer censures or
/// hesitations answer (with and without a minimum count). Remote lists reach the JSON parsers
/// straight from the network, so they see hostile input as much as the CSV parser does.
pub fn blocklist(data: &[u8]) {
    for format in [
        BlocklistFormat::Auto,
        BlocklistFormat::MastodonCsv,
        BlocklistFormat::Plain,
        BlocklistFormat::Toml,
        BlocklistFormat::Fediseer,
    ] {
        if let Ok(parsed) = parse_bytes(data, Arc::from("fuzz.csv"), format) {
            check_domains(&parsed, data);
        }
    }
    if let Ok(parsed) = parse_json_bytes(data, Arc::from("fuzz.json")) {
        check_domains(&parsed, data);
    }
    for (list, min_count) in [
        (FediseerList::Censures, None),
        (FediseerList::Hesitations, Some(2)),
    ] {
        let settings = FediseerSettings { list, min_count };
        if let Ok(parsed) = parse_fediseer_bytes(data, Arc::from("fuzz.json"), settings) {
            check_domains(&parsed, data);
            // A Fediseer list is of one severity: the one its list is taken in with.
            assert!(
                parsed.rules.iter().all(|r| r.severity == list.severity()),
                "{data:?}"
            );
        }
    }
    if let Ok(allows) = parse_allow_json_bytes(data, "fuzz.json") {
        for allow in allows {
            assert_eq!(
                normalize(&allow.domain).as_deref(),
                Some(&*allow.domain),
                "allow from line {} of {data:?}",
                allow.line
            );
        }
    }
}

/// Every name-matched rule's domain is a normalised host: normalising it again changes nothing.
/// (A digest rule keeps the entry as listed, for display.)
fn check_domains(parsed: &ParsedSource, data: &[u8]) {
    for rule in parsed.rules.iter().filter(|r| r.digest.is_none()) {
        assert_eq!(
            normalize(&rule.domain).as_deref(),
            Some(&*rule.domain),
            "rule from line {} of {data:?}",
            rule.line
        );
    }
    // A content rule always has a condition (none would match everything) and its domain
    // lists are normalised hosts, as domain rules are.
    for rule in &parsed.content_rules {
        assert!(
            !rule.when.is_empty(),
            "content rule {} of {data:?}",
            rule.name
        );
        let w = &rule.when;
        for d in w
            .link_domains
            .iter()
            .chain(&w.sender_domains)
            .chain(&w.not_sender_domains)
        {
            assert_eq!(
                normalize(d).as_deref(),
                Some(d.as_str()),
                "{} of {data:?}",
                rule.name
            );
        }
    }
}

/// The `Signature` header parser and everything `signature::prepare` derives from it
/// (parameters, algorithm, headers list, pseudo-headers, window, signing string), on arbitrary
/// header bytes.
pub fn signature_header(data: &[u8]) {
    // Bytes hyper would refuse (CR, LF, NUL, ...) never reach the parser.
    let Ok(signature) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = base_headers(BODY);
    headers.insert("signature", signature);
    exercise(&headers, BODY);
}

/// The `Digest` header parser, through `signature::prepare` with a signature that covers
/// `digest`. Each input line is one `Digest` header (repeated headers are part of the game).
pub fn digest_header(data: &[u8]) {
    const SIGNATURE: &str = "keyId=\"https://remote.example/users/a#main-key\",\
        algorithm=\"rsa-sha256\",headers=\"(request-target) host date digest\",signature=\"AAAA\"";
    let mut headers = base_headers(BODY);
    headers.remove("digest");
    for line in data.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append("digest", value);
        }
    }
    headers.insert("signature", HeaderValue::from_static(SIGNATURE));
    exercise(&headers, BODY);
}

/// The RFC 9421 parsers (`Signature-Input` and `Signature` as structured-field dictionaries,
/// covered components and their parameters, `Content-Digest`) and the signature base, through
/// `signature::prepare`. Input lines: `Signature-Input`, `Signature`, then optionally
/// `Content-Digest` (otherwise the body's correct one).
pub fn rfc9421(data: &[u8]) {
    let mut lines = data.splitn(3, |b| *b == b'\n');
    let (Some(input), Some(signature)) = (lines.next(), lines.next()) else {
        return;
    };
    let mut headers = base_headers(BODY);
    headers.remove("digest");
    // Bytes hyper would refuse (CR, LF, NUL, ...) never reach the parsers.
    let (Ok(input), Ok(signature)) = (
        HeaderValue::from_bytes(input),
        HeaderValue::from_bytes(signature),
    ) else {
        return;
    };
    headers.insert("signature-input", input);
    headers.insert("signature", signature);
    let digest = match lines.next() {
        Some(raw) => match HeaderValue::from_bytes(raw) {
            Ok(value) => value,
            Err(_) => return,
        },
        None => match HeaderValue::from_str(&format!("sha-256=:{}:", sha256_base64(BODY))) {
            Ok(value) => value,
            Err(_) => return,
        },
    };
    headers.insert("content-digest", digest);
    exercise(&headers, BODY);
}

// The fixed inbox request around the fuzzed parts: every header a fuzzed `headers=` list (or
// covered-component list) is likely to name is present, with a correct Digest and a Date
// inside the window, so inputs get past the cheap checks.

const BODY: &[u8] = br#"{"type":"Follow","actor":"https://remote.example/users/a"}"#;
const DATE: &str = "Sun, 05 Jan 2014 21:31:40 GMT";
const PATH: &str = "/users/alice/inbox?page=1";

/// Ten seconds after [`DATE`]: inside every window.
fn now() -> SystemTime {
    httpdate::parse_http_date(DATE).unwrap_or(SystemTime::UNIX_EPOCH) + Duration::from_secs(10)
}

fn sha256_base64(body: &[u8]) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Host, Date, Digest (of `body`), Content-Type and Content-Length; no Signature.
fn base_headers(body: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("mastodon.local"));
    h.insert("date", HeaderValue::from_static(DATE));
    if let Ok(digest) = HeaderValue::from_str(&format!("SHA-256={}", sha256_base64(body))) {
        h.insert("digest", digest);
    }
    h.insert(
        "content-type",
        HeaderValue::from_static("application/activity+json"),
    );
    h.insert("content-length", HeaderValue::from(body.len()));
    h
}

/// One RSA key per process: verification runs its real code path (and fails). `None` only if
/// key generation itself fails, which the fuzzer then skips.
fn key() -> Option<&'static PublicKey> {
    static KEY: OnceLock<Option<PublicKey>> = OnceLock::new();
    KEY.get_or_init(|| {
        let signing = SigningKey::generate_rsa_2048().ok()?;
        PublicKey::from_pem(&signing.public_key_pem().ok()?).ok()
    })
    .as_ref()
}

/// Everything the pipeline does with a signature before the key fetch, and verification.
fn exercise(headers: &HeaderMap, body: &[u8]) {
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
            if let Some(key) = key() {
                let _ = prepared.verify(key);
            }
        }
    }
}
