//! Signature verification for every key type and scheme the trust core accepts, with keys in
//! each encoding it reads: RSA against vectors made by another implementation (Python's
//! `cryptography`, see tests/data/rsa_vectors.py), since ring cannot make RSA keys.

use packman_tuf::crypto::{check_public_key, verify, CryptoError, Signer};

fn rsa_vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("data/rsa-2048.json")).unwrap()
}

const RSA_SCHEMES: [&str; 6] = [
    "rsassa-pss-sha256",
    "rsassa-pss-sha384",
    "rsassa-pss-sha512",
    "rsa-pkcs1v15-sha256",
    "rsa-pkcs1v15-sha384",
    "rsa-pkcs1v15-sha512",
];

/// Each RSA scheme verifies its own signature, and only its own: a signature under one
/// scheme is no signature under another, nor over other bytes.
#[test]
fn every_rsa_scheme_verifies_its_own_signatures_only() {
    let v = rsa_vectors();
    let (pem, msg) = (v["pem"].as_str().unwrap(), v["message"].as_str().unwrap().as_bytes());
    for scheme in RSA_SCHEMES {
        let sig = v[scheme].as_str().unwrap();
        verify("rsa", scheme, pem, msg, sig).unwrap_or_else(|e| panic!("{scheme}: {e}"));
        assert_eq!(verify("rsa", scheme, pem, b"other bytes", sig), Err(CryptoError::BadSignature), "{scheme}");
        for other in RSA_SCHEMES.iter().filter(|s| **s != scheme) {
            assert_eq!(verify("rsa", other, pem, msg, sig), Err(CryptoError::BadSignature), "{scheme} as {other}");
        }
    }
    // A scheme packman does not know is refused, not guessed at.
    assert!(matches!(
        verify("rsa", "rsassa-pss-sha1", pem, msg, v["rsassa-pss-sha256"].as_str().unwrap()),
        Err(CryptoError::Unsupported { .. })
    ));
    // An RSA key is not an Ed25519 or ECDSA key.
    for (keytype, scheme) in [("ed25519", "ed25519"), ("ecdsa", "ecdsa-sha2-nistp256")] {
        assert!(matches!(check_public_key(keytype, scheme, pem), Err(CryptoError::BadPublicKey(_))), "{keytype}");
    }
}

/// Hex-encoded SubjectPublicKeyInfo DER is read for Ed25519 and ECDSA as well as raw keys,
/// and the key's algorithm must match the keytype either way.
#[test]
fn keys_as_hex_der_are_read_and_must_match_their_keytype() {
    let (ed, _) = Signer::generate_ed25519().unwrap();
    let raw = hex::decode(&ed.public_key().keyval.public).unwrap();
    // SPKI for Ed25519: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING key }.
    let mut der = hex::decode("302a300506032b6570032100").unwrap();
    der.extend_from_slice(&raw);
    let ed_der = hex::encode(&der);
    let sig = ed.sign(b"m").unwrap().sig;
    verify("ed25519", "ed25519", &ed_der, b"m", &sig).unwrap();
    assert_eq!(verify("ed25519", "ed25519", &ed_der, b"n", &sig), Err(CryptoError::BadSignature));
    // 32 bytes that are not the key, as hex: a wrong key, not a parse error.
    assert_eq!(verify("ed25519", "ed25519", &"00".repeat(32), b"m", &sig), Err(CryptoError::BadSignature));
    assert!(matches!(verify("ed25519", "ed25519", &"00".repeat(31), b"m", &sig), Err(CryptoError::BadPublicKey(_))));

    let (ec, _) = Signer::generate_ecdsa_p256().unwrap();
    let pem = &ec.public_key().keyval.public;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let ec_der = hex::encode(base64_decode(&b64));
    let sig = ec.sign(b"m").unwrap().sig;
    verify("ecdsa", "ecdsa-sha2-nistp256", &ec_der, b"m", &sig).unwrap();
    assert_eq!(verify("ecdsa", "ecdsa-sha2-nistp256", &ec_der, b"n", &sig), Err(CryptoError::BadSignature));

    // Each DER key under the other's keytype: refused by its algorithm.
    assert!(matches!(check_public_key("ed25519", "ed25519", &ec_der), Err(CryptoError::BadPublicKey(_))));
    assert!(matches!(check_public_key("ecdsa", "ecdsa-sha2-nistp256", &ed_der), Err(CryptoError::BadPublicKey(_))));
    assert!(matches!(check_public_key("rsa", "rsassa-pss-sha256", &ed_der), Err(CryptoError::BadPublicKey(_))));
}

/// Standard base64 (the PEM body), without a dependency for it.
fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
