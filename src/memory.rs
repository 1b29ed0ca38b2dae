//! Giving freed memory back to the kernel at the moments the process frees a lot of it at once.
//!
//! The binary allocates with jemalloc (`main.rs` says why), which keeps freed pages for up to
//! 10 s (its `dirty_decay_ms`) so the next allocations can reuse them without a page fault.
//! That suits request traffic, but a rules reload frees a whole snapshot (~13 MB for 100,000
//! rules) plus the parse's temporaries in one go, and those pages stayed resident: with
//! 100,000 rules the idle process held 46 MiB instead of 34, and ~10 MiB more after reloads
//! under load. Setting `dirty_decay_ms` to 0 for the whole process returns them but does so
//! on every free, costing ~3 % of throughput; returning them only at a reload's big frees
//! costs nothing on the request path. (The peak during a reload is another matter: the old
//! snapshot serves while the new one is built.)
//!
//! jemalloc's own `arena.<i>.purge` cannot be called without `unsafe` (it takes no value,
//! which the safe mallctl wrappers cannot express), and this crate forbids `unsafe`. Setting an
//! arena's `dirty_decay_ms` purges all of its unused dirty pages at once when the new value is
//! 0, so each arena's value is set to 0 and straight back.
//!
//! Without jemalloc as the global allocator (the library's tests run on the system
//! allocator) this touches jemalloc's empty arenas and frees nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tikv_jemalloc_ctl::{arenas, Access, AsName};

/// How long [`retire`] waits for the last readers of a replaced structure. Requests hold the
/// rule snapshot they started with to their end: under full load that is a few ms (p99
/// 12 ms, max ~30 ms in the load harness), so a quarter second covers all but a request stuck
/// on a slow upstream, which then frees it itself.
const RETIRE_WAIT: Duration = Duration::from_millis(250);
/// How often [`retire`] looks whether the last reader is done.
const RETIRE_POLL: Duration = Duration::from_millis(1);

/// Returns every arena's unused dirty pages to the kernel now. Call it off the request path,
/// after dropping a large structure (it takes each arena's decay lock for a moment). Returns
/// how many arenas were purged; an error only when jemalloc's control interface itself fails,
/// which the callers log and ignore: the pages are then returned by the usual decay.
pub fn release_freed_pages() -> Result<u32, tikv_jemalloc_ctl::Error> {
    let narenas = arenas::narenas::read()?;
    let mut decay = b"arena.0.dirty_decay_ms\0".name().mib::<[usize; 3]>()?;
    let mut purged = 0;
    for arena in 0..narenas {
        decay[1] = arena as usize;
        // An arena index no thread has used yet has no arena behind it (EFAULT): skip it.
        let Ok(was) = Access::<isize>::update(&decay, 0) else {
            continue;
        };
        decay.write(was)?;
        purged += 1;
    }
    Ok(purged)
}

/// Drops `old` on this (blocking) thread once nobody else holds it, then returns the freed
/// pages. Called with the snapshot a reload replaced: otherwise the request that happens to
/// drop the last reference would spend milliseconds freeing 100,000 rules, in its own arena,
/// and nothing would return those pages before the next reload. Waits at most [`RETIRE_WAIT`];
/// after that the last reader frees it, and the next reload returns its pages.
pub(crate) fn retire<T>(old: Arc<T>) {
    let deadline = Instant::now() + RETIRE_WAIT;
    let mut old = old;
    loop {
        old = match Arc::try_unwrap(old) {
            Ok(value) => {
                drop(value);
                break;
            }
            Err(shared) if Instant::now() >= deadline => {
                drop(shared);
                break;
            }
            Err(shared) => shared,
        };
        std::thread::sleep(RETIRE_POLL);
    }
    release_freed_pages_or_log();
}

/// [`retire`] on a thread of its own, so the caller (a reload holding the reload lock) does
/// not wait for the last readers. Should no thread start, `old` is dropped here.
pub(crate) fn retire_in_background<T: Send + Sync + 'static>(old: Arc<T>) {
    let spawned = std::thread::Builder::new()
        .name("retire".into())
        .spawn(move || retire(old));
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "no thread to drop the replaced snapshot on");
    }
}

