//! RFC 9421 HTTP Message Signatures on inbox requests: the `Signature-Input` and `Signature`
//! dictionaries, the signature base (§2.5) with the request's derived components and header
//! fields, the `prepare` that runs them in order, and the `Content-Digest` (RFC 9530) of the
//! body.
//!
//! Structured fields (RFC 8941) are parsed and serialized with the `sfv` crate: their
//! grammar (inner lists, parameters, byte sequences, escapes) is subtle, and the signature
//! base must contain the *canonical* serialization of `@signature-params` and of `;sf`/`;key`
//! values, which a well-kept implementation gets right where a hand-rolled one drifts.
//!
//! Only what a request can carry is supported: `@status` and the `req`/`tr` parameters
//! (responses, trailers) are refused with a precise error, as are several signatures in one
//! request (Mastodon verifies a single one).

use super::cavage::{self, header_value};
use super::crypto::Scheme;
use super::{BodyCheck, Inner, Prepared, Rules, SigError};
use crate::config::SignatureConfig;
use aws_lc_rs::digest::{digest, Algorithm as DigestAlgorithm, SHA256, SHA512};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderMap;
use sfv::{
    BareItem, Dictionary, FieldType, InnerList, Item, List, ListEntry, Parameters, Parser, Version,
};
use std::borrow::Cow;
use std::time::{Duration, SystemTime};

/// `Signature-Input` and `Signature` values larger than this are refused before parsing
/// (one signature with 32 components and an 8192-bit RSA signature is well under 3 KiB).
pub(crate) const MAX_FIELD_BYTES: usize = 8 * 1024;
/// Bounds the signature-base work per request.
pub(crate) const MAX_COMPONENTS: usize = 32;

/// Fields whose structured type RFCs define, for the `sf` component parameter.
const DICTIONARY_FIELDS: &[&str] = &[
    "accept-signature",
    "content-digest",
    "priority",
    "repr-digest",
    "signature",
    "signature-input",
    "want-content-digest",
    "want-repr-digest",
];
const LIST_FIELDS: &[&str] = &["cache-status", "proxy-status"];

/// The request as the sender addressed it: what derived components are computed from.
pub(crate) struct Message<'a> {
    pub method: &'a http::Method,
    /// The request target as received (origin form).
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    /// `http` or `https`, lower-case.
    pub scheme: &'a str,
    /// The `Host` header (or `:authority`) as received.
    pub authority: Option<&'a str>,
}

/// One signature, as `Signature-Input` and `Signature` describe it.
#[derive(Debug)]
pub(crate) struct Input {
    pub label: String,
    /// The covered components and the signature parameters, as parsed.
    pub covered: InnerList,
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub key_id: Option<String>,
    pub alg: Option<Scheme>,
    pub signature: Vec<u8>,
}

impl Input {
    /// The covered component names (without their parameters), in order.
    pub fn component_names(&self) -> impl Iterator<Item = &str> {
        self.covered
            .items
            .iter()
            .filter_map(|item| item.bare_item.as_string().map(|s| s.as_str()))
    }

    pub fn covers(&self, name: &str) -> bool {
        self.component_names().any(|n| n == name)
    }
}

fn parse_dictionary(raw: &[u8]) -> Option<Dictionary> {
    Parser::new(raw).with_version(Version::Rfc8941).parse().ok()
}

