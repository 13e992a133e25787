//! Signing and verification keys in the PEM formats cosign users have:
//!
//! - public keys: `PUBLIC KEY` (X.509 SubjectPublicKeyInfo, what
//!   `cosign generate-key-pair` writes as `cosign.pub`), ECDSA P-256 or Ed25519;
//! - private keys: cosign's `ENCRYPTED SIGSTORE PRIVATE KEY` (and the older
//!   `ENCRYPTED COSIGN PRIVATE KEY`, see [`super::cosign_key`]), plain
//!   PKCS#8 `PRIVATE KEY` (ECDSA P-256 or Ed25519, e.g. from
//!   `openssl genpkey`) and SEC1 `EC PRIVATE KEY` (P-256).
//!
//! Signatures are cosign's: ECDSA P-256 over SHA-256 of the payload, ASN.1
//! DER encoded; Ed25519 over the payload itself (64 bytes).
//! Crypto comes from RustCrypto (`p256`, `ed25519-dalek`); this module only
//! picks the algorithm and names what is wrong with a key.

use p256::pkcs8::der::pem;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::pkcs8::{ObjectIdentifier, PrivateKeyInfoRef, spki::SubjectPublicKeyInfoRef};
use sha2::{Digest as _, Sha256};

use super::cosign_key;

/// PEM label of public keys.
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";
/// PEM label of unencrypted PKCS#8 private keys.
pub const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
/// PEM label of SEC1 EC private keys.
pub const EC_PRIVATE_KEY_LABEL: &str = "EC PRIVATE KEY";

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_ED25519: &str = "1.3.101.112";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// What is wrong with a key or a signature, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

fn err(msg: impl Into<String>) -> KeyError {
    KeyError(msg.into())
}

/// A key that verifies signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    EcdsaP256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A key that signs (the private half).
pub enum SigningKey {
    EcdsaP256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

/// Names an algorithm OID for error messages.
fn algorithm_name(oid: ObjectIdentifier, params: Option<ObjectIdentifier>) -> String {
    match (oid.to_string().as_str(), params.map(|p| p.to_string())) {
        (OID_RSA, _) => "RSA".into(),
        (OID_EC_PUBLIC_KEY, Some(curve)) => {
            format!("EC on curve {curve} (only P-256 is supported)")
        }
        (other, _) => format!("algorithm {other}"),
    }
}

/// Splits a PEM text into its label and DER bytes.
fn decode_pem(text: &[u8]) -> Result<(String, Vec<u8>), KeyError> {
    let text = trim_to_pem(text);
    let (label, der) = pem::decode_vec(text).map_err(|e| {
        err(format!(
            "not a PEM key ({e}); expected -----BEGIN ... KEY-----"
        ))
    })?;
    Ok((label.to_string(), der))
}

/// Skips text before the first `-----BEGIN` and after the matching END line
/// (comments some tools write around the block).
fn trim_to_pem(text: &[u8]) -> &[u8] {
    let start = find(text, b"-----BEGIN ").unwrap_or(0);
    let rest = &text[start..];
    match find(rest, b"-----END ") {
        Some(end) => {
            let tail = &rest[end + 9..];
            let close = find(tail, b"-----").map(|i| end + 9 + i + 5);
            &rest[..close.unwrap_or(rest.len())]
        }
        None => rest,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl PublicKey {
    /// Reads a `PUBLIC KEY` PEM (SubjectPublicKeyInfo). Errors name the
    /// label or algorithm found when it is not ECDSA P-256 or Ed25519.
    pub fn from_pem(text: &[u8]) -> Result<PublicKey, KeyError> {
        let (label, der) = decode_pem(text)?;
        if label != PUBLIC_KEY_LABEL {
            return Err(if label.contains("PRIVATE") {
                err(format!(
                    "this is a private key (`{label}`); give the public key (cosign.pub, or `openssl pkey -pubout`)"
                ))
            } else {
                err(format!(
                    "a `{label}` PEM block is not a public key; expected `-----BEGIN PUBLIC KEY-----`"
                ))
            });
        }
        PublicKey::from_spki_der(&der)
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let info = SubjectPublicKeyInfoRef::try_from(der)
            .map_err(|e| err(format!("malformed public key: {e}")))?;
        let (oid, params) = info
            .algorithm
            .oids()
            .map_err(|e| err(format!("malformed public key: {e}")))?;
        match (oid.to_string().as_str(), params.map(|p| p.to_string())) {
            (OID_EC_PUBLIC_KEY, Some(c)) if c == OID_P256 => {
                p256::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map(PublicKey::EcdsaP256)
                    .map_err(|e| err(format!("malformed ECDSA P-256 public key: {e}")))
            }
            (OID_ED25519, _) => ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::Ed25519)
                .map_err(|e| err(format!("malformed Ed25519 public key: {e}"))),
            _ => Err(err(format!(
                "unsupported public key: {} (supported: ECDSA P-256, Ed25519)",
                algorithm_name(oid, params)
            ))),
        }
    }

    /// `ecdsa-p256` or `ed25519`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::EcdsaP256(_) => "ecdsa-p256",
            PublicKey::Ed25519(_) => "ed25519",
        }
    }