/// [`release_freed_pages`] for callers that only log a failure.
pub(crate) fn release_freed_pages_or_log() {
    match release_freed_pages() {
        Ok(arenas) => tracing::debug!(arenas, "freed memory returned to the kernel"),
        Err(e) => tracing::debug!(error = %e, "freed memory not returned at once"),
    }
}

/// Bytes of items [`Releasing`] yields between two hand-backs of the memory they took.
const RELEASE_EVERY_BYTES: usize = 1 << 20;

/// The items of a vector, in order, with the memory of those already taken handed back to the
/// kernel as the iteration goes (every ~1 MiB), so whatever they are moved into does not grow
/// beside the whole vector. For a reload's parsed rules moving into the new snapshot.
pub(crate) struct Releasing<T> {
    /// The items not yet taken, last first.
    rest: Vec<T>,
    /// Items taken since the last hand-back.
    taken: usize,
}

/// See [`Releasing`].
pub(crate) fn releasing<T>(mut items: Vec<T>) -> Releasing<T> {
    // Reversed in place, so each item is popped off the end and the vector can shrink.
    items.reverse();
    Releasing {
        rest: items,
        taken: 0,
    }
}

impl<T> Iterator for Releasing<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.taken >= RELEASE_EVERY_BYTES / std::mem::size_of::<T>().max(1) {
            // A large allocation shrinks in place; its freed tail is returned below.
            self.rest.shrink_to_fit();
            release_freed_pages_or_log();
            self.taken = 0;
        }
        self.taken += 1;
        self.rest.pop()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.rest.len(), Some(self.rest.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::thread::ThreadId;

    #[test]
    fn releasing_yields_every_item_in_order_and_shrinks_as_it_goes() {
        let items: Vec<u64> = (0..1_000_000).collect();
        let mut drain = releasing(items);
        let mut expected = 0;
        let mut smallest = usize::MAX;
        while let Some(item) = drain.next() {
            assert_eq!(item, expected);
            expected += 1;
            smallest = smallest.min(drain.rest.capacity());
        }
        assert_eq!(expected, 1_000_000);
        // Shrunk at least once the last hand-back came (every 131,072 items of 8 bytes).
        assert!(smallest < 1_000_000 - 3 * 131_072, "{smallest}");
        assert_eq!(releasing(Vec::<()>::new()).count(), 0);
        assert_eq!(releasing(vec![(); 5]).count(), 5);
    }

    /// Records the thread that dropped it.
    struct Witness(Arc<Mutex<Option<ThreadId>>>);

    impl Drop for Witness {
        fn drop(&mut self) {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::thread::current().id());
        }
    }

    #[test]
    fn an_unshared_value_is_dropped_by_the_retiring_thread() {
        let dropped_by = Arc::new(Mutex::new(None));
        retire(Arc::new(Witness(dropped_by.clone())));
        assert_eq!(
            *dropped_by.lock().unwrap(),
            Some(std::thread::current().id())
        );
    }

    #[test]
    fn a_value_still_held_elsewhere_outlives_the_wait() {
        let dropped_by = Arc::new(Mutex::new(None));
        let value = Arc::new(Witness(dropped_by.clone()));
        let reader = value.clone();
        retire(value);
        // The reader still has it: nothing was dropped, and it is the only holder now.
        assert_eq!(*dropped_by.lock().unwrap(), None);
        assert_eq!(Arc::strong_count(&reader), 1);
        drop(reader);
        assert!(dropped_by.lock().unwrap().is_some());
    }

    #[test]
    fn release_reaches_the_arenas() {
        // The library's tests run on the system allocator, but jemalloc's arena 0 exists as
        // soon as its control interface is used; a wrong control name would fail here.
        assert!(release_freed_pages().expect("mallctl") >= 1);
    }
}
