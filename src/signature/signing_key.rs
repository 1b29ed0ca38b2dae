//! Private keys that sign: the optional instance-actor key for signed key fetches, and the
//! stand-in remote servers of the demo and the tests. Verification never touches this file.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use base64::Engine;

/// An RSA (PKCS#1 v1.5, SHA-256 — what Mastodon signs with) or Ed25519 private key.
pub enum SigningKey {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

// Never print key material, not even by accident in a `{:?}` of a config.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigningKey::Rsa(_) => f.write_str("SigningKey::Rsa(<redacted>)"),
            SigningKey::Ed25519(_) => f.write_str("SigningKey::Ed25519(<redacted>)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    /// No `-----BEGIN ...-----` block, or its base64 does not decode.
    #[error("not a PEM private key")]
    NotPem,
    /// A PEM block of a kind we do not sign with.
    #[error("unsupported PEM label {0:?} (want PRIVATE KEY or RSA PRIVATE KEY)")]
    UnsupportedLabel(String),
    /// The DER inside the PEM was refused by aws-lc-rs.
    #[error("private key rejected: {0}")]
    Rejected(String),
    /// Key generation or signing failed inside aws-lc-rs.
    #[error("crypto operation failed")]
    Crypto,
}

impl SigningKey {
    pub fn generate_rsa_2048() -> Result<SigningKey, SigningKeyError> {
        RsaKeyPair::generate(KeySize::Rsa2048)
            .map(SigningKey::Rsa)
            .map_err(|_| SigningKeyError::Crypto)
    }

    pub fn generate_ed25519() -> Result<SigningKey, SigningKeyError> {
        Ed25519KeyPair::generate()
            .map(SigningKey::Ed25519)
            .map_err(|_| SigningKeyError::Crypto)
    }

    /// Reads `PRIVATE KEY` (PKCS#8: RSA or Ed25519) or `RSA PRIVATE KEY` (PKCS#1) PEM.
    pub fn from_pem(pem: &str) -> Result<SigningKey, SigningKeyError> {
        let (label, der) = pem_decode(pem).ok_or(SigningKeyError::NotPem)?;
        match label.as_str() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der)
                .map(SigningKey::Rsa)
                .map_err(|e| SigningKeyError::Rejected(e.to_string())),
            "PRIVATE KEY" => match RsaKeyPair::from_pkcs8(&der) {
                Ok(k) => Ok(SigningKey::Rsa(k)),
                Err(_) => Ed25519KeyPair::from_pkcs8(&der)
                    .map(SigningKey::Ed25519)
                    .map_err(|e| SigningKeyError::Rejected(e.to_string())),
            },
            other => Err(SigningKeyError::UnsupportedLabel(other.to_string())),
        }
    }

    /// PKCS#8 PEM of the private key (tests and the demo write it to a file).
    pub fn private_key_pem(&self) -> Result<String, SigningKeyError> {
        let der: Pkcs8V1Der<'static> = match self {
            SigningKey::Rsa(k) => k.as_der().map_err(|_| SigningKeyError::Crypto)?,
            SigningKey::Ed25519(k) => k.as_der().map_err(|_| SigningKeyError::Crypto)?,
        };
        Ok(pem_encode("PRIVATE KEY", der.as_ref()))
    }

    /// SPKI PEM (`BEGIN PUBLIC KEY`), the form actors publish as `publicKeyPem`.
    pub fn public_key_pem(&self) -> Result<String, SigningKeyError> {
        let der: PublicKeyX509Der<'static> = match self {
            SigningKey::Rsa(k) => k.public_key().as_der(),
            SigningKey::Ed25519(k) => k.public_key().as_der(),
        }
        .map_err(|_| SigningKeyError::Crypto)?;
        Ok(pem_encode("PUBLIC KEY", der.as_ref()))
    }

    /// Signs `message`: RSASSA-PKCS1-v1_5 with SHA-256, or Ed25519.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningKeyError> {
        match self {
            SigningKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| SigningKeyError::Crypto)?;
                Ok(sig)
            }
            SigningKey::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

/// Encodes DER as PEM with 64-column lines.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The label and DER of the first PEM block in `pem`.
pub fn pem_decode(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest.find(&end_marker)?;
    let b64: String = rest
        .get(body_start..body_end)?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .ok()?;
    Some((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{UnparsedPublicKey, ED25519, RSA_PKCS1_2048_8192_SHA256};

    fn spki_der(key: &SigningKey) -> Vec<u8> {
        pem_decode(&key.public_key_pem().unwrap()).unwrap().1
    }

    #[test]
    fn rsa_round_trip_through_pem() {
        let key = SigningKey::generate_rsa_2048().unwrap();
        let again = SigningKey::from_pem(&key.private_key_pem().unwrap()).unwrap();
        let sig = again.sign(b"hello").unwrap();
        let pk = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, spki_der(&key));
        assert!(pk.verify(b"hello", &sig).is_ok());
        assert!(pk.verify(b"hellp", &sig).is_err());
    }

    #[test]
    fn ed25519_round_trip_through_pem() {
        let key = SigningKey::generate_ed25519().unwrap();
        let again = SigningKey::from_pem(&key.private_key_pem().unwrap()).unwrap();
        let sig = again.sign(b"hello").unwrap();
        // Ed25519 verification takes the raw 32-byte key: the tail of the 44-byte SPKI.
        let der = spki_der(&key);
        let pk = UnparsedPublicKey::new(&ED25519, &der[der.len() - 32..]);
        assert!(pk.verify(b"hello", &sig).is_ok());
        assert!(format!("{key:?}").contains("redacted"));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            SigningKey::from_pem("nope"),
            Err(SigningKeyError::NotPem)
        ));
        let pem = pem_encode("CERTIFICATE", b"x");
        assert!(matches!(
            SigningKey::from_pem(&pem),
            Err(SigningKeyError::UnsupportedLabel(_))
        ));
    }
}
