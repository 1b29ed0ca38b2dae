//! The RFC 9421 parsers and signature base through `signature::prepare`
//! (`inboxguard::fuzz::rfc9421`: input lines `Signature-Input`, `Signature`, optionally
//! `Content-Digest`).
//! The body lives in the crate so tests/fuzz_seeds.rs runs the committed seeds through it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| inboxguard::fuzz::rfc9421(data));
