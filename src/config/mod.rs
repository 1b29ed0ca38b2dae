//! Configuration: the TOML file parsed into raw structs, then validated into the values the
//! rest of the proxy uses. Nothing here binds a socket or reads a blocklist; `check` and `serve`
//! share this code so that what `check` accepts is exactly what `serve` runs.
//!
//! Hot-reloadable: blocklist *contents* (see `rules`). Everything else needs a restart.
//!
//! One file per table: `server`, `upstream`, `admin`, `keys` (`[signatures]`, `[key_fetch]`),
//! `sources` (`[[blocklists]]`, `[policy]`, `[[subscriptions]]`, `[mastodon]`, `[state]`),
//! `push` (`[mastodon] push` and what it crosses),
//! `federators` (`[friendly_federators]`), `logging`. Each table validates itself; this file
//! holds the whole and what crosses tables.

mod admin;
mod federators;
mod keys;
mod logging;
mod push;
mod server;
mod shedding;
mod sources;
mod upstream;

pub use crate::clock::parse_duration;
pub use crate::gate::ActivitiesConfig;
pub use crate::policy::escalation::{EscalationAction, Window, MAX_WINDOW_DAYS};
pub use crate::policy::sources::{BlocklistFormat, SourceKind};
pub use crate::policy::PolicyMode;
pub use crate::shedding::classes::BackpressureConfig;
pub use crate::shedding::rate::RateLimitConfig;
pub use crate::shedding::sidekiq::SidekiqConfig;
pub use admin::AdminConfig;
pub use federators::FriendlyFederatorsConfig;
pub use keys::{KeyFetchConfig, SignatureConfig};
pub use logging::{LogFormat, LoggingConfig};
pub use push::PushMode;
pub use server::{PublicScheme, ServerConfig};
pub use sources::{
    check_remote_url, BlocklistConfig, MastodonApiConfig, PolicyConfig, StateConfig,
    SubscriptionConfig, SubscriptionFormat,
};
pub use upstream::UpstreamConfig;

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole configuration file. Unknown keys are errors so that a typo never silently
/// falls back to a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub signatures: SignatureConfig,
    #[serde(default)]
    pub key_fetch: KeyFetchConfig,
    #[serde(default)]
    pub blocklists: Vec<BlocklistConfig>,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub friendly_federators: FriendlyFederatorsConfig,
    /// Remote rule lists fetched on an interval (see `subscriptions`).
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionConfig>,
    /// `[mastodon]` as written; split into `mastodon` and `sidekiq` by `from_toml`.
    #[serde(default, rename = "mastodon")]
    mastodon_table: shedding::MastodonTable,
    /// Mastodon's own domain blocks, pulled from its admin API (`[mastodon]`'s own keys).
    #[serde(skip)]
    pub mastodon: Option<MastodonApiConfig>,
    /// Mastodon's Sidekiq queue, for backpressure (`[mastodon.sidekiq]`).
    #[serde(skip)]
    pub sidekiq: Option<SidekiqConfig>,
    /// Each sender's fair share (`[rate_limits]`).
    #[serde(default)]
    pub rate_limits: RateLimitConfig,
    /// What is shed, by class, while Sidekiq is behind (`[backpressure]`).
    #[serde(default)]
    pub backpressure: BackpressureConfig,
    /// The vocabulary gate and duplicate suppression (`[activities]`).
    #[serde(default)]
    pub activities: ActivitiesConfig,
    /// State shared by replicas through Redis (`[cluster]`); off unless set.
    #[serde(default)]
    pub cluster: Option<crate::cluster::ClusterConfig>,
    #[serde(default)]
    pub state: StateConfig,
}

