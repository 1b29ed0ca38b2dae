//! Public keys (`publicKeyPem`) and the one signature primitive each kind supports (aws-lc-rs).
//!
//! A key is parsed once, when it is fetched, into an aws-lc-rs `ParsedPublicKey`; the key
//! cache shares it and every verification reuses the parsed form, so the hot path does no DER
//! or bignum parsing.

use super::signing_key::pem_decode;
use aws_lc_rs::signature::{
    ParsedPublicKey, RsaParameters, VerificationAlgorithm, ED25519,
    RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256,
};

/// rsaEncryption (1.2.840.113549.1.1.1), the OID content bytes inside an SPKI.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-Ed25519 (1.3.101.112).
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const ED25519_KEY_LEN: usize = 32;

/// Which signature scheme a key verifies: RSA keys verify RSASSA-PKCS1-v1_5 with SHA-256
/// (what both `rsa-sha256` and `hs2019` mean to Mastodon), Ed25519 keys verify Ed25519.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ed25519,
}

/// A remote actor's public key, parsed once when fetched and shared (`Arc`) by the cache.
pub struct PublicKey {
    kind: KeyKind,
    /// Modulus size for RSA keys, 256 for Ed25519 (for logs and metrics).
    bits: u32,
    key: ParsedPublicKey,
}

// The derived Debug of `ParsedPublicKey` dumps the whole key in hex; a kind and size is what a
// log line needs.
impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({:?}, {} bits)", self.kind, self.bits)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyParseError {
    /// No `-----BEGIN ...-----`/`-----END ...-----` block, or its base64 does not decode.
    #[error("not a PEM public key")]
    NotPem,
    /// A PEM block that is not `PUBLIC KEY` or `RSA PUBLIC KEY` (e.g. a certificate).
    #[error("unsupported PEM label {0:?} (want PUBLIC KEY or RSA PUBLIC KEY)")]
    UnsupportedLabel(String),
    /// The `PUBLIC KEY` block is not a DER SubjectPublicKeyInfo.
    #[error("malformed SubjectPublicKeyInfo")]
    MalformedSpki,
    /// An SPKI for an algorithm other than rsaEncryption or Ed25519 (EC, RSA-PSS, ...).
    #[error("unsupported public key algorithm (want RSA or Ed25519)")]
    UnsupportedAlgorithm,
    /// An RSA modulus outside the accepted range.
    #[error("RSA key of {bits} bits refused (accepted: {min}..={max})")]
    RsaKeySize { bits: u32, min: u32, max: u32 },
    /// aws-lc-rs refused the key material itself.
    #[error("public key rejected: {0}")]
    Rejected(String),
}

impl PublicKey {
    /// Parses `publicKeyPem` (SPKI "BEGIN PUBLIC KEY" holding RSA or Ed25519, or PKCS#1
    /// "BEGIN RSA PUBLIC KEY"). RSA keys must be 2048..=8192 bits.
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyParseError> {
        Self::parse(pem, &RSA_PKCS1_2048_8192_SHA256)
    }

