//! Cutting a byte stream into chunks: content-defined (FastCDC 2020) or fixed-size blocks.
//!
//! Content-defined boundaries depend only on nearby bytes, so an insertion early in a file moves
//! one or two boundaries and every later chunk keeps its name: that is what makes new versions
//! of a model cheap to store.

use std::fmt;

use serde::{Deserialize, Serialize};

/// 1 MiB.
pub const MIB: u32 = 1 << 20;

/// No chunk is ever larger than this (16 MiB): the upper bound FastCDC 2020 allows and the
/// bound the chunk server enforces on uploads, so memory per chunk is always bounded.
pub const MAX_CHUNK_BYTES: u32 = 16 * MIB;

/// Default average chunk size (2 MiB, borg's too), chosen with `bench/run`: on a 2 GiB
/// float16 model with 20 scattered 1 MiB edits it stores 82 MiB where 4 MiB chunks store
/// 116 MiB (borg 101 MiB), holds half the memory while committing, and costs a 2 GiB model's
/// first manifest about 46 KiB in Git (later versions delta-compress to little).
pub const DEFAULT_AVG_BYTES: u32 = 2 * MIB;

/// Smallest average chunk size accepted (64 KiB); FastCDC needs `min = avg / 4 >= 64`.
pub const MIN_AVG_BYTES: u32 = 64 * 1024;

/// How chunk boundaries are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// FastCDC 2020 content-defined chunking.
    Fastcdc,
    /// Fixed-size blocks (`min_size == avg_size == max_size`).
    Fixed,
}

/// Chunking parameters, as recorded in `.shard/config.toml` and in every manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunking {
    /// How boundaries are chosen.
    pub algorithm: Algorithm,
    /// Smallest chunk (except the last of a file).
    pub min_size: u32,
    /// Target average chunk size.
    pub avg_size: u32,
    /// Largest chunk.
    pub max_size: u32,
}

/// Why chunking parameters were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Average size outside what FastCDC supports.
    #[error(
        "chunk size {0} is out of range: content-defined chunks average between 64 KiB and 4 MiB"
    )]
    AvgOutOfRange(u64),
    /// Fixed block size outside the supported range.
    #[error("block size {0} is out of range: fixed blocks are between 64 KiB and 16 MiB")]
    BlockOutOfRange(u64),
    /// Inconsistent bounds (for example from a hand-edited config).
    #[error(
        "chunking bounds {min}/{avg}/{max} are invalid: need 64 <= min <= avg <= max <= 16 MiB"
    )]
    Bounds {
        /// Minimum.
        min: u32,
        /// Average.
        avg: u32,
        /// Maximum.
        max: u32,
    },
}

impl Default for Chunking {
    /// FastCDC with min 512 KiB, average 2 MiB, max 8 MiB.
    fn default() -> Self {
        Self::fastcdc(DEFAULT_AVG_BYTES).expect("the default average is in range")
    }
}

impl Chunking {
    /// FastCDC around `avg` bytes, with the customary bounds `avg / 4` and `avg * 4`.
    pub fn fastcdc(avg: u32) -> Result<Self, Error> {
        if !(MIN_AVG_BYTES..=fastcdc::v2020::AVERAGE_MAX).contains(&avg) {
            return Err(Error::AvgOutOfRange(avg.into()));
        }
        Ok(Self {
            algorithm: Algorithm::Fastcdc,
            min_size: avg / 4,
            avg_size: avg,
            max_size: avg * 4,
        })
    }

    /// Fixed blocks of `size` bytes.
    pub fn fixed(size: u32) -> Result<Self, Error> {
        if !(MIN_AVG_BYTES..=MAX_CHUNK_BYTES).contains(&size) {
            return Err(Error::BlockOutOfRange(size.into()));
        }
        Ok(Self {
            algorithm: Algorithm::Fixed,
            min_size: size,
            avg_size: size,
            max_size: size,
        })
    }

    /// Checks bounds read from a file before they reach the chunker (which would panic).
    pub fn validate(&self) -> Result<(), Error> {
        let Self {
            min_size: min,
            avg_size: avg,
            max_size: max,
            ..
        } = *self;
        let ordered = 64 <= min && min <= avg && avg <= max && max <= MAX_CHUNK_BYTES;
        let fastcdc_ok = match self.algorithm {
            Algorithm::Fixed => min == avg && avg == max,
            Algorithm::Fastcdc => {
                min <= fastcdc::v2020::MINIMUM_MAX
                    && (fastcdc::v2020::AVERAGE_MIN..=fastcdc::v2020::AVERAGE_MAX).contains(&avg)
                    && max >= fastcdc::v2020::MAXIMUM_MIN
            }
        };
        if ordered && fastcdc_ok {
            Ok(())
        } else {
            Err(Error::Bounds { min, avg, max })
        }
    }

    /// The boundary finder for these parameters.
    #[must_use]
    pub fn cutter(&self) -> Cutter {
        Cutter::new(self)
    }
}

impl fmt::Display for Chunking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.algorithm {
            Algorithm::Fastcdc => write!(
                f,
                "fastcdc {} / {} / {}",
                human_size(self.min_size),
                human_size(self.avg_size),
                human_size(self.max_size)
            ),
            Algorithm::Fixed => write!(f, "fixed {} blocks", human_size(self.avg_size)),
        }
    }
}

fn human_size(bytes: u32) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// Finds chunk boundaries in bytes held in memory, with exactly the cuts of FastCDC 2020
/// (normalisation level 1, the crate's default gear table) or fixed-size blocks.
#[derive(Clone, Copy, Debug)]
pub struct Cutter {
    fixed: bool,
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
}

