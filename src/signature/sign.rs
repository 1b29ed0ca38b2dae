//! Signing outgoing requests as a remote server would: the demo and the tests use it to act
//! as Mastodon (rsa-sha256, Mastodon's header set) or as an hs2019 signer built on
//! `http-signature-normalization`, whose signing-string code is independent of ours.

use super::cavage::header_value;
use super::signing_key::{SigningKey, SigningKeyError};
use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{HeaderName, HeaderValue, DATE, HOST};
use http::HeaderMap;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Which remote implementation to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignStyle {
    /// Mastodon 4.x deliveries: `algorithm="rsa-sha256"`, `headers="(request-target) host
    /// date digest content-type"` (only those present).
    Mastodon,
    /// `http-signature-normalization`'s `Config::begin_sign`: `algorithm="hs2019"` with
    /// `created`/`expires`, signing `(request-target) (created) (expires)` and the headers
    /// host, date, digest, content-type that are present.
    Hs2019,
}

/// The headers each style signs when present, besides the pseudo-headers.
const SIGNED: [&str; 4] = ["host", "date", "digest", "content-type"];
/// `expires` for hs2019 signatures: `created` + 5 min, Mastodon's own default window.
const HS2019_EXPIRY: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The private-key operation failed.
    #[error("signing failed: {0}")]
    Key(#[from] SigningKeyError),
    /// The caller did not set `Host`, which every style signs.
    #[error("the request has no Host header to sign")]
    MissingHost,
    /// A keyId with `"` or `\` or control characters cannot be sent in a quoted string.
    #[error("keyId {0:?} cannot be sent in a Signature header")]
    InvalidKeyId(String),
    /// A header to sign is not visible ASCII, which `http-signature-normalization` needs.
    #[error("header {0} is not visible ASCII")]
    NonAsciiHeader(&'static str),
    /// `http-signature-normalization` refused to build the signing string.
    #[error("signing string: {0}")]
    Normalization(#[from] http_signature_normalization::RequiredError),
}

/// Adds `Date` (if absent), `Digest: SHA-256=<b64>` (for POST or a non-empty body, if absent)
/// and `Signature` to `headers`. The caller sets `Host` (and `Content-Type`) first.
pub fn sign_request(
    key: &SigningKey,
    key_id: &str,
    method: &http::Method,
    path_and_query: &str,
    headers: &mut HeaderMap,
    body: &[u8],
    style: SignStyle,
) -> Result<(), SignError> {
    if !headers.contains_key(HOST) {
        return Err(SignError::MissingHost);
    }
    if key_id
        .bytes()
        .any(|b| b == b'"' || b == b'\\' || !(b' '..=b'~').contains(&b))
    {
        return Err(SignError::InvalidKeyId(key_id.to_string()));
    }
    if !headers.contains_key(DATE) {
        let now = httpdate::fmt_http_date(SystemTime::now());
        headers.insert(DATE, header(&now)?);
    }
    let digest_name = HeaderName::from_static("digest");
    if (method == http::Method::POST || !body.is_empty()) && !headers.contains_key(&digest_name) {
        let b64 = STANDARD.encode(digest(&SHA256, body));
        headers.insert(digest_name, header(&format!("SHA-256={b64}"))?);
    }

    let covered = Covered {
        method,
        path_and_query,
        headers,
    };
    let value = match style {
        SignStyle::Mastodon => mastodon_style(key, key_id, &covered)?,
        SignStyle::Hs2019 => hs2019_style(key, key_id, &covered)?,
    };
    headers.insert(HeaderName::from_static("signature"), header(&value)?);
    Ok(())
}

/// What a signature covers: the request line and the [`SIGNED`] headers present.
struct Covered<'a> {
    method: &'a http::Method,
    path_and_query: &'a str,
    headers: &'a HeaderMap,
}

impl Covered<'_> {
    fn headers(&self) -> impl Iterator<Item = (&'static str, Cow<'_, [u8]>)> {
        SIGNED
            .into_iter()
            .filter_map(|name| Some((name, header_value(self.headers, name)?)))
    }
}

