//! HTTP signatures on inbox POSTs, in both formats Mastodon accepts: draft-cavage
//! (`Signature`) and RFC 9421 HTTP Message Signatures (`Signature-Input` + `Signature`).
//! As in Mastodon, a request carrying `Signature-Input` is RFC 9421, whatever else it has.
//!
//! Split into the cheap part and the expensive part so the pipeline can put policy checks
//! between them: [`prepare`] parses the signature and runs every check that needs no key
//! (required components, time window, body digest) and builds the signing string(s) or
//! signature base; [`Prepared::verify`] does the public-key operation once the key is known.
//!
//! This file holds what both formats share: [`Prepared`] and the entry points. Each format's
//! parsing and checks are in `cavage.rs` / `rfc9421.rs`, [`SigError`] in `error.rs`.
//!
//! Parsing and signing strings are our own (`cavage.rs` says why the
//! `http-signature-normalization` verifier does not fit); that crate's signer is used by
//! [`sign::sign_request`] to act as a remote server in the demo and tests.

use crate::config::SignatureConfig;
use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

mod cavage;
pub mod crypto;
mod digest;
mod error;
mod http_date;
mod rfc9421;
pub mod sign;
pub mod signing_key;

pub use crypto::{CompactKey, KeyKind, KeyParseError, PublicKey, Scheme};
pub use error::SigError;
pub use sign::{sign_request, SignError, SignStyle};
pub use signing_key::SigningKey;

/// The algorithm a signature names. draft-cavage: `rsa-sha256` and `hs2019` both mean
/// RSASSA-PKCS1-v1_5 with SHA-256 for an RSA key; `hs2019` with an Ed25519 key means Ed25519.
/// RFC 9421: the `alg` parameter if present, else the key type decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RsaSha256,
    Hs2019,
    Rfc9421(Option<Scheme>),
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Hs2019 => "hs2019",
            Algorithm::Rfc9421(Some(scheme)) => scheme.as_str(),
            Algorithm::Rfc9421(None) => "rfc9421",
        }
    }
}

/// Which signature format a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Cavage,
    Rfc9421,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Cavage => "cavage",
            Format::Rfc9421 => "rfc9421",
        }
    }
}

/// Where the sender addressed the request, for RFC 9421's `@target-uri`, `@authority` and
/// `@scheme` (draft-cavage does not need it).
#[derive(Debug, Clone, Copy)]
pub struct RequestTarget<'a> {
    /// `https` or `http`: the scheme of the URL the sender used (not necessarily the
    /// listener's; a TLS edge usually sits in front).
    pub scheme: &'a str,
    /// The `Host` header (or HTTP/2 `:authority`) as received; `None` if there is none.
    pub authority: Option<&'a str>,
}

impl<'a> RequestTarget<'a> {
    /// The request as its sender addressed it, for RFC 9421's derived components.
    fn message(
        &self,
        method: &'a http::Method,
        path_and_query: &'a str,
        headers: &'a http::HeaderMap,
    ) -> rfc9421::Message<'a> {
        rfc9421::Message {
            method,
            path_and_query,
            headers,
            scheme: self.scheme,
            authority: self.authority,
        }
    }
}

/// A request whose signature header parsed and passed every key-independent check.
/// Owns everything it needs, so it can be held across the key fetch.
#[derive(Debug)]
pub struct Prepared {
    /// The `keyId` parameter, verbatim.
    pub key_id: String,
    /// Host of the keyId as `url` parses it (lowercase for http(s), no port), or for
    /// `acct:user@host` keyIds the text after the last `@`. Not normalised further: the
    /// pipeline applies `policy::host` before matching rules.
    pub key_host: String,
    body_check: BodyCheck,
    inner: Inner,
}

/// Which digest header the signature covers, and so must match the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyCheck {
    None,
    /// draft-cavage `Digest`.
    Digest,
    /// RFC 9421 `Content-Digest`, read under these rules.
    ContentDigest(Rules),
}

/// What each format needs to verify.
#[derive(Debug)]
enum Inner {
    Cavage(cavage::CavageSignature),
    Rfc9421(rfc9421::Rfc9421Signature),
}

