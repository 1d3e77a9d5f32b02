//! Reading a file in large recycled segments and cutting chunks out of them in place.
//!
//! Every byte is read once into a segment buffer and then only borrowed: the whole-file digest
//! and the chunk workers see [`SegmentSlice`]s of the same buffer, and a buffer goes back to
//! the pool when the last slice of it is dropped. Only the unfinished tail of a segment (less
//! than one maximum chunk) is copied, to the front of the next one. A fixed number of buffers
//! bounds memory whatever the file size, and reusing them keeps page faults and allocator
//! work off the hot path.

use std::io::{self, Read};
use std::ops::{Deref, Range};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use super::cdc::Cutter;

/// Smallest segment: reads stay large even with small chunks.
const MIN_SEGMENT_BYTES: usize = 8 << 20;

/// Buffers alive at once: one being filled, one carried over, the rest with the consumers.
const POOL_BUFFERS: usize = 4;

/// A filled buffer; it returns to its pool when dropped.
#[derive(Debug)]
pub struct Segment {
    buf: Vec<u8>,
    len: usize,
    home: Sender<Vec<u8>>,
}

impl Drop for Segment {
    fn drop(&mut self) {
        // The pool may be gone already (reading finished); the buffer is then freed.
        let _ = self.home.send(std::mem::take(&mut self.buf));
    }
}

/// Bytes of a segment, shared without copying.
#[derive(Clone, Debug)]
pub struct SegmentSlice {
    segment: Arc<Segment>,
    range: Range<usize>,
}

impl Deref for SegmentSlice {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.segment.buf[self.range.clone()]
    }
}

/// What reading produces, in file order.
#[derive(Debug)]
pub enum Event {
    /// Bytes just read (each byte of the file appears in exactly one `Data`, in order).
    Data(SegmentSlice),
    /// A complete chunk starting at `offset`; it lies within bytes already given as `Data`.
    Chunk {
        /// Offset of the chunk's first byte in the file.
        offset: u64,
        /// The chunk's bytes.
        bytes: SegmentSlice,
    },
}

/// Reads `reader` to the end, yielding [`Event`]s. Consumers must drop slices as they finish
/// with them: holding more than a few segments' worth stalls the reader until some come back.
pub struct SegmentReader<R> {
    reader: R,
    cutter: Cutter,
    capacity: usize,
    allocated: usize,
    returned: Receiver<Vec<u8>>,
    home: Sender<Vec<u8>>,
    /// The current segment and the position of its first uncut byte.
    current: Option<(Arc<Segment>, usize)>,
    /// File offset of `current`'s first uncut byte.
    offset: u64,
    at_end: bool,
    failed: bool,
}

impl<R: Read> SegmentReader<R> {
    /// Cuts `reader` with `cutter`.
    pub fn new(reader: R, cutter: Cutter) -> Self {
        let (home, returned) = channel();
        Self {
            reader,
            cutter,
            capacity: (2 * cutter.max_size()).max(MIN_SEGMENT_BYTES),
            allocated: 0,
            returned,
            home,
            current: None,
            offset: 0,
            at_end: false,
            failed: false,
        }
    }

    /// A free buffer: a returned one, a new one while under the limit, else the next to come
    /// back.
    fn buffer(&mut self) -> Vec<u8> {
        if let Ok(buf) = self.returned.try_recv() {
            return buf;
        }
        if self.allocated < POOL_BUFFERS {
            self.allocated += 1;
            // Zeroed pages come straight from the kernel; untouched ones cost nothing.
            return vec![0; self.capacity];
        }
        self.returned
            .recv()
            .expect("the reader holds a sender, so the channel stays open")
    }

    /// Starts a new segment with the uncut tail of the current one, then fills it.
    fn refill(&mut self) -> io::Result<SegmentSlice> {
        let mut buf = self.buffer();
        let mut len = 0;
        if let Some((segment, cut)) = self.current.take() {
            let tail = &segment.buf[cut..segment.len];
            buf[..tail.len()].copy_from_slice(tail);
            len = tail.len();
        }
        let fresh = len;
        while len < buf.len() {
            match self.reader.read(&mut buf[len..]) {
                Ok(0) => {
                    self.at_end = true;
                    break;
                }
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Keep the segment (and its tail) out of circulation: reading is over.
                    let _ = self.home.send(buf);
                    return Err(e);
                }
            }
        }
        let segment = Arc::new(Segment {
            buf,
            len,
            home: self.home.clone(),
        });
        self.current = Some((Arc::clone(&segment), 0));
        Ok(SegmentSlice {
            segment,
            range: fresh..len,
        })
    }
}

