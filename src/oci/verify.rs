//! Size and digest verification of blobs while they stream.

use super::pull_error::PullError;
// OpenSSL's hashes have SIMD code paths for CPUs without SHA extensions (about twice the
// throughput of a portable implementation); the library is linked for TLS anyway.
use openssl::sha::{Sha256, Sha512};

enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// Checks that a blob has exactly its declared size and digest, one chunk at a time.
pub struct BlobVerifier {
    what: &'static str,
    digest: String,
    expected_hex: String,
    size: u64,
    received: u64,
    hasher: Hasher,
}

impl BlobVerifier {
    /// Starts verifying `what` (`layer`, `config`) against `digest` (`sha256:…` or
    /// `sha512:…`) and `size` bytes.
    pub fn new(what: &'static str, digest: &str, size: u64) -> Result<Self, PullError> {
        let unsupported = |problem: &str| PullError::Verification {
            what,
            digest: digest.to_string(),
            problem: problem.to_string(),
        };
        let (algorithm, hex_part) = digest
            .split_once(':')
            .ok_or_else(|| unsupported("digest has no algorithm"))?;
        let hasher = match algorithm {
            "sha256" if hex_part.len() == 64 => Hasher::Sha256(Sha256::new()),
            "sha512" if hex_part.len() == 128 => Hasher::Sha512(Sha512::new()),
            _ => return Err(unsupported("unsupported digest algorithm or length")),
        };
        Ok(Self {
            what,
            digest: digest.to_string(),
            expected_hex: hex_part.to_ascii_lowercase(),
            size,
            received: 0,
            hasher,
        })
    }

    /// Checks a blob held whole in memory (a manifest).
    pub fn check_whole(what: &'static str, digest: &str, blob: &[u8]) -> Result<(), PullError> {
        let mut verifier = Self::new(what, digest, blob.len() as u64)?;
        verifier.update(blob)?;
        verifier.finish()
    }

    /// Whether `digest` names an algorithm (and length) this verifier checks.
    pub fn supports(digest: &str) -> bool {
        Self::new("blob", digest, 0).is_ok()
    }

    /// Bytes accepted so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.size - self.received
    }

    /// Hashes the next chunk; fails when the blob grows beyond its declared size.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), PullError> {
        let len = chunk.len() as u64;
        if len > self.remaining() {
            return Err(self.failure(format!(
                "registry sent more than the declared {} bytes",
                self.size
            )));
        }
        self.received += len;
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(chunk),
            Hasher::Sha512(h) => h.update(chunk),
        }
        Ok(())
    }

    /// Checks the size and digest once the stream has ended.
    pub fn finish(self) -> Result<(), PullError> {
        if self.received != self.size {
            return Err(self.failure(format!(
                "got {} bytes, expected {}",
                self.received, self.size
            )));
        }
        let actual = match &self.hasher {
            Hasher::Sha256(h) => hex::encode(h.clone().finish()),
            Hasher::Sha512(h) => hex::encode(h.clone().finish()),
        };
        if actual != self.expected_hex {
            let algorithm = self.digest.split(':').next().unwrap_or_default();
            return Err(self.failure(format!(
                "content digest is {algorithm}:{actual} (digest mismatch)"
            )));
        }
        Ok(())
    }

    fn failure(&self, problem: String) -> PullError {
        PullError::Verification {
            what: self.what,
            digest: self.digest.clone(),
            problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sha2::Digest;

    fn digest_of(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
    }

    #[test]
    fn accepts_the_right_bytes_in_any_chunking() {
        let data = b"hello layer";
        let mut v = BlobVerifier::new("layer", &digest_of(data), data.len() as u64).unwrap();
        v.update(&data[..3]).unwrap();
        v.update(&data[3..]).unwrap();
        assert_eq!(v.remaining(), 0);
        v.finish().unwrap();
    }

    #[test]
    fn names_the_digest_on_mismatch_short_and_long_blobs() {
        let digest = digest_of(b"expected");
        let mut v = BlobVerifier::new("layer", &digest, 8).unwrap();
        v.update(b"EXPECTED").unwrap();
        let msg = v.finish().unwrap_err().to_string();
        assert!(
            msg.contains(&digest) && msg.contains("digest mismatch"),
            "{msg}"
        );

        let mut v = BlobVerifier::new("layer", &digest, 8).unwrap();
        v.update(b"short").unwrap();
        assert!(v
            .finish()
            .unwrap_err()
            .to_string()
            .contains("got 5 bytes, expected 8"));

        let mut v = BlobVerifier::new("layer", &digest, 8).unwrap();
        assert!(v.update(b"too long by far").is_err());
    }

    #[test]
    fn checks_sha512_digests_too() {
        let data = b"a layer hashed with sha512";
        let digest = format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)));
        let mut v = BlobVerifier::new("layer", &digest, data.len() as u64).unwrap();
        v.update(data).unwrap();
        v.finish().unwrap();

        let mut v = BlobVerifier::new("layer", &digest, data.len() as u64).unwrap();
        v.update(b"A layer hashed with sha512").unwrap();
        assert!(v
            .finish()
            .unwrap_err()
            .to_string()
            .contains("digest mismatch"));
    }

    #[test]
    fn rejects_unknown_algorithms() {
        assert!(BlobVerifier::new("layer", "md5:abcd", 1).is_err());
        assert!(BlobVerifier::new("layer", "sha256:abcd", 1).is_err());
        assert!(BlobVerifier::new("layer", &format!("sha512:{}", "0".repeat(128)), 1).is_ok());
    }
}