/// Reads the one signature of the request. Several `Signature-Input` lines form one
/// dictionary (RFC 8941 §3.2), so they are joined first.
pub(crate) fn parse(headers: &HeaderMap) -> Result<Input, SigError> {
    let raw_input =
        header_value(headers, &super::names::SIGNATURE_INPUT).ok_or(SigError::NotSigned)?;
    if raw_input.len() > MAX_FIELD_BYTES {
        return Err(SigError::Rfc9421TooLarge("Signature-Input"));
    }
    let input = parse_dictionary(&raw_input).ok_or(SigError::Rfc9421Malformed(
        "Signature-Input is not a structured dictionary",
    ))?;
    let mut members = input.into_iter();
    let (label, entry) = members
        .next()
        .ok_or(SigError::Rfc9421Malformed("Signature-Input is empty"))?;
    if members.next().is_some() {
        return Err(SigError::Rfc9421MultipleSignatures);
    }
    let ListEntry::InnerList(covered) = entry else {
        return Err(SigError::Rfc9421Malformed(
            "the Signature-Input member is not an inner list of components",
        ));
    };
    if covered.items.len() > MAX_COMPONENTS {
        return Err(SigError::TooManySignedHeaders);
    }
    let mut seen: Vec<String> = Vec::with_capacity(covered.items.len());
    for item in &covered.items {
        if item.bare_item.as_string().is_none() {
            return Err(SigError::Rfc9421Malformed(
                "a covered component is not a string",
            ));
        }
        // §2.5: the same identifier (name and parameters) twice is an error.
        let id = item.serialize();
        if seen.contains(&id) {
            return Err(SigError::Rfc9421DuplicateComponent(id));
        }
        seen.push(id);
    }

    let mut out = Input {
        label: label.as_str().to_string(),
        covered,
        created: None,
        expires: None,
        key_id: None,
        alg: None,
        signature: Vec::new(),
    };
    for (name, value) in &out.covered.params {
        match name.as_str() {
            "created" => out.created = Some(integer(value, "created")?),
            "expires" => out.expires = Some(integer(value, "expires")?),
            "keyid" => {
                let key_id = string(value, "the keyid parameter is not a string")?;
                out.key_id = Some(key_id.to_string());
            }
            "alg" => {
                let alg = string(value, "the alg parameter is not a string")?;
                out.alg = Some(scheme(alg)?);
            }
            "nonce" => {
                string(value, "the nonce parameter is not a string")?;
            }
            "tag" => {
                string(value, "the tag parameter is not a string")?;
            }
            // Other parameters are signed (they are in `@signature-params`) and otherwise
            // meaningless to us.
            _ => {}
        }
    }

    let raw_signature = header_value(headers, &super::names::SIGNATURE)
        .ok_or_else(|| SigError::Rfc9421SignatureMissing(out.label.clone()))?;
    if raw_signature.len() > MAX_FIELD_BYTES {
        return Err(SigError::Rfc9421TooLarge("Signature"));
    }
    let signatures = parse_dictionary(&raw_signature).ok_or(SigError::Rfc9421Malformed(
        "Signature is not a structured dictionary",
    ))?;
    out.signature = match signatures.get(out.label.as_str()) {
        None => return Err(SigError::Rfc9421SignatureMissing(out.label.clone())),
        Some(ListEntry::Item(Item {
            bare_item: BareItem::ByteSequence(bytes),
            ..
        })) => bytes.clone(),
        Some(_) => {
            return Err(SigError::Rfc9421Malformed(
                "the Signature member is not a byte sequence",
            ))
        }
    };
    Ok(out)
}

fn integer(value: &BareItem, name: &'static str) -> Result<i64, SigError> {
    value
        .as_integer()
        .map(i64::from)
        .ok_or(SigError::InvalidTimestamp(name))
}

/// A string parameter; `problem` says which one is not.
fn string<'v>(value: &'v BareItem, problem: &'static str) -> Result<&'v str, SigError> {
    value
        .as_string()
        .map(|s| s.as_str())
        .ok_or(SigError::Rfc9421Malformed(problem))
}

fn scheme(alg: &str) -> Result<Scheme, SigError> {
    match alg {
        "rsa-v1_5-sha256" => Ok(Scheme::RsaV1_5Sha256),
        "rsa-pss-sha512" => Ok(Scheme::RsaPssSha512),
        "ed25519" => Ok(Scheme::Ed25519),
        other => Err(SigError::Rfc9421UnsupportedAlgorithm(
            other.chars().take(64).collect(),
        )),
    }
}

/// A `created`/`expires` parameter as a time since the epoch; negative is not a time.
pub(crate) fn timestamp(value: i64, name: &'static str) -> Result<Duration, SigError> {
    u64::try_from(value)
        .map(Duration::from_secs)
        .map_err(|_| SigError::InvalidTimestamp(name))
}

