//! HTTP signatures on inbox POSTs, in both formats Mastodon accepts: draft-cavage
//! (`Signature`) and RFC 9421 HTTP Message Signatures (`Signature-Input` + `Signature`).
//! As in Mastodon, a request carrying `Signature-Input` is RFC 9421, whatever else it has.
//!
//! Split into the cheap part and the expensive part so the pipeline can put policy checks
//! between them: [`prepare`] parses the signature and runs every check that needs no key
//! (required components, time window, body digest) and builds the signing string(s) or
//! signature base; [`Prepared::verify`] does the public-key operation once the key is known.
//!
//! Parsing and signing strings are our own (`cavage.rs` says why the
//! `http-signature-normalization` verifier does not fit); that crate's signer is used by
//! [`sign::sign_request`] to act as a remote server in the demo and tests.

use crate::config::SignatureConfig;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod cavage;
pub mod crypto;
mod digest;
mod rfc9421;
pub mod sign;
pub mod signing_key;

pub use crypto::{KeyKind, KeyParseError, PublicKey, Scheme};
pub use sign::{sign_request, SignError, SignStyle};
pub use signing_key::SigningKey;

/// The `signature` parameter: standard alphabet, padding optional (some senders strip it;
/// Mastodon's lenient `Base64.decode64` accepts both).
const SIGNATURE_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

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
    inner: Inner,
}

/// What each format needs to verify.
#[derive(Debug)]
enum Inner {
    Cavage(CavageSignature),
    Rfc9421(Rfc9421Signature),
}

#[derive(Debug)]
struct CavageSignature {
    algorithm: Algorithm,
    signed_headers: Cow<'static, str>,
    created: Option<Duration>,
    signature: Vec<u8>,
    signing_string: Vec<u8>,
    /// `?query` spans in `signing_string`; non-empty means a path-only candidate exists.
    query_ranges: Vec<std::ops::Range<usize>>,
}

#[derive(Debug)]
struct Rfc9421Signature {
    alg: Option<Scheme>,
    /// Covered component names, in order (for logs and tests).
    covered: Vec<String>,
    created: Option<Duration>,
    signature: Vec<u8>,
    base: Vec<u8>,
}

