//! Configuration: the TOML file parsed into raw structs, then validated into the values the
//! rest of the proxy uses. Nothing here binds a socket or reads a blocklist; `check` and `serve`
//! share this code so that what `check` accepts is exactly what `serve` runs.
//!
//! Hot-reloadable: blocklist *contents* (see `reload`). Everything else needs a restart.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Mastodon's own domain blocks, pulled from its admin API.
    pub mastodon: Option<MastodonApiConfig>,
    #[serde(default)]
    pub state: StateConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where Mastodon's edge (nginx) sends inbox traffic.
    pub listen: SocketAddr,
    /// Larger inbox bodies get 413. Mastodon's own cap is 1 MiB (`MAX_JSON_SIZE`).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// A client must send its complete request head within this time (slowloris guard).
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// A client must send the whole inbox body within this time once the head is in.
    #[serde(default = "default_body_read_timeout_secs")]
    pub body_read_timeout_secs: u64,
    /// A connection with no request in flight that sends and receives nothing for this long
    /// is closed (HTTP/2: GOAWAY). For HTTP/1.1 the header read timeout, which also runs
    /// while a keep-alive connection waits for its next request, may close it sooner.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Connections beyond this wait in the kernel's accept queue instead of being served.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// On SIGTERM/SIGINT, in-flight requests get this long to finish before the process exits.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Serve TLS directly (both or neither). PEM files; the key may be PKCS#8, PKCS#1 or SEC1.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Keep an incoming `X-Forwarded-Proto` (set by a trusted TLS edge) instead of replacing it
    /// with this listener's own scheme. Turn off when inboxguard faces the internet directly.
    #[serde(default = "default_true")]
    pub trust_forwarded_proto: bool,
    /// The scheme senders use to reach this instance, for RFC 9421's `@target-uri` (the
    /// signature covers the full URL). Mastodon is served over https in production; a
    /// trusted `X-Forwarded-Proto` (see `trust_forwarded_proto`) takes precedence.
    #[serde(default)]
    pub public_scheme: PublicScheme,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublicScheme {
    #[default]
    Https,
    Http,
}

