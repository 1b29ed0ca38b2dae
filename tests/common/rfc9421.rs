//! The test signer for RFC 9421 HTTP Message Signatures, the signature base written out by
//! hand, and the Multikey encoding of Ed25519 keys (FEP-521a).

use super::*;
use base64::Engine;
use http::{HeaderMap, HeaderValue};
use inboxguard::signature::SigningKey;
use std::time::SystemTime;

/// Deviations from a well-formed RFC 9421 signed POST (Mastodon's double-knock form:
/// `@method @target-uri content-digest`, `created` and `keyid`).
#[derive(Clone)]
pub struct Rfc9421Options {
    /// Covered components, in order.
    pub covered: Vec<String>,
    /// An `alg` parameter (default: none, the key type decides).
    pub alg: Option<String>,
    /// Scheme the sender puts in `@target-uri`.
    pub scheme: String,
    /// Raw `Content-Digest` value instead of `sha-256=:<body digest>:`.
    pub content_digest: Option<String>,
    /// `created` relative to now, in seconds.
    pub created_offset: i64,
    /// `keyid` instead of the actor's.
    pub key_id: Option<String>,
    /// Change the body after signing and digesting.
    pub tamper_body: bool,
}

impl Default for Rfc9421Options {
    fn default() -> Self {
        Rfc9421Options {
            covered: ["@method", "@target-uri", "content-digest"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            alg: None,
            scheme: "https".to_string(),
            content_digest: None,
            created_offset: 0,
            key_id: None,
            tamper_body: false,
        }
    }
}

impl Actor {
    /// Headers for an RFC 9421 signed `POST path` to `host` carrying `body`.
    pub fn sign_rfc9421(
        &self,
        path: &str,
        host: &str,
        body: &[u8],
        opts: &Rfc9421Options,
    ) -> Signed {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_str(host).unwrap());
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/activity+json"),
        );
        let digest = opts
            .content_digest
            .clone()
            .unwrap_or_else(|| format!("sha-256=:{}:", sha256_base64(body)));
        headers.insert("content-digest", HeaderValue::from_str(&digest).unwrap());

        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let key_id = opts.key_id.as_deref().unwrap_or(&self.key_id);
        let list: Vec<String> = opts.covered.iter().map(|c| format!("\"{c}\"")).collect();
        let mut params = format!(
            "({});created={};keyid=\"{key_id}\"",
            list.join(" "),
            now + opts.created_offset
        );
        if let Some(alg) = &opts.alg {
            params.push_str(&format!(";alg=\"{alg}\""));
        }
        let mut base = String::new();
        for c in &opts.covered {
            let value = match c.as_str() {
                "@method" => "POST".to_string(),
                "@target-uri" => format!("{}://{host}{path}", opts.scheme),
                "@authority" => host.to_string(),
                "@path" => path.to_string(),
                name => headers
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default(),
            };
            base.push_str(&format!("\"{c}\": {value}\n"));
        }
        base.push_str(&format!("\"@signature-params\": {params}"));
        let signature = base64::engine::general_purpose::STANDARD.encode(sign_as(
            &self.key(),
            opts.alg.as_deref(),
            base.as_bytes(),
        ));
        headers.insert(
            "signature-input",
            HeaderValue::from_str(&format!("sig1={params}")).unwrap(),
        );
        headers.insert(
            "signature",
            HeaderValue::from_str(&format!("sig1=:{signature}:")).unwrap(),
        );
        let mut body = body.to_vec();
        if opts.tamper_body {
            body.push(b' ');
        }
        Signed { headers, body }
    }
}

/// Signs `base` as `alg` names: RSASSA-PSS SHA-512 for `rsa-pss-sha512` on an RSA key, else
/// the key's own scheme (so a mismatched `alg` still yields a signature to refuse).
fn sign_as(key: &SigningKey, alg: Option<&str>, base: &[u8]) -> Vec<u8> {
    match (key, alg) {
        (SigningKey::Rsa(pair), Some("rsa-pss-sha512")) => {
            let mut sig = vec![0u8; pair.public_modulus_len()];
            pair.sign(
                &aws_lc_rs::signature::RSA_PSS_SHA512,
                &aws_lc_rs::rand::SystemRandom::new(),
                base,
                &mut sig,
            )
            .unwrap();
            sig
        }
        _ => key.sign(base).unwrap(),
    }
}

/// Base58 (Bitcoin alphabet), for FEP-521a `publicKeyMultibase` values.
pub fn base58btc(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut digits: Vec<u8> = Vec::new();
    for &b in bytes {
        let mut carry = usize::from(b);
        for d in digits.iter_mut() {
            carry += usize::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    std::iter::repeat_n('1', zeros)
        .chain(
            digits
                .iter()
                .rev()
                .map(|&d| ALPHABET[usize::from(d)] as char),
        )
        .collect()
}

/// `z` + base58btc(0xed01 + raw key): the Multikey form of an Ed25519 key.
pub fn ed25519_multibase(key: &SigningKey) -> String {
    let pem = key.public_key_pem().unwrap();
    let (_, spki) = inboxguard::signature::signing_key::pem_decode(&pem).unwrap();
    // An Ed25519 SPKI is a fixed 12-byte header followed by the 32-byte key.
    assert_eq!(spki.len(), 44, "not an Ed25519 SPKI");
    let mut prefixed = vec![0xed, 0x01];
    prefixed.extend_from_slice(&spki[12..]);
    format!("z{}", base58btc(&prefixed))
}