/// The signature base (§2.5): one `"<component>": <value>` line per covered component, then
/// the `"@signature-params"` line. A covered component the request lacks is an error.
pub(crate) fn signature_base(msg: &Message<'_>, input: &Input) -> Result<Vec<u8>, SigError> {
    let mut base = Vec::with_capacity(512);
    for item in &input.covered.items {
        let name = item
            .bare_item
            .as_string()
            .map(|s| s.as_str())
            .unwrap_or_default();
        base.extend_from_slice(item.serialize().as_bytes());
        base.extend_from_slice(b": ");
        let value = if name.starts_with('@') {
            derived(msg, name, &item.params)?
        } else {
            field(msg.headers, name, &item.params)?
        };
        // A newline inside a value would forge extra lines of the base.
        if value.contains(&b'\n') {
            return Err(SigError::Rfc9421Malformed(
                "a component value contains a newline",
            ));
        }
        base.extend_from_slice(&value);
        base.push(b'\n');
    }
    base.extend_from_slice(b"\"@signature-params\": ");
    base.extend_from_slice(signature_params(&input.covered)?.as_bytes());
    Ok(base)
}

/// The canonical serialization of the inner list and its parameters.
fn signature_params(covered: &InnerList) -> Result<String, SigError> {
    let list: List = vec![ListEntry::InnerList(covered.clone())];
    list.serialize().ok_or(SigError::Rfc9421Malformed(
        "the signature parameters cannot be serialized",
    ))
}

/// Lower-case host with the scheme's default port dropped (RFC 9110 §4.2.3 normalisation,
/// and what Rack's `host_with_port` yields for Mastodon's `@target-uri`).
fn normalized_authority(scheme: &str, authority: &str) -> String {
    let lower = authority.trim().to_ascii_lowercase();
    let default_port = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return lower,
    };
    match lower.strip_suffix(default_port) {
        // Not the tail of an IPv6 literal without a port (`[::80]` ends in `]`).
        Some(host) if !host.is_empty() => host.to_string(),
        _ => lower,
    }
}

fn derived(msg: &Message<'_>, name: &str, params: &Parameters) -> Result<Vec<u8>, SigError> {
    let query_name = params_only_name(name, params)?;
    let (path, query) = match msg.path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (msg.path_and_query, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    let authority = || {
        msg.authority
            .map(|a| normalized_authority(msg.scheme, a))
            .ok_or_else(|| SigError::Rfc9421ComponentAbsent(name.to_string()))
    };
    let value = match name {
        "@method" => msg.method.as_str().to_string(),
        "@target-uri" => {
            // Rack's `fullpath` (Mastodon's view) drops an empty `?`.
            let query = query
                .filter(|q| !q.is_empty())
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            format!("{}://{}{path}{query}", msg.scheme, authority()?)
        }
        "@authority" => authority()?,
        "@scheme" => msg.scheme.to_string(),
        "@path" => path.to_string(),
        "@query" => format!("?{}", query.unwrap_or_default()),
        "@request-target" => msg.path_and_query.to_string(),
        "@query-param" => {
            let Some(wanted) = query_name else {
                return Err(SigError::Rfc9421UnsupportedParameter(
                    "@query-param without a name parameter".to_string(),
                ));
            };
            query_param(query.unwrap_or_default(), wanted)?
        }
        other => {
            return Err(SigError::Rfc9421UnsupportedComponent(
                other.chars().take(64).collect(),
            ))
        }
    };
    Ok(value.into_bytes())
}

/// Derived components take no parameters except `name` on `@query-param`; returns it.
fn params_only_name<'p>(name: &str, params: &'p Parameters) -> Result<Option<&'p str>, SigError> {
    let mut query_name = None;
    for (key, value) in params {
        match (key.as_str(), value.as_string()) {
            ("name", Some(v)) if name == "@query-param" => query_name = Some(v.as_str()),
            (key, _) => {
                return Err(SigError::Rfc9421UnsupportedParameter(format!(
                    "{name};{}",
                    key.chars().take(32).collect::<String>()
                )))
            }
        }
    }
    Ok(query_name)
}