/// Why a signature was refused. `Display` is the precise message sent to the client as
/// `{"error": "..."}` (Mastodon's wording where it has one); [`SigError::reason`] is the
/// bounded metric label.
#[derive(Debug, thiserror::Error)]
pub enum SigError {
    /// No `Signature` header, or only blank ones. `Authorization: Signature` does not count.
    #[error("Request not signed")]
    NotSigned,
    /// The `Signature` header is longer than the parser will look at.
    #[error(
        "Signature header too large (limit {} bytes)",
        cavage::MAX_SIGNATURE_HEADER_BYTES
    )]
    SignatureTooLarge,
    /// Not a `key=value, ...` list of tokens and quoted strings.
    #[error("Error parsing signature parameters")]
    Malformed,
    /// More parameters than any signer sends.
    #[error(
        "Error parsing signature parameters: more than {} parameters",
        cavage::MAX_PARAMETERS
    )]
    TooManyParameters,
    /// A parameter appears twice.
    #[error("Error parsing signature with duplicate keys")]
    DuplicateParameter,
    /// `keyId` or `signature` is absent.
    #[error("Incompatible request signature. keyId and signature are required")]
    MissingParameters,
    /// The `signature` parameter is not base64.
    #[error("Invalid signature parameter: not base64")]
    SignatureNotBase64,
    /// `algorithm` is present and neither `rsa-sha256` nor `hs2019`.
    #[error("Unsupported signature algorithm (only rsa-sha256 and hs2019 are supported)")]
    UnsupportedAlgorithm,
    /// The keyId names no host (not a URL with a host, nor `acct:user@host`).
    #[error("Invalid keyId {0:?}: no host to fetch the key from")]
    InvalidKeyId(String),
    /// More signed header names than the signing-string builder will process.
    #[error("Too many signed headers (limit {})", cavage::MAX_SIGNED_HEADERS)]
    TooManySignedHeaders,
    /// Neither `date` nor `(created)` is signed.
    #[error("Mastodon requires the Date header or (created) pseudo-header to be signed")]
    MissingDate,
    /// Neither `(request-target)` nor `digest` is signed.
    #[error("Mastodon requires the Digest header or (request-target) pseudo-header to be signed")]
    TargetNotSigned,
    /// A GET that does not sign `host`.
    #[error("Mastodon requires the Host header to be signed when doing a GET request")]
    HostNotSigned,
    /// A POST that does not sign `digest`.
    #[error("Mastodon requires the Digest header to be signed when doing a POST request")]
    DigestNotSigned,
    /// `(created)` or `(expires)` signed with `rsa-sha256`.
    #[error("Invalid pseudo-header {0} for rsa-sha256")]
    InvalidPseudoHeader(&'static str),
    /// `(created)` or `(expires)` signed without the matching parameter.
    #[error("Pseudo-header {0} used but corresponding argument missing")]
    PseudoHeaderArgumentMissing(&'static str),
    /// A `created` or `expires` parameter that is not a Unix timestamp.
    #[error("Invalid {0} parameter: not a Unix timestamp")]
    InvalidTimestamp(&'static str),
    /// The `Date` header (used as the creation time) is not an HTTP-date.
    #[error("Invalid Date header: not RFC 2616 compliant date: {0:?}")]
    InvalidDate(String),
    /// Created in the future or expired, beyond the allowed clock skew.
    #[error("Signed request date outside acceptable time window")]
    OutsideWindow,
    /// `digest` is signed but there is no `Digest` header.
    #[error("Digest header missing")]
    DigestMissing,
    /// The `Digest` header has no `sha-256` member; holds the offered names.
    #[error("Mastodon only supports SHA-256 in Digest header. Offered algorithms: {0}")]
    DigestUnsupported(String),
    /// The `sha-256` value is not base64; holds the given value.
    #[error("Invalid Digest value. The provided Digest value is not a valid base64 string. Given digest: {0}")]
    DigestNotBase64(String),
    /// The `sha-256` value does not decode to 32 bytes; holds the given value.
    #[error("Invalid Digest value. The provided Digest value is not a SHA-256 digest. Given digest: {0}")]
    DigestWrongLength(String),
    /// The `sha-256` value is not the digest of the body.
    #[error("Invalid Digest value. Computed SHA-256 digest: {computed}; given: {given}")]
    DigestMismatch { computed: String, given: String },
    /// `Signature-Input` or `Signature` is longer than the parser will look at.
    #[error("{0} header too large (limit {limit} bytes)", limit = rfc9421::MAX_FIELD_BYTES)]
    Rfc9421TooLarge(&'static str),
    /// `Signature-Input`/`Signature` are not what RFC 9421 describes; says what is wrong.
    #[error("Invalid RFC 9421 signature: {0}")]
    Rfc9421Malformed(&'static str),
    /// More than one signature in `Signature-Input`.
    #[error("Only a single RFC 9421 signature is supported")]
    Rfc9421MultipleSignatures,
    /// `Signature` has no member with the label of `Signature-Input`; holds the label.
    #[error("Signature header has no signature labelled {0:?}")]
    Rfc9421SignatureMissing(String),
    /// The same component identifier is covered twice; holds it.
    #[error("Component {0} is covered twice")]
    Rfc9421DuplicateComponent(String),
    /// `keyid` or `created` is absent.
    #[error("Incompatible request signature. keyid and created are required")]
    Rfc9421MissingParameters,
    /// The `alg` parameter names an algorithm we do not verify; holds it (clipped).
    #[error("Unsupported signature algorithm {0:?} (supported: rsa-v1_5-sha256, rsa-pss-sha512, ed25519)")]
    Rfc9421UnsupportedAlgorithm(String),
    /// `@method` or `@target-uri` is not covered.
    #[error("Mastodon requires the @method and @target-uri derived components to be signed")]
    Rfc9421TargetNotCovered,
    /// A POST whose signature does not cover `content-digest`.
    #[error("Mastodon requires the Content-Digest header to be signed when doing a POST request")]
    ContentDigestNotSigned,
    /// A covered component that a request cannot have or we do not derive (`@status`, an
    /// upper-case field name, ...); holds it (clipped).
    #[error("Unsupported covered component {0}")]
    Rfc9421UnsupportedComponent(String),
    /// A component parameter we do not support (`req`, `tr`, `sf` on a field of unknown
    /// type, ...); holds a description.
    #[error("Unsupported component parameter: {0}")]
    Rfc9421UnsupportedParameter(String),
    /// A covered component the request does not have; holds its identifier.
    #[error("Covered component {0} is not in the request")]
    Rfc9421ComponentAbsent(String),
    /// `content-digest` is covered but there is no `Content-Digest` header.
    #[error("Content-Digest header missing")]
    ContentDigestMissing,
    /// `Content-Digest` is not an RFC 8941 dictionary of byte sequences (Mastodon: 400).
    #[error("Content-Digest could not be parsed. It does not contain a valid RFC8941 dictionary.")]
    ContentDigestMalformed,
    /// `Content-Digest` has neither `sha-256` nor `sha-512`; holds the offered names.
    #[error("Content-Digest has no sha-256 or sha-512 digest. Offered algorithms: {0}")]
    ContentDigestUnsupported(String),
    /// A `Content-Digest` member does not match the body; holds the algorithm.
    #[error("Invalid Content-Digest value: the {0} digest does not match the body")]
    ContentDigestMismatch(&'static str),
    /// The RFC 9421 `alg` parameter needs another kind of key than the one published.
    #[error("Verification failed for key {key_id}: a {kind:?} key cannot verify {alg}")]
    Rfc9421KeyTypeMismatch {
        key_id: String,
        kind: KeyKind,
        alg: &'static str,
    },
    /// An Ed25519 key cannot verify an `rsa-sha256` signature.
    #[error("Verification failed for key {0}: an Ed25519 key cannot verify rsa-sha256")]
    KeyTypeMismatch(String),
    /// The signature does not verify with the key over any candidate signing string.
    #[error("Verification failed for key {0}")]
    BadSignature(String),
}

impl SigError {
    /// A fixed word for the `reason` metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            SigError::NotSigned => "not_signed",
            SigError::SignatureTooLarge => "signature_too_large",
            SigError::Malformed => "malformed_signature",
            SigError::TooManyParameters => "too_many_parameters",
            SigError::DuplicateParameter => "duplicate_parameter",
            SigError::MissingParameters => "missing_parameters",
            SigError::SignatureNotBase64 => "signature_not_base64",
            SigError::UnsupportedAlgorithm => "unsupported_algorithm",
            SigError::InvalidKeyId(_) => "invalid_key_id",
            SigError::TooManySignedHeaders => "too_many_signed_headers",
            SigError::MissingDate => "missing_date",
            SigError::TargetNotSigned => "target_not_signed",
            SigError::HostNotSigned => "host_not_signed",
            SigError::DigestNotSigned => "digest_not_signed",
            SigError::InvalidPseudoHeader(_) => "invalid_pseudo_header",
            SigError::PseudoHeaderArgumentMissing(_) => "pseudo_header_argument_missing",
            SigError::InvalidTimestamp(_) => "invalid_timestamp",
            SigError::InvalidDate(_) => "invalid_date",
            SigError::OutsideWindow => "outside_window",
            SigError::DigestMissing => "digest_missing",
            SigError::DigestUnsupported(_) => "digest_unsupported",
            SigError::DigestNotBase64(_) => "digest_invalid",
            SigError::DigestWrongLength(_) => "digest_wrong_length",
            SigError::DigestMismatch { .. } => "digest_mismatch",
            SigError::Rfc9421TooLarge(_) => "rfc9421_too_large",
            SigError::Rfc9421Malformed(_) => "rfc9421_malformed",
            SigError::Rfc9421MultipleSignatures => "rfc9421_multiple_signatures",
            SigError::Rfc9421SignatureMissing(_) => "rfc9421_signature_missing",
            SigError::Rfc9421DuplicateComponent(_) => "rfc9421_duplicate_component",
            SigError::Rfc9421MissingParameters => "rfc9421_missing_parameters",
            SigError::Rfc9421UnsupportedAlgorithm(_) => "rfc9421_unsupported_algorithm",
            SigError::Rfc9421TargetNotCovered => "rfc9421_missing_component",
            SigError::ContentDigestNotSigned => "content_digest_not_signed",
            SigError::Rfc9421UnsupportedComponent(_) => "rfc9421_unsupported_component",
            SigError::Rfc9421UnsupportedParameter(_) => "rfc9421_unsupported_parameter",
            SigError::Rfc9421ComponentAbsent(_) => "rfc9421_component_absent",
            SigError::ContentDigestMissing => "content_digest_missing",
            SigError::ContentDigestMalformed => "content_digest_malformed",
            SigError::ContentDigestUnsupported(_) => "content_digest_unsupported",
            SigError::ContentDigestMismatch(_) => "content_digest_mismatch",
            SigError::Rfc9421KeyTypeMismatch { .. } => "rfc9421_key_type_mismatch",
            SigError::KeyTypeMismatch(_) => "key_type_mismatch",
            SigError::BadSignature(_) => "bad_signature",
        }
    }

    /// The status the sender gets: 400 for a malformed `Content-Digest` (as Mastodon), 401
    /// for every other signature failure.
    pub fn status(&self) -> http::StatusCode {
        match self {
            SigError::ContentDigestMalformed => http::StatusCode::BAD_REQUEST,
            _ => http::StatusCode::UNAUTHORIZED,
        }
    }
}

/// Parses and pre-checks the signature of an inbox request, cheapest checks first.
/// `path_and_query` is the request target as received; `target` is where the sender
/// addressed it (RFC 9421 only); `body` is the complete body. A request with a non-blank
/// `Signature-Input` is RFC 9421, any other draft-cavage.
pub fn prepare(
    method: &http::Method,
    path_and_query: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    target: &RequestTarget<'_>,
    now: SystemTime,
    cfg: &SignatureConfig,
) -> Result<Prepared, SigError> {
    if has_signature_input(headers) {
        let msg = rfc9421::Message {
            method,
            path_and_query,
            headers,
            scheme: target.scheme,
            authority: target.authority,
        };
        return prepare_rfc9421(&msg, body, now, cfg, Rules::Mastodon);
    }
    prepare_inner(
        method,
        path_and_query,
        headers,
        body,
        now,
        cfg,
        Rules::Mastodon,
    )
}

/// [`prepare`] without Mastodon's coverage rules (date or `(created)`, digest or
/// `(request-target)`, host for GET, digest for POST) and accepting a keyId without a host
/// (`key_host` is then empty). Parsing, defaults, pseudo-header rules, window, digest and
/// the signing string are exactly those of [`prepare`].
///
/// Only for the draft-cavage-12 Appendix C vectors (keyId `Test`; C.1 signs only `date`),
/// which predate Mastodon's rules. Never use it on the request path.
pub fn prepare_for_spec_vectors(
    method: &http::Method,
    path_and_query: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    now: SystemTime,
    cfg: &SignatureConfig,
) -> Result<Prepared, SigError> {
    prepare_inner(
        method,
        path_and_query,
        headers,
        body,
        now,
        cfg,
        Rules::SpecVectors,
    )
}

/// RFC 9421 parsing, window, Content-Digest and signature base exactly as [`prepare`] does
/// them, without Mastodon's acceptance rules (`created` and `keyid` required, `@method`,
/// `@target-uri` and on POST `content-digest` covered) and accepting a keyid without a host
/// (`key_host` is then empty). `Signature-Input` is required.
///
/// Only for the RFC 9421 Appendix B vectors, which cover fewer components than Mastodon
/// requires and name keys `test-key-...`. Never use it on the request path.
pub fn prepare_rfc9421_for_spec_vectors(
    method: &http::Method,
    path_and_query: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    target: &RequestTarget<'_>,
    now: SystemTime,
    cfg: &SignatureConfig,
) -> Result<Prepared, SigError> {
    let msg = rfc9421::Message {
        method,
        path_and_query,
        headers,
        scheme: target.scheme,
        authority: target.authority,
    };
    prepare_rfc9421(&msg, body, now, cfg, Rules::SpecVectors)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rules {
    Mastodon,
    SpecVectors,
}

/// Mastodon's format switch: `Signature-Input` present (`.present?`: not blank).
fn has_signature_input(headers: &http::HeaderMap) -> bool {
    headers
        .get_all("signature-input")
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().is_empty())
}

fn prepare_rfc9421(
    msg: &rfc9421::Message<'_>,
    body: &[u8],
    now: SystemTime,
    cfg: &SignatureConfig,
    rules: Rules,
) -> Result<Prepared, SigError> {
    let input = rfc9421::parse(msg.headers)?;

    let key_id = match (&input.key_id, rules) {
        (Some(k), _) => k.clone(),
        (None, Rules::SpecVectors) => String::new(),
        (None, Rules::Mastodon) => return Err(SigError::Rfc9421MissingParameters),
    };
    if rules == Rules::Mastodon && input.created.is_none() {
        return Err(SigError::Rfc9421MissingParameters);
    }
    let key_host = match (cavage::key_host(&key_id), rules) {
        (Some(host), _) => host,
        (None, Rules::SpecVectors) => String::new(),
        (None, Rules::Mastodon) => return Err(SigError::InvalidKeyId(key_id)),
    };
    if rules == Rules::Mastodon {
        if !(input.covers("@method") && input.covers("@target-uri")) {
            return Err(SigError::Rfc9421TargetNotCovered);
        }
        if msg.method == http::Method::POST && !input.covers("content-digest") {
            return Err(SigError::ContentDigestNotSigned);
        }
    }

    let created = input
        .created
        .map(|c| rfc9421::timestamp(c, "created"))
        .transpose()?;
    let expires = input
        .expires
        .map(|e| rfc9421::timestamp(e, "expires"))
        .transpose()?;
    cavage::check_window(
        created,
        expires,
        now.duration_since(UNIX_EPOCH).unwrap_or_default(),
        Duration::from_secs(cfg.clock_skew_secs),
        Duration::from_secs(cfg.max_age_secs),
    )?;

    if input.covers("content-digest") {
        rfc9421::check_content_digest(msg.headers, body)?;
    }

    let base = rfc9421::signature_base(msg, &input)?;
    let covered = input.component_names().map(str::to_string).collect();
    Ok(Prepared {
        key_id,
        key_host,
        inner: Inner::Rfc9421(Rfc9421Signature {
            alg: input.alg,
            covered,
            created,
            signature: input.signature,
            base,
        }),
    })
}

fn prepare_inner(
    method: &http::Method,
    path_and_query: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    now: SystemTime,
    cfg: &SignatureConfig,
    rules: Rules,
) -> Result<Prepared, SigError> {
    // Mastodon only looks at `Signature` (`.present?`, so blank counts as absent). Repeated
    // headers reach Rails joined with ", ", which then fails on duplicate keys; same here.
    let raw = cavage::header_value(headers, "signature").ok_or(SigError::NotSigned)?;
    if raw.trim_ascii().is_empty() {
        return Err(SigError::NotSigned);
    }
    if raw.len() > cavage::MAX_SIGNATURE_HEADER_BYTES {
        return Err(SigError::SignatureTooLarge);
    }
    let params = cavage::parse_params(&raw)?;
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
    let key_host = match (cavage::key_host(key_id), rules) {
        (Some(host), _) => host,
        (None, Rules::SpecVectors) => String::new(),
        (None, Rules::Mastodon) => return Err(SigError::InvalidKeyId(key_id.to_string())),
    };

    let signed_headers = cavage::signed_header_list(params.headers, algorithm)?;
    let coverage = cavage::coverage(&signed_headers)?;
    if rules == Rules::Mastodon {
        cavage::check_strength(&coverage, method)?;
    }
    cavage::check_pseudo_headers(&coverage, algorithm, &params)?;

    // Mastodon tests these with `.present?`, so an empty value counts as absent.
    let created = match (algorithm, params.created.filter(|c| !c.is_empty())) {
        (Algorithm::Hs2019, Some(created)) => Some(cavage::parse_timestamp(created, "created")?),
        _ => date_header(headers)?,
    };
    let expires = params
        .expires
        .filter(|e| !e.is_empty())
        .map(|e| cavage::parse_timestamp(e, "expires"))
        .transpose()?;
    cavage::check_window(
        created,
        expires,
        now.duration_since(UNIX_EPOCH).unwrap_or_default(),
        Duration::from_secs(cfg.clock_skew_secs),
        Duration::from_secs(cfg.max_age_secs),
    )?;

    if coverage.digest {
        digest::check(headers, body)?;
    }

    let signature = SIGNATURE_B64
        .decode(signature)
        .map_err(|_| SigError::SignatureNotBase64)?;
    let built =
        cavage::build_signing_string(&signed_headers, method, path_and_query, headers, &params);

    Ok(Prepared {
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
    let Some(raw) = cavage::header_value(headers, "date") else {
        return Ok(None);
    };
    if raw.trim_ascii().is_empty() {
        return Ok(None);
    }
    let invalid = || SigError::InvalidDate(String::from_utf8_lossy(&raw).into_owned());
    let text = std::str::from_utf8(&raw).map_err(|_| invalid())?;
    let date = httpdate::parse_http_date(text).map_err(|_| invalid())?;
    Ok(Some(date.duration_since(UNIX_EPOCH).unwrap_or_default()))
}

impl Prepared {
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

impl CavageSignature {
    /// The signing string with every `?query` removed from `(request-target)`; built only
    /// when the first candidate failed, so valid requests never pay for it.
    fn path_only_string(&self) -> Option<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Method};
    use std::sync::OnceLock;

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

    fn prep(
        h: &HeaderMap,
        target: &str,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Prepared, SigError> {
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

    #[test]
    fn wrong_key_fails() {
        let h = signed(rsa_key(), "/inbox");
        let p = prep(&h, "/inbox", BODY, at(DATE_UNIX)).unwrap();
        let other = SigningKey::generate_rsa_2048().unwrap();
        assert!(matches!(
            p.verify(&public(&other)),
            Err(SigError::BadSignature(_))
        ));
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
        let h = signed(&ed, "/inbox");
        let p = prep(&h, "/inbox", BODY, at(DATE_UNIX)).unwrap();
        assert!(matches!(
            p.verify(&public(&ed)),
            Err(SigError::KeyTypeMismatch(_))
        ));
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
        for e in &all {
            let want = match e {
                SigError::ContentDigestMalformed => http::StatusCode::BAD_REQUEST,
                _ => http::StatusCode::UNAUTHORIZED,
            };
            assert_eq!(e.status(), want, "{e}");
        }
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
        // A blank Signature-Input does not count (`.present?`).
        let mut h = cavage.clone();
        h.insert("signature-input", HeaderValue::from_static(" "));
        let p = prep(&h, "/inbox", BODY, at(DATE_UNIX)).unwrap();
        assert_eq!(p.format(), Format::Cavage);
    }
}
