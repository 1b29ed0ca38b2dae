//! Every committed fuzz seed (`fuzz/seeds/<target>/*`) through the same function its fuzz
//! target calls (`inboxguard::fuzz`), on the stable toolchain: the fuzz targets need nightly
//! flags and libFuzzer, but their bodies and seeds must keep working in every `cargo test`.

// Helpers outside #[test] fns panic on a broken checkout too, which is the right failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// The seed files of `target`, sorted; a target without seeds is a failure (a renamed
/// directory would otherwise test nothing).
fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
}

/// Runs every seed of `target` through `body`, naming the seed if it panics.
fn run_seeds(target: &str, body: fn(&[u8])) {
    for seed in seeds(target) {
        let data = std::fs::read(&seed).unwrap();
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            panic!("fuzz target {target} panicked on {}", seed.display());
        }
    }
}

#[test]
fn every_fuzz_target_has_its_seeds_run_here() {
    let targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(targets)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "activity_facts",
            "blocklist",
            "digest_header",
            "rfc9421",
            "signature_header"
        ],
        "a new fuzz target needs its seeds run here"
    );
}

#[test]
fn activity_facts_seeds() {
    run_seeds("activity_facts", inboxguard::fuzz::activity_facts);
}

#[test]
fn blocklist_seeds() {
    run_seeds("blocklist", inboxguard::fuzz::blocklist);
}

#[test]
fn digest_header_seeds() {
    run_seeds("digest_header", inboxguard::fuzz::digest_header);
}

#[test]
fn rfc9421_seeds() {
    run_seeds("rfc9421", inboxguard::fuzz::rfc9421);
}

#[test]
fn signature_header_seeds() {
    run_seeds("signature_header", inboxguard::fuzz::signature_header);
}

/// The Fediseer seeds are answers the parser takes (each form of the API), so the fuzzer
/// starts from the real shape rather than from bytes it refuses at the first brace.
#[test]
fn fediseer_seeds_parse_as_fediseer_answers() {
    use inboxguard::policy::sources::{parse_fediseer_bytes, FediseerList, FediseerSettings};
    let fediseer: Vec<PathBuf> = seeds("blocklist")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("fediseer_")
        })
        .collect();
    assert_eq!(fediseer.len(), 4, "{fediseer:?}");
    for seed in fediseer {
        let data = std::fs::read(&seed).unwrap();
        let list = if seed.to_string_lossy().contains("hesitations") {
            FediseerList::Hesitations
        } else {
            FediseerList::Censures
        };
        let settings = FediseerSettings {
            list,
            min_count: None,
        };
        let parsed = parse_fediseer_bytes(&data, "seed".into(), settings)
            .unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
        assert!(parsed.rules.len() >= 3, "{}", seed.display());
    }
}
