//! `[admin]`: the separate listener for metrics, health and reload.

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
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
            token_file: None,
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
        // Port 0 asks the kernel for two different free ports, so only fixed ports can clash.
        if self.listen == server && server.port() != 0 {
            return Err(("admin.listen", "must differ from server.listen".into()));
        }
        Ok(())
    }
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9100))
}
