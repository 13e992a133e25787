//! cosign's encrypted private keys (`cosign generate-key-pair`): the PEM
//! block `ENCRYPTED SIGSTORE PRIVATE KEY` (older cosign: `ENCRYPTED COSIGN
//! PRIVATE KEY`) holds a JSON envelope
//!
//! ```json
//! {"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"<base64, 32 bytes>"},
//!  "cipher":{"name":"nacl/secretbox","nonce":"<base64, 24 bytes>"},
//!  "ciphertext":"<base64>"}
//! ```
//!
//! where the 32-byte secretbox key is scrypt(password, salt) and the
//! plaintext is the DER PKCS#8 private key (cosign today writes N=65536).
//! Only cosign's scrypt costs are accepted: a key file must not make the CLI
//! spend gigabytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use serde::{Deserialize, Serialize};

use super::keys::KeyError;

/// PEM labels of cosign's encrypted keys; the first is what cosign writes today.
pub const LABELS: &[&str] = &[
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

const KDF_SCRYPT: &str = "scrypt";
const CIPHER_SECRETBOX: &str = "nacl/secretbox";
/// scrypt costs accepted on read: cosign's keys use N = 2^16 (older ones
/// 2^15), r = 8, p = 1; 2^17 is the next step its library offers. At most
/// 128 MiB of memory, whatever a key file says.
const SCRYPT_LOG_N_ACCEPTED: std::ops::RangeInclusive<u8> = 15..=17;
/// The cost of keys written here (what cosign writes today: 64 MiB).
const SCRYPT_LOG_N: u8 = 16;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;

#[derive(Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn bad(msg: impl std::fmt::Display) -> KeyError {
    KeyError(format!("malformed encrypted cosign key: {msg}"))
}

fn derive(password: &[u8], salt: &[u8], log_n: u8) -> Key {
    let params = scrypt::Params::new(log_n, SCRYPT_R, SCRYPT_P)
        .expect("cosign's scrypt parameters are valid");
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key).expect("32-byte output is valid");
    key.into()
}

/// Decrypts the envelope (the PEM block's bytes) to DER PKCS#8.
pub fn decrypt(envelope: &[u8], password: &[u8]) -> Result<Vec<u8>, KeyError> {
    let env: Envelope = serde_json::from_slice(envelope).map_err(bad)?;
    if env.kdf.name != KDF_SCRYPT {
        return Err(bad(format!(
            "unknown kdf `{}`",
            env.kdf.name.escape_debug()
        )));
    }
    if env.cipher.name != CIPHER_SECRETBOX {
        return Err(bad(format!(
            "unknown cipher `{}`",
            env.cipher.name.escape_debug()
        )));
    }
    let p = &env.kdf.params;
    let log_n = SCRYPT_LOG_N_ACCEPTED
        .clone()
        .find(|l| p.n == 1u64 << l)
        .filter(|_| (p.r, p.p) == (SCRYPT_R, SCRYPT_P))
        .ok_or_else(|| {
            bad(format!(
                "scrypt parameters N={} r={} p={} (accepted: cosign's N=32768, 65536 or 131072 with r=8 p=1)",
                p.n, p.r, p.p
            ))
        })?;
    let salt = B64
        .decode(&env.kdf.salt)
        .map_err(|e| bad(format!("salt: {e}")))?;
    let nonce = B64
        .decode(&env.cipher.nonce)
        .map_err(|e| bad(format!("nonce: {e}")))?;
    if nonce.len() != NONCE_LEN {
        return Err(bad(format!(
            "nonce is {} bytes, not {NONCE_LEN}",
            nonce.len()
        )));
    }
    let ciphertext = B64
        .decode(&env.ciphertext)
        .map_err(|e| bad(format!("ciphertext: {e}")))?;
    let key = derive(password, &salt, log_n);
    XSalsa20Poly1305::new(&key)
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
        .map_err(|_| {
            KeyError("cannot decrypt the cosign key: wrong password (COSIGN_PASSWORD)".into())
        })
}

/// Encrypts DER PKCS#8 `plaintext` into cosign's envelope (JSON bytes).
pub fn encrypt(plaintext: &[u8], password: &[u8]) -> Vec<u8> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut salt).expect("the kernel's random source works");
    getrandom::fill(&mut nonce).expect("the kernel's random source works");
    let key = derive(password, &salt, SCRYPT_LOG_N);
    let ciphertext = XSalsa20Poly1305::new(&key)
        .encrypt(Nonce::from_slice(&nonce), plaintext)
        .expect("secretbox encryption of a small buffer");
    let env = Envelope {
        kdf: Kdf {
            name: KDF_SCRYPT.into(),
            params: ScryptParams {
                n: 1 << SCRYPT_LOG_N,
                r: SCRYPT_R,
                p: SCRYPT_P,
            },
            salt: B64.encode(salt),
        },
        cipher: Cipher {
            name: CIPHER_SECRETBOX.into(),
            nonce: B64.encode(nonce),
        },
        ciphertext: B64.encode(ciphertext),
    };
    serde_json::to_vec(&env).expect("the envelope serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    #[test]
    fn round_trip_and_wrong_password() {
        let key = SigningKey::generate_p256();
        let pem = key.to_cosign_pem(b"s3cret");
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let back = SigningKey::from_pem(pem.as_bytes(), Some(b"s3cret")).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        let e = SigningKey::from_pem(pem.as_bytes(), Some(b"wrong"))
            .err()
            .unwrap();
        assert_eq!(
            e.0,
            "cannot decrypt the cosign key: wrong password (COSIGN_PASSWORD)"
        );
        let e = SigningKey::from_pem(pem.as_bytes(), None).err().unwrap();
        assert!(e.0.contains("set COSIGN_PASSWORD"), "{e}");
    }

    #[test]
    fn costly_or_unknown_parameters_are_refused() {
        let env = encrypt(b"x", b"");
        let mut v: serde_json::Value = serde_json::from_slice(&env).unwrap();
        v["kdf"]["params"]["N"] = 1048576.into();
        let e = decrypt(&serde_json::to_vec(&v).unwrap(), b"").unwrap_err();
        assert!(e.0.contains("N=1048576 r=8 p=1"), "{e}");
        v["kdf"]["params"]["N"] = 65536.into();
        v["kdf"]["params"]["r"] = 16.into();
        let e = decrypt(&serde_json::to_vec(&v).unwrap(), b"").unwrap_err();
        assert!(e.0.contains("N=65536 r=16 p=1"), "{e}");
        v["kdf"]["params"]["r"] = 8.into();
        v["cipher"]["name"] = "aes-gcm".into();
        let e = decrypt(&serde_json::to_vec(&v).unwrap(), b"").unwrap_err();
        assert!(e.0.contains("unknown cipher `aes-gcm`"), "{e}");
        assert!(
            decrypt(b"{not json", b"")
                .unwrap_err()
                .0
                .starts_with("malformed")
        );
    }
}
