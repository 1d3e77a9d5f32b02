//! Recycled chunk buffers. Allocating a fresh multi-megabyte buffer per chunk costs a page
//! fault per 4 KiB and a zeroing of every page, which on a 2 GiB file adds up to about a
//! second of CPU; buffers taken from a [`BufferPool`] go back to it when dropped, so a
//! transfer or checkout touches the same few buffers over and over.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

/// A pool of byte buffers shared by worker threads. It keeps at most `keep` free buffers:
/// a recycled buffer keeps every page it ever touched, so an unbounded pool would hold the
/// peak of a burst forever.
#[derive(Debug)]
pub struct BufferPool {
    free: Arc<Free>,
}

#[derive(Debug)]
struct Free {
    buffers: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl BufferPool {
    /// A pool that keeps up to `keep` free buffers.
    #[must_use]
    pub fn new(keep: usize) -> Self {
        Self {
            free: Arc::new(Free {
                buffers: Mutex::new(Vec::with_capacity(keep)),
                keep,
            }),
        }
    }

    /// An empty buffer, recycled when one is free.
    #[must_use]
    pub fn take(&self) -> PooledBuffer {
        let buf = self
            .free
            .buffers
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .map(|mut buf| {
                buf.clear();
                buf
            })
            .unwrap_or_default();
        PooledBuffer {
            buf,
            home: Arc::clone(&self.free),
        }
    }
}

/// A buffer that returns to its pool when dropped.
#[derive(Debug)]
pub struct PooledBuffer {
    buf: Vec<u8>,
    home: Arc<Free>,
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Ok(mut free) = self.home.buffers.lock()
            && free.len() < self.home.keep
        {
            free.push(std::mem::take(&mut self.buf));
        }
    }
}

impl Deref for PooledBuffer {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

/// Lets a pooled buffer back a [`bytes::Bytes`] (`Bytes::from_owner`): the buffer returns to
/// its pool once the last clone of those bytes is dropped, e.g. after an HTTP upload.
impl AsRef<[u8]> for PooledBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl DerefMut for PooledBuffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_buffers_are_reused_empty() {
        let pool = BufferPool::new(1);
        let mut first = pool.take();
        first.extend_from_slice(&[1; 1000]);
        let address = first.as_ptr();
        drop(first);
        let second = pool.take();
        assert!(second.is_empty());
        assert_eq!(second.as_ptr(), address);
        assert!(second.capacity() >= 1000);
    }

    #[test]
    fn only_so_many_free_buffers_are_kept() {
        let pool = BufferPool::new(1);
        let (mut a, mut b) = (pool.take(), pool.take());
        a.push(1);
        b.push(2);
        let kept = a.as_ptr();
        drop(a);
        drop(b);
        let again = pool.take();
        assert_eq!(again.as_ptr(), kept);
        assert_eq!(pool.take().capacity(), 0, "the second buffer was freed");
    }

    #[test]
    fn bytes_backed_by_a_buffer_return_it_when_dropped() {
        let pool = BufferPool::new(2);
        let mut buf = pool.take();
        buf.extend_from_slice(b"object");
        let address = buf.as_ptr();
        let bytes = bytes::Bytes::from_owner(buf);
        let clone = bytes.clone();
        assert_eq!(&clone[..], b"object");
        drop(bytes);
        assert_eq!(pool.take().capacity(), 0, "a clone still holds the buffer");
        drop(clone);
        assert_eq!(pool.take().as_ptr(), address);
    }

    #[test]
    fn buffers_outliving_their_pool_are_freed() {
        let pool = BufferPool::new(4);
        let held = pool.take();
        drop(pool);
        drop(held);
    }
}
