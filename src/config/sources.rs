//! The rule sources and how they combine: `[[blocklists]]` (local files), `[policy]`,
//! `[[subscriptions]]` (remote lists), `[mastodon]` (Mastodon's admin API) and `[state]`
//! (where remote copies survive a restart).

use super::{default_true, positive, Invalid};
use crate::policy::sources::{
    BlocklistFormat, FediseerList, FediseerSettings, SourceKind, MAX_FILE_BYTES,
};
use crate::policy::{PolicyMode, Severity};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Declares a rule source's table with the keys every rule source shares (how its entries are
/// taken in), and the checks and readings of those keys, so that `[[blocklists]]` and
/// `[[subscriptions]]` cannot drift apart. A macro, not a flattened struct: serde's `flatten`
/// does not work with `deny_unknown_fields`, and a misspelt key must stay an error.
macro_rules! rule_source {
    (
        table = $table:literal;
        $(#[$meta:meta])*
        pub struct $name:ident { $($body:tt)* }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($body)*
            /// Preview mode: this source's rules are matched, and a request they would stop is
            /// logged and counted as `would_reject`, but forwarded.
            #[serde(default)]
            pub dry_run: bool,
            /// What the source's domains are: block rules (default), allowed domains (who may
            /// deliver in `[policy] mode = "allowlist"`; Mastodon's `domain_allows.csv`) or
            /// exceptions (as `exclude = true`). A TOML rules file says it per entry.
            #[serde(default)]
            pub kind: SourceKind,
            /// An exception list: its domains are exempt from the block rules of every other
            /// source (that domain and its sub-domains; a rule on a longer suffix still applies).
            #[serde(default)]
            pub exclude: bool,
            /// Where sources list the same domain, only the rules of the highest `priority`
            /// compete (the harshest of those wins). Default 0 for every source: the harshest
            /// rule wins.
            #[serde(default)]
            pub priority: i32,
            /// The shrink guard: a new version removing more than this share of the entries in
            /// force (or all of them) is refused, its last good copy kept, until an operator
            /// accepts it. 1.0 turns the guard off.
            #[serde(default = "default_max_shrink")]
            pub max_shrink: f64,
            /// No block rule of this source is harsher: `"silence"` imports its suspends as
            /// limits (applied after `severity_map`).
            #[serde(default)]
            pub max_severity: Option<Severity>,
            /// Severities taken in as others, e.g. `{ suspend = "silence", silence = "noop" }`.
            #[serde(default)]
            pub severity_map: BTreeMap<Severity, Severity>,
            /// Only block rules whose public comment carries one of these labels (`[CSAM]`,
            /// `IFTAS:CSAM`) are taken in; empty: every rule.
            #[serde(default)]
            pub labels_any: Vec<String>,
            /// Block rules whose public comment carries one of these labels are left out.
            #[serde(default)]
            pub labels_none: Vec<String>,
            /// With `format = "fediseer"`: which of Fediseer's lists the source is.
            #[serde(default)]
            pub fediseer: Option<FediseerList>,
            /// With `format = "fediseer"`: keep only instances at least this many of the
            /// reference instances censure (or hesitate about); a URL needs Fediseer's full
            /// answer (no `?domains=true`).
            #[serde(default)]
            pub min_censures: Option<u64>,
        }

        impl $name {
            /// An exception list: `kind = "exception"` or `exclude = true`.
            pub(crate) fn is_exception_list(&self) -> bool {
                self.exclude || self.kind == SourceKind::Exception
            }

            /// How a `format = "fediseer"` source is read; `None` for other formats.
            pub(crate) fn fediseer_settings(&self) -> Option<FediseerSettings> {
                self.is_fediseer().then(|| FediseerSettings {
                    list: self.fediseer.unwrap_or_default(),
                    min_count: self.min_censures,
                })
            }

            /// The shared keys' checks; `name` is the source in errors (path or URL).
            fn validate_shared(&self, name: &str) -> Result<(), Invalid> {
                kind_and_format(KindAndFormat {
                    name,
                    keys: [
                        concat!($table, ".fediseer"),
                        concat!($table, ".min_censures"),
                        concat!($table, ".kind"),
                    ],
                    fediseer_format: self.is_fediseer(),
                    fediseer: self.fediseer,
                    min_censures: self.min_censures,
                    kind: self.kind,
                    exclude: self.exclude,
                })?;
                if (self.is_exception_list() || self.kind == SourceKind::Allow) && self.dry_run {
                    return Err((
                        concat!($table, ".dry_run"),
                        format!(
                            "{name}: dry_run previews block and actor rules; an allow or \
                             exception list cannot be dry_run"
                        ),
                    ));
                }
                max_shrink(concat!($table, ".max_shrink"), self.max_shrink)
            }
        }
    };
}

