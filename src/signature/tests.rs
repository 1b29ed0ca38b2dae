use super::*;
use crate::reject::Rejection;
use base64::Engine;
use http::{HeaderMap, HeaderValue, Method};
use std::sync::OnceLock;
use std::time::Duration;

const DATE: &str = "Sun, 05 Jan 2014 21:31:40 GMT";
const DATE_UNIX: u64 = 1_388_957_500;
const KEY_ID: &str = "https://remote.example/users/alice#main-key";
const BODY: &[u8] = br#"{"type":"Create"}"#;
const TARGET: RequestTarget<'static> = RequestTarget {
    scheme: "https",
    authority: Some("local.example"),
};

fn rsa_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate_rsa_2048().unwrap())
}

fn public(key: &SigningKey) -> PublicKey {
    PublicKey::from_pem(&key.public_key_pem().unwrap()).unwrap()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn cfg() -> SignatureConfig {
    SignatureConfig::default()
}

fn base_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("local.example"));
    h.insert("date", HeaderValue::from_static(DATE));
    h.insert(
        "content-type",
        HeaderValue::from_static("application/activity+json"),
    );
    h
}

/// A Mastodon-style signed POST to `target`.
fn signed(key: &SigningKey, target: &str) -> HeaderMap {
    let mut h = base_headers();
    sign_request(
        key,
        KEY_ID,
        &Method::POST,
        target,
        &mut h,
        BODY,
        SignStyle::Mastodon,
    )
    .unwrap();
    h
}

fn prep(h: &HeaderMap, target: &str, body: &[u8], now: SystemTime) -> Result<Prepared, SigError> {
    prepare(&Method::POST, target, h, body, &TARGET, now, &cfg())
}

fn with_signature(value: &str) -> HeaderMap {
    let mut h = base_headers();
    h.insert("signature", HeaderValue::from_str(value).unwrap());
    h
}

fn err_of(value: &str) -> SigError {
    prep(&with_signature(value), "/inbox", BODY, at(DATE_UNIX)).unwrap_err()
}

#[test]
fn mastodon_style_round_trip() {
    let h = signed(rsa_key(), "/inbox");
    let p = prep(&h, "/inbox", BODY, at(DATE_UNIX)).unwrap();
    assert_eq!(p.key_id, KEY_ID);
    assert_eq!(p.key_host, "remote.example");
    assert_eq!(p.algorithm(), Algorithm::RsaSha256);
    assert_eq!(
        p.signed_headers().collect::<Vec<_>>(),
        ["(request-target)", "host", "date", "digest", "content-type"]
    );
    assert_eq!(p.created(), Some(at(DATE_UNIX)));
    assert_eq!(p.signing_strings().len(), 1);
    p.verify(&public(rsa_key())).unwrap();
}

#[test]
fn tampering_is_caught() {
    let h = signed(rsa_key(), "/inbox");
    assert!(matches!(
        prep(&h, "/inbox", b"{}", at(DATE_UNIX)),
        Err(SigError::DigestMismatch { .. })
    ));
    let mut changed = h.clone();
    changed.insert("content-type", HeaderValue::from_static("text/plain"));
    let p = prep(&changed, "/inbox", BODY, at(DATE_UNIX)).unwrap();
    let err = p.verify(&public(rsa_key())).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Verification failed for key {KEY_ID}")
    );
    // Another inbox path is another request-target.
    let p = prep(&h, "/users/bob/inbox", BODY, at(DATE_UNIX)).unwrap();
    assert!(matches!(
        p.verify(&public(rsa_key())),
        Err(SigError::BadSignature(_))
    ));
}

/// Verifies, with `verifier`'s public key, a request `signer` signed for `/inbox`.
fn verify_with(signer: &SigningKey, verifier: &SigningKey) -> Result<(), SigError> {
    let h = signed(signer, "/inbox");
    let p = prep(&h, "/inbox", BODY, at(DATE_UNIX)).unwrap();
    p.verify(&public(verifier))
}

#[test]
fn wrong_key_fails() {
    let other = SigningKey::generate_rsa_2048().unwrap();
    let verified = verify_with(rsa_key(), &other);
    assert!(matches!(verified, Err(SigError::BadSignature(_))));
}

