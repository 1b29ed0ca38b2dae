//! The draft-cavage `Signature` header: parameter parser, signed-header list, time window and
//! signing-string builder, each matching what Mastodon's `SignatureParser` / `SignedRequest`
//! accept.
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

use super::{Algorithm, SigError};
use http::HeaderMap;
use std::borrow::Cow;
use std::ops::Range;
use std::time::Duration;

/// Bigger `Signature` values are refused before parsing (a 8192-bit RSA signature in base64
/// plus a long keyId and 32 header names fits in well under 3 KiB).
pub(crate) const MAX_SIGNATURE_HEADER_BYTES: usize = 8 * 1024;
/// More parameters than this is not a signature any implementation sends.
pub(crate) const MAX_PARAMETERS: usize = 16;
/// Bounds the signing-string work per request.
pub(crate) const MAX_SIGNED_HEADERS: usize = 32;
/// Mastodon's expiry when neither `expires` nor a cap applies: `created + 5.minutes`.
const DEFAULT_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The parameters of one `Signature` header, borrowed from its bytes. Quoted values are
/// kept verbatim between the quotes: like Mastodon, `\"` is not unescaped.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Params<'a> {
    pub key_id: Option<&'a [u8]>,
    pub signature: Option<&'a [u8]>,
    pub headers: Option<&'a [u8]>,
    pub algorithm: Option<&'a [u8]>,
    pub created: Option<&'a [u8]>,
    pub expires: Option<&'a [u8]>,
}

/// Ruby's `\s`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-".contains(&b)
}

/// A cursor over the header bytes; every step is bounds-checked, so no input can panic.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn skip_space(&mut self) {
        while self.s.get(self.i).is_some_and(|&b| is_space(b)) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        while self.s.get(self.i).is_some_and(|&b| is_tchar(b)) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }

    /// `"( [^\\"] | \\. )*"`, the quoted-string form Mastodon's parser matches.
    fn quoted(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        loop {
            match *self.s.get(self.i)? {
                b'"' => {
                    let value = &self.s[start..self.i];
                    self.i += 1;
                    return Some(value);
                }
                // Ruby's `.` does not match a newline.
                b'\\' => match self.s.get(self.i + 1) {
                    Some(&b) if b != b'\n' => self.i += 2,
                    _ => return None,
                },
                _ => self.i += 1,
            }
        }
    }
}

