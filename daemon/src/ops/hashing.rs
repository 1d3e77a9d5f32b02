//! Reading a file once to cut, hash and (optionally) store its chunks, in parallel across
//! cores: the calling thread reads and cuts, one thread keeps the whole-file SHA-256, and
//! worker threads hash each chunk and store the new ones. All of them share the bytes of each
//! read segment ([`crate::chunk::segments`]); nothing is copied per chunk.
//!
//! A small file ([`SMALL_FILE_BYTES`]) is done on the calling thread alone: starting those
//! threads would cost more than its work, and a commit of many small files spreads the files
//! over the cores instead.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;

use fs_err as fs;
use sha2::{Digest, Sha256};

use super::Reporter;
use crate::chunk::ChunkHash;
use crate::chunk::cdc::Chunking;
use crate::chunk::segments::{Event, SegmentReader, SegmentSlice};
use crate::error::{Error, Result};
use crate::index::{FileStamp, now_ns};
use crate::manifest::ChunkRef;
use crate::store::local::LocalStore;

/// Chunks queued for the workers (the segment pool bounds the memory they hold).
const QUEUED_CHUNKS: usize = 64;

/// Files up to this size are read whole, then cut, hashed and stored on the calling thread.
pub const SMALL_FILE_BYTES: u64 = 1 << 20;

/// Times a file is re-read when it changes under us before giving up.
const STABILITY_ATTEMPTS: usize = 3;

/// The result of reading a whole file.
#[derive(Clone, Debug, Default)]
pub struct Hashed {
    /// The chunks in order.
    pub chunks: Vec<ChunkRef>,
    /// Size of the file.
    pub size: u64,
    /// SHA-256 of the whole file.
    pub sha256: Option<ChunkHash>,
    /// The file's stamp, identical before and after the read.
    pub stamp: Option<FileStamp>,
    /// Chunks newly written to the store.
    pub new_chunks: u64,
    /// Content bytes in new chunks.
    pub new_bytes: u64,
    /// Bytes written to the store.
    pub stored_bytes: u64,
    /// New chunks stored raw, to be compressed later (with [`Storing::Deferred`]).
    pub deferred: Vec<ChunkHash>,
}

