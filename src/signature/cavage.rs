//! The draft-cavage `Signature` header: parameter parser, signed-header list, time window,
//! signing-string builder and the `prepare` that runs them in order, each matching what
//! Mastodon's `SignatureParser` / `SignedRequest` accept.
//!
//! Why not `http-signature-normalization`'s verifier (0.7, used for signing in `sign.rs`):
//! * it splits the header on every `,`, so a quoted value containing a comma is cut apart,
//!   and it trims quotes with `trim_matches('"')`, so unterminated quotes pass;
//! * a repeated parameter silently keeps the last value (Mastodon refuses duplicates since
//!   4.5.5, #37375);
//! * it reads `Authorization: Signature ...` first (Mastodon reads only `Signature`);
//! * its default `headers` is `(created)` for every algorithm (Mastodon: `date` for
//!   rsa-sha256), so draft-cavage C.1-style rsa-sha256 signatures build the wrong string;
//! * its window refuses anything created (or dated) more than 10 s ago or past `expires`,
//!   with no clock skew and no check for future dates, far from Mastodon's 1 h skew /
//!   5 min default / 12 h cap; and it ignores an unparsable `Date`;
//! * it builds one signing string, so Mastodon's path-only `(request-target)` retry is
//!   impossible;
//! * a signed header that is absent is a "Missing required headers" error before any
//!   verification (Mastodon signs `name: ` and lets the key decide);
//! * it copies every header into a `BTreeMap<String, String>` (and the parameters into a
//!   `HashMap`) per request, and needs header values as `&str`.
//!
//! So parsing here borrows from the header bytes; the per-request allocations are the
//! signing string, the decoded signature, the lower-cased `headers` list, the keyId and its
//! host (with `url`'s parse of the keyId). The path-only candidate is built only if the first
//! one fails to verify.

use super::{Algorithm, BodyCheck, Inner, Prepared, Rules, SigError};
use crate::config::SignatureConfig;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use http::HeaderMap;
use std::borrow::Cow;
use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod params;
pub(crate) use params::{parse_params, Params, MAX_PARAMETERS};

/// Bigger `Signature` values are refused before parsing (a 8192-bit RSA signature in base64
/// plus a long keyId and 32 header names fits in well under 3 KiB).
pub(crate) const MAX_SIGNATURE_HEADER_BYTES: usize = 8 * 1024;
/// Bounds the signing-string work per request.
pub(crate) const MAX_SIGNED_HEADERS: usize = 32;
/// Mastodon's expiry when neither `expires` nor a cap applies: `created + 5.minutes`.
const DEFAULT_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The signed header names: the `headers` parameter lower-cased, or the algorithm's default.
/// Kept as one string; names are its whitespace-separated words.
pub(crate) fn signed_header_list(
    headers: Option<&[u8]>,
    algorithm: Algorithm,
) -> Result<Cow<'static, str>, SigError> {
    let Some(raw) = headers else {
        return Ok(Cow::Borrowed(match algorithm {
            Algorithm::RsaSha256 => "date",
            // The cavage parser never yields `Rfc9421`; like any hs2019-style signature it
            // would default to `(created)`.
            Algorithm::Hs2019 | Algorithm::Rfc9421(_) => "(created)",
        }));
    };
    let raw = std::str::from_utf8(raw).map_err(|_| SigError::Malformed)?;
    Ok(Cow::Owned(raw.to_lowercase()))
}

/// What the signed-header list contains, gathered in one pass for the strength rules.
#[derive(Debug, Default)]
pub(crate) struct Coverage {
    pub date: bool,
    pub created: bool,
    pub expires: bool,
    pub request_target: bool,
    pub host: bool,
    pub digest: bool,
}

pub(crate) fn coverage(list: &str) -> Result<Coverage, SigError> {
    let mut c = Coverage::default();
    for (n, name) in list.split_ascii_whitespace().enumerate() {
        if n == MAX_SIGNED_HEADERS {
            return Err(SigError::TooManySignedHeaders);
        }
        match name {
            "date" => c.date = true,
            "(created)" => c.created = true,
            "(expires)" => c.expires = true,
            "(request-target)" => c.request_target = true,
            "host" => c.host = true,
            "digest" => c.digest = true,
            _ => {}
        }
    }
    Ok(c)
}

