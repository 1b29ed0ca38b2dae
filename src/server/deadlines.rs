//! A connection's deadlines: what each connection task watches (request starts and ends,
//! bytes read, requests in flight) and the loop that closes or cuts the connection when a
//! deadline passes. The rules themselves are in the parent module's header.

use super::{ConnectionError, Io};
use crate::forward::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

/// How long a connection asked to close may take to go once nothing is in flight.
pub(super) const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// What the deadlines of one connection look at: when a request last started or finished,
/// when a byte last arrived, how many requests are being answered (a request waiting on a
/// slow upstream moves no bytes but is not idle) and which protocol the requests came in.
pub(super) struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` of the last request start or finish.
    last_request_ms: AtomicU64,
    /// Milliseconds after `opened` of the last read that moved bytes.
    last_read_ms: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    http2: AtomicBool,
}

/// Why a connection's deadline fired. Ordered so that of two deadlines due at the same
/// moment the harsher one wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Expiry {
    /// No complete request head in time: cut at once.
    Head,
    /// An HTTP/1.1 keep-alive connection that sent nothing after its last response: cut at
    /// once, like hyper's own header timeout, but not an error.
    KeepAlive,
    /// Nothing in flight for the idle timeout: close gracefully.
    Idle,
    /// Older than the maximum age: close gracefully.
    Age,
}

/// The connection deadlines from the server configuration.
#[derive(Clone, Copy)]
pub(super) struct Deadlines {
    pub(super) head: Duration,
    pub(super) idle: Duration,
    pub(super) max_age: Duration,
}

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_request_ms: AtomicU64::new(0),
            last_read_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            http2: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn request_moved(&self) {
        self.last_request_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Resolves with the first connection deadline that passes.
    async fn expiry(&self, limits: Deadlines) -> Expiry {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (head, idle, max_age) = (ms(limits.head), ms(limits.idle), ms(limits.max_age));
        loop {
            let now = self.now_ms();
            let quiet_since = self.last_request_ms.load(Ordering::Relaxed);
            let nothing_in_flight = self.in_flight.load(Ordering::Relaxed) == 0;
            // (deadline, what fires then), earliest wins.
            let mut next = (max_age, Expiry::Age);
            if self.requests.load(Ordering::Relaxed) == 0 {
                next = next.min((head, Expiry::Head));
            } else if nothing_in_flight && !self.http2.load(Ordering::Relaxed) {
                let partial = self.last_read_ms.load(Ordering::Relaxed) > quiet_since;
                let kind = if partial {
                    Expiry::Head
                } else {
                    Expiry::KeepAlive
                };
                next = next.min((quiet_since.saturating_add(head), kind));
            }
            if nothing_in_flight {
                next = next.min((quiet_since.saturating_add(idle), Expiry::Idle));
            }
            if now >= next.0 {
                return next.1;
            }
            // Wake at the earliest deadline; with a request in flight a later look is enough.
            let wait = (next.0 - now).clamp(10, idle.max(10));
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    /// Resolves once a closing connection has had nothing in flight for `linger`.
    async fn drained(&self, linger: Duration) {
        let since = self.now_ms();
        let linger = u64::try_from(linger.as_millis()).unwrap_or(u64::MAX);
        loop {
            let now = self.now_ms();
            let last = self.last_request_ms.load(Ordering::Relaxed).max(since);
            let due = last.saturating_add(linger);
            if self.in_flight.load(Ordering::Relaxed) == 0 && now >= due {
                return;
            }
            tokio::time::sleep(Duration::from_millis(due.saturating_sub(now).max(50))).await;
        }
    }
}

/// The connection's socket, noting when bytes arrive.
pub(super) struct Tracked<T> {
    pub(super) inner: T,
    pub(super) activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let now = self.activity.now_ms();
            self.activity.last_read_ms.store(now, Ordering::Relaxed);
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One request being answered; dropped with the response body (finished, failed, or the
/// client gone), so a response still streaming counts as in flight.
pub(super) struct InFlight(Arc<Activity>);

impl InFlight {
    pub(super) fn start(activity: &Arc<Activity>, version: http::Version) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.requests.fetch_add(1, Ordering::Relaxed);
        if version == http::Version::HTTP_2 {
            activity.http2.store(true, Ordering::Relaxed);
        }
        activity.request_moved();
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.request_moved();
    }
}

/// A response body carrying its request's [`InFlight`] mark.
pub(super) struct MarkedBody {
    pub(super) inner: Body,
    pub(super) _in_flight: InFlight,
}

impl http_body::Body for MarkedBody {
    type Data = bytes::Bytes;
    type Error = crate::forward::BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// What ended a connection, for the metric and the log.
pub(super) enum Ended {
    /// The peer or a graceful close ended it.
    Closed,
    /// hyper ended it with an error (a refused head, a protocol error, a reset).
    Failed(Box<dyn std::error::Error + Send + Sync>),
    /// A deadline cut it.
    Cut(Expiry),
    /// Asked to close, it was still open `CLOSE_LINGER` after its last request.
    Lingered,
}

impl Ended {
    pub(super) fn error(&self) -> Option<ConnectionError> {
        match self {
            Ended::Closed | Ended::Cut(Expiry::KeepAlive | Expiry::Idle | Expiry::Age) => None,
            Ended::Cut(Expiry::Head) => Some(ConnectionError::HeaderTimeout),
            Ended::Lingered => Some(ConnectionError::CloseTimeout),
            Ended::Failed(e) => Some(ConnectionError::of(e.as_ref())),
        }
    }
}

/// Drives one connection to its end under its deadlines; on shutdown, idleness or age it
/// closes gracefully, and a closing connection with nothing in flight is cut after
/// `CLOSE_LINGER`.
pub(super) async fn run_connection<S>(
    conn: auto::Connection<'_, TokioIo<Io>, S, TokioExecutor>,
    activity: &Activity,
    limits: Deadlines,
    mut shutdown: watch::Receiver<bool>,
) -> Ended
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<MarkedBody>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
{
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                return match result {
                    Ok(()) => Ended::Closed,
                    Err(e) => Ended::Failed(e),
                };
            }
            // A dropped sender also means shutdown.
            _ = shutdown.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            expiry = activity.expiry(limits), if !closing => match expiry {
                // Dropping the connection closes the socket; nothing is in flight.
                Expiry::Head | Expiry::KeepAlive => return Ended::Cut(expiry),
                Expiry::Idle | Expiry::Age => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            },
            _ = activity.drained(CLOSE_LINGER), if closing => return Ended::Lingered,
        }
    }
}
