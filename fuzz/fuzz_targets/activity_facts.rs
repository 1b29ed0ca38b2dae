//! Activity-fact extraction (`activity::Facts::parse`) on arbitrary bodies.
#![no_main]

use inboxguard::activity::Facts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(facts) = Facts::parse(data) {
        let _ = facts.is_self_delete_or_update();
    }
});