/// `application/x-www-form-urlencoded` re-encoding with `%20` for spaces, as §2.2.8 asks
/// for names and values.
fn reencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// §2.2.8: the one value of query parameter `wanted` (given re-encoded); a parameter that is
/// absent or repeated cannot be signed this way.
fn query_param(query: &str, wanted: &str) -> Result<String, SigError> {
    let mut found = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if reencode(&name) != wanted {
            continue;
        }
        if found.is_some() {
            return Err(SigError::Rfc9421UnsupportedParameter(format!(
                "@query-param;name={wanted:?} names a repeated query parameter"
            )));
        }
        found = Some(reencode(&value));
    }
    found.ok_or_else(|| SigError::Rfc9421ComponentAbsent(format!("@query-param;name={wanted:?}")))
}

/// A header field component: every field line trimmed and joined with `", "`, or with
/// `sf`, `key` or `bs` the transformed value (§2.1).
fn field(headers: &HeaderMap, name: &str, params: &Parameters) -> Result<Vec<u8>, SigError> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(SigError::Rfc9421UnsupportedComponent(format!(
            "{}: field names must be lower-case",
            name.chars().take(64).collect::<String>()
        )));
    }
    let (mut sf, mut bs, mut key) = (false, false, None);
    for (param, value) in params {
        match (param.as_str(), value) {
            ("sf", BareItem::Boolean(true)) => sf = true,
            ("bs", BareItem::Boolean(true)) => bs = true,
            ("key", BareItem::String(k)) => key = Some(k.as_str()),
            (other, _) => {
                return Err(SigError::Rfc9421UnsupportedParameter(format!(
                    "{name};{}",
                    other.chars().take(32).collect::<String>()
                )))
            }
        }
    }
    if bs && (sf || key.is_some()) {
        return Err(SigError::Rfc9421UnsupportedParameter(format!(
            "{name}: bs cannot be combined with sf or key"
        )));
    }
    let absent = || SigError::Rfc9421ComponentAbsent(name.to_string());
    let lines: Vec<&[u8]> = headers
        .get_all(name)
        .iter()
        .map(|v| v.as_bytes().trim_ascii())
        .collect();
    if lines.is_empty() {
        return Err(absent());
    }
    if bs {
        let wrapped: Vec<String> = lines
            .iter()
            .map(|l| format!(":{}:", STANDARD.encode(l)))
            .collect();
        return Ok(wrapped.join(", ").into_bytes());
    }
    let joined = lines.join(&b", "[..]);
    if let Some(key) = key {
        let dict = parse_dictionary(&joined).ok_or(SigError::Rfc9421Malformed(
            "a field covered with key is not a structured dictionary",
        ))?;
        let member = dict
            .get(key)
            .ok_or_else(|| SigError::Rfc9421ComponentAbsent(format!("{name};key={key:?}")))?;
        return Ok(serialize_entry(member)?.into_bytes());
    }
    if sf {
        let not_sf =
            SigError::Rfc9421Malformed("a field covered with sf is not a valid structured field");
        let serialized = if DICTIONARY_FIELDS.contains(&name) {
            parse_dictionary(&joined).and_then(|d| d.serialize())
        } else if LIST_FIELDS.contains(&name) {
            Parser::new(&joined)
                .with_version(Version::Rfc8941)
                .parse::<List>()
                .ok()
                .and_then(|l| l.serialize())
        } else {
            return Err(SigError::Rfc9421UnsupportedParameter(format!(
                "{name};sf: the field's structured type is not known"
            )));
        };
        return serialized.map(String::into_bytes).ok_or(not_sf);
    }
    Ok(joined)
}

fn serialize_entry(entry: &ListEntry) -> Result<String, SigError> {
    match entry {
        ListEntry::Item(item) => Ok(item.serialize()),
        ListEntry::InnerList(inner) => signature_params(inner),
    }
}

