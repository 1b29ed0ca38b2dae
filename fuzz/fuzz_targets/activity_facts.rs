//! Activity-fact extraction on arbitrary bodies (`inboxguard::fuzz::activity_facts`).
//! The body lives in the crate so tests/fuzz_seeds.rs runs the committed seeds through it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| inboxguard::fuzz::activity_facts(data));
