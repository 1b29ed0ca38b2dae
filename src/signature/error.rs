//! Why a signature was refused: one variant per failed check, in both formats.

use super::crypto::KeyKind;
use super::{cavage, rfc9421};

/// Why a signature was refused. `Display` is the precise message sent to the client as
/// `{"error": "..."}` (Mastodon's wording where it has one); the status and the bounded
/// `reason` label ([`SigError::reason`]) are in `reject`'s table.
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
    /// `alg="rsa-pss-sha512"` while `signatures.allow_rsa_pss` is off: Mastodon verifies RSA
    /// keys as rsa-v1_5-sha256 only, so it would refuse the request too.
    #[error("Unsupported signature algorithm \"rsa-pss-sha512\": RSA keys are verified as rsa-v1_5-sha256 only")]
    Rfc9421RsaPssRefused,
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
    /// `Content-Digest` has no `sha-256` member (Mastodon compares only that one); holds the
    /// offered names.
    #[error("Mastodon only supports SHA-256 in Content-Digest header. Offered algorithms: {0}")]
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