impl PublicScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            PublicScheme::Https => "https",
            PublicScheme::Http => "http",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Mastodon's Puma, `http://host:port`. Requests keep their own path and Host header.
    pub url: String,
    /// Time allowed for Mastodon to answer with a status line; past it the sender gets 504.
    #[serde(default = "default_upstream_timeout_secs")]
    pub timeout_secs: u64,
    #[serde(default = "default_upstream_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Idle pooled connections to Puma kept per host.
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle_per_host: usize,
    /// Requests waiting for Mastodon's answer at once; more get 503 + `Retry-After` instead
    /// of queueing without bound in front of a struggling Puma.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `/metrics /healthz /readyz /admin/reload`.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// A file holding a bearer token. Required when `listen` is not a loopback address.
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureConfig {
    /// Mastodon: `CLOCK_SKEW_MARGIN` = 1 h.
    #[serde(default = "default_clock_skew_secs")]
    pub clock_skew_secs: u64,
    /// Mastodon: `EXPIRATION_WINDOW_LIMIT` = 12 h.
    #[serde(default = "default_max_age_secs")]
    pub max_age_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFetchConfig {
    /// Whole fetch (connect, TLS, response, body) per attempt.
    #[serde(default = "default_key_fetch_timeout_secs")]
    pub timeout_secs: u64,
    #[serde(default = "default_cache_ttl_secs")]
    pub cache_ttl_secs: u64,
    #[serde(default = "default_cache_capacity")]
    pub cache_capacity: u64,
    /// How long a failed lookup (404, 410, network error, bad document) is remembered, so a
    /// sender retrying with a dead key costs one fetch per this period.
    #[serde(default = "default_negative_ttl_secs")]
    pub negative_ttl_secs: u64,
    /// Actor documents larger than this are refused (Mastodon uses 1 MiB for fetched JSON).
    #[serde(default = "default_key_fetch_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Fetch keys over plain http. Only for tests and the demo.
    #[serde(default)]
    pub allow_http: bool,
    /// Fetch keys from loopback/private/link-local addresses. Only for tests and the demo.
    #[serde(default)]
    pub allow_private_addresses: bool,
    /// Optional signed fetch for remotes in authorized-fetch mode (both or neither).
    pub key_id: Option<String>,
    pub private_key_file: Option<PathBuf>,
    /// Host -> address overrides, like curl's --resolve.
    #[serde(default)]
    pub resolve: BTreeMap<String, SocketAddr>,
    #[serde(default = "default_user_agent")]
    pub user_agent: String,
    /// Key fetches in progress at once, all hosts together; more wait (within the timeout).
    #[serde(default = "default_max_concurrent_fetches")]
    pub max_concurrent_fetches: usize,
    /// Key fetches in progress at once for one host; more are refused at once (503).
    #[serde(default = "default_max_concurrent_fetches_per_host")]
    pub max_concurrent_fetches_per_host: usize,
    /// Consecutive transient failures (timeout, connect, DNS, 5xx) that open a host's circuit.
    #[serde(default = "default_circuit_breaker_failures")]
    pub circuit_breaker_failures: u32,
    /// How long an open circuit refuses fetches before letting one probe through.
    #[serde(default = "default_circuit_breaker_open_secs")]
    pub circuit_breaker_open_secs: u64,
}

/// One local rule source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlocklistConfig {
    /// Relative paths are resolved against the working directory, as in the example config.
    pub path: PathBuf,
    #[serde(default)]
    pub format: BlocklistFormat,
    /// Preview mode: this source's rules are matched, and a request they would stop is logged
    /// and counted as `would_reject`, but forwarded.
    #[serde(default)]
    pub dry_run: bool,
    /// What the domains of a CSV or plain list are: block rules (default) or allowed domains
    /// (Mastodon's `domain_allows.csv`). A TOML rules file says it per entry.
    #[serde(default)]
    pub kind: SourceKind,
    /// An exception list: its domains are exempt from the block rules of every other source
    /// (that domain and its sub-domains; a rule on a longer suffix still applies).
    #[serde(default)]
    pub exclude: bool,
    /// Where sources list the same domain, only the rules of the highest `priority` compete
    /// (the harshest of those wins). Default 0 for every source: the harshest rule wins.
    #[serde(default)]
    pub priority: i32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlocklistFormat {
    /// A TOML rules file if the name ends in `.toml`; else Mastodon's CSV if the first line
    /// is its header (`#domain,...`); else a plain list.
    #[default]
    Auto,
    MastodonCsv,
    Plain,
    /// inboxguard's TOML rules file (domain, allow, exclude and actor rules, per-rule dry run,
    /// friendly-federator settings).
    Toml,
}

/// What the domains of a CSV or plain source are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Domain blocks (`domain_blocks.csv`, or one domain per line = suspend).
    #[default]
    Block,
    /// Allowed domains (`domain_allows.csv` with its `#domain` header, or one per line).
    Allow,
}

/// `[policy]`: how the rules of all sources combine. Needs a restart to change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `blocklist` (default): everything not blocked passes. `allowlist` (Mastodon's limited
    /// federation mode): only domains covered by an allow entry pass; blocks still apply.
    #[serde(default)]
    pub mode: PolicyMode,
    /// A rule from subscribed (remote) sources applies only when this many subscribed sources
    /// list the domain. Local files always apply. 1: every subscribed rule applies.
    #[serde(default = "default_subscription_threshold")]
    pub subscription_threshold: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    #[default]
    Blocklist,
    Allowlist,
}