/// Why a configuration was refused. The message names the file and, where TOML knows it, the
/// line and column.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses and validates config text; `path` is only used in error messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &e),
        })?;
        let table = std::mem::take(&mut config.mastodon_table);
        (config.mastodon, config.sidekiq) = (table.api, table.sidekiq);
        config.validate(path)?;
        Ok(config)
    }

    /// Each table in file order, then what crosses tables. The first problem found is the one
    /// reported.
    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        self.check().map_err(|(key, message)| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        })
    }

    fn check(&self) -> Result<(), Invalid> {
        self.server.validate()?;
        self.upstream.validate()?;
        self.key_fetch.validate()?;
        self.admin.validate(self.server.listen)?;
        let mut seen = std::collections::HashSet::new();
        for s in &self.subscriptions {
            s.validate()?;
            // The URL is the source's label.
            if !seen.insert(s.url.as_str()) {
                return Err((
                    "subscriptions.url",
                    format!("{:?} is subscribed twice", s.url),
                ));
            }
        }
        if let Some(m) = &self.mastodon {
            m.validate()?;
        }
        push::check(self)?;
        if let Some(s) = &self.sidekiq {
            shedding::check("mastodon.sidekiq", s.validate())?;
        }
        shedding::check("rate_limits", self.rate_limits.validate())?;
        shedding::check(
            "backpressure",
            crate::shedding::classes::Classes::new(&self.backpressure).map(|_| ()),
        )?;
        shedding::check("activities", self.activities.validate())?;
        if let Some(c) = &self.cluster {
            shedding::check("cluster", c.validate())?;
        }
        self.signatures.validate()?;
        self.friendly_federators.validate()?;
        self.policy.validate()?;
        for source in &self.blocklists {
            source.validate()?;
        }
        if self.state.rule_changes_max_bytes < 4096 {
            return Err((
                "state.rule_changes_max_bytes",
                "must be at least 4096: one reload's line can take a few kilobytes".into(),
            ));
        }
        Ok(())
    }

    /// The upstream base as a URI with scheme `http` and an authority.
    pub fn upstream_uri(&self) -> Result<http::Uri, String> {
        self.upstream.uri()
    }
}

/// A refused value: the key (`table.key`) and what is wrong with it.
type Invalid = (&'static str, String);

/// Zero is refused for counts, limits and timeouts: it would stop everything or nothing.
fn positive(key: &'static str, value: u64) -> Result<(), Invalid> {
    if value == 0 {
        return Err((key, "must be greater than 0".into()));
    }
    Ok(())
}

/// [`positive`] for each `(key, value)`, in order; the first zero is the error.
fn all_positive(checks: &[(&'static str, u64)]) -> Result<(), Invalid> {
    checks
        .iter()
        .try_for_each(|&(key, value)| positive(key, value))
}

/// `key` (`table.name`) and `other`, a key of the same table, are set together or not at all.
fn together(key: &'static str, other: &str, key_set: bool, other_set: bool) -> Result<(), Invalid> {
    if key_set != other_set {
        let name = key.rsplit('.').next().unwrap_or(key);
        return Err((key, format!("{name} and {other} go together")));
    }
    Ok(())
}

fn default_true() -> bool {
    true
}

/// toml's message with the line, and the key the error is about (`upstream.timeout_secs:
/// invalid type: string "30s", expected u64`), so a wrong value never leaves the reader
/// guessing which of several same-named keys is meant.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = match error_key(e) {
        Some(key) if !e.message().contains(&format!("`{key}`")) => {
            format!("{key}: {}", e.message())
        }
        _ => e.message().to_string(),
    };
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

/// The dotted key path toml recorded for `e`, if any. toml prints it only when the error
/// carries no excerpt of the input, so it is read from that form of the message.
fn error_key(e: &toml::de::Error) -> Option<String> {
    let mut bare = e.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    let line = shown.lines().rev().find(|l| l.starts_with("in `"))?;
    let key = line.strip_prefix("in `")?.strip_suffix('`')?;
    (!key.is_empty()).then(|| key.to_string())
}

#[cfg(test)]
mod tests;
