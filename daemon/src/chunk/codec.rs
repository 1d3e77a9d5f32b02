//! The stored form of a chunk: the raw bytes when compression does not pay, otherwise a zstd
//! frame of the chunk or of its byte planes ([`super::planes`]), whichever the probe finds
//! smaller.
//!
//! The three are told apart by their first bytes: a zstd frame starts with the frame magic
//! (`28 B5 2F FD`); a planes object with a zstd skippable frame of 8 bytes, `nshard`, a format
//! version and the number width (`PLANES_PREFIX`), followed by the zstd frame of the planes.
//! A raw chunk that happens to start like either is always stored as a plain zstd frame, so
//! every stored object decodes one way only. The same object travels unchanged to
//! directories, `shard-server` and S3.

use std::borrow::Cow;
use std::io;

use sha2::{Digest, Sha256};

use super::cdc::MAX_CHUNK_BYTES;
use super::{ChunkHash, planes};

/// The zstd frame magic number, little-endian on disk.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The start of a planes object: a zstd skippable frame (magic `0x184D2A5E`) of 8 bytes,
/// `nshard`, and format version 1. The width byte and then the zstd frame follow.
const PLANES_PREFIX: [u8; 15] = [
    0x5E, 0x2A, 0x4D, 0x18, 8, 0, 0, 0, b'n', b's', b'h', b'a', b'r', b'd', 1,
];

/// Bytes before the zstd frame in a planes object.
const PLANES_HEADER_BYTES: usize = PLANES_PREFIX.len() + 1;

/// Number widths tried besides plain bytes: float16/bfloat16 and float32/int32.
const PLANE_WIDTHS: [usize; 2] = [2, 4];

/// zstd level 1: on model weights level 3 saves under 1% more and costs twice the time.
const LEVEL: i32 = 1;

/// Bytes compressed to decide whether a chunk is worth compressing at all.
const PROBE_BYTES: usize = 64 * 1024;

/// A chunk is stored compressed only when that saves at least 3% (measured on the probe):
/// below that, decompression on every checkout costs more than the disk it saves.
const WORTHWHILE_RATIO: f64 = 0.97;

/// Largest object accepted for decoding: a maximum-size chunk that did not compress, plus the
/// worst-case zstd framing overhead (and the planes header).
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
    planes: Vec<u8>,
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
            planes: Vec::new(),
        })
    }

    /// Compresses `data` into [`frame`](Self::frame) when that pays (or when the raw bytes
    /// would be mistaken for an encoding); returns `false` when the chunk is best stored raw,
    /// as `data` itself.
    ///
    /// # Errors
    /// Only when zstd cannot allocate its context.
    pub fn compress(&mut self, data: &[u8]) -> io::Result<bool> {
        let must_frame = looks_encoded(data);
        let width = match self.best_width(data)? {
            Some(width) => width,
            None if must_frame => 1,
            None => return Ok(false),
        };
        self.encode_as(data, width)?;
        Ok(must_frame || self.frame.len() < data.len())
    }

    /// The object of the last chunk [`compress`](Self::compress) framed.
    #[must_use]
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// Encodes `data` as numbers of `width` bytes (1: a plain zstd frame) into `self.frame`.
    fn encode_as(&mut self, data: &[u8], width: usize) -> io::Result<()> {
        self.frame.clear();
        if width == 1 {
            return self.compress_after_header(data);
        }
        planes::split(data, width, &mut self.planes);
        self.frame.extend_from_slice(&PLANES_PREFIX);
        self.frame
            .push(u8::try_from(width).expect("plane widths fit a byte"));
        let planes = std::mem::take(&mut self.planes);
        let result = self.compress_after_header(&planes);
        self.planes = planes;
        result
    }

    /// Appends the zstd frame of `data` to `self.frame`.
    fn compress_after_header(&mut self, data: &[u8]) -> io::Result<()> {
        let header = self.frame.len();
        self.frame
            .resize(header + zstd::zstd_safe::compress_bound(data.len()), 0);
        let written = self
            .compressor
            .compress_to_buffer(data, &mut self.frame[header..])?;
        self.frame.truncate(header + written);
        Ok(())
    }

    /// The encoding worth using for `data`, from a sample of it: 1 for a plain zstd frame,
    /// else the number width whose planes compress best; `None` when nothing saves at least
    /// [`WORTHWHILE_RATIO`]. Weights that do not compress are detected after a few 64 KiB
    /// samples instead of a whole chunk's work. Chunks no larger than a sample are simply
    /// compressed.
    fn best_width(&mut self, data: &[u8]) -> io::Result<Option<usize>> {
        if data.len() <= PROBE_BYTES {
            return Ok(Some(1));
        }
        // A whole number of the widest width before the sample keeps its planes in phase
        // with the chunk's.
        let start = (data.len() - PROBE_BYTES) / 2 / 4 * 4;
        let sample = &data[start..start + PROBE_BYTES];
        let mut best = (PROBE_BYTES as f64 * WORTHWHILE_RATIO, None);
        for width in std::iter::once(1).chain(PLANE_WIDTHS) {
            let size = self.probe(sample, width)? as f64;
            if size < best.0 {
                best = (size, Some(width));
            }
        }
        Ok(best.1)
    }

    /// The compressed size of `sample` as numbers of `width` bytes. Each plane is compressed
    /// on its own: in a whole chunk the planes are megabytes long and every zstd block (at
    /// most 128 KiB) holds one plane only, while the planes of a 64 KiB sample would share
    /// one block and one Huffman table, hiding what splitting gains.
    fn probe(&mut self, sample: &[u8], width: usize) -> io::Result<usize> {
        if width == 1 {
            self.encode_as(sample, 1)?;
            return Ok(self.frame.len());
        }
        planes::split(sample, width, &mut self.planes);
        let planes = std::mem::take(&mut self.planes);
        let mut size = 0;
        for plane in planes.chunks(planes.len().div_ceil(width)) {
            self.frame.clear();
            self.compress_after_header(plane)?;
            size += self.frame.len();
        }
        self.planes = planes;
        Ok(size)
    }
}

