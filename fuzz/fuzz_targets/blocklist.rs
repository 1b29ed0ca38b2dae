//! Every rule-source parser on arbitrary file contents (`inboxguard::fuzz::blocklist`: each
//! input as a Mastodon CSV, a plain list, auto-detected, a TOML rules file, both JSON lists and a
//! Fediseer answer).
//! The body lives in the crate so tests/fuzz_seeds.rs runs the committed seeds through it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| inboxguard::fuzz::blocklist(data));