impl PolicyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyMode::Blocklist => "blocklist",
            PolicyMode::Allowlist => "allowlist",
        }
    }
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
    pub fn is_toml(&self) -> bool {
        match self.format {
            BlocklistFormat::Toml => true,
            BlocklistFormat::Auto => self
                .path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("toml")),
            BlocklistFormat::MastodonCsv | BlocklistFormat::Plain => false,
        }
    }
}

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
    /// Passed to the merge of rule sources. With the default merge the harshest rule for a
    /// domain wins whatever the priority.
    #[serde(default)]
    pub priority: i32,
    /// An exception list: its domains are taken out of every source's block rules (as
    /// `[[blocklists]] exclude`).
    #[serde(default)]
    pub exclude: bool,
    /// Larger answers are refused (the last good copy stays).
    #[serde(default = "default_subscription_max_bytes")]
    pub max_bytes: u64,
    /// Whole fetch (connect, TLS, redirects, body).
    #[serde(default = "default_subscription_timeout_secs")]
    pub timeout_secs: u64,
    /// As `blocklists.dry_run`: matches are counted as `would_reject` but forwarded.
    #[serde(default)]
    pub dry_run: bool,
    /// Fetch over plain http (the list could be altered on the way). Off by default.
    #[serde(default)]
    pub allow_http: bool,
    /// Fetch from loopback/private/link-local addresses. Off by default.
    #[serde(default)]
    pub allow_private_addresses: bool,
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
}

impl SubscriptionFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionFormat::Auto => "auto",
            SubscriptionFormat::MastodonCsv => "mastodon-csv",
            SubscriptionFormat::Plain => "plain",
            SubscriptionFormat::Json => "json",
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
}

