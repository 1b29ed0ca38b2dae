//! Activity-fact extraction (`activity::Facts::parse`) on arbitrary bodies, held against a
//! naive last-key-wins reader of the same body (`tests/activity_reading/oracle.rs`): wherever
//! that reader accepts a body, both must read the same facts.
#![no_main]

use inboxguard::activity::Facts;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/activity_reading/oracle.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| {
    let ours = Facts::parse(data).map_err(|_| ());
    if let Ok(facts) = &ours {
        let _ = facts.is_self_delete_or_update();
    }
    // serde_json's `Value` stops at 128 levels, which the streaming reader skips without
    // recursion, so only the oracle's acceptances are compared.
    if let Ok(expected) = oracle::read(data) {
        assert_eq!(ours, Ok(expected));
    }
});
