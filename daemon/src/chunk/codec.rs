//! The stored form of a chunk: a zstd frame when compression pays, the raw bytes otherwise.
//!
//! The two are told apart by the zstd frame magic (`28 B5 2F FD`). A raw chunk that happens to
//! start with that magic is always stored compressed, so every stored object decodes one way
//! only. The same object travels unchanged to directories, `shard-server` and S3.

use std::borrow::Cow;
use std::io;

use super::ChunkHash;
use super::cdc::MAX_CHUNK_BYTES;

/// The zstd frame magic number, little-endian on disk.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// zstd level 1: on model weights level 3 saves under 1% more and costs twice the time.
const LEVEL: i32 = 1;

/// Bytes compressed to decide whether a chunk is worth compressing at all.
const PROBE_BYTES: usize = 64 * 1024;

/// A chunk is stored compressed only when that saves at least 3% (measured on the probe):
/// below that, decompression on every checkout costs more than the disk it saves.
const WORTHWHILE_RATIO: f64 = 0.97;

/// Largest object accepted for decoding: a maximum-size chunk that did not compress, plus the
/// worst-case zstd framing overhead.
pub const MAX_OBJECT_BYTES: usize =
    MAX_CHUNK_BYTES as usize + MAX_CHUNK_BYTES as usize / 128 + 1024;

/// Why a stored object could not be turned back into its chunk.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The zstd frame is corrupt or expands beyond the maximum chunk size.
    #[error("stored object is not a valid chunk encoding")]
    Corrupt(#[source] io::Error),
    /// The object is larger than any valid encoding.
    #[error("stored object is {0} bytes, more than any chunk can take")]
    TooLarge(usize),
    /// The decoded bytes do not hash to the expected id.
    #[error("chunk content does not match its id {expected:#} (got {actual:#})")]
    Mismatch {
        /// The id the object was stored or requested under.
        expected: ChunkHash,
        /// The hash of what was decoded.
        actual: ChunkHash,
    },
}

/// Encodes a chunk for storage.
///
/// # Errors
/// Only when zstd cannot allocate its context.
pub fn encode(data: &[u8]) -> io::Result<Cow<'_, [u8]>> {
    let mut encoder = Encoder::new()?;
    Ok(if encoder.compress(data)? {
        Cow::Owned(encoder.frame)
    } else {
        Cow::Borrowed(data)
    })
}

/// [`encode`] for many chunks in a row: one zstd context and one output buffer serve them
/// all. A fresh context and a fresh multi-megabyte frame per chunk cost allocations, and on
/// first touch a page fault per 4 KiB of the frame.
pub struct Encoder {
    compressor: zstd::bulk::Compressor<'static>,
    frame: Vec<u8>,
}

impl Encoder {
    /// An encoder at the store's compression level.
    ///
    /// # Errors
    /// Only when zstd cannot allocate its context.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            compressor: zstd::bulk::Compressor::new(LEVEL)?,
            frame: Vec::new(),
        })
    }

    /// Compresses `data` into [`frame`](Self::frame) when that pays (or when the raw bytes
    /// would be mistaken for a frame); returns `false` when the chunk is best stored raw, as
    /// `data` itself.
    ///
    /// # Errors
    /// Only when zstd cannot allocate its context.
    pub fn compress(&mut self, data: &[u8]) -> io::Result<bool> {
        let must_frame = data.starts_with(&ZSTD_MAGIC);
        if !must_frame && !self.worth_compressing(data)? {
            return Ok(false);
        }
        self.compress_into_frame(data)?;
        Ok(must_frame || self.frame.len() < data.len())
    }

    /// The frame of the last chunk [`compress`](Self::compress) framed.
    #[must_use]
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    fn compress_into_frame(&mut self, data: &[u8]) -> io::Result<()> {
        self.frame.clear();
        self.frame
            .reserve(zstd::zstd_safe::compress_bound(data.len()));
        let _ = self.compressor.compress_to_buffer(data, &mut self.frame)?;
        Ok(())
    }

    /// Compresses a sample from the middle of the chunk; weights that do not compress are
    /// detected after 64 KiB of work instead of a whole chunk's.
    fn worth_compressing(&mut self, data: &[u8]) -> io::Result<bool> {
        if data.len() <= PROBE_BYTES {
            return Ok(true);
        }
        let start = (data.len() - PROBE_BYTES) / 2;
        self.compress_into_frame(&data[start..start + PROBE_BYTES])?;
        Ok((self.frame.len() as f64) < PROBE_BYTES as f64 * WORTHWHILE_RATIO)
    }
}