impl<R: Read> Iterator for SegmentReader<R> {
    type Item = io::Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if let Some((segment, cut)) = &mut self.current {
            let rest = &segment.buf[*cut..segment.len];
            if let Some(size) = self.cutter.next(rest, self.at_end) {
                let bytes = SegmentSlice {
                    segment: Arc::clone(segment),
                    range: *cut..*cut + size,
                };
                *cut += size;
                let offset = self.offset;
                self.offset += size as u64;
                return Some(Ok(Event::Chunk { offset, bytes }));
            }
            if self.at_end {
                self.current = None;
                return None;
            }
        } else if self.at_end {
            return None;
        }
        match self.refill() {
            Ok(data) if data.is_empty() => {
                // End of input exactly at a segment boundary: any tail is cut on the next call.
                self.next()
            }
            Ok(data) => Some(Ok(Event::Data(data))),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cdc::Chunking;
    use super::super::cdc::test_input::{noise, small};
    use super::*;
    use proptest::prelude::*;

    /// A reader that returns at most `step` bytes per call, like a pipe or a slow disk.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// (offset, bytes) of every chunk, plus every `Data` event joined.
    fn run(reader: impl Read, chunking: &Chunking) -> (Vec<(u64, Vec<u8>)>, Vec<u8>) {
        let mut chunks = Vec::new();
        let mut data = Vec::new();
        for event in SegmentReader::new(reader, chunking.cutter()) {
            match event.expect("reading memory cannot fail") {
                Event::Data(bytes) => data.extend_from_slice(&bytes),
                Event::Chunk { offset, bytes } => chunks.push((offset, bytes.to_vec())),
            }
        }
        (chunks, data)
    }

    /// What fastcdc's own streaming chunker cuts: the reference every stored manifest was
    /// made with.
    fn reference(data: &[u8], c: &Chunking) -> Vec<(u64, Vec<u8>)> {
        fastcdc::v2020::StreamCDC::new(data, c.min_size, c.avg_size, c.max_size)
            .map(|chunk| {
                let chunk = chunk.expect("reading memory cannot fail");
                (chunk.offset, chunk.data)
            })
            .collect()
    }

    #[test]
    fn empty_input_has_no_chunks_and_no_data() {
        let (chunks, data) = run(&b""[..], &small());
        assert!(chunks.is_empty() && data.is_empty());
    }

    #[test]
    fn inputs_spanning_many_segments_match_the_reference() {
        // Several 8 MiB segments with 1 MiB chunks, so tails are carried over many times.
        let c = Chunking::fastcdc(1 << 20).expect("in range");
        let data = noise(30 << 20, 11);
        let (chunks, joined) = run(&data[..], &c);
        assert_eq!(joined, data);
        assert_eq!(chunks, reference(&data, &c));
    }

    #[test]
    fn fixed_blocks_are_exact() {
        let fixed = Chunking::fixed(64 * 1024).expect("in range");
        let (chunks, _) = run(&noise(200_000, 7)[..], &fixed);
        let sizes: Vec<usize> = chunks.iter().map(|(_, b)| b.len()).collect();
        assert_eq!(sizes, [65536, 65536, 65536, 3392]);
    }

    #[test]
    fn slow_readers_give_the_same_cuts() {
        let data = noise(100_000, 3);
        let trickle = Trickle {
            data: &data,
            step: 777,
        };
        assert_eq!(run(trickle, &small()).0, reference(&data, &small()));
    }

    proptest! {
        #[test]
        fn cuts_equal_fastcdc_streaming(len in 0usize..60_000, seed in any::<u64>()) {
            let data = noise(len, seed);
            let (chunks, joined) = run(&data[..], &small());
            prop_assert_eq!(joined, data.clone());
            prop_assert_eq!(chunks, reference(&data, &small()));
        }
    }
}
