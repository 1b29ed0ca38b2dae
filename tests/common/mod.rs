//! Shared harness for the end-to-end tests: a recording stand-in for Puma, a stand-in remote
//! instance serving actor documents with real RSA keys, an independent Mastodon-style signer,
//! a tiny HTTP/1.1 client and a Prometheus text parser. Everything listens on 127.0.0.1:0.
//!
//! Each test binary uses a subset, hence `dead_code`; panicking on a broken harness is the
//! right failure in tests, hence `unwrap_used`.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

// The proxy itself, started in-process on loopback (tests/common/proxy.rs).
pub mod proxy;
#[allow(unused_imports)]
pub use proxy::{
    admin_reload, deliver, deliver_status, Proxy, ProxyBuilder, INBOX, LOCAL,
};

mod body;
mod server;
mod upstream;
mod remote;
mod signing;
mod rfc9421;
mod client;
mod metrics;
mod python;

pub use body::*;
pub use server::*;
pub use upstream::*;
pub use remote::*;
pub use signing::*;
pub use rfc9421::*;
pub use client::*;
pub use metrics::*;
#[allow(unused_imports)]
pub use python::*;

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