    /// DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let doc = match self {
            PublicKey::EcdsaP256(k) => k.to_public_key_der(),
            PublicKey::Ed25519(k) => k.to_public_key_der(),
        };
        doc.expect("a valid key encodes").as_bytes().to_vec()
    }

    /// The `PUBLIC KEY` PEM text.
    pub fn to_pem(&self) -> String {
        pem::encode_string(PUBLIC_KEY_LABEL, pem::LineEnding::LF, &self.to_spki_der())
            .expect("PEM encoding of a small key")
    }

    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo: names a key in output.
    pub fn fingerprint(&self) -> String {
        let mut s = String::from("sha256:");
        for b in Sha256::digest(self.to_spki_der()) {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Checks `signature` (raw bytes, as cosign stores them after base64)
    /// over `payload`.
    pub fn verify(&self, payload: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        use p256::ecdsa::signature::Verifier;
        match self {
            PublicKey::EcdsaP256(k) => {
                let sig = p256::ecdsa::DerSignature::from_bytes(signature)
                    .map_err(|_| err("malformed ECDSA signature (not ASN.1 DER)"))?;
                k.verify(payload, &sig)
                    .map_err(|_| err("the signature does not match this key"))
            }
            PublicKey::Ed25519(k) => {
                let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| {
                    err(format!(
                        "malformed Ed25519 signature ({} bytes, expected 64)",
                        signature.len()
                    ))
                })?;
                k.verify_strict(payload, &sig)
                    .map_err(|_| err("the signature does not match this key"))
            }
        }
    }
}

impl SigningKey {
    /// Reads a private key PEM. `password` decrypts cosign keys (the text of
    /// `COSIGN_PASSWORD`); plain keys ignore it.
    pub fn from_pem(text: &[u8], password: Option<&[u8]>) -> Result<SigningKey, KeyError> {
        let (label, der) = decode_pem(text)?;
        match label.as_str() {
            PRIVATE_KEY_LABEL => SigningKey::from_pkcs8_der(&der),
            EC_PRIVATE_KEY_LABEL => p256::SecretKey::from_sec1_der(&der)
                .map(|k| SigningKey::EcdsaP256(k.into()))
                .map_err(|e| err(format!("malformed or non-P-256 EC private key: {e}"))),
            l if cosign_key::LABELS.contains(&l) => {
                let password = password.ok_or_else(|| {
                    err("this is an encrypted cosign key: set COSIGN_PASSWORD (empty for none)")
                })?;
                let plain = cosign_key::decrypt(&der, password)?;
                SigningKey::from_pkcs8_der(&plain)
            }
            PUBLIC_KEY_LABEL => Err(err(
                "this is a public key; signing needs the private key (cosign.key)",
            )),
            "ENCRYPTED PRIVATE KEY" => Err(err(
                "PKCS#8-encrypted (openssl) keys are not supported; decrypt it with `openssl pkey` or use a cosign key",
            )),
            other => Err(err(format!(
                "a `{other}` PEM block is not a supported private key (cosign's ENCRYPTED SIGSTORE PRIVATE KEY, PKCS#8 PRIVATE KEY or EC PRIVATE KEY)"
            ))),
        }
    }