/// Whether raw bytes start like an encoded object (and so must not be stored raw).
fn looks_encoded(data: &[u8]) -> bool {
    data.starts_with(&ZSTD_MAGIC) || data.starts_with(&PLANES_PREFIX)
}

/// Encodes a chunk without compressing it (when it may be stored raw), for writes on the
/// critical path; [`is_raw`] objects can be recompressed later with [`encode`].
///
/// # Errors
/// Only when zstd cannot allocate its context.
pub fn encode_raw(data: &[u8]) -> io::Result<Cow<'_, [u8]>> {
    if looks_encoded(data) {
        encode(data)
    } else {
        Ok(Cow::Borrowed(data))
    }
}

/// True for an object stored uncompressed.
#[must_use]
pub fn is_raw(object: &[u8]) -> bool {
    !looks_encoded(object)
}

/// Decodes a stored object, refusing anything that would expand beyond the maximum chunk size.
/// A raw object is its own chunk and is borrowed, not copied.
pub fn decode(object: &[u8]) -> Result<Cow<'_, [u8]>, Error> {
    check_object_size(object)?;
    if is_raw(object) {
        return Ok(Cow::Borrowed(object));
    }
    let mut data = Vec::new();
    decode_encoded(object, &mut data, &mut Vec::new())?;
    Ok(Cow::Owned(data))
}

/// Decodes a stored object and checks that it is the chunk `expected`.
pub fn decode_verified<'a>(object: &'a [u8], expected: &ChunkHash) -> Result<Cow<'a, [u8]>, Error> {
    let data = decode(object)?;
    check_hash(&data, expected)?;
    Ok(data)
}

/// Decodes `object` into `out` (replacing its contents) and checks that it is the chunk
/// `expected`; `out`'s allocation is reused. A raw object is swapped into `out` rather than
/// copied, leaving `object` holding `out`'s old buffer; otherwise `object`'s contents are
/// used as scratch space.
pub fn decode_verified_into(
    object: &mut Vec<u8>,
    out: &mut Vec<u8>,
    expected: &ChunkHash,
) -> Result<(), Error> {
    check_object_size(object)?;
    if is_raw(object) {
        std::mem::swap(object, out);
        return check_hash(out, expected);
    }
    match planes_width(object)? {
        None => decompress_into(object, out)?,
        Some(width) => {
            // The planes go to `out`, are joined into `object`, and trade places.
            decompress_into(&object[PLANES_HEADER_BYTES..], out)?;
            planes::join(out, width, object);
            std::mem::swap(object, out);
        }
    }
    check_hash(out, expected)
}

/// [`decode_verified_into`] for an object the caller cannot give up (a raw one is copied);
/// `scratch` holds the planes of a planes object.
pub fn copy_verified_into(
    object: &[u8],
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    expected: &ChunkHash,
) -> Result<(), Error> {
    check_object_size(object)?;
    if is_raw(object) {
        out.clear();
        out.extend_from_slice(object);
    } else {
        decode_encoded(object, out, scratch)?;
    }
    check_hash(out, expected)
}

