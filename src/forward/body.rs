//! The body of an upstream response read by [`super::h1`]: streamed to the sender as it
//! arrives, in the framing Puma chose, and the connection handed back to the pool the moment
//! the last byte is read. A body that ends early is an error, never a short success.

use super::h1::{Conn, Pool};
use super::BoxError;
use bytes::{Buf, Bytes};
use http_body::{Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// How the body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// After this many more bytes.
    Length(u64),
    Chunked(Chunk),
    /// When the upstream closes the connection.
    Close,
}

impl Framing {
    pub(super) fn chunked() -> Framing {
        Framing::Chunked(Chunk::Size)
    }
}

/// Where a chunked body's reader stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, dropped, up to the empty line.
    Trailers,
}

pub struct ResponseBody {
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    pool: Arc<Pool>,
    done: bool,
}

impl ResponseBody {
    pub(super) fn new(
        conn: Conn,
        framing: Framing,
        keep_alive: bool,
        pool: Arc<Pool>,
    ) -> ResponseBody {
        let mut body = ResponseBody {
            conn: Some(conn),
            framing,
            keep_alive,
            pool,
            done: false,
        };
        if framing == Framing::Length(0) {
            body.finish();
        }
        body
    }

    /// The whole body is read: the connection goes back to the pool if Puma keeps it open.
    fn finish(&mut self) {
        self.done = true;
        if let Some(conn) = self.conn.take() {
            if self.keep_alive {
                self.pool.checkin(conn);
            }
        }
    }

    fn next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, io::Error>> {
        loop {
            let Some(conn) = self.conn.as_mut().filter(|_| !self.done) else {
                return Poll::Ready(Ok(None));
            };
            let step = match self.framing {
                Framing::Length(remaining) => {
                    if conn.buf.is_empty() {
                        ready!(fill(conn, cx, "the announced length"))?;
                        continue;
                    }
                    let data = take(conn, remaining);
                    let left = remaining - data.len() as u64;
                    self.framing = Framing::Length(left);
                    if left == 0 {
                        self.finish();
                    }
                    return Poll::Ready(Ok(Some(data)));
                }
                Framing::Close => {
                    if conn.buf.is_empty() {
                        if ready!(poll_read(conn, cx))? == 0 {
                            self.keep_alive = false;
                            self.finish();
                            return Poll::Ready(Ok(None));
                        }
                        continue;
                    }
                    return Poll::Ready(Ok(Some(conn.buf.split().freeze())));
                }
                Framing::Chunked(chunk) => chunked(conn, chunk),
            };
            match step {
                Step::Read => {
                    ready!(fill(conn, cx, "the last chunk"))?;
                }
                Step::Next(chunk) => self.framing = Framing::Chunked(chunk),
                Step::Data(data, chunk) => {
                    self.framing = Framing::Chunked(chunk);
                    return Poll::Ready(Ok(Some(data)));
                }
                Step::End => {
                    self.finish();
                    return Poll::Ready(Ok(None));
                }
                Step::Invalid(what) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, what)))
                }
            }
        }
    }
}

/// One move of the chunked reader over the bytes buffered so far.
enum Step {
    /// More bytes are needed.
    Read,
    Next(Chunk),
    Data(Bytes, Chunk),
    End,
    Invalid(&'static str),
}

fn chunked(conn: &mut Conn, chunk: Chunk) -> Step {
    match chunk {
        Chunk::Size => match line(conn) {
            Err(step) => step,
            Ok(line) => match chunk_size(&line) {
                Some(0) => Step::Next(Chunk::Trailers),
                Some(size) => Step::Next(Chunk::Data(size)),
                None => Step::Invalid("invalid chunk size in the upstream response"),
            },
        },
        Chunk::Data(remaining) => {
            if conn.buf.is_empty() {
                return Step::Read;
            }
            let data = take(conn, remaining);
            let left = remaining - data.len() as u64;
            let next = if left == 0 {
                Chunk::DataEnd
            } else {
                Chunk::Data(left)
            };
            Step::Data(data, next)
        }
        Chunk::DataEnd => {
            if conn.buf.len() < 2 {
                return Step::Read;
            }
            if &conn.buf[..2] != b"\r\n" {
                return Step::Invalid("chunk data not followed by CRLF in the upstream response");
            }
            conn.buf.advance(2);
            Step::Next(Chunk::Size)
        }
        Chunk::Trailers => match line(conn) {
            Err(step) => step,
            Ok(line) if line.is_empty() => Step::End,
            Ok(_) => Step::Next(Chunk::Trailers),
        },
    }
}

/// The next CRLF-terminated line, taken from the buffer without its CRLF.
fn line(conn: &mut Conn) -> Result<Bytes, Step> {
    match conn.buf.windows(2).position(|pair| pair == b"\r\n") {
        Some(end) => {
            let line = conn.buf.split_to(end).freeze();
            conn.buf.advance(2);
            Ok(line)
        }
        None if conn.buf.len() > MAX_LINE => Err(Step::Invalid(
            "chunk-size or trailer line too long in the upstream response",
        )),
        None => Err(Step::Read),
    }
}

/// A chunk-size line: hex digits, then optional extensions after `;`, which are ignored.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|b| *b == b';').next()?.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let text = std::str::from_utf8(digits).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// Up to `remaining` buffered bytes, without copying.
fn take(conn: &mut Conn, remaining: u64) -> Bytes {
    let n = usize::try_from(remaining).map_or(conn.buf.len(), |r| r.min(conn.buf.len()));
    conn.buf.split_to(n).freeze()
}

/// Reads more of the body; the connection closing here means the body was cut short.
fn fill(conn: &mut Conn, cx: &mut Context<'_>, awaited: &str) -> Poll<io::Result<()>> {
    if ready!(poll_read(conn, cx))? == 0 {
        return Poll::Ready(Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("upstream closed the connection before {awaited} of the response body"),
        )));
    }
    Poll::Ready(Ok(()))
}

fn poll_read(conn: &mut Conn, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    let mut space = [0u8; 8192];
    let mut read = ReadBuf::new(&mut space);
    ready!(Pin::new(&mut conn.stream).poll_read(cx, &mut read))?;
    let filled = read.filled();
    conn.buf.extend_from_slice(filled);
    Poll::Ready(Ok(filled.len()))
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match ready!(self.get_mut().next(cx)) {
            Ok(Some(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(Box::new(e)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            _ if self.done => SizeHint::with_exact(0),
            Framing::Length(remaining) => SizeHint::with_exact(remaining),
            _ => SizeHint::default(),
        }
    }
}