/// Encodes a chunk without compressing it (when it may be stored raw), for writes on the
/// critical path; [`is_raw`] objects can be recompressed later with [`encode`].
///
/// # Errors
/// Only when zstd cannot allocate its context.
pub fn encode_raw(data: &[u8]) -> io::Result<Cow<'_, [u8]>> {
    if data.starts_with(&ZSTD_MAGIC) {
        encode(data)
    } else {
        Ok(Cow::Borrowed(data))
    }
}

/// True for an object stored uncompressed.
#[must_use]
pub fn is_raw(object: &[u8]) -> bool {
    !object.starts_with(&ZSTD_MAGIC)
}

/// Decodes a stored object, refusing anything that would expand beyond the maximum chunk size.
/// A raw object is its own chunk and is borrowed, not copied.
pub fn decode(object: &[u8]) -> Result<Cow<'_, [u8]>, Error> {
    check_object_size(object)?;
    if is_raw(object) {
        Ok(Cow::Borrowed(object))
    } else {
        zstd::bulk::decompress(object, MAX_CHUNK_BYTES as usize)
            .map(Cow::Owned)
            .map_err(Error::Corrupt)
    }
}

/// Decodes a stored object and checks that it is the chunk `expected`.
pub fn decode_verified<'a>(object: &'a [u8], expected: &ChunkHash) -> Result<Cow<'a, [u8]>, Error> {
    let data = decode(object)?;
    check_hash(&data, expected)?;
    Ok(data)
}

/// Decodes `object` into `out` (replacing its contents) and checks that it is the chunk
/// `expected`; `out`'s allocation is reused. A raw object is swapped into `out` rather than
/// copied, leaving `object` holding `out`'s old buffer.
pub fn decode_verified_into(
    object: &mut Vec<u8>,
    out: &mut Vec<u8>,
    expected: &ChunkHash,
) -> Result<(), Error> {
    check_object_size(object)?;
    if is_raw(object) {
        std::mem::swap(object, out);
    } else {
        decompress_into(object, out)?;
    }
    check_hash(out, expected)
}

/// [`decode_verified_into`] for an object the caller cannot give up (a raw one is copied).
pub fn copy_verified_into(
    object: &[u8],
    out: &mut Vec<u8>,
    expected: &ChunkHash,
) -> Result<(), Error> {
    check_object_size(object)?;
    if is_raw(object) {
        out.clear();
        out.extend_from_slice(object);
    } else {
        decompress_into(object, out)?;
    }
    check_hash(out, expected)
}

fn check_object_size(object: &[u8]) -> Result<(), Error> {
    let limit = if is_raw(object) {
        MAX_CHUNK_BYTES as usize
    } else {
        MAX_OBJECT_BYTES
    };
    if object.len() > limit {
        Err(Error::TooLarge(object.len()))
    } else {
        Ok(())
    }
}

fn decompress_into(frame: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    out.clear();
    out.reserve(MAX_CHUNK_BYTES as usize);
    zstd::bulk::Decompressor::new()
        .and_then(|mut z| z.decompress_to_buffer(frame, out))
        .map(drop)
        .map_err(Error::Corrupt)
}

fn check_hash(data: &[u8], expected: &ChunkHash) -> Result<(), Error> {
    let actual = ChunkHash::of(data);
    if actual == *expected {
        Ok(())
    } else {
        Err(Error::Mismatch {
            expected: *expected,
            actual,
        })
    }
}

/// [`decode_verified`] for an object the caller owns: a raw object becomes the chunk itself.
pub fn into_verified_chunk(object: Vec<u8>, expected: &ChunkHash) -> Result<Vec<u8>, Error> {
    let decoded = match decode_verified(&object, expected)? {
        Cow::Owned(data) => Some(data),
        Cow::Borrowed(_) => None,
    };
    Ok(decoded.unwrap_or(object))
}

/// Checks that a stored object is the chunk `expected` without keeping the decoded bytes
/// (a raw object is hashed in place, with no copy).
pub fn verify(object: &[u8], expected: &ChunkHash) -> Result<(), Error> {
    decode_verified(object, expected).map(drop)
}

