//! Public keys (`publicKeyPem`, or a FEP-521a `Multikey`'s `publicKeyMultibase`) and the
//! signature schemes each kind verifies (aws-lc-rs).
//!
//! A fetched key is parsed in full once, which checks it, and cached as a [`CompactKey`] (the
//! DER aws-lc-rs parses, a fifth of the parsed form). The key cache keeps the parsed
//! [`PublicKey`]s of the keys used most recently beside it, so a busy sender's verification
//! does no DER or bignum parsing; a key outside that set is parsed from its DER again.

use super::signing_key::pem_decode;
use aws_lc_rs::signature::{
    ParsedPublicKey, RsaParameters, VerificationAlgorithm, ED25519,
    RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256,
    RSA_PSS_2048_8192_SHA512,
};
use std::sync::OnceLock;

/// rsaEncryption (1.2.840.113549.1.1.1), the OID content bytes inside an SPKI.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-Ed25519 (1.3.101.112).
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const ED25519_KEY_LEN: usize = 32;
/// Multicodec prefixes (unsigned varints) of FEP-521a `publicKeyMultibase` values.
const MULTICODEC_ED25519_PUB: &[u8] = &[0xed, 0x01];
const MULTICODEC_RSA_PUB: &[u8] = &[0x85, 0x24];
/// Longest `publicKeyMultibase` we decode: an 8192-bit RSA key is ~1.4 KB of base58.
const MAX_MULTIBASE_CHARS: usize = 2048;

/// Which signature scheme a key verifies: RSA keys verify RSASSA-PKCS1-v1_5 with SHA-256
/// (what both `rsa-sha256` and `hs2019` mean to Mastodon), Ed25519 keys verify Ed25519.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ed25519,
}

/// A signature scheme, as RFC 9421 names them (`alg`). What draft-cavage means by
/// `rsa-sha256`/`hs2019` is [`Scheme::RsaV1_5Sha256`] for RSA keys, [`Scheme::Ed25519`] for
/// Ed25519 keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (`rsa-v1_5-sha256`).
    RsaV1_5Sha256,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512, 64-byte salt (`rsa-pss-sha512`).
    RsaPssSha512,
    /// Ed25519 (`ed25519`).
    Ed25519,
}

impl Scheme {
    /// The key kind that can verify this scheme.
    pub fn key_kind(self) -> KeyKind {
        match self {
            Scheme::RsaV1_5Sha256 | Scheme::RsaPssSha512 => KeyKind::Rsa,
            Scheme::Ed25519 => KeyKind::Ed25519,
        }
    }

    /// The RFC 9421 `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::RsaV1_5Sha256 => "rsa-v1_5-sha256",
            Scheme::RsaPssSha512 => "rsa-pss-sha512",
            Scheme::Ed25519 => "ed25519",
        }
    }
}

/// A remote actor's public key, parsed into the form aws-lc-rs verifies with (~1.5 KB for
/// RSA-2048: the RSA struct with its Montgomery context). The key cache keeps keys as
/// [`CompactKey`]s and parses only the hot ones into this (`keys::parsed`).
pub struct PublicKey {
    kind: KeyKind,
    /// Modulus size for RSA keys, 256 for Ed25519 (for logs and metrics).
    bits: u32,
    /// PKCS#1 v1.5 SHA-256 for RSA keys, Ed25519 for Ed25519 keys. It keeps the bytes it was
    /// parsed from (PKCS#1 DER, or the 32 raw Ed25519 bytes): [`PublicKey::compact`] and the
    /// RSA-PSS form are made from them.
    key: ParsedPublicKey,
    /// RSA keys of 2048 bits or more only: the same key bound to RSA-PSS SHA-512 (aws-lc-rs
    /// binds one scheme per parsed key), parsed on first use: almost every sender signs
    /// rsa-sha256, and a second parsed key costs ~1 KiB for each parsed key.
    pss: Option<OnceLock<Option<ParsedPublicKey>>>,
}

/// A public key as the key cache stores it: the bytes aws-lc-rs parses it from (PKCS#1
/// `RSAPublicKey` DER, ~270 bytes for RSA-2048, or the 32 raw bytes of an Ed25519 key),
/// made only from a [`PublicKey`] that parsed, so [`CompactKey::parse`] accepts it again.
/// A fifth of the parsed form's memory.
#[derive(Clone, PartialEq, Eq)]
pub struct CompactKey {
    kind: KeyKind,
    bits: u32,
    bytes: Box<[u8]>,
}

impl std::fmt::Debug for CompactKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CompactKey({:?}, {} bits)", self.kind, self.bits)
    }
}

impl CompactKey {
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// RSA modulus size in bits; 256 for Ed25519.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The verifying form, as the key it was made from was parsed: RSA keys with the limits
    /// they were accepted under (a 1024-bit key only came from
    /// [`PublicKey::from_pem_allow_legacy_1024`]).
    pub fn parse(&self) -> Result<PublicKey, KeyParseError> {
        match self.kind {
            KeyKind::Ed25519 => PublicKey::from_ed25519_bytes(&self.bytes),
            KeyKind::Rsa if self.bits < RSA_PKCS1_2048_8192_SHA256.min_modulus_len() => {
                PublicKey::rsa(&self.bytes, &RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY)
            }
            KeyKind::Rsa => PublicKey::rsa(&self.bytes, &RSA_PKCS1_2048_8192_SHA256),
        }
    }
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
    /// A `publicKeyMultibase` that is not base58btc (`z...`) or does not decode.
    #[error("not a base58btc multibase value")]
    NotMultibase,
    /// A multikey whose multicodec prefix is neither ed25519-pub (0xed) nor rsa-pub (0x1205).
    #[error("unsupported multikey type (want ed25519-pub or rsa-pub)")]
    UnsupportedMulticodec,
    /// An Ed25519 key that is not 32 bytes.
    #[error("Ed25519 key of {0} bytes (want 32)")]
    Ed25519Length(usize),
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