/// Parses `key=value` pairs (value: token or quoted-string) separated by `\s*,\s*`.
/// A literal `Signature ` prefix is dropped first: old node-http-signature sends one.
pub(crate) fn parse_params(value: &[u8]) -> Result<Params<'_>, SigError> {
    let value = value.strip_prefix(b"Signature ").unwrap_or(value);
    let mut params = Params::default();
    // Names seen so far, to refuse any repeated parameter (known or not) without allocating.
    let mut seen: [&[u8]; MAX_PARAMETERS] = [&[]; MAX_PARAMETERS];
    let mut count = 0;
    let mut cur = Cursor { s: value, i: 0 };
    loop {
        let key = cur.token().ok_or(SigError::Malformed)?;
        cur.skip_space();
        if !cur.eat(b'=') {
            return Err(SigError::Malformed);
        }
        cur.skip_space();
        let val = if cur.s.get(cur.i) == Some(&b'"') {
            cur.quoted()
        } else {
            cur.token()
        }
        .ok_or(SigError::Malformed)?;

        if seen[..count].contains(&key) {
            return Err(SigError::DuplicateParameter);
        }
        if count == MAX_PARAMETERS {
            return Err(SigError::TooManyParameters);
        }
        seen[count] = key;
        count += 1;
        match key {
            b"keyId" => params.key_id = Some(val),
            b"signature" => params.signature = Some(val),
            b"headers" => params.headers = Some(val),
            b"algorithm" => params.algorithm = Some(val),
            b"created" => params.created = Some(val),
            b"expires" => params.expires = Some(val),
            // Unknown parameters are allowed and ignored, as in Mastodon.
            _ => {}
        }

        cur.skip_space();
        if cur.i == cur.s.len() {
            return Ok(params);
        }
        if !cur.eat(b',') {
            return Err(SigError::Malformed);
        }
        cur.skip_space();
    }
}

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
pub(crate) fn header_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<Cow<'h, [u8]>> {
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
                if let Some(v) = header_value(headers, name) {
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
    let url = url::Url::parse(key_id).ok()?;
    let host = url.host_str()?;
    (!host.is_empty()).then(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Params<'_>, SigError> {
        parse_params(s.as_bytes())
    }

    #[test]
    fn parses_quoted_and_token_values_with_spaces() {
        let p = parse(
            r#"keyId="https://a.example/u#k" ,  algorithm=rsa-sha256,created=1402170695, expires = "1402170699",headers="(request-target) date",signature="c2ln""#,
        )
        .unwrap();
        assert_eq!(p.key_id, Some(&b"https://a.example/u#k"[..]));
        assert_eq!(p.algorithm, Some(&b"rsa-sha256"[..]));
        assert_eq!(p.created, Some(&b"1402170695"[..]));
        assert_eq!(p.expires, Some(&b"1402170699"[..]));
        assert_eq!(p.headers, Some(&b"(request-target) date"[..]));
        assert_eq!(p.signature, Some(&b"c2ln"[..]));
    }

    #[test]
    fn stray_signature_prefix_is_dropped() {
        let p = parse(r#"Signature keyId="k",signature="c2ln""#).unwrap();
        assert_eq!(p.key_id, Some(&b"k"[..]));
        // Only the exact prefix: anything else is a parse error.
        assert!(matches!(
            parse(r#"signature  keyId="k""#),
            Err(SigError::Malformed)
        ));
    }

    #[test]
    fn comma_inside_quotes_is_part_of_the_value() {
        let p = parse(r#"keyId="a,b=c",signature="x""#).unwrap();
        assert_eq!(p.key_id, Some(&b"a,b=c"[..]));
        // Escapes are kept verbatim, like Mastodon.
        let p = parse(r#"keyId="a\"b",signature="x""#).unwrap();
        assert_eq!(p.key_id, Some(&br#"a\"b"#[..]));
    }

    #[test]
    fn duplicates_are_refused_known_or_not() {
        assert!(matches!(
            parse(r#"keyId="a",keyId="b",signature="x""#),
            Err(SigError::DuplicateParameter)
        ));
        assert!(matches!(
            parse(r#"keyId="a",foo=1,signature="x",foo=2"#),
            Err(SigError::DuplicateParameter)
        ));
        // Names are case-sensitive, so these are two different parameters.
        let p = parse(r#"keyId="a",keyid="b",signature="x""#).unwrap();
        assert_eq!(p.key_id, Some(&b"a"[..]));
    }

    #[test]
    fn malformed_inputs() {
        for bad in [
            "",
            " ",
            "keyId",
            "keyId=",
            r#"keyId="unterminated"#,
            r#"keyId="a""#.trim_end_matches('"'),
            r#"keyId="a",,signature="x""#,
            r#"keyId="a",signature="x","#,
            r#"keyId="a" signature="x""#,
            r#"keyId="a\"#,
            "keyId=a b",
            "=x",
            "keyId=\"a\\\nb\"",
        ] {
            assert!(
                matches!(parse(bad), Err(SigError::Malformed)),
                "accepted {bad:?}"
            );
        }
        // Trailing whitespace is fine.
        assert!(parse("keyId=a, signature=b \t").is_ok());
    }

    #[test]
    fn parameter_count_is_bounded() {
        let many: Vec<String> = (0..=MAX_PARAMETERS).map(|i| format!("p{i}=1")).collect();
        assert!(matches!(
            parse(&many.join(",")),
            Err(SigError::TooManyParameters)
        ));
        assert!(parse(&many[..MAX_PARAMETERS].join(",")).is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Deterministic pseudo-random inputs drawn from the characters that matter.
        let alphabet = b"keyId=\"\\, \t\nsignature()abc";
        let mut x: u32 = 0x1234_5678;
        for len in 0..64 {
            for _ in 0..200 {
                let input: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        alphabet[(x as usize) % alphabet.len()]
                    })
                    .collect();
                let _ = parse_params(&input);
            }
        }
        let _ = parse_params(&[0xff, b'=', 0xfe]);
    }

    #[test]
    fn default_headers_depend_on_algorithm() {
        assert_eq!(
            signed_header_list(None, Algorithm::RsaSha256).unwrap(),
            "date"
        );
        assert_eq!(
            signed_header_list(None, Algorithm::Hs2019).unwrap(),
            "(created)"
        );
        assert_eq!(
            signed_header_list(Some(b"(Request-Target) HOST\tDate"), Algorithm::Hs2019).unwrap(),
            "(request-target) host\tdate"
        );
    }

    fn cov(list: &str) -> Coverage {
        coverage(list).unwrap()
    }

    #[test]
    fn strength_rules_match_mastodon() {
        let post = http::Method::POST;
        let check = |list: &str, m: &http::Method| check_strength(&cov(list), m);
        assert!(matches!(
            check("(request-target) host digest", &post),
            Err(SigError::MissingDate)
        ));
        assert!(matches!(
            check("(request-target) host date", &post),
            Err(SigError::DigestNotSigned)
        ));
        // digest alone satisfies the request-target rule; host is not required for POST.
        assert!(check("date digest", &post).is_ok());
        assert!(matches!(
            check("date host", &http::Method::PUT),
            Err(SigError::TargetNotSigned)
        ));
        assert!(matches!(
            check("(request-target) date", &http::Method::GET),
            Err(SigError::HostNotSigned)
        ));
        assert!(check("(request-target) date host", &http::Method::GET).is_ok());
    }

    #[test]
    fn pseudo_headers_need_hs2019_and_their_parameter() {
        let with_created = Params {
            created: Some(&b"1"[..]),
            ..Params::default()
        };
        let list = "(request-target) (created) digest";
        assert!(matches!(
            check_pseudo_headers(&cov(list), Algorithm::RsaSha256, &with_created),
            Err(SigError::InvalidPseudoHeader("(created)"))
        ));
        assert!(matches!(
            check_pseudo_headers(&cov(list), Algorithm::Hs2019, &Params::default()),
            Err(SigError::PseudoHeaderArgumentMissing("(created)"))
        ));
        assert!(check_pseudo_headers(&cov(list), Algorithm::Hs2019, &with_created).is_ok());
        assert!(matches!(
            check_pseudo_headers(
                &cov("(created) (expires) digest"),
                Algorithm::Hs2019,
                &with_created
            ),
            Err(SigError::PseudoHeaderArgumentMissing("(expires)"))
        ));
    }

    #[test]
    fn signed_header_count_is_bounded() {
        let ok = vec!["x"; MAX_SIGNED_HEADERS].join(" ");
        assert!(coverage(&ok).is_ok());
        let too_many = vec!["x"; MAX_SIGNED_HEADERS + 1].join(" ");
        assert!(matches!(
            coverage(&too_many),
            Err(SigError::TooManySignedHeaders)
        ));
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp(b"1402170695", "created").unwrap(),
            Duration::from_secs(1402170695)
        );
        assert_eq!(
            parse_timestamp(b"10.25", "created").unwrap(),
            Duration::from_millis(10250)
        );
        for bad in [
            &b""[..],
            b"-1",
            b"1e9",
            b"1.",
            b".5",
            b" 1",
            b"99999999999999999999",
        ] {
            assert!(
                matches!(
                    parse_timestamp(bad, "expires"),
                    Err(SigError::InvalidTimestamp("expires"))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn window_edges() {
        let s = Duration::from_secs;
        let (skew, max_age) = (s(3600), s(43200));
        let now = s(1_000_000);
        let w = |c: Option<Duration>, e: Option<Duration>| check_window(c, e, now, skew, max_age);
        // created exactly now + skew passes; one second later fails.
        assert!(w(Some(now + skew), None).is_ok());
        assert!(matches!(
            w(Some(now + skew + s(1)), None),
            Err(SigError::OutsideWindow)
        ));
        // No expires: created + 5 min + skew is the last accepted instant.
        assert!(w(Some(now - s(300) - skew), None).is_ok());
        assert!(matches!(
            w(Some(now - s(301) - skew), None),
            Err(SigError::OutsideWindow)
        ));
        // A far expires is capped at created + max_age.
        let created = now - max_age - skew;
        assert!(w(Some(created), Some(now + s(999_999))).is_ok());
        assert!(matches!(
            w(Some(created - s(1)), Some(now + s(999_999))),
            Err(SigError::OutsideWindow)
        ));
        // An explicit expires shorter than 5 min is honoured.
        assert!(matches!(
            w(Some(now - skew - s(20)), Some(now - skew - s(10))),
            Err(SigError::OutsideWindow)
        ));
        // Neither: passes. Only expires: it still applies.
        assert!(w(None, None).is_ok());
        assert!(w(None, Some(now - skew)).is_ok());
        assert!(matches!(
            w(None, Some(now - skew - s(1))),
            Err(SigError::OutsideWindow)
        ));
        // Saturating arithmetic: huge values do not panic.
        assert!(check_window(Some(Duration::MAX), None, now, skew, max_age).is_err());
        assert!(
            check_window(Some(now), Some(Duration::MAX), Duration::MAX, skew, max_age).is_err()
        );
    }

    #[test]
    fn repeated_headers_are_joined() {
        let mut h = HeaderMap::new();
        h.append("x-a", "1".parse().unwrap());
        h.append("x-a", "2".parse().unwrap());
        h.insert("x-b", "3".parse().unwrap());
        assert_eq!(header_value(&h, "x-a").unwrap().as_ref(), b"1, 2");
        assert!(matches!(header_value(&h, "x-b"), Some(Cow::Borrowed(b"3"))));
        assert!(header_value(&h, "x-c").is_none());
        assert!(header_value(&h, "(not a name)").is_none());
    }

    #[test]
    fn signing_string_layout_and_query_ranges() {
        let mut h = HeaderMap::new();
        h.insert("host", "example.com".parse().unwrap());
        let p = Params {
            created: Some(&b"123"[..]),
            ..Params::default()
        };
        let s = build_signing_string(
            "(request-target) (created) host missing",
            &http::Method::POST,
            "/inbox?a=1&b",
            &h,
            &p,
        );
        assert_eq!(
            String::from_utf8(s.bytes.clone()).unwrap(),
            "(request-target): post /inbox?a=1&b\n(created): 123\nhost: example.com\nmissing: "
        );
        assert_eq!(s.query_ranges.len(), 1);
        assert_eq!(&s.bytes[s.query_ranges[0].clone()], b"?a=1&b");

        // Empty query: signed without the `?`, and no retry candidate.
        let s = build_signing_string("(request-target)", &http::Method::POST, "/inbox?", &h, &p);
        assert_eq!(s.bytes, b"(request-target): post /inbox");
        assert!(s.query_ranges.is_empty());
    }

    #[test]
    fn key_hosts() {
        assert_eq!(
            key_host("https://Social.Example:8443/users/a#main-key").as_deref(),
            Some("social.example")
        );
        assert_eq!(
            key_host("acct:alice@sub@Host.Example").as_deref(),
            Some("Host.Example")
        );
        assert_eq!(key_host("https://[::1]/k").as_deref(), Some("[::1]"));
        for bad in [
            "",
            "main-key",
            "acct:alice",
            "acct:alice@",
            "urn:x:y",
            "/users/a",
        ] {
            assert!(key_host(bad).is_none(), "{bad:?}");
        }
    }
}