/// Checks `Content-Digest` against the body. Under Mastodon's rules a `sha-256` member is
/// required and is the only one compared, as Mastodon's `verify_body_digest!` does: a
/// `sha-512` alone is refused, a wrong `sha-512` beside a right `sha-256` is ignored. The RFC
/// 9421 vectors (B.2.3 sends `sha-512` only) are checked as RFC 9530 reads the field: every
/// `sha-256` and `sha-512` member must match, and one at least be present. A value that is not
/// a structured dictionary (or whose compared digest is not a byte sequence) is malformed:
/// Mastodon answers 400 for that.
pub(crate) fn check_content_digest(
    headers: &HeaderMap,
    body: &[u8],
    rules: Rules,
) -> Result<(), SigError> {
    let raw = header_value(headers, &super::names::CONTENT_DIGEST)
        .ok_or(SigError::ContentDigestMissing)?;
    let dict = parse_dictionary(&raw).ok_or(SigError::ContentDigestMalformed)?;
    let compared: &[(&'static str, &'static DigestAlgorithm)] = match rules {
        Rules::Mastodon => &[("sha-256", &SHA256)],
        Rules::SpecVectors => &[("sha-256", &SHA256), ("sha-512", &SHA512)],
    };
    let mut checked = false;
    for &(name, algorithm) in compared {
        let Some(entry) = dict.get(name) else {
            continue;
        };
        let ListEntry::Item(Item {
            bare_item: BareItem::ByteSequence(given),
            ..
        }) = entry
        else {
            return Err(SigError::ContentDigestMalformed);
        };
        if given.as_slice() != digest(algorithm, body).as_ref() {
            return Err(SigError::ContentDigestMismatch(name));
        }
        checked = true;
    }
    if checked {
        Ok(())
    } else {
        let offered: Vec<Cow<'_, str>> = dict.keys().map(|k| Cow::Borrowed(k.as_str())).collect();
        Err(SigError::ContentDigestUnsupported(offered.join(", ")))
    }
}

/// An RFC 9421 signature, ready to verify.
#[derive(Debug)]
pub(super) struct Rfc9421Signature {
    pub(super) alg: Option<Scheme>,
    /// Covered component names, in order (for logs and tests).
    pub(super) covered: Vec<String>,
    pub(super) created: Option<Duration>,
    pub(super) signature: Vec<u8>,
    pub(super) base: Vec<u8>,
}

/// An RFC 9421 request's `Signature-Input`/`Signature` parsed and checked (Mastodon's
/// acceptance floor under `rules`, window) with its signature base built: everything but the
/// `Content-Digest` and the key.
pub(super) fn prepare(
    msg: &Message<'_>,
    now: SystemTime,
    cfg: &SignatureConfig,
    rules: Rules,
) -> Result<Prepared, SigError> {
    let input = parse(msg.headers)?;

    let key_id = match (&input.key_id, rules) {
        (Some(k), _) => k.clone(),
        (None, Rules::SpecVectors) => String::new(),
        (None, Rules::Mastodon) => return Err(SigError::Rfc9421MissingParameters),
    };
    if rules == Rules::Mastodon && input.created.is_none() {
        return Err(SigError::Rfc9421MissingParameters);
    }
    // Mastodon finds this out only at the public-key operation, after its key fetch.
    if rules == Rules::Mastodon && input.alg == Some(Scheme::RsaPssSha512) && !cfg.allow_rsa_pss {
        return Err(SigError::Rfc9421RsaPssRefused);
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

    let created = input.created.map(|c| timestamp(c, "created")).transpose()?;
    let expires = input.expires.map(|e| timestamp(e, "expires")).transpose()?;
    cavage::check_window_at(created, expires, now, cfg)?;

    let base = signature_base(msg, &input)?;
    let covered = input.component_names().map(str::to_string).collect();
    Ok(Prepared {
        body_check: if input.covers("content-digest") {
            BodyCheck::ContentDigest(rules)
        } else {
            BodyCheck::None
        },
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

#[cfg(test)]
mod tests;
