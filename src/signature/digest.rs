//! The `Digest` request header (RFC 3230) checked against the body, as Mastodon checks it.
//!
//! Mastodon splits the header on `,`, each member on the first `=`, lower-cases the name
//! *without trimming it* and takes the first `sha-256` member. The value must equal the
//! base64 SHA-256 of the body *as a string*; only on mismatch does it look closer to choose
//! the message. The same here, so a header we accept is one Mastodon accepts.

use super::cavage::header_value;
use super::SigError;
use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderMap;

/// Length of a SHA-256 digest in padded base64.
const SHA256_B64_LEN: usize = 44;

pub(crate) fn check(headers: &HeaderMap, body: &[u8]) -> Result<(), SigError> {
    let value = header_value(headers, &super::names::DIGEST).ok_or(SigError::DigestMissing)?;
    let members =
        value
            .split(|&b| b == b',')
            .map(|member| match member.iter().position(|&b| b == b'=') {
                Some(eq) => (&member[..eq], &member[eq + 1..]),
                None => (member, &b""[..]),
            });
    let Some((_, given)) = members
        .clone()
        .find(|(name, _)| name.eq_ignore_ascii_case(b"sha-256"))
    else {
        let offered: Vec<String> = members
            .map(|(name, _)| String::from_utf8_lossy(name).to_lowercase())
            .collect();
        return Err(SigError::DigestUnsupported(offered.join(", ")));
    };

    let computed = digest(&SHA256, body);
    let mut expected = [0u8; SHA256_B64_LEN];
    // 32 bytes always encode to exactly 44; a failure would mean a base64 bug, and then the
    // all-zero buffer can never match a real header value.
    let n = STANDARD
        .encode_slice(computed.as_ref(), &mut expected)
        .unwrap_or(0);
    if given == &expected[..n] {
        return Ok(());
    }

    let given_text = || String::from_utf8_lossy(given).into_owned();
    let decoded = STANDARD
        .decode(given.trim_ascii())
        .map_err(|_| SigError::DigestNotBase64(given_text()))?;
    if decoded.len() != computed.as_ref().len() {
        return Err(SigError::DigestWrongLength(given_text()));
    }
    Err(SigError::DigestMismatch {
        computed: String::from_utf8_lossy(&expected[..n]).into_owned(),
        given: given_text(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"hello": "world"}"#;
    /// SHA-256 of BODY, from draft-cavage-12 Appendix C.
    const BODY_DIGEST: &str = "X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=";

    fn with_digest(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("digest", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn matching_sha256_passes_case_insensitively() {
        for v in [
            format!("SHA-256={BODY_DIGEST}"),
            format!("sha-256={BODY_DIGEST}"),
            format!("SHA-512=abc,SHA-256={BODY_DIGEST}"),
        ] {
            assert!(check(&with_digest(&[&v]), BODY).is_ok(), "{v}");
        }
    }

    #[test]
    fn missing_header() {
        assert!(matches!(
            check(&HeaderMap::new(), BODY),
            Err(SigError::DigestMissing)
        ));
    }

    #[test]
    fn no_sha256_member_lists_offered_names() {
        let err = check(&with_digest(&["SHA-512=abc,MD5=def"]), BODY).unwrap_err();
        assert!(matches!(err, SigError::DigestUnsupported(_)));
        assert_eq!(
            err.to_string(),
            "Mastodon only supports SHA-256 in Digest header. Offered algorithms: sha-512, md5"
        );
        // Like Mastodon, a space before the name is part of the name.
        assert!(matches!(
            check(
                &with_digest(&[&format!("MD5=x, SHA-256={BODY_DIGEST}")]),
                BODY
            ),
            Err(SigError::DigestUnsupported(_))
        ));
    }

    #[test]
    fn bad_base64_wrong_length_and_mismatch_are_distinct() {
        assert!(matches!(
            check(&with_digest(&["SHA-256=not base64!"]), BODY),
            Err(SigError::DigestNotBase64(_))
        ));
        // No value at all decodes to zero bytes (Mastodon raises a 500 here).
        assert!(matches!(
            check(&with_digest(&["SHA-256"]), BODY),
            Err(SigError::DigestWrongLength(_))
        ));
        assert!(matches!(
            check(&with_digest(&["SHA-256=YWJj"]), BODY),
            Err(SigError::DigestWrongLength(_))
        ));
        let err = check(&with_digest(&[&format!("SHA-256={BODY_DIGEST}")]), b"{}").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Invalid Digest value. Computed SHA-256 digest: RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=; given: {BODY_DIGEST}"
            )
        );
        // The comparison is on the string: surrounding spaces are a mismatch, as in Mastodon.
        assert!(matches!(
            check(&with_digest(&[&format!("SHA-256= {BODY_DIGEST}")]), BODY),
            Err(SigError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn repeated_digest_headers_are_one_list() {
        let h = with_digest(&["SHA-512=abc", &format!("SHA-256={BODY_DIGEST}")]);
        // Joined as "SHA-512=abc, SHA-256=..." whose second name starts with a space.
        assert!(matches!(
            check(&h, BODY),
            Err(SigError::DigestUnsupported(_))
        ));
    }
}
