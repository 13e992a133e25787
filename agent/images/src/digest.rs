//! `sha256:<hex>` content digests: parsing (so a digest can safely become a
//! file name) and hashing.

use std::fmt;

use sha2::{Digest as _, Sha256};

use super::error::{ImageError, Result};

/// A validated `sha256:` digest (64 lowercase hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| {
            ImageError::BadDigest(format!(
                "`{s}` is not a sha256: digest (only sha256 is supported)"
            ))
        })?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ImageError::BadDigest(format!(
                "`{s}`: expected sha256: and 64 lowercase hex digits"
            )));
        }
        Ok(Digest(s.to_string()))
    }

    pub fn of(bytes: &[u8]) -> Digest {
        Hasher::new().finish_with(bytes)
    }

    /// The 64 hex digits (the blob's file name).
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The short form `gadgetctl image list` shows (12 hex digits).
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Incremental sha256 for streamed blobs.
#[derive(Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn new() -> Hasher {
        Hasher(Sha256::new())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> Digest {
        let sum = self.0.finalize();
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in sum.iter() {
            s.push(char::from_digit((b >> 4) as u32, 16).unwrap());
            s.push(char::from_digit((b & 15) as u32, 16).unwrap());
        }
        Digest(s)
    }

    fn finish_with(mut self, bytes: &[u8]) -> Digest {
        self.update(bytes);
        self.finish()
    }
}

/// Checks that `bytes` hash to `expected`.
pub fn verify(expected: &Digest, bytes: &[u8]) -> Result<()> {
    let actual = Digest::of(bytes);
    if &actual != expected {
        return Err(ImageError::DigestMismatch {
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_values_and_parse_strictly() {
        assert_eq!(
            Digest::of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let d = Digest::parse(
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        )
        .unwrap();
        assert_eq!(d.short(), "e3b0c44298fc");
        assert!(Digest::parse("sha256:../../etc/passwd").is_err());
        assert!(Digest::parse("sha512:00").is_err());
        assert!(
            Digest::parse(
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
            )
            .is_err()
        );
        assert!(verify(&d, b"x").is_err());
        verify(&d, b"").unwrap();
    }
}
