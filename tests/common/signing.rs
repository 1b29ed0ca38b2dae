//! The test signer for Mastodon-style draft-cavage signatures, built independently of the
//! proxy, and the header helpers it shares (signing string, Digest, Date).

use super::*;
use base64::Engine;
use http::{HeaderMap, HeaderValue};
use inboxguard::signature::SigningKey;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Deviations from a well-formed signed POST.
#[derive(Default, Clone)]
pub struct SignOptions {
    /// Raw `Date` header value (default: now). See [`http_date`].
    pub date: Option<String>,
    /// Send everything but the `Signature` header.
    pub omit_signature: bool,
    /// `algorithm=` value (default `rsa-sha256`). The signature is still RSA-SHA256.
    pub algorithm: Option<String>,
    /// Change the body after signing and digesting (the Digest no longer matches).
    pub tamper_body: bool,
    /// Sign with this key instead of the actor's current one.
    pub key: Option<Arc<SigningKey>>,
    /// `keyId=` value instead of the actor's.
    pub key_id: Option<String>,
    /// The `headers=` list (default `(request-target) host date digest content-type`).
    pub signed_headers: Option<Vec<String>>,
}

/// A signed request: headers to send and the body to send with them.
pub struct Signed {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

pub(super) const DEFAULT_SIGNED_HEADERS: [&str; 5] =
    ["(request-target)", "host", "date", "digest", "content-type"];

impl Actor {
    /// `/users/<name>`
    pub fn path(&self) -> String {
        format!("/users/{}", self.username)
    }

    /// The actor's current key.
    pub fn key(&self) -> Arc<SigningKey> {
        self.key.lock().unwrap().clone()
    }

    /// Headers for a correctly signed `POST path` to `host` carrying `body`.
    pub fn sign_post(&self, path: &str, host: &str, body: &[u8]) -> HeaderMap {
        self.sign_post_with(path, host, body, &SignOptions::default())
            .headers
    }

    pub fn sign_post_with(
        &self,
        path: &str,
        host: &str,
        body: &[u8],
        opts: &SignOptions,
    ) -> Signed {
        let date = opts
            .date
            .clone()
            .unwrap_or_else(|| http_date(SystemTime::now()));
        let digest = format!("SHA-256={}", sha256_base64(body));

        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_str(host).unwrap());
        headers.insert(http::header::DATE, HeaderValue::from_str(&date).unwrap());
        headers.insert("digest", HeaderValue::from_str(&digest).unwrap());
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/activity+json"),
        );

        let names: Vec<String> = match &opts.signed_headers {
            Some(names) => names.clone(),
            None => DEFAULT_SIGNED_HEADERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        let signing_string = signing_string("post", path, &headers, &names);
        let key = opts.key.clone().unwrap_or_else(|| self.key());
        let signature = base64::engine::general_purpose::STANDARD
            .encode(key.sign(signing_string.as_bytes()).unwrap());
        let header = format!(
            "keyId=\"{}\",algorithm=\"{}\",headers=\"{}\",signature=\"{}\"",
            opts.key_id.as_deref().unwrap_or(&self.key_id),
            opts.algorithm.as_deref().unwrap_or("rsa-sha256"),
            names.join(" "),
            signature
        );
        if !opts.omit_signature {
            headers.insert("signature", HeaderValue::from_str(&header).unwrap());
        }

        let mut body = body.to_vec();
        if opts.tamper_body {
            // Still valid JSON, so only the digest check can catch it.
            body.push(b' ');
        }
        Signed { headers, body }
    }

    /// An activity by this actor, e.g. `actor.activity("Follow", json!("http://local/users/bob"))`.
    pub fn activity(&self, kind: &str, object: serde_json::Value) -> Vec<u8> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        serde_json::json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": format!("{}/activities/{n}", self.id),
            "type": kind,
            "actor": self.id,
            "object": object,
        })
        .to_string()
        .into_bytes()
    }
}

/// A `Note` by `actor` with `text` as its content, for `actor.activity("Create", note(..))`.
pub fn note(actor: &Actor, text: &str) -> serde_json::Value {
    serde_json::json!({
        "id": format!("{}/statuses/1", actor.id),
        "type": "Note",
        "attributedTo": actor.id,
        "content": text,
    })
}

/// The draft-cavage signing string: one `name: value` line per signed header, in order.
/// A header missing from `headers` contributes an empty value, as Mastodon does.
pub fn signing_string(method: &str, path: &str, headers: &HeaderMap, names: &[String]) -> String {
    names
        .iter()
        .map(|name| {
            if name == "(request-target)" {
                format!("(request-target): {} {path}", method.to_ascii_lowercase())
            } else {
                let value = headers
                    .get(name.as_str())
                    .map(|v| v.to_str().unwrap())
                    .unwrap_or("");
                format!("{name}: {value}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn sha256_base64(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// IMF-fixdate, the `Date` header format.
pub fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// `http_date` of now shifted by `offset_secs` (negative = past).
pub fn http_date_offset(offset_secs: i64) -> String {
    let now = SystemTime::now();
    let t = if offset_secs >= 0 {
        now + Duration::from_secs(offset_secs.unsigned_abs())
    } else {
        now - Duration::from_secs(offset_secs.unsigned_abs())
    };
    http_date(t)
}