/// Whether and how chunks are stored while a file is read.
#[derive(Clone, Copy, Debug)]
pub enum Storing<'a> {
    /// Only hash.
    Nothing,
    /// Store new chunks compressed (background work).
    Compressed(&'a LocalStore),
    /// Store new chunks raw now and let the daemon compress them when idle, so an
    /// interactive commit costs little more than reading and hashing.
    Deferred(&'a LocalStore),
}

impl Hashed {
    /// The whole-file digest (always set once hashing succeeded).
    #[must_use]
    pub fn digest(&self) -> ChunkHash {
        self.sha256.expect("set by hash_file")
    }

    /// Counts `chunk`, just stored as `stored` bytes (raw, to compress later, if `deferred`).
    fn new_chunk(&mut self, chunk: &ChunkRef, stored: u64, deferred: bool) {
        if deferred {
            self.deferred.push(chunk.sha256);
        }
        self.new_chunks += 1;
        self.new_bytes += u64::from(chunk.size);
        self.stored_bytes += stored;
    }
}

/// Cuts and hashes `path`, storing new chunks in `store` when one is given. The file must stay
/// unchanged while it is read; a file that keeps changing is an error. A file changed a moment
/// ago is read once its times can tell a later change ([`FileStamp::settle_time`]).
pub fn hash_file(
    path: &Path,
    rel: &str,
    chunking: &Chunking,
    store: Storing<'_>,
    reporter: &mut Reporter,
) -> Result<Hashed> {
    for _ in 0..STABILITY_ATTEMPTS {
        let mut before = FileStamp::read(path)?;
        // A file changed within a clock tick of the read could change again without its
        // stamp showing it, mid-read or later: wait until its times can tell (milliseconds).
        if let Some(wait) = before.settle_time(now_ns()) {
            thread::sleep(wait);
            before = FileStamp::read(path)?;
        }
        let mut hashed = if before.size <= SMALL_FILE_BYTES {
            read_small(path, rel, chunking, store, reporter)?
        } else {
            read_once(path, rel, chunking, store, before.size, reporter)?
        };
        let after = FileStamp::read(path)?;
        if before == after && hashed.size == after.size {
            hashed.stamp = Some(after);
            return Ok(hashed);
        }
        tracing::debug!(
            path = rel,
            "file changed while it was read; reading it again"
        );
    }
    Err(Error::FileUnstable {
        path: rel.to_owned(),
    })
}

/// Reads a small file whole and cuts, hashes and stores it on this thread. A file that grew
/// past [`SMALL_FILE_BYTES`] meanwhile is read only that far: its stamp has changed, so
/// [`hash_file`] reads it again.
fn read_small(
    path: &Path,
    rel: &str,
    chunking: &Chunking,
    store: Storing<'_>,
    reporter: &mut Reporter,
) -> Result<Hashed> {
    let mut data = Vec::new();
    let _ = fs::File::open(path)?
        .take(SMALL_FILE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| crate::fsutil::with_path(e, path))?;
    let cutter = chunking.cutter();
    let mut hashed = Hashed {
        size: data.len() as u64,
        ..Hashed::default()
    };
    let mut offset = 0;
    while let Some(len) = cutter.next(&data[offset..], true) {
        let bytes = &data[offset..offset + len];
        let chunk = ChunkRef {
            offset: offset as u64,
            size: len as u32,
            sha256: ChunkHash::of(bytes),
        };
        if let Some(stored) = store_chunk(store, &chunk.sha256, bytes)? {
            hashed.new_chunk(&chunk, stored, matches!(store, Storing::Deferred(_)));
        }
        hashed.chunks.push(chunk);
        offset += len;
    }
    // A file of one chunk is that chunk: its id is the file's digest, with no second pass.
    hashed.sha256 = Some(match hashed.chunks.as_slice() {
        [only] => only.sha256,
        _ => ChunkHash::of(&data),
    });
    reporter.bytes("chunking", rel, hashed.size, hashed.size);
    Ok(hashed)
}

/// Stores a chunk as `store` says; returns the bytes written if it was new.
fn store_chunk(store: Storing<'_>, hash: &ChunkHash, bytes: &[u8]) -> Result<Option<u64>> {
    Ok(match store {
        Storing::Nothing => None,
        Storing::Compressed(s) => s.put_chunk(hash, bytes, true)?,
        Storing::Deferred(s) => s.put_chunk(hash, bytes, false)?,
    })
}

/// Work item for a chunk worker: index, offset and bytes of a chunk.
type Job = (usize, u64, SegmentSlice);
/// What a worker sends back: index, chunk ref, stored bytes if new.
type Done = Result<(usize, ChunkRef, Option<u64>)>;

fn read_once(
    path: &Path,
    rel: &str,
    chunking: &Chunking,
    store: Storing<'_>,
    total: u64,
    reporter: &mut Reporter,
) -> Result<Hashed> {
    let file = fs::File::open(path)?;
    let workers = thread::available_parallelism()
        .map_or(2, std::num::NonZero::get)
        .max(2);
    let (job_tx, job_rx) = sync_channel::<Job>(QUEUED_CHUNKS);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Done>();
    // Set when the read stops early (yielded or failed): queued work is dropped, not done.
    let abandoned = AtomicBool::new(false);
    let abandoned = &abandoned;

    thread::scope(|scope| {
        for _ in 0..workers {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let _ = scope.spawn(move || worker(&job_rx, &done_tx, store, abandoned));
        }
        drop(done_tx);
        // The whole-file SHA-256 is inherently sequential: give it a thread of its own so it
        // overlaps with reading and cutting (this thread) and chunk hashing and storing (the
        // workers). It sees each segment once, as it is read.
        let (digest_tx, digest_rx) = sync_channel::<SegmentSlice>(QUEUED_CHUNKS);
        let digest = scope.spawn(move || {
            let mut whole = Sha256::new();
            for bytes in digest_rx {
                if abandoned.load(Ordering::Relaxed) {
                    break;
                }
                whole.update(&*bytes);
            }
            ChunkHash::from_hasher(whole)
        });

        let mut size = 0u64;
        let mut count = 0usize;
        let mut read_error = None;
        let mut yielded = false;
        for event in SegmentReader::new(file, chunking.cutter()) {
            let sent = match event {
                Ok(Event::Data(bytes)) => digest_tx.send(bytes).is_ok(),
                Ok(Event::Chunk { offset, bytes }) => {
                    size = offset + bytes.len() as u64;
                    reporter.bytes("chunking", rel, size, total.max(size));
                    if reporter.yielded() {
                        yielded = true;
                        break;
                    }
                    count += 1;
                    job_tx.send((count - 1, offset, bytes)).is_ok()
                }
                Err(e) => {
                    read_error = Some(crate::fsutil::with_path(e, path));
                    break;
                }
            };
            if !sent {
                break; // A worker failed; its error is collected below.
            }
        }
        if yielded || read_error.is_some() {
            abandoned.store(true, Ordering::Relaxed);
        }
        drop(job_tx);
        drop(digest_tx);
        let whole = digest.join().expect("hashing bytes cannot panic");
        if let Some(e) = read_error {
            return Err(e.into());
        }
        if yielded {
            return Err(Error::Yielded {
                path: rel.to_owned(),
            });
        }
        let deferring = matches!(store, Storing::Deferred(_));
        collect(&done_rx, count, size, whole, deferring)
    })
}

fn worker(
    jobs: &Mutex<Receiver<Job>>,
    done: &std::sync::mpsc::Sender<Done>,
    store: Storing<'_>,
    abandoned: &AtomicBool,
) {
    super::parallel::give_way();
    loop {
        let job = jobs.lock().map(|rx| rx.recv());
        let Ok(Ok((i, offset, bytes))) = job else {
            return;
        };
        if abandoned.load(Ordering::Relaxed) {
            continue; // Drain the queue without doing the work.
        }
        let hash = ChunkHash::of(&bytes);
        let chunk = ChunkRef {
            offset,
            size: bytes.len() as u32,
            sha256: hash,
        };
        let stored = store_chunk(store, &hash, &bytes);
        drop(bytes);
        if done.send(stored.map(|s| (i, chunk, s))).is_err() {
            return;
        }
    }
}

fn collect(
    done: &Receiver<Done>,
    count: usize,
    size: u64,
    sha256: ChunkHash,
    deferring: bool,
) -> Result<Hashed> {
    let mut slots: Vec<Option<ChunkRef>> = vec![None; count];
    let mut hashed = Hashed {
        size,
        sha256: Some(sha256),
        ..Hashed::default()
    };
    for result in done {
        let (i, chunk, stored) = result?;
        if let Some(stored) = stored {
            hashed.new_chunk(&chunk, stored, deferring);
        }
        slots[i] = Some(chunk);
    }
    hashed.chunks = slots
        .into_iter()
        .map(|c| c.expect("every chunk was processed"))
        .collect();
    Ok(hashed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::cdc::test_input::{noise, small};

    /// Both ways of reading `data` (written to a file), storing into a fresh store each.
    fn both_ways(data: &[u8], chunking: &Chunking) -> (Hashed, Hashed) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("f.bin");
        std::fs::write(&path, data).expect("write the file");
        let (a, b) = (
            LocalStore::new(dir.path().join("a")),
            LocalStore::new(dir.path().join("b")),
        );
        let mut reporter = Reporter::silent();
        let whole = read_small(
            &path,
            "f.bin",
            chunking,
            Storing::Deferred(&a),
            &mut reporter,
        );
        let piped = read_once(
            &path,
            "f.bin",
            chunking,
            Storing::Deferred(&b),
            data.len() as u64,
            &mut reporter,
        );
        (
            whole.expect("read whole"),
            piped.expect("read through the pipeline"),
        )
    }

    fn same(whole: &Hashed, piped: &Hashed) {
        assert_eq!(whole.chunks, piped.chunks);
        assert_eq!(whole.sha256, piped.sha256);
        assert_eq!(whole.size, piped.size);
        assert_eq!(
            (whole.new_chunks, whole.new_bytes, whole.stored_bytes),
            (piped.new_chunks, piped.new_bytes, piped.stored_bytes)
        );
        let (mut a, mut b) = (whole.deferred.clone(), piped.deferred.clone());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "the same chunks are left to compress");
    }

    #[test]
    fn a_small_file_read_whole_gives_what_the_pipeline_gives() {
        let data = noise(300 * 1024, 7);
        let (whole, piped) = both_ways(&data, &small());
        assert!(whole.chunks.len() > 50, "{} chunks", whole.chunks.len());
        same(&whole, &piped);
        assert_eq!(whole.digest(), ChunkHash::of(&data));
    }

    #[test]
    fn a_one_chunk_file_is_its_chunk_and_an_empty_file_has_none() {
        for data in [noise(100, 3), Vec::new()] {
            let (whole, piped) = both_ways(&data, &Chunking::default());
            same(&whole, &piped);
            assert_eq!(whole.digest(), ChunkHash::of(&data));
            assert_eq!(whole.chunks.len(), usize::from(!data.is_empty()));
        }
    }

    #[test]
    fn files_on_either_side_of_the_small_size_hash_alike_either_way() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for len in [SMALL_FILE_BYTES, SMALL_FILE_BYTES + 1] {
            let data = noise(usize::try_from(len).expect("fits"), 11);
            let path = dir.path().join(format!("{len}.bin"));
            std::fs::write(&path, &data).expect("write the file");
            let hashed = hash_file(
                &path,
                "f.bin",
                &small(),
                Storing::Nothing,
                &mut Reporter::silent(),
            )
            .expect("hash the file");
            let (whole, piped) = both_ways(&data, &small());
            same(&whole, &piped);
            assert_eq!(
                (&hashed.chunks, hashed.sha256, hashed.size),
                (&whole.chunks, whole.sha256, whole.size)
            );
            assert!(hashed.stamp.is_some());
        }
    }
}