rule_source! {
    table = "blocklists";
    /// One local rule source.
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct BlocklistConfig {
        /// Relative paths are resolved against the working directory, as in the example config.
        pub path: PathBuf,
        #[serde(default)]
        pub format: BlocklistFormat,
    }
}

impl BlocklistConfig {
    /// The entry a config file that names only `path` gives: every other key at its default.
    pub fn file(path: PathBuf) -> BlocklistConfig {
        BlocklistConfig {
            path,
            format: BlocklistFormat::default(),
            dry_run: false,
            kind: SourceKind::default(),
            exclude: false,
            priority: 0,
            max_shrink: default_max_shrink(),
            max_severity: None,
            severity_map: Default::default(),
            labels_any: Vec::new(),
            labels_none: Vec::new(),
            fediseer: None,
            min_censures: None,
        }
    }
}

/// `[policy]`: how the rules of all sources combine. Needs a restart to change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `blocklist` (default): everything not blocked passes. `allowlist` (Mastodon's limited
    /// federation mode): only domains an allow entry names pass (not their sub-domains);
    /// blocks still apply.
    #[serde(default)]
    pub mode: PolicyMode,
    /// A rule from subscribed (remote) sources applies only when this many subscribed sources
    /// list the domain. Local files always apply. 1: every subscribed rule applies.
    #[serde(default = "default_subscription_threshold")]
    pub subscription_threshold: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            mode: PolicyMode::Blocklist,
            subscription_threshold: default_subscription_threshold(),
        }
    }
}

fn default_subscription_threshold() -> usize {
    1
}

impl BlocklistConfig {
    /// Whether the file is read as a TOML rules file (by `format`, or for `auto` by its
    /// `.toml` extension).
    pub(crate) fn is_toml(&self) -> bool {
        match self.format {
            BlocklistFormat::Toml => true,
            BlocklistFormat::Auto => self
                .path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("toml")),
            BlocklistFormat::MastodonCsv | BlocklistFormat::Plain | BlocklistFormat::Fediseer => {
                false
            }
        }
    }

    fn is_fediseer(&self) -> bool {
        self.format == BlocklistFormat::Fediseer
    }
}

rule_source! {
    table = "subscriptions";
    /// One remote rule list, fetched on an interval; its last good copy is kept in force (and on
    /// disk under `state.dir`) whatever later fetches return. Its `source` label is the URL.
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SubscriptionConfig {
        pub url: String,
        #[serde(default)]
        pub format: SubscriptionFormat,
        /// Time between fetches (jittered by up to 10%); after a failure the next try comes
        /// sooner, backing off from 30 s up to this.
        #[serde(default = "default_subscription_refresh_secs")]
        pub refresh_secs: u64,
        /// Larger answers are refused (the last good copy stays).
        #[serde(default = "default_subscription_max_bytes")]
        pub max_bytes: u64,
        /// Whole fetch (connect, TLS, redirects, body).
        #[serde(default = "default_subscription_timeout_secs")]
        pub timeout_secs: u64,
        /// Fetch over plain http (the list could be altered on the way). Off by default.
        #[serde(default)]
        pub allow_http: bool,
        /// Fetch from loopback/private/link-local addresses. Off by default.
        #[serde(default)]
        pub allow_private_addresses: bool,
        /// A file of request headers for a private list (`Authorization: Bearer …`, `apikey: …`),
        /// one `Name: value` per line; read at each fetch (so a rotated secret needs no restart),
        /// never logged.
        #[serde(default)]
        pub headers_file: Option<PathBuf>,
        /// Its rules in force are written into Mastodon's domain blocks (`[mastodon] push`).
        #[serde(default)]
        pub push: bool,
    }
}

/// Half: a list losing more than half of its entries at once is more likely broken than
/// edited.
pub(crate) fn default_max_shrink() -> f64 {
    0.5
}