    /// Like [`PublicKey::from_pem`] but also accepts 1024-bit RSA keys.
    ///
    /// Only for the draft-cavage Appendix C test vectors, whose published key is 1024 bits.
    /// Never use it for keys from the network: 1024-bit RSA is within reach of a determined
    /// attacker.
    pub fn from_pem_allow_legacy_1024(pem: &str) -> Result<PublicKey, KeyParseError> {
        Self::parse(pem, &RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY)
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// RSA modulus size in bits; 256 for Ed25519.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Verifies `signature` over `message`: RSASSA-PKCS1-v1_5 with SHA-256 for RSA keys,
    /// Ed25519 for Ed25519 keys.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }

    fn parse(pem: &str, rsa: &'static RsaParameters) -> Result<PublicKey, KeyParseError> {
        let (label, der) = pem_decode(pem).ok_or(KeyParseError::NotPem)?;
        match label.as_str() {
            "RSA PUBLIC KEY" => Self::rsa(&der, rsa),
            "PUBLIC KEY" => {
                let (oid, key) = split_spki(&der).ok_or(KeyParseError::MalformedSpki)?;
                if oid == OID_RSA_ENCRYPTION {
                    // The subjectPublicKey of an rsaEncryption SPKI is the PKCS#1 RSAPublicKey.
                    Self::rsa(key, rsa)
                } else if oid == OID_ED25519 {
                    if key.len() != ED25519_KEY_LEN {
                        return Err(KeyParseError::MalformedSpki);
                    }
                    let key = ParsedPublicKey::new(&ED25519, key)
                        .map_err(|e| KeyParseError::Rejected(e.to_string()))?;
                    Ok(PublicKey {
                        kind: KeyKind::Ed25519,
                        bits: 256,
                        key,
                    })
                } else {
                    Err(KeyParseError::UnsupportedAlgorithm)
                }
            }
            other => Err(KeyParseError::UnsupportedLabel(other.to_string())),
        }
    }

    /// `pkcs1` is a DER RSAPublicKey.
    fn rsa(pkcs1: &[u8], params: &'static RsaParameters) -> Result<PublicKey, KeyParseError> {
        // aws-lc-rs checks the modulus size only when verifying; refusing here means a weak
        // key never enters the cache and the error names the real cause.
        let bits = RsaParameters::public_modulus_len(pkcs1)
            .map_err(|_| KeyParseError::Rejected("not an RSAPublicKey".to_string()))?;
        let (min, max) = (params.min_modulus_len(), params.max_modulus_len());
        if bits < min || bits > max {
            return Err(KeyParseError::RsaKeySize { bits, min, max });
        }
        let alg: &'static dyn VerificationAlgorithm = params;
        let key =
            ParsedPublicKey::new(alg, pkcs1).map_err(|e| KeyParseError::Rejected(e.to_string()))?;
        Ok(PublicKey {
            kind: KeyKind::Rsa,
            bits,
            key,
        })
    }
}

/// Splits a DER SubjectPublicKeyInfo into (algorithm OID content, subjectPublicKey bytes).
/// Only as much DER as that needs; aws-lc-rs validates the key itself.
fn split_spki(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (spki, rest) = der_read(der, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (alg_id, rest) = der_read(spki, 0x30)?;
    let (bit_string, trailing) = der_read(rest, 0x03)?;
    if !trailing.is_empty() {
        return None;
    }
    let (oid, _params) = der_read(alg_id, 0x06)?;
    // First content byte of a BIT STRING counts unused bits; a key is whole bytes.
    match bit_string.split_first()? {
        (0, key) => Some((oid, key)),
        _ => None,
    }
}

/// Reads one DER element with tag `tag`; returns (content, rest). Definite lengths only.
fn der_read(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, input) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        // 0x80 is BER's indefinite length; more than 3 length bytes is far beyond any key.
        if n == 0 || n > 3 || input.len() < n {
            return None;
        }
        let (len_bytes, rest) = input.split_at(n);
        input = rest;
        len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if input.len() < len {
        return None;
    }
    Some(input.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::signing_key::{pem_encode, SigningKey};

    const CAVAGE_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDCFENGw33yGihy92pDjZQhl0C3
6rPJj+CvfSC8+q28hxA161QFNUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6
Z4UMR7EOcpfdUE9Hf3m/hs+FUR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJw
oYi+1hqp1fIekaxsyQIDAQAB
-----END PUBLIC KEY-----
";

    #[test]
    fn rsa_spki_verifies_and_rejects_tampering() {
        let sk = SigningKey::generate_rsa_2048().unwrap();
        let pk = PublicKey::from_pem(&sk.public_key_pem().unwrap()).unwrap();
        assert_eq!(pk.kind(), KeyKind::Rsa);
        assert_eq!(pk.bits(), 2048);
        let sig = sk.sign(b"message").unwrap();
        assert!(pk.verify(b"message", &sig));
        assert!(!pk.verify(b"messagf", &sig));
        assert!(!pk.verify(b"message", &sig[1..]));
    }

    #[test]
    fn rsa_pkcs1_pem_is_accepted() {
        let sk = SigningKey::generate_rsa_2048().unwrap();
        let spki = pem_decode(&sk.public_key_pem().unwrap()).unwrap().1;
        let (_, pkcs1) = split_spki(&spki).unwrap();
        let pk = PublicKey::from_pem(&pem_encode("RSA PUBLIC KEY", pkcs1)).unwrap();
        assert!(pk.verify(b"m", &sk.sign(b"m").unwrap()));
    }

    #[test]
    fn ed25519_spki_verifies() {
        let sk = SigningKey::generate_ed25519().unwrap();
        let pk = PublicKey::from_pem(&sk.public_key_pem().unwrap()).unwrap();
        assert_eq!(pk.kind(), KeyKind::Ed25519);
        let sig = sk.sign(b"message").unwrap();
        assert!(pk.verify(b"message", &sig));
        assert!(!pk.verify(b"messagf", &sig));
    }

    #[test]
    fn rsa_1024_refused_by_default_and_accepted_by_legacy_constructor() {
        match PublicKey::from_pem(CAVAGE_PUBLIC) {
            Err(KeyParseError::RsaKeySize { bits: 1024, .. }) => {}
            other => panic!("expected RsaKeySize, got {other:?}"),
        }
        let pk = PublicKey::from_pem_allow_legacy_1024(CAVAGE_PUBLIC).unwrap();
        assert_eq!(pk.bits(), 1024);
    }

    #[test]
    fn unsupported_inputs_are_refused() {
        assert!(matches!(
            PublicKey::from_pem("junk"),
            Err(KeyParseError::NotPem)
        ));
        assert!(matches!(
            PublicKey::from_pem(&pem_encode("CERTIFICATE", b"\x30\x00")),
            Err(KeyParseError::UnsupportedLabel(_))
        ));
        assert!(matches!(
            PublicKey::from_pem(&pem_encode("PUBLIC KEY", b"\x30\x03\x02\x01\x00")),
            Err(KeyParseError::MalformedSpki)
        ));
        // A P-256 SPKI (id-ecPublicKey) from RFC 9421 B.1.3.
        let ec = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lf
w0EkjqF7xB4FivAxzic30tMM4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==
-----END PUBLIC KEY-----
";
        assert!(matches!(
            PublicKey::from_pem(ec),
            Err(KeyParseError::UnsupportedAlgorithm)
        ));
    }

    #[test]
    fn der_reader_never_panics_on_truncations() {
        let sk = SigningKey::generate_rsa_2048().unwrap();
        let spki = pem_decode(&sk.public_key_pem().unwrap()).unwrap().1;
        for n in 0..spki.len() {
            assert!(split_spki(&spki[..n]).is_none(), "prefix {n} accepted");
        }
        assert!(split_spki(&spki).is_some());
        // Indefinite and over-long lengths.
        assert!(der_read(&[0x30, 0x80, 0, 0], 0x30).is_none());
        assert!(der_read(&[0x30, 0x84, 0, 0, 0, 1, 0], 0x30).is_none());
    }
}