/// Parses and pre-checks the signature of an inbox request, cheapest checks first.
/// `path_and_query` is the request target as received; `target` is where the sender
/// addressed it (RFC 9421 only); `body` is the complete body. A request with a non-blank
/// `Signature-Input` is RFC 9421, any other draft-cavage.
///
/// Exactly [`prepare_headers`] then [`Prepared::check_body`].
pub fn prepare(
    method: &http::Method,
    path_and_query: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    target: &RequestTarget<'_>,
    now: SystemTime,
    cfg: &SignatureConfig,
) -> Result<Prepared, SigError> {
    prepare_headers(method, path_and_query, headers, target, now, cfg)?.with_body(headers, body)
}

/// Everything [`prepare`] checks except the body's digest, which [`Prepared::check_body`]
/// does: the pipeline refuses a suspended keyId host between the two, so a request it refuses
/// anyway costs no SHA-256 over its body.
pub fn prepare_headers(
    method: &http::Method,
    path_and_query: &str,
    headers: &http::HeaderMap,
    target: &RequestTarget<'_>,
    now: SystemTime,
    cfg: &SignatureConfig,
) -> Result<Prepared, SigError> {
    if present(headers, &names::SIGNATURE_INPUT) {
        let msg = target.message(method, path_and_query, headers);
        return rfc9421::prepare(&msg, now, cfg, Rules::Mastodon);
    }
    cavage::prepare(method, path_and_query, headers, now, cfg, Rules::Mastodon)
}

/// [`prepare`] without Mastodon's acceptance rules, accepting a keyId without a host
/// (`key_host` is then empty). Parsing, defaults, pseudo-header rules, window, digest and the
/// signing string or signature base are exactly those of [`prepare`]. Left out for
/// draft-cavage: date or `(created)`, digest or `(request-target)`, host for GET, digest for
/// POST; for RFC 9421: `created` and `keyid` required, `@method`, `@target-uri` and on POST
/// `content-digest` covered.
///
/// Only for the published test vectors (draft-cavage-12 Appendix C, keyId `Test`, C.1 signs
/// only `date`; RFC 9421 Appendix B, keys `test-key-...`), which predate or ignore Mastodon's
/// rules: addressed over https to their `Host`, under the default signature settings. Never
/// use it on the request path.
pub fn prepare_for_spec_vectors(
    method: &http::Method,
    path_and_query: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<Prepared, SigError> {
    let target = RequestTarget {
        scheme: "https",
        authority: headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok()),
    };
    let (cfg, rules) = (SignatureConfig::default(), Rules::SpecVectors);
    let prepared = if present(headers, &names::SIGNATURE_INPUT) {
        rfc9421::prepare(
            &target.message(method, path_and_query, headers),
            now,
            &cfg,
            rules,
        )
    } else {
        cavage::prepare(method, path_and_query, headers, now, &cfg, rules)
    };
    prepared?.with_body(headers, body)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rules {
    Mastodon,
    SpecVectors,
}

/// The format a request's headers announce before anything is parsed, as Mastodon switches:
/// RFC 9421 with a non-blank `Signature-Input`, else draft-cavage with a non-blank
/// `Signature`; `None` for an unsigned request. So a request refused while parsing is still
/// logged with its format.
pub fn format_of(headers: &http::HeaderMap) -> Option<Format> {
    if present(headers, &names::SIGNATURE_INPUT) {
        Some(Format::Rfc9421)
    } else if present(headers, &names::SIGNATURE) {
        Some(Format::Cavage)
    } else {
        None
    }
}

/// The signature headers' names, parsed once: a lookup by `&str` parses the name each time,
/// on every request.
pub(crate) mod names {
    use http::HeaderName;
    pub const SIGNATURE: HeaderName = HeaderName::from_static("signature");
    pub const SIGNATURE_INPUT: HeaderName = HeaderName::from_static("signature-input");
    pub const DIGEST: HeaderName = HeaderName::from_static("digest");
    pub const CONTENT_DIGEST: HeaderName = HeaderName::from_static("content-digest");
}

/// Mastodon's `.present?`: some value of `name` is not blank.
fn present(headers: &http::HeaderMap, name: &http::HeaderName) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().is_empty())
}

impl Prepared {
    /// `self` once its body passed [`Prepared::check_body`].
    fn with_body(self, headers: &http::HeaderMap, body: &[u8]) -> Result<Prepared, SigError> {
        self.check_body(headers, body)?;
        Ok(self)
    }

