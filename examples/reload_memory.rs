//! Resident memory of rule reloads, without traffic: loads a generated 100,000-rule Mastodon
//! CSV (the load harness's file) through `Rules`, then reloads it `RELOADS` times (each time
//! with one more line, as the harness does) and prints the process's RSS before each reload
//! and its peak during it. The peak is reset before each reload (`/proc/self/clear_refs`), so
//! each line is that reload's own peak. Linux only; jemalloc as in the binary.
//!
//!   cargo run --release --example reload_memory [RELOADS]

use inboxguard::config::{BlocklistConfig, PolicyConfig};
use inboxguard::metrics::Metrics;
use inboxguard::rules::Rules;
use std::io::Write as _;
use std::sync::Arc;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[allow(dead_code)]
#[path = "../benches/support/mod.rs"]
mod support;

const RULES: usize = 100_000;

/// (VmRSS, VmHWM) in KiB.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn source(path: std::path::PathBuf, max_shrink: f64) -> BlocklistConfig {
    BlocklistConfig {
        max_shrink,
        ..BlocklistConfig::file(path)
    }
}

fn main() {
    let reloads: usize = std::env::args()
        .nth(1)
        .map_or(10, |n| n.parse().expect("RELOADS is a number"));
    let dir = tempfile::tempdir().expect("temp dir");
    let csv_path = dir.path().join("domain_blocks.csv");
    let orig_path = dir.path().join("domain_blocks.orig");
    let toml_path = dir.path().join("rules.toml");
    // Written and dropped, so this process holds no copy of its own.
    std::fs::write(&orig_path, support::mastodon_csv(RULES, &[])).expect("write CSV");
    std::fs::copy(&orig_path, &csv_path).expect("copy CSV");
    std::fs::write(&toml_path, "# no rules\n").expect("write TOML");
    let sources = vec![source(csv_path.clone(), 0.5), source(toml_path, 1.0)];
    inboxguard::memory::release_freed_pages().expect("purge");

    let (before, _) = rss();
    let rules = Rules::new(
        sources,
        PolicyConfig::default(),
        Arc::new(Metrics::new().expect("metrics")),
    )
    .expect("first load");
    let (now, peak) = rss();
    println!(
        "first load: RSS {:.1} -> {:.1} MiB, peak {:.1} MiB",
        mib(before),
        mib(now),
        mib(peak)
    );
    let mut worst = 0;
    for n in 0..reloads {
        // As the load harness: the original list plus one line, renamed into place.
        let next = dir.path().join("domain_blocks.tmp");
        std::fs::copy(&orig_path, &next).expect("copy CSV");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&next)
            .expect("open CSV");
        writeln!(file, "reload{n}.example,suspend,false,false,,false").expect("append");
        drop(file);
        std::fs::rename(&next, &csv_path).expect("rename CSV");
        // The retired snapshot is freed on a thread of its own: let it finish.
        std::thread::sleep(std::time::Duration::from_millis(300));
        inboxguard::memory::release_freed_pages().expect("purge");
        std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak");
        let (before, _) = rss();
        rules.reload().expect("reload");
        let (after, peak) = rss();
        worst = worst.max(peak);
        println!(
            "reload {n}: RSS {:.1} before, peak {:.1} (+{:.1}), {:.1} after",
            mib(before),
            mib(peak),
            mib(peak.saturating_sub(before)),
            mib(after)
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (now, _) = rss();
    println!(
        "after {reloads} reloads: RSS {:.1} MiB, highest reload peak {:.1} MiB",
        mib(now),
        mib(worst)
    );
}
