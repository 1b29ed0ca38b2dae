//! `[rate_limits]`, `[backpressure]`, `[mastodon.sidekiq]` and `[activities]`: what is shed
//! without a rule written in advance. The tables' structs live beside the code that uses them
//! (`shedding`, `gate`); this file reads `[mastodon]`, which holds both the admin-API pull
//! and the Sidekiq signal, and checks what crosses them.

use super::{Invalid, MastodonApiConfig};
use crate::shedding::sidekiq::SidekiqConfig;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// `[mastodon]`: the admin-API pull (its keys at the table's top) and `[mastodon.sidekiq]`,
/// each optional on its own.
#[derive(Debug, Clone, Default)]
pub(super) struct MastodonTable {
    pub(super) api: Option<MastodonApiConfig>,
    pub(super) sidekiq: Option<SidekiqConfig>,
}

impl<'de> Deserialize<'de> for MastodonTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MastodonTable;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("the [mastodon] table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MastodonTable, A::Error> {
                let mut sidekiq = None;
                let mut rest = toml::Table::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "sidekiq" {
                        sidekiq = Some(map.next_value::<SidekiqConfig>()?);
                    } else {
                        rest.insert(key, map.next_value::<toml::Value>()?);
                    }
                }
                let api = if rest.is_empty() {
                    None
                } else {
                    let value = toml::Value::Table(rest);
                    Some(MastodonApiConfig::deserialize(value).map_err(|e| {
                        de::Error::custom(format!("mastodon: {}", e.message().trim()))
                    })?)
                };
                Ok(MastodonTable { api, sidekiq })
            }
        }
        d.deserialize_map(V)
    }
}

/// A table's own check, reported under `key`.
pub(super) fn check(key: &'static str, result: Result<(), String>) -> Result<(), Invalid> {
    // The tables' checks name their whole key (`rate_limits.burst: …`); the table is `key`.
    result.map_err(|message| {
        let inner = message
            .strip_prefix(key)
            .and_then(|m| m.strip_prefix('.'))
            .map(str::to_string);
        (key, inner.unwrap_or(message))
    })
}
