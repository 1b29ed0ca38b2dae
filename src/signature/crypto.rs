//! Public keys and the signature primitives (aws-lc-rs).
//!
//! OWNER: signature helper.

/// A remote actor's public key, parsed once when fetched and shared (`Arc`) by the cache.
#[derive(Debug)]
pub struct PublicKey {}

#[derive(Debug, thiserror::Error)]
pub enum KeyParseError {
    #[error("not a PEM public key")]
    NotPem,
}

impl PublicKey {
    /// Parses `publicKeyPem` (SPKI "BEGIN PUBLIC KEY", or PKCS#1 "BEGIN RSA PUBLIC KEY");
    /// RSA (2048..8192 bits) or Ed25519.
    pub fn from_pem(_pem: &str) -> Result<PublicKey, KeyParseError> {
        todo!("signature helper")
    }
}
