//! RFC 9421 Appendix B.2 vectors (tests/fixtures/rfc9421, see its SOURCE.md) run through our
//! structured-field parsing, signature-base builder and verifier.
//!
//! For each vector with an algorithm we verify (B.2.1-B.2.3 rsa-pss-sha512, B.2.6 ed25519):
//! our signature base must equal the published one byte for byte, the published signature
//! must verify, and one changed byte (in the signature, in a covered header, or in the body
//! behind a covered Content-Digest) must fail. The vectors cover fewer components than
//! Mastodon requires and name keys `test-key-...`, so they go through
//! `prepare_for_spec_vectors`; the real `prepare` refuses them, which is checked too.
//! B.2.4 (a response, ecdsa-p256-sha256) and B.2.5 (hmac-sha256) must be refused clearly.
//!
//! The vectors carry no `alg`; the algorithm is known out of band (RFC 9421 §3.2), so the
//! PSS vectors verify through `Prepared::verify_as`.

// Fixture helpers outside `#[test]` functions panic on bad fixtures by design.
#![allow(clippy::unwrap_used)]

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use inboxguard::config::SignatureConfig;
use inboxguard::signature::{
    prepare, prepare_for_spec_vectors, Algorithm, Format, KeyParseError, Prepared, PublicKey,
    RequestTarget, Scheme, SigError,
};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `created` of every B.2 signature.
const CREATED: u64 = 1_618_884_473;
const TARGET: RequestTarget<'static> = RequestTarget {
    scheme: "https",
    authority: Some("example.com"),
};

