//! Upstream client: sends a request to Mastodon unchanged but for hop-by-hop headers and
//! `X-Forwarded-*`, over pooled connections, with timeouts.
//!
//! OWNER: forward helper.

use crate::config::UpstreamConfig;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use std::net::SocketAddr;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The one body type requests and responses travel in.
pub type Body = BoxBody<Bytes, BoxError>;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    #[error("upstream did not answer within the timeout")]
    Timeout,
}

pub struct Upstream {}

impl Upstream {
    pub fn new(_cfg: &UpstreamConfig, _base: http::Uri) -> Result<Upstream, String> {
        todo!()
    }

    /// Forwards `req` (origin-form URI, as received) to the upstream. `peer` is appended to
    /// `X-Forwarded-For`; `proto` becomes `X-Forwarded-Proto` unless `keep_proto` and the
    /// request already carries one.
    pub async fn send(
        &self,
        _req: http::Request<Body>,
        _peer: SocketAddr,
        _proto: &'static str,
        _keep_proto: bool,
    ) -> Result<http::Response<Body>, UpstreamError> {
        todo!()
    }
}
