//! The request around the phases: its arrival mark, its body read under the size and time
//! limits (and a refused body drained while the 413 goes out), its `Host`, the scheme the
//! sender used, and the upstream status class the metrics use.

use super::*;

/// Puma's queue-time metrics read `X-Request-Start`; an edge in front usually sets it. When
/// none did, it is set here as the request arrives (nginx's `t=<seconds>.<millis>` form), so
/// Mastodon's queue time still counts from the moment the request reached its front door.
pub(super) fn mark_request_start(headers: &mut http::HeaderMap) {
    const X_REQUEST_START: http::HeaderName = http::HeaderName::from_static("x-request-start");
    if headers.contains_key(&X_REQUEST_START) {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let value = format!("t={}.{:03}", now.as_secs(), now.subsec_millis());
    if let Ok(value) = http::HeaderValue::from_str(&value) {
        headers.insert(X_REQUEST_START, value);
    }
}

/// Bytes of an over-long body read and thrown away after a 413, as a multiple of
/// `max_body_bytes`.
pub(super) const LINGER_FACTOR: u64 = 4;

/// Reads and discards a refused body while the 413 goes out, if it is at most
/// [`LINGER_FACTOR`] × `max` long and arrives within `timeout` (nginx's "lingering close").
/// Closing a socket with unread input makes the kernel answer with a reset, which can destroy
/// the 413 before the sender reads it: the sender (or the edge proxy, which does not retry
/// POSTs) then sees a transport error, takes it as transient and sends the same body again.
/// Bodies beyond the bound are dropped at once: the connection closes, as before.
pub(super) fn linger(body: Incoming, declared: u64, max: u64, timeout: Duration) {
    if declared > max.saturating_mul(LINGER_FACTOR) {
        return;
    }
    tokio::spawn(async move {
        let drain = async {
            let mut body = body;
            while let Some(Ok(_)) = body.frame().await {}
        };
        let _ = tokio::time::timeout(timeout, drain).await;
    });
}

pub(super) async fn read_body(app: &App, body: Incoming, max: u64) -> Result<Bytes, Rejection> {
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let read = Limited::new(body, limit).collect();
    match tokio::time::timeout(app.config.server.body_read_timeout(), read).await {
        Err(_) => Err(Rejection::BodyTimeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Rejection::BodyTooLarge(max))
        }
        Ok(Err(e)) => Err(Rejection::BodyRead(e.to_string())),
    }
}

/// HTTP/2 carries the host in `:authority`, not in a `Host` header; signatures (and Mastodon)
/// name `host`, so give the request the header it would have had over HTTP/1.1.
pub(super) fn ensure_host_header(parts: &mut http::request::Parts) {
    if parts.headers.contains_key(header::HOST) {
        return;
    }
    if let Some(value) = parts
        .uri
        .authority()
        .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(header::HOST, value);
    }
}

pub(super) fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The scheme the sender used, for RFC 9421's `@target-uri`: a trusted `X-Forwarded-Proto`
/// (its last `http`/`https` value, as Rack reads it, so Mastodon sees the same URL), else
/// `server.public_scheme`.
pub(super) fn public_scheme(app: &App, headers: &http::HeaderMap) -> &'static str {
    if app.config.server.trust_forwarded_proto {
        let forwarded = headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|p| match p.trim() {
                p if p.eq_ignore_ascii_case("https") => Some("https"),
                p if p.eq_ignore_ascii_case("http") => Some("http"),
                _ => None,
            })
            .next_back();
        if let Some(scheme) = forwarded {
            return scheme;
        }
    }
    app.config.server.public_scheme.as_str()
}

pub(super) fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
