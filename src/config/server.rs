//! `[server]`: the inbox listener, its limits and timeouts.

use super::{all_positive, default_true, together, Invalid};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where Mastodon's edge (nginx) sends inbox traffic.
    pub listen: SocketAddr,
    /// Larger inbox bodies get 413. Mastodon's own cap is 1 MiB (`MAX_JSON_SIZE`).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// A client must send its complete request head within this time (slowloris guard),
    /// counted from the accept for a connection's first request, whatever the protocol
    /// (HTTP/2 preface and first HEADERS frame included), and from the end of the previous
    /// response for each later HTTP/1.1 request.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// A client must send the whole inbox body within this time once the head is in.
    #[serde(default = "default_body_read_timeout_secs")]
    pub body_read_timeout_secs: u64,
    /// A connection with no request in flight and no request started or finished for this
    /// long is closed (HTTP/2: GOAWAY). Pings and other frames do not count as activity, so
    /// they cannot hold a connection slot. For HTTP/1.1 the header read timeout, which also
    /// runs while a keep-alive connection waits for its next request, may close it sooner.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// A connection older than this is asked to close (HTTP/2: GOAWAY; HTTP/1.1: close after
    /// the current response), so no client holds a slot forever; requests in flight finish.
    #[serde(default = "default_max_connection_age_secs")]
    pub max_connection_age_secs: u64,
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
    /// This instance's host (`LOCAL_DOMAIN`), for content rules that count local mentions;
    /// unset: the request's `Host`.
    #[serde(default)]
    pub public_host: Option<String>,
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
    pub fn max_connection_age(&self) -> Duration {
        Duration::from_secs(self.max_connection_age_secs)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.max_body_bytes == 0 || self.max_body_bytes > 64 * 1024 * 1024 {
            return Err((
                "server.max_body_bytes",
                "must be between 1 and 67108864".into(),
            ));
        }
        all_positive(&[
            (
                "server.header_read_timeout_secs",
                self.header_read_timeout_secs,
            ),
            ("server.body_read_timeout_secs", self.body_read_timeout_secs),
            ("server.idle_timeout_secs", self.idle_timeout_secs),
            (
                "server.max_connection_age_secs",
                self.max_connection_age_secs,
            ),
            ("server.max_connections", self.max_connections as u64),
        ])?;
        together(
            "server.tls_cert_file",
            "tls_key_file",
            self.tls_cert_file.is_some(),
            self.tls_key_file.is_some(),
        )
    }
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
fn default_max_connection_age_secs() -> u64 {
    3600
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