    /// Checks the body against the digest header the signature covers (`Digest` for
    /// draft-cavage, `Content-Digest` for RFC 9421); nothing to do when it covers none.
    pub fn check_body(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<(), SigError> {
        match self.body_check {
            BodyCheck::None => Ok(()),
            BodyCheck::Digest => digest::check(headers, body),
            BodyCheck::ContentDigest(rules) => rfc9421::check_content_digest(headers, body, rules),
        }
    }

    /// Verifies the signature with `key`.
    ///
    /// draft-cavage: tries path+query, then path only, for `(request-target)` (Mastodon's
    /// compatibility retry); an Ed25519 key verifies `hs2019` only.
    /// RFC 9421: with the `alg` parameter's scheme, which must suit the key; without one, the
    /// key decides (RSA: rsa-v1_5-sha256, Ed25519: ed25519).
    pub fn verify(&self, key: &PublicKey) -> Result<(), SigError> {
        match &self.inner {
            Inner::Cavage(c) => {
                if key.kind() == KeyKind::Ed25519 && c.algorithm == Algorithm::RsaSha256 {
                    return Err(SigError::KeyTypeMismatch(self.key_id.clone()));
                }
                self.verify_as(key, key.default_scheme())
            }
            Inner::Rfc9421(r) => {
                let scheme = match r.alg {
                    Some(alg) if alg.key_kind() != key.kind() => {
                        return Err(SigError::Rfc9421KeyTypeMismatch {
                            key_id: self.key_id.clone(),
                            kind: key.kind(),
                            alg: alg.as_str(),
                        })
                    }
                    Some(alg) => alg,
                    None => key.default_scheme(),
                };
                self.verify_as(key, scheme)
            }
        }
    }

    /// Verifies with `scheme` whatever the request says: for test vectors whose algorithm
    /// is known out of band (RFC 9421 B.2.1-B.2.3 are RSA-PSS without an `alg`).
    pub fn verify_as(&self, key: &PublicKey, scheme: Scheme) -> Result<(), SigError> {
        let ok = match &self.inner {
            Inner::Cavage(c) => {
                key.verify_with(scheme, &c.signing_string, &c.signature)
                    || c.path_only_string()
                        .is_some_and(|s| key.verify_with(scheme, &s, &c.signature))
            }
            Inner::Rfc9421(r) => key.verify_with(scheme, &r.base, &r.signature),
        };
        if ok {
            Ok(())
        } else {
            Err(SigError::BadSignature(self.key_id.clone()))
        }
    }

    pub fn format(&self) -> Format {
        match self.inner {
            Inner::Cavage(_) => Format::Cavage,
            Inner::Rfc9421(_) => Format::Rfc9421,
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match &self.inner {
            Inner::Cavage(c) => c.algorithm,
            Inner::Rfc9421(r) => Algorithm::Rfc9421(r.alg),
        }
    }

    /// draft-cavage: the signed header names, lower-cased, in signing order (defaults
    /// applied). RFC 9421: the covered component names, in order.
    pub fn signed_headers(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match &self.inner {
            Inner::Cavage(c) => Box::new(c.signed_headers.split_ascii_whitespace()),
            Inner::Rfc9421(r) => Box::new(r.covered.iter().map(String::as_str)),
        }
    }

    /// The creation time used for the window: `created` (hs2019, RFC 9421) or `Date`.
    pub fn created(&self) -> Option<SystemTime> {
        let created = match &self.inner {
            Inner::Cavage(c) => c.created,
            Inner::Rfc9421(r) => r.created,
        };
        created.and_then(|d| UNIX_EPOCH.checked_add(d))
    }

    /// The candidate signing strings in the order [`Prepared::verify`] tries them; for RFC
    /// 9421 the one signature base.
    pub fn signing_strings(&self) -> Vec<Cow<'_, [u8]>> {
        match &self.inner {
            Inner::Cavage(c) => {
                let mut out = vec![Cow::Borrowed(&c.signing_string[..])];
                out.extend(c.path_only_string().map(Cow::Owned));
                out
            }
            Inner::Rfc9421(r) => vec![Cow::Borrowed(&r.base[..])],
        }
    }
}

#[cfg(test)]
mod tests;
