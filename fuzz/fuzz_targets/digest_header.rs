//! The `Digest` header parser through `signature::prepare` (`inboxguard::fuzz::digest_header`:
//! each input line is one `Digest` header).
//! The body lives in the crate so tests/fuzz_seeds.rs runs the committed seeds through it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| inboxguard::fuzz::digest_header(data));