fn max_shrink(key: &'static str, value: f64) -> Result<(), Invalid> {
    if !(0.0..=1.0).contains(&value) {
        return Err((
            key,
            "must be between 0.0 and 1.0 (1.0 turns the guard off)".into(),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubscriptionFormat {
    /// JSON if the body starts with `[`, else as `BlocklistFormat::Auto`.
    #[default]
    Auto,
    MastodonCsv,
    Plain,
    /// Mastodon's admin or public API answer, or GoToSocial's export.
    Json,
    /// A Fediseer censures or hesitations answer (the `fediseer` setting says which).
    Fediseer,
}

impl SubscriptionFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionFormat::Auto => "auto",
            SubscriptionFormat::MastodonCsv => "mastodon-csv",
            SubscriptionFormat::Plain => "plain",
            SubscriptionFormat::Json => "json",
            SubscriptionFormat::Fediseer => "fediseer",
        }
    }
}

/// Pulls `GET /api/v1/admin/domain_blocks` (and `domain_allows`) from Mastodon, following its
/// `Link` pagination, so moderators keep using Mastodon's admin UI as the source of truth.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MastodonApiConfig {
    /// Mastodon's base URL, e.g. `https://mastodon.example` (no path).
    pub url: String,
    /// A file holding an access token with scope `admin:read:domain_blocks` (and
    /// `admin:read:domain_allows` for `domain_allows`). Read again before every pull, so a
    /// rotated token is picked up; never logged.
    pub token_file: PathBuf,
    #[serde(default = "default_mastodon_refresh_secs")]
    pub refresh_secs: u64,
    #[serde(default = "default_true")]
    pub domain_blocks: bool,
    #[serde(default)]
    pub domain_allows: bool,
    /// Each page request (connect, TLS, body).
    #[serde(default = "default_subscription_timeout_secs")]
    pub timeout_secs: u64,
    /// All pages of one list together.
    #[serde(default = "default_subscription_max_bytes")]
    pub max_bytes: u64,
    /// Pages of 500 entries followed per list.
    #[serde(default = "default_mastodon_max_pages")]
    pub max_pages: usize,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub allow_http: bool,
    #[serde(default)]
    pub allow_private_addresses: bool,
    /// Keep Mastodon's domain blocks in step with the pushed rules (escalations, subscriptions
    /// with `push = true`); the token then also needs `admin:write:domain_blocks`.
    #[serde(default)]
    pub push: super::PushMode,
    /// Time between push cycles, e.g. `"5m"`.
    #[serde(default = "super::push::default_push_interval")]
    pub push_interval: String,
}

impl MastodonApiConfig {
    /// `push_interval` as a duration.
    pub fn push_interval(&self) -> std::time::Duration {
        super::push::interval(&self.push_interval)
    }
}

/// Where inboxguard keeps what must survive a restart (the subscriptions' last good copies).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Created if missing. systemd: `StateDirectory=inboxguard`; Kubernetes: a volume.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// The rule-change log (`rule-changes.jsonl` in `dir`) is rotated to
    /// `rule-changes.jsonl.1` past this size, so at most twice this is kept.
    #[serde(default = "default_rule_changes_max_bytes")]
    pub rule_changes_max_bytes: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: default_state_dir(),
            rule_changes_max_bytes: default_rule_changes_max_bytes(),
        }
    }
}

fn default_subscription_refresh_secs() -> u64 {
    3600
}
fn default_subscription_max_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_subscription_timeout_secs() -> u64 {
    30
}
fn default_mastodon_refresh_secs() -> u64 {
    300
}
fn default_mastodon_max_pages() -> usize {
    1000
}
fn default_rule_changes_max_bytes() -> u64 {
    4 * 1024 * 1024
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/inboxguard")
}

/// An absolute https URL with a host (http only with `allow_http`), without credentials.
pub fn check_remote_url(text: &str, allow_http: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => return Err(format!("{text:?}: http needs allow_http = true")),
        other => return Err(format!("{text:?}: scheme {other:?} is not http(s)")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{text:?}: credentials in the URL would end up in logs and metrics"
        ));
    }
    Ok(url)
}

/// What a rule source says about its kind and Fediseer format, checked together the same
/// way for files and subscriptions.
struct KindAndFormat<'a> {
    /// The source in errors (path or URL).
    name: &'a str,
    /// The keys of `fediseer`, `min_censures` and `kind` in the config's table.
    keys: [&'static str; 3],
    fediseer_format: bool,
    fediseer: Option<FediseerList>,
    min_censures: Option<u64>,
    kind: SourceKind,
    exclude: bool,
}