/// Mastodon's `verify_signature_strength!`: what a signature must cover.
pub(crate) fn check_strength(c: &Coverage, method: &http::Method) -> Result<(), SigError> {
    if !(c.date || c.created) {
        return Err(SigError::MissingDate);
    }
    if !(c.request_target || c.digest) {
        return Err(SigError::TargetNotSigned);
    }
    if method == http::Method::GET && !c.host {
        return Err(SigError::HostNotSigned);
    }
    if method == http::Method::POST && !c.digest {
        return Err(SigError::DigestNotSigned);
    }
    Ok(())
}

/// `(created)`/`(expires)` exist only in hs2019 and only with their parameter (Mastodon's
/// rule, and draft-cavage-12 §2.3 for `rsa-*`).
pub(crate) fn check_pseudo_headers(
    c: &Coverage,
    algorithm: Algorithm,
    params: &Params<'_>,
) -> Result<(), SigError> {
    for (signed, present, name) in [
        (c.created, params.created.is_some(), "(created)"),
        (c.expires, params.expires.is_some(), "(expires)"),
    ] {
        if !signed {
            continue;
        }
        if algorithm != Algorithm::Hs2019 {
            return Err(SigError::InvalidPseudoHeader(name));
        }
        if !present {
            return Err(SigError::PseudoHeaderArgumentMissing(name));
        }
    }
    Ok(())
}

/// A `created`/`expires` value: Unix seconds, optionally with a decimal fraction (draft-12
/// allows sub-second precision).
pub(crate) fn parse_timestamp(v: &[u8], param: &'static str) -> Result<Duration, SigError> {
    let err = || SigError::InvalidTimestamp(param);
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], Some(&v[dot + 1..])),
        None => (v, None),
    };
    if int.is_empty() || int.len() > 19 || !int.iter().all(u8::is_ascii_digit) {
        return Err(err());
    }
    let secs = int
        .iter()
        .try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or_else(err)?;
    let mut nanos = 0u32;
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return Err(err());
        }
        let mut scale = 100_000_000u32;
        for &d in frac.iter().take(9) {
            nanos += u32::from(d - b'0') * scale;
            scale /= 10;
        }
    }
    Ok(Duration::new(secs, nanos))
}

/// [`check_window`] at `now` with the configured skew and maximum age.
pub(crate) fn check_window_at(
    created: Option<Duration>,
    expires: Option<Duration>,
    now: SystemTime,
    cfg: &SignatureConfig,
) -> Result<(), SigError> {
    check_window(
        created,
        expires,
        now.duration_since(UNIX_EPOCH).unwrap_or_default(),
        Duration::from_secs(cfg.clock_skew_secs),
        Duration::from_secs(cfg.max_age_secs),
    )
}

/// Mastodon's window: reject if `created > now + skew` or `now > expires + skew`, where
/// `expires` is the parameter or `created + 5 min`, capped at `created + max_age`. Times are
/// durations since the Unix epoch; all arithmetic saturates.
pub(crate) fn check_window(
    created: Option<Duration>,
    expires: Option<Duration>,
    now: Duration,
    skew: Duration,
    max_age: Duration,
) -> Result<(), SigError> {
    let expires = match created {
        Some(created) => {
            if created > now.saturating_add(skew) {
                return Err(SigError::OutsideWindow);
            }
            let limit = created.saturating_add(max_age);
            Some(
                expires
                    .unwrap_or_else(|| created.saturating_add(DEFAULT_EXPIRY))
                    .min(limit),
            )
        }
        None => expires,
    };
    match expires {
        Some(expires) if now > expires.saturating_add(skew) => Err(SigError::OutsideWindow),
        _ => Ok(()),
    }
}

/// All values of header `name`, joined with `", "` as Puma joins repeated headers (and as
/// draft-cavage §2.3 says). Borrowed unless the header is repeated.
pub(crate) fn header_value<'h>(
    headers: &'h HeaderMap,
    name: impl http::header::AsHeaderName,
) -> Option<Cow<'h, [u8]>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(Cow::Borrowed(first.as_bytes()));
    };
    let mut joined = first.as_bytes().to_vec();
    for v in std::iter::once(second).chain(values) {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(v.as_bytes());
    }
    Some(Cow::Owned(joined))
}

/// The signing string for `list`, with `(request-target)` as `<method> <path>[?<query>]`.
pub(crate) struct SigningString {
    pub bytes: Vec<u8>,
    /// Where each `?query` sits in `bytes`; the path-only candidate is `bytes` without them.
    pub query_ranges: Vec<Range<usize>>,
}

