//! Signature verification and signing for the key types TUF names: `ed25519`, `ecdsa`
//! (P-256/P-384, DER signatures, PEM or hex public keys) and `rsa` (PSS and PKCS#1 v1.5 with
//! SHA-256/384/512). All arithmetic is ring's.

use ring::signature::{self, KeyPair, UnparsedPublicKey, VerificationAlgorithm};
use spki::der::{Decode, DecodePem};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoOwned};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    #[error("unsupported key type/scheme {keytype}/{scheme}")]
    Unsupported { keytype: String, scheme: String },
    #[error("public key cannot be decoded: {0}")]
    BadPublicKey(String),
    #[error("signature is not valid hex")]
    BadSignatureEncoding,
    #[error("signature does not verify")]
    BadSignature,
    #[error("key generation or signing failed: {0}")]
    Signing(String),
}

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Verifies `sig_hex` over `msg` with the public key described by (keytype, scheme, public).
pub fn verify(keytype: &str, scheme: &str, public: &str, msg: &[u8], sig_hex: &str) -> Result<(), CryptoError> {
    let (alg, key) = verifier(keytype, scheme, public)?;
    let sig = hex::decode(sig_hex).map_err(|_| CryptoError::BadSignatureEncoding)?;
    UnparsedPublicKey::new(alg, key).verify(msg, &sig).map_err(|_| CryptoError::BadSignature)
}

/// Checks that the key can be used at all (decodable, supported); signatures aside.
pub fn check_public_key(keytype: &str, scheme: &str, public: &str) -> Result<(), CryptoError> {
    verifier(keytype, scheme, public).map(|_| ())
}

fn verifier(
    keytype: &str,
    scheme: &str,
    public: &str,
) -> Result<(&'static dyn VerificationAlgorithm, Vec<u8>), CryptoError> {
    let unsupported = || CryptoError::Unsupported { keytype: keytype.to_string(), scheme: scheme.to_string() };
    match (keytype, scheme) {
        ("ed25519", "ed25519") => {
            let key = decode_public(public, Expect::Ed25519)?;
            if key.len() != 32 {
                return Err(CryptoError::BadPublicKey("ed25519 key must be 32 bytes".into()));
            }
            Ok((&signature::ED25519, key))
        }
        ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
            Ok((&signature::ECDSA_P256_SHA256_ASN1, decode_public(public, Expect::Ec(OID_P256))?))
        }
        ("ecdsa" | "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384") => {
            Ok((&signature::ECDSA_P384_SHA384_ASN1, decode_public(public, Expect::Ec(OID_P384))?))
        }
        ("rsa", _) => {
            // ring accepts 2048-8192 bit moduli; PSS salt length equal to the digest length,
            // which is what securesystemslib and go-tuf sign with.
            let alg: &'static dyn VerificationAlgorithm = match scheme {
                "rsassa-pss-sha256" => &signature::RSA_PSS_2048_8192_SHA256,
                "rsassa-pss-sha384" => &signature::RSA_PSS_2048_8192_SHA384,
                "rsassa-pss-sha512" => &signature::RSA_PSS_2048_8192_SHA512,
                "rsa-pkcs1v15-sha256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "rsa-pkcs1v15-sha384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "rsa-pkcs1v15-sha512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                _ => return Err(unsupported()),
            };
            Ok((alg, decode_public(public, Expect::Rsa)?))
        }
        _ => Err(unsupported()),
    }
}

#[derive(Clone, Copy)]
enum Expect {
    Ed25519,
    Ec(ObjectIdentifier),
    Rsa,
}

/// Returns the raw key bytes ring wants: the 32-byte Ed25519 key, the uncompressed EC point,
/// or the PKCS#1 RSAPublicKey DER.
fn decode_public(public: &str, expect: Expect) -> Result<Vec<u8>, CryptoError> {
    let bad = |m: &str| CryptoError::BadPublicKey(m.to_string());
    let trimmed = public.trim();
    let spki = if trimmed.starts_with("-----BEGIN") {
        SubjectPublicKeyInfoOwned::from_pem(trimmed.as_bytes())
            .map_err(|e| CryptoError::BadPublicKey(format!("PEM: {e}")))?
    } else {
        let raw = hex::decode(trimmed).map_err(|_| bad("neither PEM nor hex"))?;
        match expect {
            Expect::Ed25519 if raw.len() == 32 => return Ok(raw),
            // An uncompressed point, as older ecdsa-sha2-nistp256 keys are written.
            Expect::Ec(_) if raw.first() == Some(&0x04) => return Ok(raw),
            _ => {
                SubjectPublicKeyInfoOwned::from_der(&raw).map_err(|e| CryptoError::BadPublicKey(format!("DER: {e}")))?
            }
        }
    };
    let alg = &spki.algorithm;
    let ok = match expect {
        Expect::Ed25519 => alg.oid == OID_ED25519,
        Expect::Rsa => alg.oid == OID_RSA,
        Expect::Ec(curve) => {
            alg.oid == OID_EC_PUBLIC_KEY
                && alg
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                    .is_some_and(|c| c == curve)
        }
    };
    if !ok {
        return Err(bad("key algorithm does not match keytype/scheme"));
    }
    spki.subject_public_key.as_bytes().map(<[u8]>::to_vec).ok_or_else(|| bad("public key bit string has unused bits"))
}

