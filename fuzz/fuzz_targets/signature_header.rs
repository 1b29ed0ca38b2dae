//! The `Signature` header parser and everything `signature::prepare` derives from it, on
//! arbitrary header bytes (`inboxguard::fuzz::signature_header`).
//! The body lives in the crate so tests/fuzz_seeds.rs runs the committed seeds through it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| inboxguard::fuzz::signature_header(data));
