//! An ordered parallel map for I/O- and CPU-bound chunk work: worker threads process items out
//! of order, the caller consumes results strictly in order, and at most `window` results are
//! in flight, so memory stays bounded however large the file.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Condvar, Mutex};
use std::thread;

/// Worker threads to use: every core, at least two (one reads while another decodes).
#[must_use]
pub fn workers() -> usize {
    thread::available_parallelism()
        .map_or(2, std::num::NonZero::get)
        .max(2)
}

/// How much lower a worker's priority is than the thread that consumes its results.
const WORKER_NICE_STEP: i32 = 5;

/// Lowers the calling worker thread's priority a little (relative to the thread that started
/// it). Chunk work always has one serial chain (reading and cutting, or the whole-file
/// digest): on a busy machine that chain keeps its core and the parallel work fills the gaps,
/// instead of every thread getting an equal share and the chain setting the pace at half speed.
pub fn give_way() {
    let tid = Some(rustix::thread::gettid());
    if let Ok(nice) = rustix::process::getpriority_process(tid) {
        let _ = rustix::process::setpriority_process(tid, (nice + WORKER_NICE_STEP).min(19));
    }
}

/// Runs `work` on every item across `workers` threads and hands the results to `consume` in
/// item order. Stops at the first error (from either side) and returns it.
pub fn ordered<T, R, E>(
    items: &[T],
    workers: usize,
    window: usize,
    work: impl Fn(&T) -> Result<R, E> + Sync,
    mut consume: impl FnMut(R) -> Result<(), E>,
) -> Result<(), E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let consumed = (Mutex::new(0usize), Condvar::new());
    let (tx, rx) = channel::<(usize, Result<R, E>)>();
    thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            let tx = tx.clone();
            let (next, stop, consumed, work) = (&next, &stop, &consumed, &work);
            let _ = scope.spawn(move || {
                give_way();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() || stop.load(Ordering::Relaxed) {
                        return;
                    }
                    // Do not run more than `window` items ahead of the consumer.
                    let (lock, ready) = consumed;
                    let mut done = lock.lock().expect("no code panics while holding this lock");
                    while i >= *done + window && !stop.load(Ordering::Relaxed) {
                        done = ready
                            .wait(done)
                            .expect("no code panics while holding this lock");
                    }
                    drop(done);
                    if tx.send((i, work(&items[i]))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let result = drain(items.len(), &rx, &consumed, &mut consume);
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
            consumed.1.notify_all();
        }
        result
    })
}

/// Receives results and consumes them in order.
fn drain<R, E>(
    count: usize,
    rx: &std::sync::mpsc::Receiver<(usize, Result<R, E>)>,
    consumed: &(Mutex<usize>, Condvar),
    consume: &mut impl FnMut(R) -> Result<(), E>,
) -> Result<(), E> {
    let mut pending: BTreeMap<usize, Result<R, E>> = BTreeMap::new();
    let mut expected = 0;
    while expected < count {
        let Ok((i, result)) = rx.recv() else { break };
        let _ = pending.insert(i, result);
        while let Some(result) = pending.remove(&expected) {
            consume(result?)?;
            expected += 1;
            *consumed
                .0
                .lock()
                .expect("no code panics while holding this lock") = expected;
            consumed.1.notify_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_arrive_in_order() {
        let items: Vec<u64> = (0..500).collect();
        let mut seen = Vec::new();
        let result: Result<(), ()> = ordered(
            &items,
            4,
            8,
            |x| Ok(x * 2),
            |r| {
                seen.push(r);
                Ok(())
            },
        );
        assert!(result.is_ok());
        assert_eq!(seen, items.iter().map(|x| x * 2).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_error_stops_the_work() {
        let items: Vec<u64> = (0..500).collect();
        let mut consumed = 0;
        let result = ordered(
            &items,
            3,
            4,
            |&x| if x == 100 { Err(x) } else { Ok(x) },
            |_| {
                consumed += 1;
                Ok(())
            },
        );
        assert_eq!(result, Err(100));
        assert_eq!(consumed, 100);
    }
}