impl Cutter {
    fn new(chunking: &Chunking) -> Self {
        let bits = fastcdc::v2020::logarithm2(chunking.avg_size.max(fastcdc::v2020::AVERAGE_MIN));
        let normalization = fastcdc::v2020::Normalization::Level1.bits();
        Self {
            fixed: chunking.algorithm == Algorithm::Fixed,
            min: chunking.min_size as usize,
            avg: chunking.avg_size as usize,
            max: chunking.max_size as usize,
            mask_s: fastcdc::v2020::MASKS[(bits + normalization) as usize],
            mask_l: fastcdc::v2020::MASKS[(bits - normalization) as usize],
        }
    }

    /// The largest chunk: how many bytes [`Cutter::next`] needs to see before it can decide.
    #[must_use]
    pub fn max_size(&self) -> usize {
        self.max
    }

    /// Length of the chunk that starts at `data[0]`. `None` when `data` is empty, or when it
    /// is shorter than the largest chunk and more input may follow (`at_end` false): the cut
    /// could still depend on bytes not seen yet.
    #[must_use]
    pub fn next(&self, data: &[u8], at_end: bool) -> Option<usize> {
        if data.is_empty() || (data.len() < self.max && !at_end) {
            return None;
        }
        let window = &data[..data.len().min(self.max)];
        if self.fixed {
            return Some(window.len());
        }
        let (_, cut) = fastcdc::v2020::cut(
            window,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        Some(cut)
    }
}

/// Inputs shared by the chunking tests.
#[cfg(test)]
pub(crate) mod test_input {
    use super::{Algorithm, Chunking};

    /// Small bounds so property tests see many chunks in little data.
    pub fn small() -> Chunking {
        Chunking {
            algorithm: Algorithm::Fastcdc,
            min_size: 256,
            avg_size: 1024,
            max_size: 4096,
        }
    }

    /// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
    pub fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_input::{noise, small};
    use super::*;
    use proptest::prelude::*;

    struct Piece {
        offset: u64,
        data: Vec<u8>,
    }

    /// Cuts a whole input held in memory.
    fn cut(chunking: &Chunking, data: &[u8]) -> Vec<Piece> {
        let cutter = chunking.cutter();
        let mut pieces = Vec::new();
        let mut at = 0;
        while let Some(size) = cutter.next(&data[at..], true) {
            pieces.push(Piece {
                offset: at as u64,
                data: data[at..at + size].to_vec(),
            });
            at += size;
        }
        pieces
    }

    #[test]
    fn no_cut_is_made_before_the_largest_chunk_could_be_seen() {
        let c = small();
        let data = noise(c.max_size as usize - 1, 5);
        assert_eq!(c.cutter().next(&data, false), None);
        assert!(c.cutter().next(&data, true).is_some());
    }

    #[test]
    fn defaults_match_the_design() {
        let c = Chunking::default();
        assert_eq!(
            (c.min_size, c.avg_size, c.max_size),
            (MIB / 2, 2 * MIB, 8 * MIB)
        );
        assert_eq!(c.to_string(), "fastcdc 512 KiB / 2 MiB / 8 MiB");
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn rejects_out_of_range_sizes() {
        assert_eq!(
            Chunking::fastcdc(8 * MIB),
            Err(Error::AvgOutOfRange((8 * MIB).into()))
        );
        assert!(Chunking::fixed(32 * MIB).is_err());
        let broken = Chunking {
            min_size: 10,
            ..Chunking::default()
        };
        assert!(broken.validate().is_err());
    }

    #[test]
    fn empty_input_has_no_chunks() {
        assert!(cut(&small(), b"").is_empty());
    }

    proptest! {
        #[test]
        fn chunks_tile_the_input(len in 0usize..40_000, seed in any::<u64>()) {
            let data = noise(len, seed);
            let pieces = cut(&small(), &data);
            let mut offset = 0u64;
            let mut joined = Vec::new();
            for piece in &pieces {
                prop_assert_eq!(piece.offset, offset);
                offset += piece.data.len() as u64;
                joined.extend_from_slice(&piece.data);
            }
            prop_assert_eq!(joined, data);
        }

        #[test]
        fn sizes_stay_within_bounds(len in 0usize..40_000, seed in any::<u64>()) {
            let c = small();
            let pieces = cut(&c, &noise(len, seed));
            for (i, piece) in pieces.iter().enumerate() {
                prop_assert!(piece.data.len() <= c.max_size as usize);
                if i + 1 < pieces.len() {
                    prop_assert!(piece.data.len() >= c.min_size as usize);
                }
            }
        }

        #[test]
        fn same_input_same_cuts(len in 0usize..40_000, seed in any::<u64>()) {
            let data = noise(len, seed);
            let a: Vec<u64> = cut(&small(), &data).iter().map(|p| p.offset).collect();
            let b: Vec<u64> = cut(&small(), &data).iter().map(|p| p.offset).collect();
            prop_assert_eq!(a, b);
        }
    }

    /// Deterministic seeds rather than proptest: resynchronisation after an edit is
    /// overwhelmingly likely but not guaranteed for every input, and a test must not flake.
    #[test]
    fn an_edit_leaves_distant_chunks_alone() {
        let c = small();
        for seed in 1..=32u64 {
            let data = noise(60_000, seed);
            let at = (seed as usize * 61) % 2_000;
            let mut edited = data.clone();
            drop(edited.splice(at..at, b"inserted bytes".iter().copied()));
            let after: Vec<Vec<u8>> = cut(&c, &edited).into_iter().map(|p| p.data).collect();
            let horizon = (at + 4 * c.max_size as usize) as u64;
            for piece in cut(&c, &data).into_iter().filter(|p| p.offset >= horizon) {
                assert!(
                    after.contains(&piece.data),
                    "seed {seed}: chunk at {} changed",
                    piece.offset
                );
            }
        }
    }
}