/// A private key that can sign metadata. The publisher keeps these in key files; tests and
/// the demo generate them in memory.
pub struct Signer {
    inner: SignerKind,
    public: crate::Key,
    keyid: String,
}

enum SignerKind {
    Ed25519(signature::Ed25519KeyPair),
    EcdsaP256(signature::EcdsaKeyPair),
}

impl Signer {
    /// A fresh Ed25519 key; returns the signer and its PKCS#8 private key document.
    pub fn generate_ed25519() -> Result<(Signer, Vec<u8>), CryptoError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| CryptoError::Signing(e.to_string()))?;
        let signer = Self::ed25519_from_pkcs8(pkcs8.as_ref())?;
        Ok((signer, pkcs8.as_ref().to_vec()))
    }

    pub fn ed25519_from_pkcs8(pkcs8: &[u8]) -> Result<Signer, CryptoError> {
        let kp = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|e| CryptoError::Signing(e.to_string()))?;
        let public = crate::Key::new("ed25519", "ed25519", hex::encode(kp.public_key().as_ref()));
        Ok(Self::with(SignerKind::Ed25519(kp), public))
    }

    /// A fresh ECDSA P-256 key (the securesystemslib default); PKCS#8 document returned.
    pub fn generate_ecdsa_p256() -> Result<(Signer, Vec<u8>), CryptoError> {
        let rng = ring::rand::SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 =
            signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| CryptoError::Signing(e.to_string()))?;
        let signer = Self::ecdsa_p256_from_pkcs8(pkcs8.as_ref())?;
        Ok((signer, pkcs8.as_ref().to_vec()))
    }

    pub fn ecdsa_p256_from_pkcs8(pkcs8: &[u8]) -> Result<Signer, CryptoError> {
        let rng = ring::rand::SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let kp =
            signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng).map_err(|e| CryptoError::Signing(e.to_string()))?;
        let pem = p256_spki_pem(kp.public_key().as_ref());
        let public = crate::Key::new("ecdsa", "ecdsa-sha2-nistp256", pem);
        Ok(Self::with(SignerKind::EcdsaP256(kp), public))
    }

    fn with(inner: SignerKind, public: crate::Key) -> Signer {
        let keyid = public.compute_keyid();
        Signer { inner, public, keyid }
    }

    pub fn public_key(&self) -> &crate::Key {
        &self.public
    }

    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    pub fn sign(&self, msg: &[u8]) -> Result<crate::Signature, CryptoError> {
        let sig = match &self.inner {
            SignerKind::Ed25519(kp) => kp.sign(msg).as_ref().to_vec(),
            SignerKind::EcdsaP256(kp) => kp
                .sign(&ring::rand::SystemRandom::new(), msg)
                .map_err(|e| CryptoError::Signing(e.to_string()))?
                .as_ref()
                .to_vec(),
        };
        Ok(crate::Signature { keyid: self.keyid.clone(), sig: hex::encode(sig) })
    }
}

fn p256_spki_pem(point: &[u8]) -> String {
    // SubjectPublicKeyInfo prefix for id-ecPublicKey + prime256v1 with a 65-byte point.
    const PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
        0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(point);
    spki::der::pem::encode_string("PUBLIC KEY", spki::der::pem::LineEnding::LF, &der).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_and_ecdsa_sign_and_verify_round_trip() {
        for (signer, _) in [Signer::generate_ed25519().unwrap(), Signer::generate_ecdsa_p256().unwrap()] {
            let k = signer.public_key();
            let sig = signer.sign(b"hello").unwrap();
            verify(&k.keytype, &k.scheme, &k.keyval.public, b"hello", &sig.sig).unwrap();
            assert_eq!(
                verify(&k.keytype, &k.scheme, &k.keyval.public, b"hellO", &sig.sig),
                Err(CryptoError::BadSignature)
            );
            assert_eq!(
                verify(&k.keytype, &k.scheme, &k.keyval.public, b"hello", "zz"),
                Err(CryptoError::BadSignatureEncoding)
            );
        }
    }

    #[test]
    fn ec_key_of_the_wrong_curve_is_refused() {
        let (signer, _) = Signer::generate_ecdsa_p256().unwrap();
        let pem = &signer.public_key().keyval.public;
        let err = check_public_key("ecdsa", "ecdsa-sha2-nistp384", pem).unwrap_err();
        assert!(matches!(err, CryptoError::BadPublicKey(_)), "{err}");
    }

    #[test]
    fn hex_encoded_uncompressed_point_is_accepted() {
        let (signer, _) = Signer::generate_ecdsa_p256().unwrap();
        let pem = &signer.public_key().keyval.public;
        let spki = SubjectPublicKeyInfoOwned::from_pem(pem.as_bytes()).unwrap();
        let point = hex::encode(spki.subject_public_key.raw_bytes());
        let sig = signer.sign(b"m").unwrap();
        verify("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256", &point, b"m", &sig.sig).unwrap();
    }

    #[test]
    fn unknown_scheme_is_unsupported_not_a_panic() {
        assert!(matches!(verify("dsa", "dsa-sha1", "00", b"m", "00"), Err(CryptoError::Unsupported { .. })));
        assert!(matches!(verify("ed25519", "ed25519", "not hex", b"m", "00"), Err(CryptoError::BadPublicKey(_))));
    }
}
