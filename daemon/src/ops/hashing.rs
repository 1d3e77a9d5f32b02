//! Reading a file once to cut, hash and (optionally) store its chunks, in parallel across
//! cores: the calling thread reads and cuts, one thread keeps the whole-file SHA-256, and
//! worker threads hash each chunk and store the new ones. All of them share the bytes of each
//! read segment ([`crate::chunk::segments`]); nothing is copied per chunk.

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
        let mut hashed = read_once(path, rel, chunking, store, before.size, reporter)?;
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
        let stored = match store {
            Storing::Nothing => Ok(None),
            Storing::Compressed(s) => s.put_chunk(&hash, &bytes, true).map_err(Into::into),
            Storing::Deferred(s) => s.put_chunk(&hash, &bytes, false).map_err(Into::into),
        };
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
            if deferring {
                hashed.deferred.push(chunk.sha256);
            }
            hashed.new_chunks += 1;
            hashed.new_bytes += u64::from(chunk.size);
            hashed.stored_bytes += stored;
        }
        slots[i] = Some(chunk);
    }
    hashed.chunks = slots
        .into_iter()
        .map(|c| c.expect("every chunk was processed"))
        .collect();
    Ok(hashed)
}
