//! Shared harness for the end-to-end tests; everything listens on 127.0.0.1:0. One file per
//! concern, all re-exported here so a test file needs only `use common::*`:
//!
//! * `proxy`: the whole proxy in process (`Proxy`, `ProxyBuilder`) and the delivery helpers
//!   most tests share (`deliver`, `deliver_status`, `admin_reload`, `INBOX`, `LOCAL`)
//! * `upstream`: `RecordingUpstream`, the stand-in for Puma; `server`: the tiny HTTP server
//!   behind it and behind `remote`: `RemoteInstance`, actors with real keys
//! * `signing`: the independent draft-cavage signer; `rfc9421`: the RFC 9421 signer
//! * `client`: a tiny HTTP/1.1 client; `body`: request and response bodies
//! * `list_server`: `ListServer`, a rule-list host for subscriptions and Mastodon's admin API
//! * `metrics`: Prometheus text parsing; `python`: the interpreter for the Python signers
//! * `redis_server`: a real `redis-server` on a free loopback port
//! * `binary`: the real `inboxguard` binary, bounded (`run_inboxguard`)
//! * `scenes`: set-ups several files share (`FriendAndSpam`)
//! * `mastodon_admin`: `MastodonAdmin`, the stand-in for Mastodon's domain-blocks admin API
//!
//! Each test binary uses a subset, hence `dead_code` and `unused_imports`; panicking on a
//! broken harness is the right failure in tests, hence `unwrap_used`.
#![allow(dead_code, unused_imports)]
#![allow(clippy::unwrap_used)]

// The proxy itself, started in-process on loopback (tests/common/proxy.rs).
pub mod proxy;
pub use proxy::{
    admin_reload, deliver, deliver_status, deliver_with, wait_metric, Proxy, ProxyBuilder, INBOX,
    LOCAL,
};

mod binary;
mod body;
mod client;
mod list_server;
mod mastodon_admin;
mod metrics;
mod python;
mod redis_server;
mod remote;
mod rfc9421;
mod scenes;
mod server;
mod signing;
mod upstream;

pub use binary::*;
pub use body::*;
pub use client::*;
pub use list_server::*;
pub use mastodon_admin::*;
pub use metrics::*;
pub use python::*;
pub use redis_server::*;
pub use remote::*;
pub use rfc9421::*;
pub use scenes::*;
pub use server::*;
pub use signing::*;
pub use upstream::*;

use std::future::Future;
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Generous bound that turns a hang into a test failure. Not a timing assertion: nothing
/// here should come anywhere near it.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// Awaits `f`, panicking with `what` if it has not finished within [`HANG_GUARD`].
pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(HANG_GUARD, f).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: still not finished after {HANG_GUARD:?}"),
    }
}
