//! `[upstream]`: Mastodon's Puma, where accepted requests go.

use super::{positive, Invalid};
use serde::Deserialize;

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
    /// Idle keep-alive connections to Puma kept, by the inbox pool and the pass-through pool each.
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle_per_host: usize,
    /// Requests waiting for Mastodon's answer at once; more get 503 + `Retry-After` instead
    /// of queueing without bound in front of a struggling Puma.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

impl UpstreamConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        positive("upstream.timeout_secs", self.timeout_secs)?;
        positive("upstream.connect_timeout_secs", self.connect_timeout_secs)?;
        positive("upstream.max_in_flight", self.max_in_flight as u64)?;
        self.uri().map_err(|message| ("upstream.url", message))?;
        Ok(())
    }

    /// The upstream base as a URI with scheme `http` and an authority.
    pub fn uri(&self) -> Result<http::Uri, String> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e| format!("{:?} is not a URL: {e}", self.url))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "{:?}: only http:// upstreams are supported (Puma on a private address)",
                self.url
            ));
        }
        if uri.authority().is_none() {
            return Err(format!("{:?} has no host", self.url));
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(format!(
                "{:?}: a path is not supported; requests keep their own path",
                self.url
            ));
        }
        Ok(uri)
    }
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