fn fixture(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/rfc9421", name]
        .iter()
        .collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The B.2 test request: method, target, headers and body from test-request.http.
struct Request {
    method: Method,
    target: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn request() -> Request {
    let raw = fixture("test-request.http");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let method: Method = request_line.next().unwrap().parse().unwrap();
    let target = request_line.next().unwrap().to_string();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(": ").unwrap();
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    Request {
        method,
        target,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

/// The value of the `Name: ` line in a *.headers.txt file.
fn published(file: &str, name: &str) -> String {
    let prefix = format!("{name}: ");
    fixture(file)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{file} has no {name} line"))
        .to_string()
}

/// The request with the vector's `Signature-Input` and `Signature`.
fn signed_headers(req: &Request, vector: &str) -> HeaderMap {
    let file = format!("{vector}.headers.txt");
    let mut h = req.headers.clone();
    for name in ["Signature-Input", "Signature"] {
        h.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&published(&file, name)).unwrap(),
        );
    }
    h
}

fn at_created() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(CREATED)
}

fn prepare_vector(req: &Request, headers: &HeaderMap, body: &[u8]) -> Result<Prepared, SigError> {
    prepare_for_spec_vectors(&req.method, &req.target, headers, body, at_created())
}

fn key(file: &str) -> PublicKey {
    PublicKey::from_pem(&fixture(file)).unwrap()
}

/// A copy of `value` with the first character of the signature byte sequence changed.
fn flip_signature(value: &str) -> String {
    let start = value.find("=:").unwrap() + 2;
    let mut bytes = value.as_bytes().to_vec();
    bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// Base equality, published signature verifies, a flipped signature byte fails.
fn check_vector(vector: &str, public_key: &PublicKey, scheme: Scheme) -> Prepared {
    let req = request();
    let h = signed_headers(&req, vector);
    let p = prepare_vector(&req, &h, &req.body).unwrap_or_else(|e| panic!("{vector}: {e}"));
    assert_eq!(p.format(), Format::Rfc9421);
    assert_eq!(p.algorithm(), Algorithm::Rfc9421(None));
    assert_eq!(p.created(), Some(at_created()));
    let base = p.signing_strings();
    assert_eq!(base.len(), 1);
    assert_eq!(
        String::from_utf8_lossy(&base[0]),
        fixture(&format!("{vector}.signature-base.txt")),
        "{vector}: signature base"
    );
    p.verify_as(public_key, scheme)
        .unwrap_or_else(|e| panic!("{vector}: {e}"));

    let mut tampered = h.clone();
    let flipped = flip_signature(h["signature"].to_str().unwrap());
    tampered.insert("signature", HeaderValue::from_str(&flipped).unwrap());
    let p2 = prepare_vector(&req, &tampered, &req.body).unwrap();
    assert!(
        matches!(
            p2.verify_as(public_key, scheme),
            Err(SigError::BadSignature(_))
        ),
        "{vector}: flipped signature byte verified"
    );
    p
}

#[test]
fn b21_minimal_rsa_pss() {
    let pss = key("test-key-rsa-pss.pub.pem");
    let p = check_vector("B.2.1-sig-b21.rsa-pss-sha512", &pss, Scheme::RsaPssSha512);
    assert_eq!(p.key_id, "test-key-rsa-pss");
    assert_eq!(p.signed_headers().count(), 0);
    // Without `alg` the key type decides: an RSA key means rsa-v1_5-sha256, so this PSS
    // signature does not verify through `verify`.
    assert!(matches!(p.verify(&pss), Err(SigError::BadSignature(_))));
}

#[test]
fn b22_selective_with_query_param() {
    let pss = key("test-key-rsa-pss.pub.pem");
    check_vector("B.2.2-sig-b22.rsa-pss-sha512", &pss, Scheme::RsaPssSha512);
    // Another value of the covered query parameter is another base.
    let mut req = request();
    let h = signed_headers(&req, "B.2.2-sig-b22.rsa-pss-sha512");
    req.target = req.target.replace("Pet=dog", "Pet=cat");
    let p = prepare_vector(&req, &h, &req.body).unwrap();
    assert!(p.verify_as(&pss, Scheme::RsaPssSha512).is_err());
}

#[test]
fn b23_full_coverage() {
    let pss = key("test-key-rsa-pss.pub.pem");
    check_vector("B.2.3-sig-b23.rsa-pss-sha512", &pss, Scheme::RsaPssSha512);
    // One changed byte in the body: the covered sha-512 Content-Digest no longer matches.
    let req = request();
    let h = signed_headers(&req, "B.2.3-sig-b23.rsa-pss-sha512");
    let mut body = req.body.clone();
    body[3] ^= 1;
    let err = prepare_vector(&req, &h, &body).unwrap_err();
    assert_eq!(err.reason(), "content_digest_mismatch", "{err}");
    // One changed byte in a covered header: the base changes, the signature fails.
    let mut changed = h.clone();
    changed.insert("content-type", HeaderValue::from_static("application/jsoN"));
    let p = prepare_vector(&req, &changed, &req.body).unwrap();
    assert!(p.verify_as(&pss, Scheme::RsaPssSha512).is_err());
}

#[test]
fn b26_ed25519() {
    let ed = key("test-key-ed25519.pub.pem");
    let p = check_vector("B.2.6-sig-b26.ed25519", &ed, Scheme::Ed25519);
    // For an Ed25519 key the key type alone selects ed25519.
    p.verify(&ed).unwrap();
    // The same vector as a JWK-less FEP-521a multikey of test-key-ed25519 verifies too.
    let multikey =
        PublicKey::from_multibase("z6Mkh4LmfP1ev9MNPGr7JbEbtD6BD4fsu1duEj83PMCs3xHG").unwrap();
    p.verify(&multikey).unwrap();
    // One changed byte in a covered header.
    let req = request();
    let mut h = signed_headers(&req, "B.2.6-sig-b26.ed25519");
    h.insert(
        "date",
        HeaderValue::from_static("Tue, 20 Apr 2021 02:07:56 GMT"),
    );
    let p = prepare_vector(&req, &h, &req.body).unwrap();
    assert!(matches!(p.verify(&ed), Err(SigError::BadSignature(_))));
    // With an alg naming another key type, the RSA key is refused before any crypto.
    let rsa = key("test-key-rsa.pub.pem");
    let mut h = signed_headers(&req, "B.2.6-sig-b26.ed25519");
    let input = h["signature-input"].to_str().unwrap().to_string() + ";alg=\"ed25519\"";
    h.insert("signature-input", HeaderValue::from_str(&input).unwrap());
    let p = prepare_vector(&req, &h, &req.body).unwrap();
    assert_eq!(
        p.verify(&rsa).unwrap_err().reason(),
        "rfc9421_key_type_mismatch"
    );
}

#[test]
fn b24_response_with_ecdsa_is_refused() {
    let req = request();
    let h = signed_headers(&req, "B.2.4-sig-b24.ecdsa-p256-sha256");
    let err = prepare_vector(&req, &h, &req.body).unwrap_err();
    assert!(
        matches!(&err, SigError::Rfc9421UnsupportedComponent(c) if c == "@status"),
        "{err}"
    );
    assert_eq!(err.to_string(), "Unsupported covered component @status");
    // Its P-256 key is not a key we verify with.
    assert!(matches!(
        PublicKey::from_pem(&fixture("test-key-ecc-p256.pub.pem")),
        Err(KeyParseError::UnsupportedAlgorithm)
    ));
    // Named as alg, the algorithm is refused as such.
    let mut h = req.headers.clone();
    h.insert(
        "signature-input",
        HeaderValue::from_static(
            r#"sig1=("@method");created=1618884473;keyid="test-key-ecc-p256";alg="ecdsa-p256-sha256""#,
        ),
    );
    h.insert("signature", HeaderValue::from_static("sig1=:AAAA:"));
    let err = prepare_vector(&req, &h, &req.body).unwrap_err();
    assert_eq!(err.reason(), "rfc9421_unsupported_algorithm");
}

#[test]
fn b25_hmac_base_builds_but_hmac_is_refused() {
    let req = request();
    let h = signed_headers(&req, "B.2.5-sig-b25.hmac-sha256");
    // The base is request data only, so ours matches the published one...
    let p = prepare_vector(&req, &h, &req.body).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&p.signing_strings()[0]),
        fixture("B.2.5-sig-b25.hmac-sha256.signature-base.txt")
    );
    // ...but a shared secret is no public key: no key we hold verifies it,
    for k in ["test-key-rsa.pub.pem", "test-key-ed25519.pub.pem"] {
        assert!(p.verify(&key(k)).is_err(), "{k}");
    }
    // and an explicit hmac-sha256 alg is refused up front.
    let mut h = h.clone();
    let input = h["signature-input"].to_str().unwrap().to_string() + ";alg=\"hmac-sha256\"";
    h.insert("signature-input", HeaderValue::from_str(&input).unwrap());
    let err = prepare_vector(&req, &h, &req.body).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Unsupported signature algorithm \"hmac-sha256\" (supported: rsa-v1_5-sha256, rsa-pss-sha512, ed25519)"
    );
}

