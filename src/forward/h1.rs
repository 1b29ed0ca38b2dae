//! The connection pool and HTTP/1.1 exchange for inbox deliveries, whose body is already in
//! memory when they are forwarded.
//!
//! Why not hyper's pooled client here: it hands every request over a channel to a task that
//! owns the connection and answers through another, so a delivery costs two task wake-ups and
//! a pool lookup keyed by scheme and authority on top of the socket work. With the body in
//! hand there is nothing to stream, so the request task writes the head and body in one
//! `writev` and reads the answer on the same connection itself. Pass-through requests, whose
//! bodies stream, keep hyper's client.

use super::body::{Framing, ResponseBody};
use super::UpstreamError;
use bytes::{Buf, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Version};
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Response heads larger than this are refused: Puma's are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;
/// Header lines a response head may have.
const MAX_HEADERS: usize = 96;
/// How often idle connections past the idle timeout are closed when no request comes by.
const REAP_EVERY: Duration = Duration::from_secs(5);

/// One connection to the upstream and its read buffer, which may hold bytes read past the
/// response head (the start of the body).
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) buf: BytesMut,
    /// Served an earlier request: Puma may have closed it meanwhile.
    reused: bool,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Idle keep-alive connections to one upstream, most recently used first out.
pub(super) struct Pool {
    host: String,
    port: u16,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Idle>>,
    reaper: AtomicBool,
}

impl Pool {
    pub(super) fn new(
        host: &str,
        port: u16,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
    ) -> Pool {
        // `[::1]` in a URL is `::1` to the resolver.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Pool {
            host: host.to_string(),
            port,
            connect_timeout,
            idle_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
            reaper: AtomicBool::new(false),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // A panic while the lock was held cannot leave the list half-changed: every critical
        // section is a single push, pop or retain.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most recently used idle connection that is still open, if any.
    fn checkout(&self) -> Option<Conn> {
        loop {
            let idle = self.idle().pop()?;
            if idle.since.elapsed() < self.idle_timeout && still_open(&idle.conn.stream) {
                return Some(idle.conn);
            }
        }
    }

    /// Puts a connection whose last response was read to its end back for the next request.
    pub(super) fn checkin(self: &Arc<Self>, mut conn: Conn) {
        if !conn.buf.is_empty() {
            // Bytes after a complete response: the connection is out of step; close it.
            return;
        }
        conn.reused = true;
        let mut idle = self.idle();
        if idle.len() >= self.max_idle {
            return;
        }
        idle.push(Idle {
            conn,
            since: Instant::now(),
        });
        drop(idle);
        self.start_reaper();
    }

    /// Closes idle connections past the idle timeout even when no request comes to find them,
    /// so sockets Puma has closed do not linger half-open.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.reaper.store(false, Ordering::Relaxed);
            return;
        };
        let pool: Weak<Pool> = Arc::downgrade(self);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(REAP_EVERY).await;
                let Some(pool) = pool.upgrade() else { return };
                let timeout = pool.idle_timeout;
                pool.idle()
                    .retain(|idle| idle.since.elapsed() < timeout && still_open(&idle.conn.stream));
            }
        });
    }

    async fn connect(&self) -> Result<Conn, UpstreamError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Err(_) => {
                return Err(UpstreamError::Unreachable(format!(
                    "tcp connect to {}:{} timed out after {:?}",
                    self.host, self.port, self.connect_timeout
                )))
            }
            Ok(Err(e)) => {
                return Err(UpstreamError::Unreachable(format!(
                    "tcp connect to {}:{}: {e}",
                    self.host, self.port
                )))
            }
            Ok(Ok(stream)) => stream,
        };
        // Inbox POSTs are small request/response pairs; Nagle would only add latency.
        stream
            .set_nodelay(true)
            .map_err(|e| UpstreamError::Unreachable(format!("setting TCP_NODELAY: {e}")))?;
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(4096),
            reused: false,
        })
    }
}

/// False when the peer has closed an idle connection (or sent something unasked). Reads only
/// when the reactor has seen the socket readable, so an idle open connection costs no syscall.
fn still_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Sends `head` and `body` on a pooled connection (or a new one) and reads the response head.
/// A reused connection that fails while the request is written was closed by Puma before it
/// read anything, so the request goes once more on a new connection; after the request is
/// written nothing is retried, as Puma may have acted on it.
pub(super) async fn exchange(
    pool: &Arc<Pool>,
    head: &[u8],
    body: &[u8],
) -> Result<Response<ResponseBody>, UpstreamError> {
    let mut conn = match pool.checkout() {
        Some(conn) => conn,
        None => pool.connect().await?,
    };
    if let Err(e) = write_all(&mut conn.stream, head, body).await {
        if !conn.reused {
            return Err(UpstreamError::ConnectionLost(format!(
                "writing the request: {e}"
            )));
        }
        conn = pool.connect().await?;
        write_all(&mut conn.stream, head, body)
            .await
            .map_err(|e| UpstreamError::ConnectionLost(format!("writing the request: {e}")))?;
    }
    read_response(pool, conn).await
}