#[test]
fn request_target_query_retry() {
    // Signed with the query: the first candidate matches.
    let h = signed(rsa_key(), "/inbox?a=1");
    let p = prep(&h, "/inbox?a=1", BODY, at(DATE_UNIX)).unwrap();
    let candidates = p.signing_strings();
    assert_eq!(candidates.len(), 2);
    assert!(candidates[0].starts_with(b"(request-target): post /inbox?a=1\n"));
    assert!(candidates[1].starts_with(b"(request-target): post /inbox\n"));
    p.verify(&public(rsa_key())).unwrap();
    // Signed without the query, received with it: the path-only retry matches.
    let h = signed(rsa_key(), "/inbox");
    let p = prep(&h, "/inbox?a=1", BODY, at(DATE_UNIX)).unwrap();
    p.verify(&public(rsa_key())).unwrap();
    // Signed with a query, received without: no retry can help.
    let h = signed(rsa_key(), "/inbox?a=1");
    let p = prep(&h, "/inbox", BODY, at(DATE_UNIX)).unwrap();
    assert!(p.verify(&public(rsa_key())).is_err());
}

#[test]
fn hs2019_via_http_signature_normalization_verifies() {
    for key in [rsa_key(), &SigningKey::generate_ed25519().unwrap()] {
        let mut h = base_headers();
        h.remove("date");
        sign_request(
            key,
            KEY_ID,
            &Method::POST,
            "/inbox?x=y",
            &mut h,
            BODY,
            SignStyle::Hs2019,
        )
        .unwrap();
        let sig = h.get("signature").unwrap().to_str().unwrap();
        assert!(sig.contains(r#"algorithm="hs2019""#), "{sig}");
        let p = prep(&h, "/inbox?x=y", BODY, SystemTime::now()).unwrap();
        assert_eq!(p.algorithm(), Algorithm::Hs2019);
        assert!(p.signed_headers().any(|n| n == "(created)"));
        p.verify(&public(key)).unwrap();
    }
}

#[test]
fn ed25519_key_cannot_verify_rsa_sha256() {
    let ed = SigningKey::generate_ed25519().unwrap();
    let verified = verify_with(&ed, &ed);
    assert!(matches!(verified, Err(SigError::KeyTypeMismatch(_))));
}

#[test]
fn only_the_signature_header_counts() {
    let h = signed(rsa_key(), "/inbox");
    let mut auth = base_headers();
    let value = format!(
        "Signature {}",
        h.get("signature").unwrap().to_str().unwrap()
    );
    auth.insert("authorization", HeaderValue::from_str(&value).unwrap());
    assert!(matches!(
        prep(&auth, "/inbox", BODY, at(DATE_UNIX)),
        Err(SigError::NotSigned)
    ));
    assert!(matches!(err_of("  "), SigError::NotSigned));
    // The stray prefix inside `Signature` is tolerated and the result verifies.
    let prefixed = with_signature(&value);
    let mut prefixed_full = h.clone();
    prefixed_full.insert("signature", prefixed.get("signature").unwrap().clone());
    let p = prep(&prefixed_full, "/inbox", BODY, at(DATE_UNIX)).unwrap();
    p.verify(&public(rsa_key())).unwrap();
}

#[test]
fn repeated_signature_headers_are_refused() {
    let mut h = signed(rsa_key(), "/inbox");
    let again = h.get("signature").unwrap().clone();
    h.append("signature", again);
    assert!(matches!(
        prep(&h, "/inbox", BODY, at(DATE_UNIX)),
        Err(SigError::DuplicateParameter)
    ));
}

#[test]
fn parameter_errors() {
    let huge = format!(r#"keyId="{}",signature="AA==""#, "a".repeat(9000));
    assert!(matches!(err_of(&huge), SigError::SignatureTooLarge));
    assert!(matches!(
        err_of(r#"keyId="k""#),
        SigError::MissingParameters
    ));
    assert!(matches!(
        err_of(r#"signature="AA==""#),
        SigError::MissingParameters
    ));
    for alg in ["hmac-sha256", "RSA-SHA256", "rsa-sha512", "ed25519", ""] {
        let v = format!(r#"keyId="{KEY_ID}",algorithm="{alg}",signature="AA==""#);
        assert!(
            matches!(err_of(&v), SigError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
    assert_eq!(
        SigError::UnsupportedAlgorithm.to_string(),
        "Unsupported signature algorithm (only rsa-sha256 and hs2019 are supported)"
    );
    let v = r#"keyId="main-key",algorithm="rsa-sha256",headers="date digest",signature="AA==""#;
    assert!(matches!(err_of(v), SigError::InvalidKeyId(_)));
}

fn valid_digest_headers(sig: &str) -> HeaderMap {
    let mut h = with_signature(sig);
    let b64 = STANDARD_B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, BODY));
    h.insert(
        "digest",
        HeaderValue::from_str(&format!("SHA-256={b64}")).unwrap(),
    );
    h
}

const STANDARD_B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[test]
fn signature_must_be_base64_padding_optional() {
    let sig = |s: &str| {
        format!(
            r#"keyId="{KEY_ID}",algorithm="rsa-sha256",headers="(request-target) date digest",signature="{s}""#
        )
    };
    let h = valid_digest_headers(&sig("not*base64"));
    assert!(matches!(
        prep(&h, "/inbox", BODY, at(DATE_UNIX)),
        Err(SigError::SignatureNotBase64)
    ));
    for ok in ["AAE=", "AAE"] {
        let h = valid_digest_headers(&sig(ok));
        assert!(prep(&h, "/inbox", BODY, at(DATE_UNIX)).is_ok(), "{ok}");
    }
}

#[test]
fn defaults_and_strength_through_prepare() {
    // rsa-sha256 without `headers` signs only `date`, so neither digest nor
    // (request-target): the date rule passes and the next one fails.
    let v = format!(r#"keyId="{KEY_ID}",algorithm="rsa-sha256",signature="AA==""#);
    assert!(matches!(err_of(&v), SigError::TargetNotSigned));
    // hs2019 (explicit or by default) without `headers` signs only `(created)`.
    let v = format!(r#"keyId="{KEY_ID}",created=1,signature="AA==""#);
    assert!(matches!(err_of(&v), SigError::TargetNotSigned));
    let v = format!(r#"keyId="{KEY_ID}",headers="(request-target) date",signature="AA==""#);
    assert!(matches!(err_of(&v), SigError::DigestNotSigned));
    let v = format!(r#"keyId="{KEY_ID}",headers="host digest",signature="AA==""#);
    assert!(matches!(err_of(&v), SigError::MissingDate));
    let v = format!(
        r#"keyId="{KEY_ID}",algorithm="rsa-sha256",created=1,headers="(created) digest",signature="AA==""#
    );
    assert_eq!(
        err_of(&v).to_string(),
        "Invalid pseudo-header (created) for rsa-sha256"
    );
    let v = format!(r#"keyId="{KEY_ID}",headers="(created) digest",signature="AA==""#);
    assert_eq!(
        err_of(&v).to_string(),
        "Pseudo-header (created) used but corresponding argument missing"
    );
}

#[test]
fn window_uses_date_for_rsa_and_created_for_hs2019() {
    let h = signed(rsa_key(), "/inbox");
    // Date + 5 min + 1 h skew is the last accepted second.
    assert!(prep(&h, "/inbox", BODY, at(DATE_UNIX + 3900)).is_ok());
    assert!(matches!(
        prep(&h, "/inbox", BODY, at(DATE_UNIX + 3901)),
        Err(SigError::OutsideWindow)
    ));
    assert!(prep(&h, "/inbox", BODY, at(DATE_UNIX - 3600)).is_ok());
    assert!(matches!(
        prep(&h, "/inbox", BODY, at(DATE_UNIX - 3601)),
        Err(SigError::OutsideWindow)
    ));

    // rsa-sha256 ignores a `created` parameter for the window; hs2019 uses it.
    let sig = |alg: &str| {
        format!(
            r#"keyId="{KEY_ID}",algorithm="{alg}",created=100,headers="(request-target) date digest",signature="AA==""#
        )
    };
    let h = valid_digest_headers(&sig("rsa-sha256"));
    let p = prep(&h, "/inbox", BODY, at(DATE_UNIX)).unwrap();
    assert_eq!(p.created(), Some(at(DATE_UNIX)));
    let h = valid_digest_headers(&sig("hs2019"));
    assert!(matches!(
        prep(&h, "/inbox", BODY, at(DATE_UNIX)),
        Err(SigError::OutsideWindow)
    ));
    assert!(prep(&h, "/inbox", BODY, at(100)).is_ok());
}

#[test]
fn invalid_or_absent_date() {
    let sig = format!(
        r#"keyId="{KEY_ID}",algorithm="rsa-sha256",headers="(request-target) date digest",signature="AA==""#
    );
    let mut h = valid_digest_headers(&sig);
    h.insert("date", HeaderValue::from_static("yesterday"));
    let err = prep(&h, "/inbox", BODY, at(DATE_UNIX)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Invalid Date header: not RFC 2616 compliant date: "yesterday""#
    );
    assert_eq!(err.reason(), "invalid_date");
    // Signed but absent: the window passes and the signing string has `date: `.
    h.remove("date");
    let p = prep(&h, "/inbox", BODY, at(DATE_UNIX)).unwrap();
    assert_eq!(p.created(), None);
    assert!(p.signing_strings()[0]
        .ends_with(b"\ndate: \ndigest: SHA-256=JeE18werLvQnEoHViKDam+ZK1D8E27TBC2kIISI7pIY="));
}

#[test]
fn reasons_are_distinct_snake_case() {
    let all = [
        SigError::NotSigned,
        SigError::SignatureTooLarge,
        SigError::Malformed,
        SigError::TooManyParameters,
        SigError::DuplicateParameter,
        SigError::MissingParameters,
        SigError::SignatureNotBase64,
        SigError::UnsupportedAlgorithm,
        SigError::InvalidKeyId(String::new()),
        SigError::TooManySignedHeaders,
        SigError::MissingDate,
        SigError::TargetNotSigned,
        SigError::HostNotSigned,
        SigError::DigestNotSigned,
        SigError::InvalidPseudoHeader(""),
        SigError::PseudoHeaderArgumentMissing(""),
        SigError::InvalidTimestamp(""),
        SigError::InvalidDate(String::new()),
        SigError::OutsideWindow,
        SigError::DigestMissing,
        SigError::DigestUnsupported(String::new()),
        SigError::DigestNotBase64(String::new()),
        SigError::DigestWrongLength(String::new()),
        SigError::DigestMismatch {
            computed: String::new(),
            given: String::new(),
        },
        SigError::Rfc9421TooLarge(""),
        SigError::Rfc9421Malformed(""),
        SigError::Rfc9421MultipleSignatures,
        SigError::Rfc9421SignatureMissing(String::new()),
        SigError::Rfc9421DuplicateComponent(String::new()),
        SigError::Rfc9421MissingParameters,
        SigError::Rfc9421UnsupportedAlgorithm(String::new()),
        SigError::Rfc9421RsaPssRefused,
        SigError::Rfc9421TargetNotCovered,
        SigError::ContentDigestNotSigned,
        SigError::Rfc9421UnsupportedComponent(String::new()),
        SigError::Rfc9421UnsupportedParameter(String::new()),
        SigError::Rfc9421ComponentAbsent(String::new()),
        SigError::ContentDigestMissing,
        SigError::ContentDigestMalformed,
        SigError::ContentDigestUnsupported(String::new()),
        SigError::ContentDigestMismatch(""),
        SigError::Rfc9421KeyTypeMismatch {
            key_id: String::new(),
            kind: KeyKind::Rsa,
            alg: "",
        },
        SigError::KeyTypeMismatch(String::new()),
        SigError::BadSignature(String::new()),
    ];
    let mut seen = std::collections::HashSet::new();
    for e in &all {
        let r = e.reason();
        assert!(
            r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{r}"
        );
        assert!(seen.insert(r), "duplicate reason {r}");
    }
    for e in all {
        let want = match e {
            SigError::ContentDigestMalformed => http::StatusCode::BAD_REQUEST,
            _ => http::StatusCode::UNAUTHORIZED,
        };
        let shown = e.to_string();
        assert_eq!(Rejection::from(e).answer().status, want, "{shown}");
    }
}

// ----- RFC 9421 through `prepare` -----

const NOW: u64 = 1_700_000_000;

/// An RFC 9421 POST to `https://local.example/inbox`, signed with `key` over `covered`
/// (the base is written out here, not built by the code under test).
fn rfc9421_signed(key: &SigningKey, covered: &[&str], params: &str) -> HeaderMap {
    let mut h = base_headers();
    let cd = format!(
        "sha-256=:{}:",
        STANDARD_B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, BODY))
    );
    h.insert("content-digest", HeaderValue::from_str(&cd).unwrap());
    let list = covered
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(" ");
    let sig_params = format!("({list}){params}");
    let mut base = String::new();
    for c in covered {
        let value = match *c {
            "@method" => "POST".to_string(),
            "@target-uri" => "https://local.example/inbox".to_string(),
            "@authority" => "local.example".to_string(),
            name => h.get(name).unwrap().to_str().unwrap().to_string(),
        };
        base.push_str(&format!("\"{c}\": {value}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {sig_params}"));
    let sig = STANDARD_B64.encode(key.sign(base.as_bytes()).unwrap());
    h.insert(
        "signature-input",
        HeaderValue::from_str(&format!("sig1={sig_params}")).unwrap(),
    );
    h.insert(
        "signature",
        HeaderValue::from_str(&format!("sig1=:{sig}:")).unwrap(),
    );
    h
}

const FLOOR: &[&str] = &["@method", "@target-uri", "content-digest"];

fn floor_params() -> String {
    format!(";created={NOW};keyid=\"{KEY_ID}\"")
}

#[test]
fn rfc9421_round_trip_rsa_and_ed25519() {
    let ed = SigningKey::generate_ed25519().unwrap();
    for key in [rsa_key(), &ed] {
        let h = rfc9421_signed(key, FLOOR, &floor_params());
        let p = prep(&h, "/inbox", BODY, at(NOW)).unwrap();
        assert_eq!(p.format(), Format::Rfc9421);
        assert_eq!(
            (p.key_id.as_str(), p.key_host.as_str()),
            (KEY_ID, "remote.example")
        );
        assert_eq!(p.algorithm(), Algorithm::Rfc9421(None));
        assert_eq!(p.signed_headers().collect::<Vec<_>>(), FLOOR);
        assert_eq!(p.created(), Some(at(NOW)));
        p.verify(&public(key)).unwrap();
        // Another key of the same kind fails.
        let other = match key {
            SigningKey::Rsa(_) => SigningKey::generate_rsa_2048().unwrap(),
            SigningKey::Ed25519(_) => SigningKey::generate_ed25519().unwrap(),
        };
        assert!(matches!(
            p.verify(&public(&other)),
            Err(SigError::BadSignature(_))
        ));
    }
}

#[test]
fn rfc9421_alg_must_suit_the_key() {
    let params = format!("{};alg=\"ed25519\"", floor_params());
    let h = rfc9421_signed(rsa_key(), FLOOR, &params);
    let p = prep(&h, "/inbox", BODY, at(NOW)).unwrap();
    assert_eq!(p.algorithm().as_str(), "ed25519");
    let err = p.verify(&public(rsa_key())).unwrap_err();
    assert_eq!(err.reason(), "rfc9421_key_type_mismatch");
    let params = format!("{};alg=\"rsa-v1_5-sha256\"", floor_params());
    let h = rfc9421_signed(rsa_key(), FLOOR, &params);
    prep(&h, "/inbox", BODY, at(NOW))
        .unwrap()
        .verify(&public(rsa_key()))
        .unwrap();
}

#[test]
fn rfc9421_rsa_pss_is_refused_unless_allowed() {
    let params = format!("{};alg=\"rsa-pss-sha512\"", floor_params());
    let h = rfc9421_signed(rsa_key(), FLOOR, &params);
    let err = prep(&h, "/inbox", BODY, at(NOW)).unwrap_err();
    assert_eq!(err.reason(), "rfc9421_rsa_pss_refused");
    let allow = SignatureConfig {
        allow_rsa_pss: true,
        ..cfg()
    };
    let p = prepare(&Method::POST, "/inbox", &h, BODY, &TARGET, at(NOW), &allow).unwrap();
    assert_eq!(p.algorithm().as_str(), "rsa-pss-sha512");
    // Verified as PSS, so the PKCS#1 v1.5 signature made here fails.
    assert!(matches!(
        p.verify(&public(rsa_key())),
        Err(SigError::BadSignature(_))
    ));
}

#[test]
fn rfc9421_tampering_is_caught() {
    let h = rfc9421_signed(rsa_key(), FLOOR, &floor_params());
    // Another path is another @target-uri.
    let p = prep(&h, "/users/bob/inbox", BODY, at(NOW)).unwrap();
    assert!(p.verify(&public(rsa_key())).is_err());
    // Another authority too.
    let other = RequestTarget {
        scheme: "https",
        authority: Some("other.example"),
    };
    let p = prepare(&Method::POST, "/inbox", &h, BODY, &other, at(NOW), &cfg()).unwrap();
    assert!(p.verify(&public(rsa_key())).is_err());
    // And http is not https.
    let http = RequestTarget {
        scheme: "http",
        ..TARGET
    };
    let p = prepare(&Method::POST, "/inbox", &h, BODY, &http, at(NOW), &cfg()).unwrap();
    assert!(p.verify(&public(rsa_key())).is_err());
    // A changed body fails the digest before any key is needed.
    let err = prep(&h, "/inbox", b"{}", at(NOW)).unwrap_err();
    assert_eq!(err.reason(), "content_digest_mismatch");
}

#[test]
fn rfc9421_acceptance_floor() {
    let case = |covered: &[&str], params: &str| {
        let h = rfc9421_signed(rsa_key(), covered, params);
        prep(&h, "/inbox", BODY, at(NOW)).unwrap_err().reason()
    };
    let no_created = format!(";keyid=\"{KEY_ID}\"");
    assert_eq!(case(FLOOR, &no_created), "rfc9421_missing_parameters");
    let no_keyid = format!(";created={NOW}");
    assert_eq!(case(FLOOR, &no_keyid), "rfc9421_missing_parameters");
    let p = floor_params();
    assert_eq!(
        case(&["@method", "content-digest"], &p),
        "rfc9421_missing_component"
    );
    assert_eq!(
        case(&["@target-uri", "content-digest"], &p),
        "rfc9421_missing_component"
    );
    assert_eq!(
        case(&["@method", "@target-uri"], &p),
        "content_digest_not_signed"
    );
    let bad_key = format!(";created={NOW};keyid=\"main-key\"");
    assert_eq!(case(FLOOR, &bad_key), "invalid_key_id");
    let neg = format!(";created=-5;keyid=\"{KEY_ID}\"");
    assert_eq!(case(FLOOR, &neg), "invalid_timestamp");
}

#[test]
fn rfc9421_window_matches_cavage() {
    let h = rfc9421_signed(rsa_key(), FLOOR, &floor_params());
    assert!(prep(&h, "/inbox", BODY, at(NOW + 3900)).is_ok());
    assert!(matches!(
        prep(&h, "/inbox", BODY, at(NOW + 3901)),
        Err(SigError::OutsideWindow)
    ));
    assert!(matches!(
        prep(&h, "/inbox", BODY, at(NOW - 3601)),
        Err(SigError::OutsideWindow)
    ));
    let params = format!("{};expires={}", floor_params(), NOW + 10);
    let h = rfc9421_signed(rsa_key(), FLOOR, &params);
    assert!(prep(&h, "/inbox", BODY, at(NOW + 3610)).is_ok());
    assert!(matches!(
        prep(&h, "/inbox", BODY, at(NOW + 3611)),
        Err(SigError::OutsideWindow)
    ));
}

#[test]
fn signature_input_decides_the_format() {
    // Both formats present: handled as RFC 9421, as Mastodon does.
    let mut h = rfc9421_signed(rsa_key(), FLOOR, &floor_params());
    let cavage = signed(rsa_key(), "/inbox");
    for name in ["digest", "date"] {
        h.insert(name, cavage.get(name).unwrap().clone());
    }
    let p = prep(&h, "/inbox", BODY, at(NOW)).unwrap();
    assert_eq!(p.format(), Format::Rfc9421);
    p.verify(&public(rsa_key())).unwrap();
    // The cavage `Signature` in place of the RFC 9421 one: the dictionary fails to parse.
    h.insert("signature", cavage.get("signature").unwrap().clone());
    let err = prep(&h, "/inbox", BODY, at(NOW)).unwrap_err();
    assert!(err.reason().starts_with("rfc9421_"), "{err}");
    // The headers alone already say so, for the log of a request refused like this one.
    assert_eq!(format_of(&h), Some(Format::Rfc9421));
    // A blank Signature-Input does not count (`.present?`).
    let mut h = cavage.clone();
    h.insert("signature-input", HeaderValue::from_static(" "));
    let p = prep(&h, "/inbox", BODY, at(DATE_UNIX)).unwrap();
    assert_eq!(p.format(), Format::Cavage);
    assert_eq!(format_of(&h), Some(Format::Cavage));
    h.remove("signature");
    assert_eq!(format_of(&h), None);
}