/// Decodes a zstd or planes object into `out`, with `scratch` holding the planes.
fn decode_encoded(object: &[u8], out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> Result<(), Error> {
    match planes_width(object)? {
        None => decompress_into(object, out),
        Some(width) => {
            decompress_into(&object[PLANES_HEADER_BYTES..], scratch)?;
            planes::join(scratch, width, out);
            Ok(())
        }
    }
}

/// The number width of a planes object; `None` for any other object.
fn planes_width(object: &[u8]) -> Result<Option<usize>, Error> {
    if !object.starts_with(&PLANES_PREFIX) {
        return Ok(None);
    }
    match object.get(PLANES_PREFIX.len()) {
        Some(&width) if PLANE_WIDTHS.contains(&usize::from(width)) => Ok(Some(width.into())),
        _ => Err(Error::Corrupt(io::Error::new(
            io::ErrorKind::InvalidData,
            "planes object with an unknown number width",
        ))),
    }
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
    check_digest(ChunkHash::of(data), expected)
}

fn check_digest(actual: ChunkHash, expected: &ChunkHash) -> Result<(), Error> {
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
    verify_using(object, &mut Vec::new(), expected)
}

/// [`verify`] decoding into `scratch` (replacing its contents) so its allocation is reused;
/// a raw object is hashed in place and `scratch` is left untouched, and the planes of a
/// planes object are hashed as they are joined, a block at a time.
pub fn verify_using(
    object: &[u8],
    scratch: &mut Vec<u8>,
    expected: &ChunkHash,
) -> Result<(), Error> {
    check_object_size(object)?;
    if is_raw(object) {
        return check_hash(object, expected);
    }
    match planes_width(object)? {
        None => {
            decompress_into(object, scratch)?;
            check_hash(scratch, expected)
        }
        Some(width) => {
            decompress_into(&object[PLANES_HEADER_BYTES..], scratch)?;
            let mut hasher = Sha256::new();
            planes::join_with(scratch, width, |bytes| hasher.update(bytes));
            check_digest(ChunkHash::from_hasher(hasher), expected)
        }
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
            copy_verified_into(&object_of(&data), &mut out, &mut Vec::new(), &hash).expect("valid");
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
        let mut planes_mimic = PLANES_PREFIX.to_vec();
        planes_mimic.extend_from_slice(&noise[..1000]);
        let chunks = [
            vec![7u8; 1 << 20],
            weights(300_000),
            noise,
            mimic,
            planes_mimic,
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

    /// `len` bytes of 2-byte numbers like float16 weights: a high byte from four values, a
    /// low byte that is noise.
    fn weights(len: usize) -> Vec<u8> {
        noise(len)
            .chunks(2)
            .flat_map(|pair| match pair {
                [low, high] => vec![*low, 0x20 | (high & 3)],
                odd => odd.to_vec(),
            })
            .collect()
    }

    #[test]
    fn numbers_are_stored_as_planes_when_that_is_smaller() {
        let data = weights(1_000_001);
        let object = object_of(&data);
        assert!(object.starts_with(&PLANES_PREFIX));
        let plain = zstd::bulk::compress(&data, LEVEL).expect("compress");
        assert!(
            object.len() < plain.len(),
            "{} >= {}",
            object.len(),
            plain.len()
        );
        let hash = ChunkHash::of(&data);
        assert_eq!(decode_verified(&object, &hash).expect("decodes"), data);
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        copy_verified_into(&object, &mut out, &mut scratch, &hash).expect("copies");
        assert_eq!(out, data);
        verify_using(&object, &mut scratch, &hash).expect("verifies");
        let mut owned = object.clone();
        decode_verified_into(&mut owned, &mut out, &hash).expect("decodes in place");
        assert_eq!(out, data);
        let wrong = ChunkHash::of(b"other");
        assert!(matches!(
            verify_using(&object, &mut scratch, &wrong),
            Err(Error::Mismatch { .. })
        ));
    }

    #[test]
    fn the_probe_sees_what_planes_gain_on_a_whole_chunk() {
        let mut encoder = Encoder::new().expect("context");
        let sample = weights(PROBE_BYTES);
        let plain = encoder.probe(&sample, 1).expect("probe");
        let planes = encoder.probe(&sample, 2).expect("probe");
        assert!(planes * 10 < plain * 9, "planes {planes} vs plain {plain}");
    }

    #[test]
    fn planes_objects_with_an_unknown_width_are_corrupt() {
        let mut object = object_of(&weights(200_000));
        object[PLANES_PREFIX.len()] = 3;
        assert!(matches!(decode(&object), Err(Error::Corrupt(_))));
        let hash = ChunkHash::of(&weights(200_000));
        assert!(verify_using(&object, &mut Vec::new(), &hash).is_err());
    }

    #[test]
    fn raw_data_that_mimics_a_planes_object_is_framed() {
        let mut data = PLANES_PREFIX.to_vec();
        data.extend_from_slice(b"\x02not really planes");
        let object = object_of(&data);
        assert!(object.starts_with(&ZSTD_MAGIC));
        assert_eq!(decode(&object).expect("a plain frame"), data);
        assert_eq!(encode_raw(&data).expect("encode"), object);
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
