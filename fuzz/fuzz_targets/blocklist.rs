//! The blocklist parsers (Mastodon CSV export, plain list, auto-detection) on arbitrary
//! file contents: each input is parsed in every format.
#![no_main]

use inboxguard::config::BlocklistFormat;
use inboxguard::policy::host::normalize;
use inboxguard::policy::sources::parse_bytes;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    for format in [
        BlocklistFormat::Auto,
        BlocklistFormat::MastodonCsv,
        BlocklistFormat::Plain,
    ] {
        if let Ok(parsed) = parse_bytes(data, Arc::from("fuzz.csv"), format) {
            // Every rule's domain is a normalised host: normalising it again changes nothing.
            for rule in &parsed.rules {
                assert_eq!(
                    normalize(&rule.domain).as_deref(),
                    Some(rule.domain.as_str()),
                    "rule from line {} of {data:?}",
                    rule.line
                );
            }
        }
    }
});