    /// Reads a DER PKCS#8 private key: ECDSA P-256 or Ed25519.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, KeyError> {
        let info = PrivateKeyInfoRef::try_from(der)
            .map_err(|e| err(format!("malformed PKCS#8 private key: {e}")))?;
        let (oid, params) = info
            .algorithm
            .oids()
            .map_err(|e| err(format!("malformed PKCS#8 private key: {e}")))?;
        match (oid.to_string().as_str(), params.map(|p| p.to_string())) {
            (OID_EC_PUBLIC_KEY, Some(c)) if c == OID_P256 => {
                p256::ecdsa::SigningKey::from_pkcs8_der(der)
                    .map(SigningKey::EcdsaP256)
                    .map_err(|e| err(format!("malformed ECDSA P-256 private key: {e}")))
            }
            (OID_ED25519, _) => ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map(SigningKey::Ed25519)
                .map_err(|e| err(format!("malformed Ed25519 private key: {e}"))),
            _ => Err(err(format!(
                "unsupported private key: {} (supported: ECDSA P-256, Ed25519)",
                algorithm_name(oid, params)
            ))),
        }
    }

    /// A new random ECDSA P-256 key (what `cosign generate-key-pair` makes).
    pub fn generate_p256() -> SigningKey {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).expect("the kernel's random source works");
            // Out-of-range scalars (probability ~2^-32) are drawn again.
            if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&bytes) {
                return SigningKey::EcdsaP256(k);
            }
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::EcdsaP256(k) => PublicKey::EcdsaP256(*k.verifying_key()),
            SigningKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
        }
    }

    /// Signs `payload` the way cosign does (ECDSA: SHA-256, ASN.1 DER;
    /// Ed25519: pure). Deterministic (RFC 6979 / Ed25519).
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
        match self {
            SigningKey::EcdsaP256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(payload);
                sig.to_der().as_bytes().to_vec()
            }
            SigningKey::Ed25519(k) => k.sign(payload).to_bytes().to_vec(),
        }
    }

    /// DER PKCS#8 of the private key.
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        let doc = match self {
            SigningKey::EcdsaP256(k) => k.to_pkcs8_der(),
            SigningKey::Ed25519(k) => k.to_pkcs8_der(),
        };
        doc.expect("a valid key encodes").as_bytes().to_vec()
    }

    /// Plain PKCS#8 `PRIVATE KEY` PEM text.
    pub fn to_pkcs8_pem(&self) -> String {
        pem::encode_string(PRIVATE_KEY_LABEL, pem::LineEnding::LF, &self.to_pkcs8_der())
            .expect("PEM encoding of a small key")
    }

    /// cosign's encrypted private key PEM (`ENCRYPTED SIGSTORE PRIVATE KEY`).
    pub fn to_cosign_pem(&self, password: &[u8]) -> String {
        let envelope = cosign_key::encrypt(&self.to_pkcs8_der(), password);
        pem::encode_string(cosign_key::LABELS[0], pem::LineEnding::LF, &envelope)
            .expect("PEM encoding of a small key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ed25519() -> SigningKey {
        SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]))
    }

    #[test]
    fn sign_and_verify_both_algorithms() {
        for key in [SigningKey::generate_p256(), ed25519()] {
            let public = PublicKey::from_pem(key.public_key().to_pem().as_bytes()).unwrap();
            assert_eq!(public, key.public_key());
            let sig = key.sign(b"payload");
            public.verify(b"payload", &sig).unwrap();
            assert_eq!(
                public.verify(b"payloaD", &sig).unwrap_err().0,
                "the signature does not match this key"
            );
            let again = SigningKey::from_pem(key.to_pkcs8_pem().as_bytes(), None).unwrap();
            assert_eq!(again.public_key(), public);
        }
    }

    #[test]
    fn wrong_kinds_of_pem_are_named() {
        let key = SigningKey::generate_p256();
        let e = PublicKey::from_pem(key.to_pkcs8_pem().as_bytes()).unwrap_err();
        assert!(
            e.0.starts_with("this is a private key (`PRIVATE KEY`)"),
            "{e}"
        );
        let e = SigningKey::from_pem(key.public_key().to_pem().as_bytes(), None)
            .err()
            .unwrap();
        assert!(e.0.starts_with("this is a public key"), "{e}");
        let e = PublicKey::from_pem(b"hello").unwrap_err();
        assert!(e.0.starts_with("not a PEM key"), "{e}");
        let cert = pem::encode_string("CERTIFICATE", pem::LineEnding::LF, b"x").unwrap();
        let e = PublicKey::from_pem(cert.as_bytes()).unwrap_err();
        assert!(
            e.0.contains("`CERTIFICATE` PEM block is not a public key"),
            "{e}"
        );
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let key = SigningKey::generate_p256();
        let e = key.public_key().verify(b"p", b"\x30\x02junk").unwrap_err();
        assert_eq!(e.0, "malformed ECDSA signature (not ASN.1 DER)");
        let e = ed25519().public_key().verify(b"p", &[0u8; 10]).unwrap_err();
        assert_eq!(e.0, "malformed Ed25519 signature (10 bytes, expected 64)");
    }
}
