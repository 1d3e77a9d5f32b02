//! Chunk identity: the [`ChunkHash`] newtype, plus the chunker ([`cdc`]) and the storage codec
//! ([`codec`]) that turn file bytes into stored objects.

pub mod buffers;
pub mod cdc;
pub mod codec;
pub mod planes;
pub mod segments;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The SHA-256 of a chunk's uncompressed bytes: the chunk's name everywhere (manifests, stores,
/// the HTTP API). Also used for whole-file digests.
///
/// `Display` shows the first 12 hex digits; `{:#}` and [`ChunkHash::to_hex`] give all 64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkHash([u8; 32]);

impl ChunkHash {
    /// Hashes `bytes`.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Wraps a finished SHA-256 state.
    #[must_use]
    pub fn from_hasher(hasher: Sha256) -> Self {
        Self(hasher.finalize().into())
    }

    /// The 64 lowercase hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw digest.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Rebuilds a hash from its raw digest (as stored in the index).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        if f.alternate() {
            f.write_str(&hex)
        } else {
            f.write_str(&hex[..12])
        }
    }
}

impl fmt::Debug for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkHash({})", self.to_hex())
    }
}

/// Why a string is not a chunk id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a SHA-256 chunk id (64 lowercase hex characters)")]
pub struct ParseHashError(pub String);

impl FromStr for ChunkHash {
    type Err = ParseHashError;

    /// Accepts exactly 64 lowercase hex digits, the only spelling the manifest and the HTTP API
    /// allow (so one chunk never has two names).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            let shown: String = s.chars().take(80).collect();
            return Err(ParseHashError(shown));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseHashError(s.to_owned()))?;
        Ok(Self(out))
    }
}

impl Serialize for ChunkHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ChunkHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vector() {
        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        let hash = ChunkHash::of(b"abc");
        assert_eq!(
            format!("{hash:#}"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hash.to_string(), "ba7816bf8f01");
    }

    #[test]
    fn rejects_uppercase_and_wrong_length() {
        let upper = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        assert!(upper.parse::<ChunkHash>().is_err());
        assert!("abc".parse::<ChunkHash>().is_err());
        assert!("../etc/passwd".parse::<ChunkHash>().is_err());
    }

    proptest! {
        #[test]
        fn hex_round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            let hash = ChunkHash::from_bytes(bytes);
            prop_assert_eq!(hash.to_hex().parse::<ChunkHash>().expect("hex of a hash parses"), hash);
        }
    }
}