/// [`verify`] decoding into `scratch` (replacing its contents) so its allocation is reused;
/// a raw object is hashed in place and `scratch` is left untouched.
pub fn verify_using(
    object: &[u8],
    scratch: &mut Vec<u8>,
    expected: &ChunkHash,
) -> Result<(), Error> {
    check_object_size(object)?;
    if is_raw(object) {
        check_hash(object, expected)
    } else {
        decompress_into(object, scratch)?;
        check_hash(scratch, expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compressible_data_is_framed() {
        let data = vec![7u8; 1 << 20];
        let object = encode(&data).expect("encode");
        assert!(object.starts_with(&ZSTD_MAGIC));
        assert!(object.len() < 1024);
        assert_eq!(decode(&object).expect("valid frame"), data);
    }

    /// `len` incompressible bytes (xorshift), the same every time.
    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let data = noise(200_000);
        assert_eq!(encode(&data).expect("encode"), data);
    }

    #[test]
    fn raw_data_that_mimics_a_frame_is_still_unambiguous() {
        let mut data = ZSTD_MAGIC.to_vec();
        data.extend_from_slice(b"not really zstd");
        let object = encode(&data).expect("encode");
        assert_eq!(decode(&object).expect("wrapped in a real frame"), data);
    }

    #[test]
    fn verification_names_both_hashes() {
        let object = encode(b"hello").expect("encode");
        let wrong = ChunkHash::of(b"bye");
        let err = decode_verified(&object, &wrong).expect_err("hash differs");
        assert!(matches!(err, Error::Mismatch { .. }));
    }

    fn object_of(data: &[u8]) -> Vec<u8> {
        encode(data).expect("encode").into_owned()
    }

    #[test]
    fn decoding_into_reused_buffers_matches_decoding() {
        let mut out = vec![9u8; 10];
        for data in [vec![7u8; 1 << 20], b"raw, short".to_vec()] {
            let hash = ChunkHash::of(&data);
            let mut object = encode(&data).expect("encode").into_owned();
            decode_verified_into(&mut object, &mut out, &hash).expect("valid");
            assert_eq!(out, data);
            copy_verified_into(&object_of(&data), &mut out, &hash).expect("valid");
            assert_eq!(out, data);
            let mut object = encode(&data).expect("encode").into_owned();
            let wrong = ChunkHash::of(b"other");
            assert!(matches!(
                decode_verified_into(&mut object, &mut out, &wrong),
                Err(Error::Mismatch { .. })
            ));
        }
    }

    #[test]
    fn one_encoder_encodes_many_chunks_like_fresh_ones() {
        let noise = noise(200_000);
        let mut mimic = ZSTD_MAGIC.to_vec();
        mimic.extend_from_slice(&noise[..1000]);
        let chunks = [
            vec![7u8; 1 << 20],
            noise,
            mimic,
            b"short".to_vec(),
            Vec::new(),
        ];
        let mut encoder = Encoder::new().expect("context");
        for data in chunks.iter().chain(chunks.iter().rev()) {
            let framed = encoder.compress(data).expect("encode");
            let object = if framed { encoder.frame() } else { &data[..] };
            assert_eq!(object, &*encode(data).expect("encode"));
            assert_eq!(framed, !is_raw(object));
            assert_eq!(&*decode(object).expect("decodes"), &data[..]);
        }
    }

    #[test]
    fn verifying_with_scratch_checks_both_encodings() {
        let mut scratch = Vec::new();
        for data in [vec![7u8; 1 << 20], b"raw, short".to_vec()] {
            let (object, hash) = (object_of(&data), ChunkHash::of(&data));
            verify_using(&object, &mut scratch, &hash).expect("valid");
            let wrong = ChunkHash::of(b"other");
            assert!(matches!(
                verify_using(&object, &mut scratch, &wrong),
                Err(Error::Mismatch { .. })
            ));
        }
        let data = vec![7u8; 1 << 20];
        let mut damaged = object_of(&data);
        let last = damaged.len() - 1;
        damaged[last] ^= 0xFF;
        let hash = ChunkHash::of(&data);
        assert!(verify_using(&damaged, &mut scratch, &hash).is_err());
    }

    #[test]
    fn raw_objects_over_the_chunk_limit_are_refused() {
        let raw = vec![1u8; MAX_CHUNK_BYTES as usize + 1];
        assert!(matches!(decode(&raw), Err(Error::TooLarge(_))));
    }

    #[test]
    fn bombs_are_refused() {
        let huge = vec![0u8; MAX_CHUNK_BYTES as usize + 1];
        let frame = zstd::bulk::compress(&huge, 1).expect("compress");
        assert!(matches!(decode(&frame), Err(Error::Corrupt(_))));
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), repeat in 1usize..4) {
            let data = data.repeat(repeat);
            let object = encode(&data).expect("in-memory compression succeeds");
            prop_assert_eq!(&*decode(&object).expect("our own encoding decodes"), &data[..]);
        }
    }
}