fn mastodon_style(
    key: &SigningKey,
    key_id: &str,
    covered: &Covered<'_>,
) -> Result<String, SignError> {
    let mut names = vec!["(request-target)"];
    let mut signing_string = format!(
        "(request-target): {} {}",
        covered.method.as_str().to_ascii_lowercase(),
        covered.path_and_query
    )
    .into_bytes();
    for (name, value) in covered.headers() {
        names.push(name);
        signing_string.push(b'\n');
        signing_string.extend_from_slice(name.as_bytes());
        signing_string.extend_from_slice(b": ");
        signing_string.extend_from_slice(&value);
    }
    let signature = STANDARD.encode(key.sign(&signing_string)?);
    Ok(format!(
        r#"keyId="{key_id}",algorithm="rsa-sha256",headers="{}",signature="{signature}""#,
        names.join(" ")
    ))
}

fn hs2019_style(
    key: &SigningKey,
    key_id: &str,
    covered: &Covered<'_>,
) -> Result<String, SignError> {
    let mut map = BTreeMap::new();
    for (name, value) in covered.headers() {
        let value = std::str::from_utf8(&value).map_err(|_| SignError::NonAsciiHeader(name))?;
        map.insert(name.to_string(), value.to_string());
    }
    let unsigned = http_signature_normalization::Config::new()
        .set_expiration(HS2019_EXPIRY)
        .begin_sign(covered.method.as_str(), covered.path_and_query, map)?;
    let signed = unsigned.sign(key_id.to_string(), |signing_string| {
        key.sign(signing_string.as_bytes())
            .map(|sig| STANDARD.encode(sig))
    })?;
    Ok(signed.signature_header())
}

fn header(value: &str) -> Result<HeaderValue, SignError> {
    HeaderValue::from_str(value).map_err(|_| SignError::NonAsciiHeader("signature"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("local.example"));
        h.insert(
            "content-type",
            HeaderValue::from_static("application/activity+json"),
        );
        h
    }

    #[test]
    fn mastodon_style_adds_date_digest_and_signature() {
        let key = SigningKey::generate_ed25519().unwrap();
        let mut h = headers();
        sign_request(
            &key,
            "https://r.example/a#k",
            &http::Method::POST,
            "/inbox",
            &mut h,
            b"{}",
            SignStyle::Mastodon,
        )
        .unwrap();
        assert!(httpdate::parse_http_date(h[DATE].to_str().unwrap()).is_ok());
        assert_eq!(
            h["digest"],
            "SHA-256=RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o="
        );
        let sig = h["signature"].to_str().unwrap();
        assert!(
            sig.starts_with(r#"keyId="https://r.example/a#k",algorithm="rsa-sha256",headers="(request-target) host date digest content-type",signature=""#),
            "{sig}"
        );
    }

    #[test]
    fn caller_headers_are_kept_and_get_needs_no_digest() {
        let key = SigningKey::generate_ed25519().unwrap();
        let mut h = headers();
        h.remove("content-type");
        h.insert(
            DATE,
            HeaderValue::from_static("Sun, 05 Jan 2014 21:31:40 GMT"),
        );
        sign_request(
            &key,
            "k",
            &http::Method::GET,
            "/users/a",
            &mut h,
            b"",
            SignStyle::Mastodon,
        )
        .unwrap();
        assert_eq!(h[DATE], "Sun, 05 Jan 2014 21:31:40 GMT");
        assert!(!h.contains_key("digest"));
        assert!(h["signature"]
            .to_str()
            .unwrap()
            .contains(r#"headers="(request-target) host date""#));

        let mut h = headers();
        h.insert("digest", HeaderValue::from_static("SHA-256=wrong"));
        sign_request(
            &key,
            "k",
            &http::Method::POST,
            "/inbox",
            &mut h,
            b"{}",
            SignStyle::Hs2019,
        )
        .unwrap();
        assert_eq!(h["digest"], "SHA-256=wrong");
        let sig = h["signature"].to_str().unwrap();
        assert!(
            sig.contains(r#"algorithm="hs2019""#) && sig.contains("(created)"),
            "{sig}"
        );
    }

    #[test]
    fn refusals() {
        let key = SigningKey::generate_ed25519().unwrap();
        let mut h = HeaderMap::new();
        assert!(matches!(
            sign_request(
                &key,
                "k",
                &http::Method::POST,
                "/",
                &mut h,
                b"",
                SignStyle::Mastodon
            ),
            Err(SignError::MissingHost)
        ));
        let mut h = headers();
        for bad in ["a\"b", "a\\b", "a\nb", "ключ"] {
            assert!(matches!(
                sign_request(
                    &key,
                    bad,
                    &http::Method::POST,
                    "/",
                    &mut h,
                    b"",
                    SignStyle::Mastodon
                ),
                Err(SignError::InvalidKeyId(_))
            ));
        }
    }
}