/// `fediseer` and `min_censures` only with `format = "fediseer"` (which needs `fediseer`: its
/// short answers do not say which list they are), a Fediseer list as block rules only, and
/// an allow list never also an exception list.
fn kind_and_format(source: KindAndFormat<'_>) -> Result<(), Invalid> {
    let KindAndFormat {
        name,
        keys: [fediseer_key, min_key, kind_key],
        fediseer_format,
        fediseer,
        min_censures,
        kind,
        exclude,
    } = source;
    if fediseer_format && fediseer.is_none() {
        return Err((
            fediseer_key,
            format!(
                "{name}: format = \"fediseer\" needs fediseer = \"censures\" (suspend) or \
                 \"hesitations\" (silence); an answer of the short form does not say which"
            ),
        ));
    }
    if !fediseer_format && (fediseer.is_some() || min_censures.is_some()) {
        return Err((
            if fediseer.is_some() {
                fediseer_key
            } else {
                min_key
            },
            format!("{name}: fediseer and min_censures are for format = \"fediseer\""),
        ));
    }
    if min_censures == Some(0) {
        return Err((min_key, format!("{name}: must be at least 1")));
    }
    if fediseer_format && (kind != SourceKind::Block || exclude) {
        return Err((
            kind_key,
            format!("{name}: a Fediseer censures or hesitations list holds block rules"),
        ));
    }
    if kind == SourceKind::Allow && exclude {
        return Err((
            kind_key,
            format!("{name}: kind = \"allow\" and exclude = true: a list is one or the other"),
        ));
    }
    Ok(())
}

impl BlocklistConfig {
    /// TOML rules files say per entry what they hold; allow and exception lists cannot be
    /// previewed.
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let path = self.path.display();
        self.validate_shared(&path.to_string())?;
        if self.is_toml() && (self.kind != SourceKind::Block || self.exclude) {
            return Err((
                "blocklists.kind",
                format!(
                    "{path}: a TOML rules file lists allowed domains in [[allow]] and \
                     exceptions in [[exclude]]; kind and exclude are for CSV and plain lists"
                ),
            ));
        }
        Ok(())
    }
}

impl PolicyConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.subscription_threshold == 0 {
            return Err(("policy.subscription_threshold", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// A remote source's byte cap: at most what a local file may hold.
fn max_bytes(key: &'static str, value: u64) -> Result<(), Invalid> {
    if value == 0 || value > MAX_FILE_BYTES {
        return Err((key, format!("must be between 1 and {MAX_FILE_BYTES}")));
    }
    Ok(())
}

impl SubscriptionConfig {
    fn is_fediseer(&self) -> bool {
        self.format == SubscriptionFormat::Fediseer
    }

    /// A URL usable under its own scheme settings and every limit positive (that no URL is
    /// subscribed twice is checked across the list, in `Config::validate`).
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let url =
            check_remote_url(&self.url, self.allow_http).map_err(|m| ("subscriptions.url", m))?;
        positive("subscriptions.refresh_secs", self.refresh_secs)?;
        positive("subscriptions.timeout_secs", self.timeout_secs)?;
        self.validate_shared(&self.url)?;
        // Fediseer's short forms carry no counts: min_censures could never be applied.
        let short_form = url
            .query_pairs()
            .any(|(k, v)| (k == "domains" || k == "csv") && v.eq_ignore_ascii_case("true"));
        if self.min_censures.is_some() && short_form {
            return Err((
                "subscriptions.min_censures",
                format!(
                    "{}: min_censures needs the counts of Fediseer's full answer; \
                     ?domains=true and ?csv=true answer without them",
                    self.url
                ),
            ));
        }
        max_bytes("subscriptions.max_bytes", self.max_bytes)
    }
}

impl MastodonApiConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        let url = check_remote_url(&self.url, self.allow_http).map_err(|e| ("mastodon.url", e))?;
        if url.path() != "/" || url.query().is_some() {
            return Err((
                "mastodon.url",
                format!("{:?}: give the base URL only, without a path", self.url),
            ));
        }
        positive("mastodon.refresh_secs", self.refresh_secs)?;
        positive("mastodon.timeout_secs", self.timeout_secs)?;
        positive("mastodon.max_pages", self.max_pages as u64)?;
        max_bytes("mastodon.max_bytes", self.max_bytes)?;
        if !self.domain_blocks && !self.domain_allows && self.push == super::PushMode::Off {
            return Err((
                "mastodon.domain_blocks",
                "domain_blocks and domain_allows are both off and push is off: nothing to do"
                    .into(),
            ));
        }
        Ok(())
    }
}