/// Where inboxguard keeps what must survive a restart (the subscriptions' last good copies).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Created if missing. systemd: `StateDirectory=inboxguard`; Kubernetes: a volume.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: default_state_dir(),
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
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/inboxguard")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive; `RUST_LOG` overrides it.
    #[serde(default = "default_log_filter")]
    pub filter: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[friendly_federators]`: laundering checks, evidence, and opt-in escalation (see
/// `federators`). The escalation keys sit in this table itself, so the issue's spelling
/// `friendly_federators = { threshold = 50, window = "7d", action = "report" }` is a valid
/// (inline-table) way to write it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FriendlyFederatorsConfig {
    /// Drop an `Announce` of an object whose id or `attributedTo` is on a suspended domain.
    #[serde(default = "default_true")]
    pub announce: bool,
    /// Drop a `Create`/`Update` whose object replies (`inReplyTo`) to a suspended domain.
    #[serde(default)]
    pub reply: bool,
    /// Drop a `Create`/`Update` whose object quotes (`quote`, `quoteUrl`, `quoteUri`,
    /// `_misskey_quote`) a suspended domain.
    #[serde(default)]
    pub quote: bool,
    /// Drop a `Create`/`Update` whose object mentions an account on a suspended domain.
    #[serde(default)]
    pub mention: bool,
    /// Drop a `Create`/`Update` whose object's `attributedTo` is on a suspended domain.
    #[serde(default = "default_true")]
    pub attributed_to: bool,
    /// Where the evidence is kept across restarts (JSON, replaced by rename). Without it the
    /// evidence lives in memory only and `inboxguard report` has nothing to read.
    pub evidence_file: Option<PathBuf>,
    /// How often the evidence is saved (and escalation re-evaluated); also saved at shutdown.
    #[serde(default = "default_persist_interval_secs")]
    pub persist_interval_secs: u64,
    /// Sending domains tracked at most; past it the domain with the fewest references goes.
    #[serde(default = "default_max_tracked_domains")]
    pub max_tracked_domains: usize,
    /// Domains listed by `/admin/friendly-federators` and `inboxguard report`, most references first.
    #[serde(default = "default_report_top")]
    pub report_top: usize,
    /// Escalation is on when this is set: a domain with this many references within `window`
    /// escalates (see `action`).
    pub threshold: Option<u64>,
    /// `"7d"`, `"2w"`: whole days, at most 90. Default 7 days.
    pub window: Option<Window>,
    /// Default `report`.
    pub action: Option<EscalationAction>,
}

/// What an escalated domain becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EscalationAction {
    /// Logged and listed as "would escalate"; no rule is generated.
    #[default]
    Report,
    /// A generated `silence` rule.
    Limit,
    /// A generated `suspend` rule: its deliveries get 403.
    Suspend,
}

impl EscalationAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationAction::Report => "report",
            EscalationAction::Limit => "limit",
            EscalationAction::Suspend => "suspend",
        }
    }
}

/// An escalation window in whole days (evidence is bucketed per UTC day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Window {
    pub days: u32,
}

/// Bounds the per-domain day buckets the evidence keeps.
pub const MAX_WINDOW_DAYS: u32 = 90;

impl TryFrom<String> for Window {
    type Error = String;
    fn try_from(text: String) -> Result<Window, String> {
        let bad = || {
            format!("window {text:?}: expected whole days or weeks, e.g. \"7d\" or \"2w\", at most {MAX_WINDOW_DAYS} days")
        };
        let t = text.trim();
        let (number, unit) = t.split_at(t.len().saturating_sub(1));
        let n: u32 = number.parse().map_err(|_| bad())?;
        let days = match unit {
            "d" => n,
            "w" => n.checked_mul(7).ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        if days == 0 || days > MAX_WINDOW_DAYS {
            return Err(bad());
        }
        Ok(Window { days })
    }
}

impl Default for FriendlyFederatorsConfig {
    fn default() -> Self {
        Self {
            announce: true,
            reply: false,
            quote: false,
            mention: false,
            attributed_to: true,
            evidence_file: None,
            persist_interval_secs: default_persist_interval_secs(),
            max_tracked_domains: default_max_tracked_domains(),
            report_top: default_report_top(),
            threshold: None,
            window: None,
            action: None,
        }
    }
}

impl FriendlyFederatorsConfig {
    pub fn window_days(&self) -> u32 {
        self.window.map_or(7, |w| w.days)
    }
    pub fn action(&self) -> EscalationAction {
        self.action.unwrap_or_default()
    }
    pub fn persist_interval(&self) -> Duration {
        Duration::from_secs(self.persist_interval_secs)
    }
}

fn default_persist_interval_secs() -> u64 {
    60
}
fn default_max_tracked_domains() -> usize {
    10_000
}
fn default_report_top() -> usize {
    100
}

fn default_true() -> bool {
    true
}
fn default_max_body_bytes() -> u64 {
    1024 * 1024
}
fn default_header_read_timeout_secs() -> u64 {
    10
}
fn default_body_read_timeout_secs() -> u64 {
    30
}
fn default_idle_timeout_secs() -> u64 {
    60
}
fn default_max_connections() -> usize {
    4096
}
fn default_shutdown_grace_secs() -> u64 {
    30
}
fn default_upstream_timeout_secs() -> u64 {
    30
}
fn default_upstream_connect_timeout_secs() -> u64 {
    5
}
fn default_pool_max_idle() -> usize {
    64
}
fn default_max_in_flight() -> usize {
    256
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9100))
}
fn default_clock_skew_secs() -> u64 {
    3600
}
fn default_max_age_secs() -> u64 {
    43200
}
fn default_key_fetch_timeout_secs() -> u64 {
    10
}
fn default_cache_ttl_secs() -> u64 {
    86400
}
fn default_cache_capacity() -> u64 {
    100_000
}
fn default_negative_ttl_secs() -> u64 {
    300
}
fn default_key_fetch_max_body_bytes() -> u64 {
    1024 * 1024
}
fn default_user_agent() -> String {
    concat!("inboxguard/", env!("CARGO_PKG_VERSION")).to_string()
}
fn default_max_concurrent_fetches() -> usize {
    64
}
fn default_max_concurrent_fetches_per_host() -> usize {
    4
}
fn default_circuit_breaker_failures() -> u32 {
    5
}
fn default_circuit_breaker_open_secs() -> u64 {
    30
}
fn default_log_filter() -> String {
    "info".to_string()
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token_file: None,
        }
    }
}

impl Default for SignatureConfig {
    fn default() -> Self {
        Self {
            clock_skew_secs: default_clock_skew_secs(),
            max_age_secs: default_max_age_secs(),
        }
    }
}

impl Default for KeyFetchConfig {
    fn default() -> Self {
        Self {
            timeout_secs: default_key_fetch_timeout_secs(),
            cache_ttl_secs: default_cache_ttl_secs(),
            cache_capacity: default_cache_capacity(),
            negative_ttl_secs: default_negative_ttl_secs(),
            max_body_bytes: default_key_fetch_max_body_bytes(),
            allow_http: false,
            allow_private_addresses: false,
            key_id: None,
            private_key_file: None,
            resolve: BTreeMap::new(),
            user_agent: default_user_agent(),
            max_concurrent_fetches: default_max_concurrent_fetches(),
            max_concurrent_fetches_per_host: default_max_concurrent_fetches_per_host(),
            circuit_breaker_failures: default_circuit_breaker_failures(),
            circuit_breaker_open_secs: default_circuit_breaker_open_secs(),
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: default_log_filter(),
        }
    }
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
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: describe_toml_error(text, &e),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        if self.server.max_body_bytes == 0 || self.server.max_body_bytes > 64 * 1024 * 1024 {
            return Err(invalid(
                "server.max_body_bytes",
                "must be between 1 and 67108864".into(),
            ));
        }
        for (key, value) in [
            (
                "server.header_read_timeout_secs",
                self.server.header_read_timeout_secs,
            ),
            (
                "server.body_read_timeout_secs",
                self.server.body_read_timeout_secs,
            ),
            ("server.idle_timeout_secs", self.server.idle_timeout_secs),
            ("upstream.timeout_secs", self.upstream.timeout_secs),
            (
                "upstream.connect_timeout_secs",
                self.upstream.connect_timeout_secs,
            ),
            ("key_fetch.timeout_secs", self.key_fetch.timeout_secs),
            ("key_fetch.cache_ttl_secs", self.key_fetch.cache_ttl_secs),
            (
                "key_fetch.negative_ttl_secs",
                self.key_fetch.negative_ttl_secs,
            ),
            ("key_fetch.max_body_bytes", self.key_fetch.max_body_bytes),
            (
                "key_fetch.max_concurrent_fetches",
                self.key_fetch.max_concurrent_fetches as u64,
            ),
            (
                "key_fetch.max_concurrent_fetches_per_host",
                self.key_fetch.max_concurrent_fetches_per_host as u64,
            ),
            (
                "key_fetch.circuit_breaker_failures",
                u64::from(self.key_fetch.circuit_breaker_failures),
            ),
            (
                "key_fetch.circuit_breaker_open_secs",
                self.key_fetch.circuit_breaker_open_secs,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0".into()));
            }
        }
        if self.upstream.max_in_flight == 0 {
            return Err(invalid(
                "upstream.max_in_flight",
                "must be greater than 0".into(),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(invalid(
                "server.max_connections",
                "must be greater than 0".into(),
            ));
        }
        if self.server.tls_cert_file.is_some() != self.server.tls_key_file.is_some() {
            return Err(invalid(
                "server.tls_cert_file",
                "tls_cert_file and tls_key_file go together".into(),
            ));
        }
        self.upstream_uri()
            .map_err(|message| invalid("upstream.url", message))?;
        if self.key_fetch.key_id.is_some() != self.key_fetch.private_key_file.is_some() {
            return Err(invalid(
                "key_fetch.key_id",
                "key_id and private_key_file go together".into(),
            ));
        }
        if !self.admin.listen.ip().is_loopback() && self.admin.token_file.is_none() {
            return Err(invalid(
                "admin.token_file",
                format!(
                    "admin.listen {} is not a loopback address, so a bearer token file is required",
                    self.admin.listen
                ),
            ));
        }
        // Port 0 asks the kernel for two different free ports, so only fixed ports can clash.
        if self.admin.listen == self.server.listen && self.server.listen.port() != 0 {
            return Err(invalid(
                "admin.listen",
                "must differ from server.listen".into(),
            ));
        }
        self.validate_remote_sources(path)?;
        if self.signatures.max_age_secs == 0 {
            return Err(invalid(
                "signatures.max_age_secs",
                "must be greater than 0".into(),
            ));
        }
        self.validate_friendly_federators(path)?;
        if self.policy.subscription_threshold == 0 {
            return Err(invalid(
                "policy.subscription_threshold",
                "must be at least 1".into(),
            ));
        }
        for source in &self.blocklists {
            let path = source.path.display();
            if source.is_toml() && (source.kind != SourceKind::Block || source.exclude) {
                return Err(invalid(
                    "blocklists.kind",
                    format!(
                        "{path}: a TOML rules file lists allowed domains in [[allow]] and \
                         exceptions in [[exclude]]; kind and exclude are for CSV and plain lists"
                    ),
                ));
            }
            if (source.exclude || source.kind == SourceKind::Allow) && source.dry_run {
                return Err(invalid(
                    "blocklists.dry_run",
                    format!(
                        "{path}: dry_run previews block and actor rules; an allow or \
                         exception list cannot be dry_run"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_friendly_federators(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message: message.to_string(),
        };
        let ff = &self.friendly_federators;
        if ff.persist_interval_secs == 0 {
            return Err(invalid(
                "friendly_federators.persist_interval_secs",
                "must be greater than 0",
            ));
        }
        if !(1..=1_000_000).contains(&ff.max_tracked_domains) {
            return Err(invalid(
                "friendly_federators.max_tracked_domains",
                "must be between 1 and 1000000",
            ));
        }
        if ff.report_top == 0 {
            return Err(invalid(
                "friendly_federators.report_top",
                "must be greater than 0",
            ));
        }
        match ff.threshold {
            Some(0) => Err(invalid(
                "friendly_federators.threshold",
                "must be greater than 0",
            )),
            None if ff.window.is_some() || ff.action.is_some() => Err(invalid(
                "friendly_federators.threshold",
                "window and action need a threshold (escalation is off without one)",
            )),
            _ => Ok(()),
        }
    }

    /// Subscriptions and the Mastodon pull: URLs usable under their own scheme settings, every
    /// limit positive, no URL subscribed twice (the URL is the source's label).
    fn validate_remote_sources(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let max = crate::policy::sources::MAX_FILE_BYTES;
        let mut seen = std::collections::HashSet::new();
        for s in &self.subscriptions {
            check_remote_url(&s.url, s.allow_http).map_err(|m| invalid("subscriptions.url", m))?;
            if !seen.insert(s.url.as_str()) {
                return Err(invalid(
                    "subscriptions.url",
                    format!("{:?} is subscribed twice", s.url),
                ));
            }
            for (key, value) in [
                ("subscriptions.refresh_secs", s.refresh_secs),
                ("subscriptions.timeout_secs", s.timeout_secs),
            ] {
                if value == 0 {
                    return Err(invalid(key, "must be greater than 0".into()));
                }
            }
            if s.exclude && s.dry_run {
                return Err(invalid(
                    "subscriptions.dry_run",
                    format!(
                        "{}: dry_run previews block rules; an exception list cannot be dry_run",
                        s.url
                    ),
                ));
            }
            if s.max_bytes == 0 || s.max_bytes > max {
                return Err(invalid(
                    "subscriptions.max_bytes",
                    format!("must be between 1 and {max}"),
                ));
            }
        }
        if let Some(m) = &self.mastodon {
            let url =
                check_remote_url(&m.url, m.allow_http).map_err(|e| invalid("mastodon.url", e))?;
            if url.path() != "/" || url.query().is_some() {
                return Err(invalid(
                    "mastodon.url",
                    format!("{:?}: give the base URL only, without a path", m.url),
                ));
            }
            for (key, value) in [
                ("mastodon.refresh_secs", m.refresh_secs),
                ("mastodon.timeout_secs", m.timeout_secs),
                ("mastodon.max_pages", m.max_pages as u64),
            ] {
                if value == 0 {
                    return Err(invalid(key, "must be greater than 0".into()));
                }
            }
            if m.max_bytes == 0 || m.max_bytes > max {
                return Err(invalid(
                    "mastodon.max_bytes",
                    format!("must be between 1 and {max}"),
                ));
            }
            if !m.domain_blocks && !m.domain_allows {
                return Err(invalid(
                    "mastodon.domain_blocks",
                    "domain_blocks and domain_allows are both off: nothing to pull".into(),
                ));
            }
        }
        Ok(())
    }

    /// The upstream base as a URI with scheme `http` and an authority.
    pub fn upstream_uri(&self) -> Result<http::Uri, String> {
        let uri: http::Uri = self
            .upstream
            .url
            .parse()
            .map_err(|e| format!("{:?} is not a URL: {e}", self.upstream.url))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "{:?}: only http:// upstreams are supported (Puma on a private address)",
                self.upstream.url
            ));
        }
        if uri.authority().is_none() {
            return Err(format!("{:?} has no host", self.upstream.url));
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(format!(
                "{:?}: a path is not supported; requests keep their own path",
                self.upstream.url
            ));
        }
        Ok(uri)
    }
}

impl ServerConfig {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_secs)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
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

/// toml's own message already carries line/column and a caret excerpt; keep it, but make sure
/// the line number is present even when the error has no span.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the core issue; it must load unchanged.
    const ISSUE_EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8080"          # where Mastodon's edge (nginx) sends inbox traffic
max_body_bytes = 1048576           # Mastodon's own inbox cap is 1 MiB -> 413 above it

[upstream]
url = "http://127.0.0.1:3000"      # Mastodon's Puma
timeout_secs = 30

[admin]
listen = "127.0.0.1:9100"          # /metrics /healthz /readyz /admin/reload

[signatures]
clock_skew_secs = 3600             # Mastodon: CLOCK_SKEW_MARGIN = 1 h
max_age_secs = 43200               # Mastodon: EXPIRATION_WINDOW_LIMIT = 12 h

[key_fetch]
timeout_secs = 10
cache_ttl_secs = 86400
cache_capacity = 100000
allow_http = false                 # true only for tests and the demo
allow_private_addresses = false    # true only for tests and the demo
# Optional signed fetch (for remotes in authorized-fetch mode): the instance actor's key.
# key_id = "https://example.social/actor#main-key"
# private_key_file = "/etc/inboxguard/instance-actor.pem"

[key_fetch.resolve]                # like curl --resolve: host -> address, overrides DNS
# "remote.example" = "127.0.0.1:9000"

[[blocklists]]
path = "config/blocklist.csv"      # Mastodon's domain_blocks.csv export, or one domain per line
"#;

    #[test]
    fn issue_example_loads() {
        let c = Config::from_toml(ISSUE_EXAMPLE, Path::new("x.toml")).expect("loads");
        assert_eq!(c.server.max_body_bytes, 1048576);
        assert_eq!(c.blocklists.len(), 1);
        assert_eq!(c.upstream_uri().expect("uri").port_u16(), Some(3000));
    }

    #[test]
    fn public_scheme_defaults_to_https_and_is_checked() {
        let c = Config::from_toml(ISSUE_EXAMPLE, Path::new("x.toml")).expect("loads");
        assert_eq!(c.server.public_scheme, PublicScheme::Https);
        let text = ISSUE_EXAMPLE.replace(
            "max_body_bytes = 1048576 ",
            "public_scheme = \"http\"\nmax_body_bytes = 1048576 ",
        );
        let c = Config::from_toml(&text, Path::new("x.toml")).expect("loads");
        assert_eq!(c.server.public_scheme.as_str(), "http");
        let text = text.replace("\"http\"\n", "\"ftp\"\n");
        assert!(Config::from_toml(&text, Path::new("x.toml")).is_err());
    }

    #[test]
    fn unknown_key_is_an_error_with_a_line() {
        let text = ISSUE_EXAMPLE.replace("timeout_secs = 30", "timeout_sec = 30");
        let e = Config::from_toml(&text, Path::new("x.toml")).expect_err("must fail");
        let msg = e.to_string();
        assert!(msg.contains("x.toml") && msg.contains("line 8"), "{msg}");
    }

    #[test]
    fn public_admin_needs_a_token() {
        let text = ISSUE_EXAMPLE.replace("127.0.0.1:9100", "0.0.0.0:9100");
        let e = Config::from_toml(&text, Path::new("x.toml")).expect_err("must fail");
        assert!(e.to_string().contains("admin.token_file"));
    }

    #[test]
    fn friendly_federators_defaults_and_the_issue_spelling() {
        let c = Config::from_toml(ISSUE_EXAMPLE, Path::new("x.toml")).expect("loads");
        let ff = &c.friendly_federators;
        assert!(ff.announce && ff.attributed_to && !ff.reply && !ff.quote && !ff.mention);
        assert_eq!((ff.threshold, ff.window_days()), (None, 7));
        assert_eq!(ff.action(), EscalationAction::Report);

        let text = format!(
            "friendly_federators = {{ threshold = 50, window = \"2w\", action = \"suspend\" }}\n{ISSUE_EXAMPLE}"
        );
        let c = Config::from_toml(&text, Path::new("x.toml")).expect("the issue's spelling loads");
        let ff = &c.friendly_federators;
        assert_eq!((ff.threshold, ff.window_days()), (Some(50), 14));
        assert_eq!(ff.action(), EscalationAction::Suspend);

        for (bad, key) in [
            ("window = \"7h\"", "line"),
            ("window = \"91d\"", "line"),
            ("window = \"0d\"", "line"),
            ("action = \"ban\"", "line"),
            ("threshold = 0", "friendly_federators.threshold"),
            ("action = \"limit\"", "friendly_federators.threshold"),
            (
                "max_tracked_domains = 0",
                "friendly_federators.max_tracked_domains",
            ),
            (
                "persist_interval_secs = 0",
                "friendly_federators.persist_interval_secs",
            ),
            ("mentions = true", "line"),
        ] {
            let text = format!("{ISSUE_EXAMPLE}\n[friendly_federators]\n{bad}\n");
            let e = Config::from_toml(&text, Path::new("x.toml")).expect_err(bad);
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn https_upstream_is_refused() {
        let text = ISSUE_EXAMPLE.replace("http://127.0.0.1:3000", "https://127.0.0.1:3000");
        assert!(Config::from_toml(&text, Path::new("x.toml")).is_err());
    }

    #[test]
    fn policy_and_source_kinds_are_validated() {
        let c = Config::from_toml(ISSUE_EXAMPLE, Path::new("x.toml")).expect("loads");
        assert_eq!(c.policy.mode, PolicyMode::Blocklist);
        assert_eq!(c.policy.subscription_threshold, 1);
        assert_eq!(c.blocklists[0].kind, SourceKind::Block);
        assert!(!c.blocklists[0].is_toml());
        let with = |extra: &str| {
            Config::from_toml(&format!("{ISSUE_EXAMPLE}{extra}"), Path::new("x.toml"))
        };
        let c = with("kind = \"allow\"\npriority = 5\n[policy]\nmode = \"allowlist\"\nsubscription_threshold = 3\n")
            .expect("loads");
        assert_eq!(
            (
                c.blocklists[0].kind,
                c.blocklists[0].priority,
                c.policy.mode
            ),
            (SourceKind::Allow, 5, PolicyMode::Allowlist)
        );
        assert_eq!(c.policy.subscription_threshold, 3);
        for (extra, key) in [
            (
                "[policy]\nsubscription_threshold = 0\n",
                "policy.subscription_threshold",
            ),
            ("exclude = true\ndry_run = true\n", "blocklists.dry_run"),
            ("kind = \"allow\"\ndry_run = true\n", "blocklists.dry_run"),
            (
                "[[blocklists]]\npath = \"rules.toml\"\nexclude = true\n",
                "blocklists.kind",
            ),
        ] {
            let e = with(extra).expect_err(extra);
            assert!(e.to_string().contains(key), "{extra}: {e}");
        }
        assert!(with("[policy]\nmode = \"openlist\"\n").is_err());
        let c = with("[[blocklists]]\npath = \"r.TOML\"\n").expect("loads");
        assert!(c.blocklists[1].is_toml());
    }
}
