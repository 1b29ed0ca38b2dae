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

/// RFC 9421 B.1.4 `test-key-ed25519` as a FEP-521a multikey (encoded independently, with
/// Python, from the JWK's `x`).
const RFC9421_ED25519_MULTIBASE: &str = "z6Mkh4LmfP1ev9MNPGr7JbEbtD6BD4fsu1duEj83PMCs3xHG";
const RFC9421_ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
";

#[test]
fn base58btc_known_values() {
    assert_eq!(
        base58btc_decode("2NEpo7TZRRrLZSi2U").unwrap(),
        b"Hello World!"
    );
    assert_eq!(
        base58btc_decode("11233QC4").unwrap(),
        [0, 0, 0x28, 0x7f, 0xb4, 0xcd]
    );
    assert_eq!(base58btc_decode("1").unwrap(), [0]);
    for bad in ["", "0", "O", "I", "l", "abc+", "é"] {
        assert!(base58btc_decode(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn ed25519_multikey_is_the_same_key_as_its_spki() {
    let from_multibase = PublicKey::from_multibase(RFC9421_ED25519_MULTIBASE).unwrap();
    let from_pem = PublicKey::from_pem(RFC9421_ED25519_PEM).unwrap();
    assert_eq!(from_multibase.kind(), KeyKind::Ed25519);
    assert_eq!(from_multibase.key.as_ref(), from_pem.key.as_ref());

    let sk = SigningKey::generate_ed25519().unwrap();
    let spki = pem_decode(&sk.public_key_pem().unwrap()).unwrap().1;
    let (_, raw) = split_spki(&spki).unwrap();
    let pk = PublicKey::from_ed25519_bytes(raw).unwrap();
    let sig = sk.sign(b"m").unwrap();
    assert!(pk.verify(b"m", &sig));
    assert!(pk.verify_with(Scheme::Ed25519, b"m", &sig));
    assert!(!pk.verify_with(Scheme::RsaV1_5Sha256, b"m", &sig));
    assert!(matches!(
        PublicKey::from_ed25519_bytes(&raw[1..]),
        Err(KeyParseError::Ed25519Length(31))
    ));
}

#[test]
fn rsa_multikey_and_bad_multibase_values() {
    let sk = SigningKey::generate_rsa_2048().unwrap();
    let spki = pem_decode(&sk.public_key_pem().unwrap()).unwrap().1;
    let (_, pkcs1) = split_spki(&spki).unwrap();
    let mut prefixed = MULTICODEC_RSA_PUB.to_vec();
    prefixed.extend_from_slice(pkcs1);
    let pk = PublicKey::from_multibase(&format!("z{}", base58btc_encode(&prefixed))).unwrap();
    assert_eq!((pk.kind(), pk.bits()), (KeyKind::Rsa, 2048));
    assert!(pk.verify(b"m", &sk.sign(b"m").unwrap()));

    let raw_x = RFC9421_ED25519_MULTIBASE.trim_start_matches('z');
    assert!(matches!(
        PublicKey::from_multibase(raw_x),
        Err(KeyParseError::NotMultibase)
    ));
    assert!(matches!(
        PublicKey::from_multibase("z0OIl"),
        Err(KeyParseError::NotMultibase)
    ));
    assert!(matches!(
        PublicKey::from_multibase(&format!("z{}", "2".repeat(MAX_MULTIBASE_CHARS + 1))),
        Err(KeyParseError::NotMultibase)
    ));
    // secp256k1-pub (0xe7) is a multikey we do not verify with.
    let other = format!("z{}", base58btc_encode(&[0xe7, 0x01, 2, 3]));
    assert!(matches!(
        PublicKey::from_multibase(&other),
        Err(KeyParseError::UnsupportedMulticodec)
    ));
}

#[test]
fn rsa_key_verifies_pss_sha512_only_when_asked() {
    let (sk, sig) = rsa_with_pss_signature(b"m");
    let pk = PublicKey::from_pem(&sk.public_key_pem().unwrap()).unwrap();
    assert!(pk.verify_with(Scheme::RsaPssSha512, b"m", &sig));
    assert!(!pk.verify_with(Scheme::RsaPssSha512, b"n", &sig));
    assert!(!pk.verify_with(Scheme::RsaV1_5Sha256, b"m", &sig));
    assert!(!pk.verify_with(Scheme::Ed25519, b"m", &sig));
    assert_eq!(pk.default_scheme(), Scheme::RsaV1_5Sha256);
}

/// A new RSA-2048 key and its RSA-PSS SHA-512 signature of `message` (the signer does not
/// sign PSS).
fn rsa_with_pss_signature(message: &[u8]) -> (SigningKey, Vec<u8>) {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeyPair;
    use aws_lc_rs::signature::RSA_PSS_SHA512;
    let kp = KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let mut sig = vec![0u8; kp.public_modulus_len()];
    kp.sign(&RSA_PSS_SHA512, &SystemRandom::new(), message, &mut sig)
        .unwrap();
    (SigningKey::Rsa(kp), sig)
}

/// The inverse of `base58btc_decode`, for building test inputs.
fn base58btc_encode(bytes: &[u8]) -> String {
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

#[test]
fn compact_keys_parse_back_into_the_same_verifying_key() {
    let (rsa, pss_sig) = rsa_with_pss_signature(b"m");
    let ed = SigningKey::generate_ed25519().unwrap();
    for (sk, scheme) in [(&rsa, Scheme::RsaV1_5Sha256), (&ed, Scheme::Ed25519)] {
        let original = PublicKey::from_pem(&sk.public_key_pem().unwrap()).unwrap();
        let compact = original.compact();
        assert_eq!(
            (compact.kind(), compact.bits()),
            (original.kind(), original.bits())
        );
        let again = compact.parse().unwrap();
        assert_eq!(
            (again.kind(), again.bits()),
            (original.kind(), original.bits())
        );
        assert_eq!(again.compact(), compact);
        let sig = sk.sign(b"m").unwrap();
        assert!(again.verify_with(scheme, b"m", &sig));
        assert!(!again.verify_with(scheme, b"n", &sig));
    }
    // RSA: PKCS#1 DER, ~270 bytes for 2048 bits; its PSS form comes back too.
    let compact = PublicKey::from_pem(&rsa.public_key_pem().unwrap())
        .unwrap()
        .compact();
    assert!(compact.bytes.len() < 300, "{}", compact.bytes.len());
    let again = compact.parse().unwrap();
    assert!(again.verify_with(Scheme::RsaPssSha512, b"m", &pss_sig));
    assert!(!again.verify_with(Scheme::RsaV1_5Sha256, b"m", &pss_sig));
    // Ed25519: the 32 raw bytes.
    let ed_compact = PublicKey::from_pem(&ed.public_key_pem().unwrap())
        .unwrap()
        .compact();
    assert_eq!(ed_compact.bytes.len(), ED25519_KEY_LEN);
}

#[test]
fn a_compact_legacy_key_keeps_the_limits_it_was_accepted_under() {
    // The draft-cavage vectors' 1024-bit key parses only through the legacy constructor; its
    // compact form parses back (the same key), still without a PSS form.
    let legacy = PublicKey::from_pem_allow_legacy_1024(CAVAGE_PUBLIC).unwrap();
    let again = legacy.compact().parse().unwrap();
    assert_eq!(again.bits(), 1024);
    assert!(again.pss.is_none());
    assert!(PublicKey::from_pem(CAVAGE_PUBLIC).is_err());
}