/// Builds the signing string. A signed header that is absent contributes `name: ` (as in
/// Mastodon: it simply fails verification).
pub(crate) fn build_signing_string(
    list: &str,
    method: &http::Method,
    path_and_query: &str,
    headers: &HeaderMap,
    params: &Params<'_>,
) -> SigningString {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, query),
        None => (path_and_query, ""),
    };
    let mut bytes = Vec::with_capacity(256);
    let mut query_ranges = Vec::new();
    for (n, name) in list.split_ascii_whitespace().enumerate() {
        if n > 0 {
            bytes.push(b'\n');
        }
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        match name {
            "(request-target)" => {
                bytes.extend(method.as_str().bytes().map(|b| b.to_ascii_lowercase()));
                bytes.push(b' ');
                bytes.extend_from_slice(path.as_bytes());
                // Rails' `original_fullpath` has no `?` when the query is empty, so
                // `/inbox?` is signed as `/inbox`.
                if !query.is_empty() {
                    let start = bytes.len();
                    bytes.push(b'?');
                    bytes.extend_from_slice(query.as_bytes());
                    query_ranges.push(start..bytes.len());
                }
            }
            // `check_strength` made sure these parameters exist when they are signed.
            "(created)" => bytes.extend_from_slice(params.created.unwrap_or_default()),
            "(expires)" => bytes.extend_from_slice(params.expires.unwrap_or_default()),
            _ => {
                // The headers Mastodon signs by their parsed names: a lookup by `&str` parses
                // the name first, every time.
                let v = match name {
                    "host" => header_value(headers, http::header::HOST),
                    "date" => header_value(headers, http::header::DATE),
                    "digest" => header_value(headers, &super::names::DIGEST),
                    "content-type" => header_value(headers, http::header::CONTENT_TYPE),
                    _ => header_value(headers, name),
                };
                if let Some(v) = v {
                    bytes.extend_from_slice(&v);
                }
            }
        }
    }
    SigningString {
        bytes,
        query_ranges,
    }
}

/// The host part of a keyId, for the blocked-domain check: the URL's host (port dropped), or
/// for legacy `acct:user@host` keyIds the text after the last `@`.
pub(crate) fn key_host(key_id: &str) -> Option<String> {
    if let Some(acct) = key_id.strip_prefix("acct:") {
        let host = acct.rsplit_once('@')?.1;
        return (!host.is_empty()).then(|| host.to_string());
    }
    if let Some(host) = plain_host(key_id) {
        return Some(host.to_string());
    }
    let url = url::Url::parse(key_id).ok()?;
    let host = url.host_str()?;
    (!host.is_empty()).then(|| host.to_string())
}

/// The host of an `https://` or `http://` keyId whose host is already what the URL parser
/// would hand back: lower-case ASCII labels of letters, digits and inner hyphens, no port, no
/// `xn--` label (IDNA would check it), and a last label starting with a letter (so never an
/// IPv4 address, which the parser rewrites). Nearly every keyId is this shape, and the full
/// parse costs more than the rest of the header's preparation.
fn plain_host(key_id: &str) -> Option<&str> {
    let rest = key_id
        .strip_prefix("https://")
        .or_else(|| key_id.strip_prefix("http://"))?;
    let host = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let mut last = "";
    for label in host.split('.') {
        let bytes = label.as_bytes();
        let plain = !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
            && !label.starts_with("xn--");
        if !plain {
            return None;
        }
        last = label;
    }
    last.as_bytes()
        .first()
        .is_some_and(u8::is_ascii_lowercase)
        .then_some(host)
}

/// The `signature` parameter: standard alphabet, padding optional (some senders strip it;
/// Mastodon's lenient `Base64.decode64` accepts both).
const SIGNATURE_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// A draft-cavage signature, ready to verify.
#[derive(Debug)]
pub(super) struct CavageSignature {
    pub(super) algorithm: Algorithm,
    pub(super) signed_headers: Cow<'static, str>,
    pub(super) created: Option<Duration>,
    pub(super) signature: Vec<u8>,
    pub(super) signing_string: Vec<u8>,
    /// `?query` spans in `signing_string`; non-empty means a path-only candidate exists.
    pub(super) query_ranges: Vec<Range<usize>>,
}

