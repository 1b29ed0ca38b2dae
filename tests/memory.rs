//! `memory::release_freed_pages` under the binary's allocator: pages jemalloc kept after a
//! large free leave the process at once, instead of after its 10 s decay.
#![allow(clippy::unwrap_used)]

// The allocator `main.rs` installs; the library's other tests run on the system allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use tikv_jemalloc_ctl::{Access, AsName};

const MIB: u64 = 1024;

/// This process's resident set, KiB (`VmRSS`).
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn freed_pages_leave_the_process_when_released() {
    // 64 MiB in 64 KiB blocks, every page written (a zero fill could stay unmapped).
    let blocks: Vec<Vec<u8>> = (0..1024u32)
        .map(|i| vec![(i % 255) as u8 | 1; 64 * 1024])
        .collect();
    let full = resident_kib();
    drop(blocks);
    let kept = resident_kib();
    if kept + 32 * MIB < full {
        eprintln!("skipped: jemalloc returned the freed pages by itself ({full} -> {kept} KiB)");
        return;
    }
    let arenas = inboxguard::memory::release_freed_pages().unwrap();
    let released = resident_kib();
    assert!(arenas >= 1);
    // Each arena is back on jemalloc's usual decay, or every later free would purge at once.
    let decay = b"arena.0.dirty_decay_ms\0"
        .name()
        .mib::<[usize; 3]>()
        .unwrap();
    let default: isize = b"opt.dirty_decay_ms\0".name().read().unwrap();
    assert_eq!(decay.read(), Ok(default));
    assert!(
        released + 48 * MIB < kept,
        "resident {full} KiB full, {kept} KiB after the free, {released} KiB after the release"
    );
}
