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
            // Every name-matched rule's domain is a normalised host: normalising it again
            // changes nothing. (A digest rule keeps the entry as listed, for display.)
            for rule in parsed.rules.iter().filter(|r| r.digest.is_none()) {
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