impl CavageSignature {
    /// The signing string with every `?query` removed from `(request-target)`; built only
    /// when the first candidate failed, so valid requests never pay for it.
    pub(super) fn path_only_string(&self) -> Option<Vec<u8>> {
        if self.query_ranges.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(self.signing_string.len());
        let mut at = 0;
        for r in &self.query_ranges {
            out.extend_from_slice(self.signing_string.get(at..r.start)?);
            at = r.end;
        }
        out.extend_from_slice(self.signing_string.get(at..)?);
        Some(out)
    }
}

/// A draft-cavage request's `Signature` parsed and checked (coverage under `rules`, pseudo-
/// headers, window) with its signing string built: everything but the digest and the key.
pub(super) fn prepare(
    method: &http::Method,
    path_and_query: &str,
    headers: &http::HeaderMap,
    now: SystemTime,
    cfg: &SignatureConfig,
    rules: Rules,
) -> Result<Prepared, SigError> {
    // Mastodon only looks at `Signature` (`.present?`, so blank counts as absent). Repeated
    // headers reach Rails joined with ", ", which then fails on duplicate keys; same here.
    let raw = header_value(headers, &super::names::SIGNATURE).ok_or(SigError::NotSigned)?;
    if raw.trim_ascii().is_empty() {
        return Err(SigError::NotSigned);
    }
    if raw.len() > MAX_SIGNATURE_HEADER_BYTES {
        return Err(SigError::SignatureTooLarge);
    }
    let params = parse_params(&raw)?;
    let (Some(key_id), Some(signature)) = (params.key_id, params.signature) else {
        return Err(SigError::MissingParameters);
    };

    let algorithm = match params.algorithm {
        None | Some(b"hs2019") => Algorithm::Hs2019,
        Some(b"rsa-sha256") => Algorithm::RsaSha256,
        Some(_) => return Err(SigError::UnsupportedAlgorithm),
    };

    let key_id = std::str::from_utf8(key_id)
        .map_err(|_| SigError::InvalidKeyId(String::from_utf8_lossy(key_id).into_owned()))?;
    let key_host = match (key_host(key_id), rules) {
        (Some(host), _) => host,
        (None, Rules::SpecVectors) => String::new(),
        (None, Rules::Mastodon) => return Err(SigError::InvalidKeyId(key_id.to_string())),
    };

    let signed_headers = signed_header_list(params.headers, algorithm)?;
    let coverage = coverage(&signed_headers)?;
    if rules == Rules::Mastodon {
        check_strength(&coverage, method)?;
    }
    check_pseudo_headers(&coverage, algorithm, &params)?;

    // Mastodon tests these with `.present?`, so an empty value counts as absent.
    let created = match (algorithm, params.created.filter(|c| !c.is_empty())) {
        (Algorithm::Hs2019, Some(created)) => Some(parse_timestamp(created, "created")?),
        _ => date_header(headers)?,
    };
    let expires = params
        .expires
        .filter(|e| !e.is_empty())
        .map(|e| parse_timestamp(e, "expires"))
        .transpose()?;
    check_window_at(created, expires, now, cfg)?;

    let signature = SIGNATURE_B64
        .decode(signature)
        .map_err(|_| SigError::SignatureNotBase64)?;
    let built = build_signing_string(&signed_headers, method, path_and_query, headers, &params);

    Ok(Prepared {
        body_check: if coverage.digest {
            BodyCheck::Digest
        } else {
            BodyCheck::None
        },
        key_id: key_id.to_string(),
        key_host,
        inner: Inner::Cavage(CavageSignature {
            algorithm,
            signed_headers,
            created,
            signature,
            signing_string: built.bytes,
            query_ranges: built.query_ranges,
        }),
    })
}

/// The `Date` header as a creation time; `None` when absent or blank (Mastodon's `.present?`).
fn date_header(headers: &http::HeaderMap) -> Result<Option<Duration>, SigError> {
    let Some(raw) = header_value(headers, http::header::DATE) else {
        return Ok(None);
    };
    if raw.trim_ascii().is_empty() {
        return Ok(None);
    }
    let invalid = || SigError::InvalidDate(String::from_utf8_lossy(&raw).into_owned());
    let text = std::str::from_utf8(&raw).map_err(|_| invalid())?;
    super::http_date::parse(text).ok_or_else(invalid).map(Some)
}

#[cfg(test)]
mod tests;