/// One `writev` for head and body in the usual case; loops over partial writes.
async fn write_all(stream: &mut TcpStream, head: &[u8], body: &[u8]) -> io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() {
        let n = stream
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    stream.write_all(body).await
}

async fn read_response(
    pool: &Arc<Pool>,
    mut conn: Conn,
) -> Result<Response<ResponseBody>, UpstreamError> {
    conn.buf.clear();
    loop {
        if !conn.buf.is_empty() {
            match parse_head(&conn.buf)? {
                Parsed::Partial => {}
                // An interim answer (100 Continue): the final one follows.
                Parsed::Interim(used) => {
                    conn.buf.advance(used);
                    continue;
                }
                Parsed::Final(head, used) => {
                    conn.buf.advance(used);
                    let body = ResponseBody::new(conn, head.framing, head.keep_alive, pool.clone());
                    let mut response = Response::new(body);
                    *response.status_mut() = head.status;
                    *response.version_mut() = Version::HTTP_11;
                    *response.headers_mut() = head.headers;
                    return Ok(response);
                }
            }
        }
        if conn.buf.len() >= MAX_HEAD {
            return Err(UpstreamError::ConnectionLost(format!(
                "response head larger than {MAX_HEAD} bytes"
            )));
        }
        conn.buf.reserve(4096);
        let read = conn.stream.read_buf(&mut conn.buf).await;
        match read {
            Ok(0) if conn.buf.is_empty() => {
                return Err(UpstreamError::ConnectionLost(
                    "upstream closed the connection before answering".to_string(),
                ))
            }
            Ok(0) => {
                return Err(UpstreamError::ConnectionLost(
                    "upstream closed the connection within the response head".to_string(),
                ))
            }
            Ok(_) => {}
            Err(e) => {
                return Err(UpstreamError::ConnectionLost(format!(
                    "reading the response: {e}"
                )))
            }
        }
    }
}

/// A final response head, hop-by-hop headers removed.
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    /// The connection may carry the next request once this body is read.
    keep_alive: bool,
}

/// What the bytes read so far hold; each count is the head's length in bytes.
enum Parsed {
    Partial,
    Interim(usize),
    Final(Head, usize),
}

fn parse_head(buf: &[u8]) -> Result<Parsed, UpstreamError> {
    let lost = |what: String| UpstreamError::ConnectionLost(format!("unreadable response: {what}"));
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut lines);
    let used = match head.parse(buf) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(e) => return Err(lost(e.to_string())),
    };
    let code = head.code.unwrap_or(0);
    if code == 101 {
        return Err(lost("101 Switching Protocols to a POST".to_string()));
    }
    if (100..200).contains(&code) {
        return Ok(Parsed::Interim(used));
    }
    let status = StatusCode::from_u16(code).map_err(|e| lost(e.to_string()))?;
    let http11 = head.version == Some(1);

    let mut headers = HeaderMap::with_capacity(head.headers.len());
    for line in head.headers.iter() {
        let name = HeaderName::from_bytes(line.name.as_bytes()).map_err(|e| lost(e.to_string()))?;
        let value = HeaderValue::from_bytes(line.value).map_err(|e| lost(e.to_string()))?;
        headers.append(name, value);
    }
    let framing = framing(status, &headers).map_err(lost)?;
    if matches!(framing, Framing::Chunked(_)) {
        // The length comes from the chunks; a Content-Length beside them is to be ignored.
        headers.remove(header::CONTENT_LENGTH);
    }
    let keep_alive = http11
        && !matches!(framing, Framing::Close)
        && !has_token(&headers, header::CONNECTION, "close");
    super::strip_hop_by_hop(&mut headers);
    let head = Head {
        status,
        headers,
        framing,
        keep_alive,
    };
    Ok(Parsed::Final(head, used))
}

/// How the body of a response to a POST ends (RFC 9112 §6.3).
fn framing(status: StatusCode, headers: &HeaderMap) -> Result<Framing, String> {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Length(0));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        let last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|coding| !coding.is_empty());
        return Ok(match last {
            Some(coding) if coding.eq_ignore_ascii_case("chunked") => Framing::chunked(),
            _ => Framing::Close,
        });
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for item in value.as_bytes().split(|b| *b == b',') {
            let text = std::str::from_utf8(item).unwrap_or("").trim();
            let n: u64 = text
                .parse()
                .map_err(|_| format!("invalid Content-Length {text:?}"))?;
            if length.is_some_and(|seen| seen != n) {
                return Err("conflicting Content-Length values".to_string());
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests;
