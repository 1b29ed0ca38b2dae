//! Every rule-source parser on arbitrary file contents: each input is parsed as a Mastodon CSV
//! export, a plain list, auto-detected, an inboxguard TOML rules file, a JSON domain-block list
//! (Mastodon's admin and public APIs, GoToSocial's export) and a JSON domain-allow list. Remote
//! lists (subscriptions, the Mastodon API pull) reach the JSON parsers straight from the
//! network, so they see hostile input as much as the CSV parser does.
#![no_main]

use inboxguard::config::BlocklistFormat;
use inboxguard::policy::host::normalize;
use inboxguard::policy::sources::{
    parse_allow_json_bytes, parse_bytes, parse_json_bytes, ParsedSource,
};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

/// Every name-matched rule's domain is a normalised host: normalising it again changes nothing.
/// (A digest rule keeps the entry as listed, for display.)
fn check_domains(parsed: &ParsedSource, data: &[u8]) {
    for rule in parsed.rules.iter().filter(|r| r.digest.is_none()) {
        assert_eq!(
            normalize(&rule.domain).as_deref(),
            Some(&*rule.domain),
            "rule from line {} of {data:?}",
            rule.line
        );
    }
}

fuzz_target!(|data: &[u8]| {
    for format in [
        BlocklistFormat::Auto,
        BlocklistFormat::MastodonCsv,
        BlocklistFormat::Plain,
        BlocklistFormat::Toml,
    ] {
        if let Ok(parsed) = parse_bytes(data, Arc::from("fuzz.csv"), format) {
            check_domains(&parsed, data);
        }
    }
    if let Ok(parsed) = parse_json_bytes(data, Arc::from("fuzz.json")) {
        check_domains(&parsed, data);
    }
    if let Ok(allows) = parse_allow_json_bytes(data, "fuzz.json") {
        for allow in allows {
            assert_eq!(
                normalize(&allow.domain).as_deref(),
                Some(&*allow.domain),
                "allow from line {} of {data:?}",
                allow.line
            );
        }
    }
});