#[test]
fn mastodon_rules_refuse_the_vectors() {
    // None covers @target-uri; B.2.1 has no keyid host; the real `prepare` says so.
    let req = request();
    for (vector, reason) in [
        ("B.2.1-sig-b21.rsa-pss-sha512", "invalid_key_id"),
        ("B.2.3-sig-b23.rsa-pss-sha512", "invalid_key_id"),
    ] {
        let h = signed_headers(&req, vector);
        let err = prepare(
            &req.method,
            &req.target,
            &h,
            &req.body,
            &TARGET,
            at_created(),
            &SignatureConfig::default(),
        )
        .unwrap_err();
        assert_eq!(err.reason(), reason, "{vector}: {err}");
    }
    // With a URL keyid, B.2.6 still lacks @target-uri and content-digest.
    let mut h = signed_headers(&req, "B.2.6-sig-b26.ed25519");
    let input = h["signature-input"]
        .to_str()
        .unwrap()
        .replace("test-key-ed25519", "https://example.com/keys/ed");
    h.insert("signature-input", HeaderValue::from_str(&input).unwrap());
    let err = prepare(
        &req.method,
        &req.target,
        &h,
        &req.body,
        &TARGET,
        at_created(),
        &SignatureConfig::default(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "rfc9421_missing_component", "{err}");
}

#[test]
fn the_pkcs1_rsa_test_key_loads() {
    // B.1.1 is published as PKCS#1 ("BEGIN RSA PUBLIC KEY"); no B.2 vector uses it, but an
    // actor publishing that form must work.
    let k = key("test-key-rsa.pub.pem");
    assert_eq!(k.bits(), 2048);
}
