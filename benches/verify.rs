//! The full verify path for one inbox POST (header parse, window, digest, signing string,
//! then the public-key operation with a cached key) against a bare aws-lc-rs verify of the
//! same message with the same key, measured in the same run; RSA-2048 (rsa-sha256, as
//! Mastodon signs) and Ed25519 (hs2019).

use aws_lc_rs::signature::{
    Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaKeyPair, UnparsedPublicKey, ED25519,
    RSA_PKCS1_2048_8192_SHA256,
};
use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, Method};
use inboxguard::config::SignatureConfig;
use inboxguard::signature::{self, PublicKey, SignStyle, SigningKey};
use std::hint::black_box;
use std::time::SystemTime;

#[allow(dead_code)]
mod support;

const ACTOR: &str = "https://remote.example/users/alice";
const KEY_ID: &str = "https://remote.example/users/alice#main-key";

/// The signing string `prepare` builds for a request signed with `SignStyle::Mastodon`.
fn mastodon_signing_string(headers: &HeaderMap) -> Vec<u8> {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .expect("header set by the signer")
            .to_string()
    };
    format!(
        "(request-target): post {}\nhost: {}\ndate: {}\ndigest: {}\ncontent-type: {}",
        support::INBOX,
        value("host"),
        value("date"),
        value("digest"),
        value("content-type")
    )
    .into_bytes()
}

/// The signing string for `SignStyle::Hs2019` (`created`/`expires` from the header).
fn hs2019_signing_string(headers: &HeaderMap) -> Vec<u8> {
    let sig = headers["signature"].to_str().expect("ASCII");
    let param = |name: &str| {
        sig.split(',')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_matches('"').to_string())
            .expect("parameter present")
    };
    let list = param("headers");
    let mut lines = Vec::new();
    for name in list.split(' ') {
        let v = match name {
            "(request-target)" => format!("post {}", support::INBOX),
            "(created)" => param("created"),
            "(expires)" => param("expires"),
            h => headers[h].to_str().expect("ASCII").to_string(),
        };
        lines.push(format!("{name}: {v}"));
    }
    lines.join("\n").into_bytes()
}

fn signature_bytes(headers: &HeaderMap) -> Vec<u8> {
    use base64::Engine;
    let sig = headers["signature"].to_str().expect("ASCII");
    let b64 = sig
        .split(',')
        .find_map(|p| p.strip_prefix("signature=\""))
        .expect("signature parameter")
        .trim_end_matches('"');
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
}

struct Case {
    name: &'static str,
    signer: SigningKey,
    /// The same public key, pre-parsed by aws-lc-rs (the best a bare verify can do) and as
    /// raw bytes (a verify that parses the key each time).
    parsed: ParsedPublicKey,
    raw: (
        Vec<u8>,
        &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
    ),
    style: SignStyle,
}

fn rsa_case() -> Case {
    let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
    let der = pair.public_key().as_ref().to_vec();
    Case {
        name: "rsa2048",
        parsed: ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &der).expect("parsed"),
        raw: (der, &RSA_PKCS1_2048_8192_SHA256),
        signer: SigningKey::Rsa(pair),
        style: SignStyle::Mastodon,
    }
}

fn ed25519_case() -> Case {
    let pair = Ed25519KeyPair::generate().expect("Ed25519 key");
    let der = pair.public_key().as_ref().to_vec();
    Case {
        name: "ed25519",
        parsed: ParsedPublicKey::new(&ED25519, &der).expect("parsed"),
        raw: (der, &ED25519),
        signer: SigningKey::Ed25519(pair),
        style: SignStyle::Hs2019,
    }
}

fn bench_case(c: &mut Criterion, case: Case) {
    let body = support::create(ACTOR, 1);
    let now = SystemTime::now();
    let headers = support::signed_post(&case.signer, KEY_ID, body.as_bytes(), now, case.style);
    let cfg = SignatureConfig::default();
    let target = signature::RequestTarget {
        scheme: "https",
        authority: Some(support::LOCAL_HOST),
    };
    let cached = PublicKey::from_pem(&case.signer.public_key_pem().expect("PEM")).expect("key");
    let message = match case.style {
        SignStyle::Mastodon => mastodon_signing_string(&headers),
        SignStyle::Hs2019 => hs2019_signing_string(&headers),
    };
    let sig = signature_bytes(&headers);
    // Both sides must do the same work on the same bytes, or the ratio means nothing.
    case.parsed
        .verify_sig(&message, &sig)
        .expect("baseline verifies the message the proxy builds");
    signature::prepare(
        &Method::POST,
        support::INBOX,
        &headers,
        body.as_bytes(),
        &target,
        now,
        &cfg,
    )
    .expect("prepare")
    .verify(&cached)
    .expect("full path verifies");

    let mut g = c.benchmark_group(format!("verify/{}", case.name));
    g.bench_function("bare_aws_lc_parsed_key", |b| {
        b.iter(|| {
            case.parsed
                .verify_sig(black_box(&message), black_box(&sig))
                .is_ok()
        })
    });
    g.bench_function("bare_aws_lc_unparsed_key", |b| {
        let key = UnparsedPublicKey::new(case.raw.1, &case.raw.0);
        b.iter(|| key.verify(black_box(&message), black_box(&sig)).is_ok())
    });
    g.bench_function("prepare_only", |b| {
        b.iter(|| {
            signature::prepare(
                &Method::POST,
                support::INBOX,
                black_box(&headers),
                black_box(body.as_bytes()),
                &target,
                now,
                &cfg,
            )
            .is_ok()
        })
    });
    g.bench_function("full_path", |b| {
        b.iter(|| {
            let prepared = signature::prepare(
                &Method::POST,
                support::INBOX,
                black_box(&headers),
                black_box(body.as_bytes()),
                &target,
                now,
                &cfg,
            )
            .expect("prepare");
            prepared.verify(&cached).is_ok()
        })
    });
    g.finish();
}

fn verify(c: &mut Criterion) {
    bench_case(c, rsa_case());
    bench_case(c, ed25519_case());
}

criterion_group!(benches, verify);
criterion_main!(benches);