    /// A raw 32-byte Ed25519 public key.
    pub fn from_ed25519_bytes(raw: &[u8]) -> Result<PublicKey, KeyParseError> {
        if raw.len() != ED25519_KEY_LEN {
            return Err(KeyParseError::Ed25519Length(raw.len()));
        }
        let key = ParsedPublicKey::new(&ED25519, raw)
            .map_err(|e| KeyParseError::Rejected(e.to_string()))?;
        Ok(PublicKey {
            kind: KeyKind::Ed25519,
            bits: 256,
            key,
            pss: None,
        })
    }

    /// The compact form the key cache keeps: ~270 bytes instead of ~1.5 KB for RSA-2048.
    pub fn compact(&self) -> CompactKey {
        CompactKey {
            kind: self.kind,
            bits: self.bits,
            bytes: self.key.as_ref().into(),
        }
    }

    /// A DER `RSAPublicKey` (PKCS#1), 2048..=8192 bits.
    pub fn from_rsa_pkcs1_der(der: &[u8]) -> Result<PublicKey, KeyParseError> {
        Self::rsa(der, &RSA_PKCS1_2048_8192_SHA256)
    }

    /// A FEP-521a `publicKeyMultibase`: `z` + base58btc of a multicodec-prefixed key,
    /// ed25519-pub (`0xed01` + 32 bytes) or rsa-pub (`0x8524` + DER RSAPublicKey).
    pub fn from_multibase(value: &str) -> Result<PublicKey, KeyParseError> {
        let encoded = value.strip_prefix('z').ok_or(KeyParseError::NotMultibase)?;
        if encoded.len() > MAX_MULTIBASE_CHARS {
            return Err(KeyParseError::NotMultibase);
        }
        let bytes = base58btc_decode(encoded).ok_or(KeyParseError::NotMultibase)?;
        if let Some(raw) = bytes.strip_prefix(MULTICODEC_ED25519_PUB) {
            Self::from_ed25519_bytes(raw)
        } else if let Some(der) = bytes.strip_prefix(MULTICODEC_RSA_PUB) {
            Self::from_rsa_pkcs1_der(der)
        } else {
            Err(KeyParseError::UnsupportedMulticodec)
        }
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

    /// Verifies `signature` over `message` with `scheme`; false when the scheme needs another
    /// kind of key.
    pub fn verify_with(&self, scheme: Scheme, message: &[u8], signature: &[u8]) -> bool {
        let key = match (scheme, self.kind) {
            (Scheme::RsaV1_5Sha256, KeyKind::Rsa) | (Scheme::Ed25519, KeyKind::Ed25519) => {
                &self.key
            }
            (Scheme::RsaPssSha512, KeyKind::Rsa) => match self.rsa_pss() {
                Some(pss) => pss,
                None => return false,
            },
            _ => return false,
        };
        key.verify_sig(message, signature).is_ok()
    }

    /// The RSA-PSS SHA-512 form, parsed from the PKCS#1 bytes on first use; `None` for a key
    /// without one (Ed25519, legacy 1024-bit RSA).
    fn rsa_pss(&self) -> Option<&ParsedPublicKey> {
        let pkcs1 = self.key.as_ref();
        self.pss
            .as_ref()?
            .get_or_init(|| ParsedPublicKey::new(&RSA_PSS_2048_8192_SHA512, pkcs1).ok())
            .as_ref()
    }

    /// The scheme this key verifies when the sender names none: RSA -> PKCS#1 v1.5
    /// SHA-256, Ed25519 -> Ed25519.
    pub fn default_scheme(&self) -> Scheme {
        match self.kind {
            KeyKind::Rsa => Scheme::RsaV1_5Sha256,
            KeyKind::Ed25519 => Scheme::Ed25519,
        }
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
                    Self::from_ed25519_bytes(key)
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
        // Same bytes, already accepted above; a 1024-bit legacy key has no PSS (its
        // parameters start at 2048 bits), which `verify_with` reports as a failed check.
        let pss = (bits >= RSA_PSS_2048_8192_SHA512.min_modulus_len()).then(OnceLock::new);
        Ok(PublicKey {
            kind: KeyKind::Rsa,
            bits,
            key,
            pss,
        })
    }
}

/// Decodes base58 with the Bitcoin alphabet (multibase `z`). Leading `1`s are leading zero
/// bytes. Quadratic in the input length, which the caller bounds.
fn base58btc_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    if s.is_empty() {
        return None;
    }
    // Little-endian base-256 digits of the number read so far.
    let mut digits: Vec<u8> = Vec::with_capacity(s.len());
    for c in s.bytes() {
        let mut carry = ALPHABET.iter().position(|&a| a == c)?;
        for d in digits.iter_mut() {
            carry += usize::from(*d) * 58;
            *d = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            digits.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = s.bytes().take_while(|&c| c == b'1').count();
    let mut out = vec![0u8; zeros];
    out.extend(digits.iter().rev());
    Some(out)
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
mod tests;
