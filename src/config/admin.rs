//! `[admin]`: the separate listener for metrics, health, reload and the console, and what the
//! decision journal keeps.

use super::Invalid;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `/metrics /healthz /readyz /admin/reload`.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// A file holding a bearer token. Required when `listen` is not a loopback address.
    pub token_file: Option<PathBuf>,
    /// The decision journal keeps the client's IP address with each decision. Off by
    /// default: the journal is for moderators, who need the sending domain, not the address.
    #[serde(default)]
    pub journal_client_ip: bool,
    /// Decisions the journal keeps, newest first (`/admin/decisions`); ~300 bytes each.
    #[serde(default = "default_journal_decisions")]
    pub journal_decisions: usize,
    /// Sending domains the ledger keeps (`/admin/domains`); when full, the quietest eighth
    /// of the day is evicted. ~1 KB each.
    #[serde(default = "default_journal_domains")]
    pub journal_domains: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token_file: None,
            journal_client_ip: false,
            journal_decisions: default_journal_decisions(),
            journal_domains: default_journal_domains(),
        }
    }
}

impl AdminConfig {
    /// A public admin port needs a token; `server` is the proxy's own listen address.
    pub(super) fn validate(&self, server: SocketAddr) -> Result<(), Invalid> {
        if !self.listen.ip().is_loopback() && self.token_file.is_none() {
            return Err((
                "admin.token_file",
                format!(
                    "admin.listen {} is not a loopback address, so a bearer token file is required",
                    self.listen
                ),
            ));
        }
        for (key, value) in [
            ("admin.journal_decisions", self.journal_decisions),
            ("admin.journal_domains", self.journal_domains),
        ] {
            if !(1..=MAX_JOURNAL).contains(&value) {
                return Err((key, format!("must be between 1 and {MAX_JOURNAL}")));
            }
        }
        // Port 0 asks the kernel for two different free ports, so only fixed ports can clash.
        if self.listen == server && server.port() != 0 {
            return Err(("admin.listen", "must differ from server.listen".into()));
        }
        Ok(())
    }
}

/// A bound on both journal sizes, so a typo cannot ask for gigabytes.
const MAX_JOURNAL: usize = 1_000_000;

fn default_journal_decisions() -> usize {
    10_000
}

fn default_journal_domains() -> usize {
    10_000
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9100))
}
