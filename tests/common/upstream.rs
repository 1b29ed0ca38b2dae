//! `RecordingUpstream`: the stand-in for Mastodon's Puma that records what the proxy forwards
//! and answers as a test tells it to.

use super::*;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

enum UpstreamMode {
    Answer,
    Hang,
    Close,
}

struct UpstreamState {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    delay: Option<Duration>,
    mode: UpstreamMode,
    /// A streamed body for the next request only.
    stream: Option<ChannelBody<Infallible>>,
}

/// Records every request and answers `202 Accepted` with an empty body unless told otherwise.
pub struct RecordingUpstream {
    server: TestServer,
    requests: Arc<Mutex<Vec<Recorded>>>,
    state: Arc<Mutex<UpstreamState>>,
}

/// Feeds the streamed response set up by [`RecordingUpstream::respond_streaming`]; dropping it
/// ends the body.
pub struct StreamHandle {
    tx: mpsc::UnboundedSender<Result<Bytes, Infallible>>,
}

impl StreamHandle {
    pub fn send(&self, chunk: impl Into<Bytes>) {
        self.tx.send(Ok(chunk.into())).unwrap();
    }
}

impl RecordingUpstream {
    pub async fn start() -> RecordingUpstream {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(Mutex::new(UpstreamState {
            status: StatusCode::ACCEPTED,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            delay: None,
            mode: UpstreamMode::Answer,
            stream: None,
        }));
        let (log, st) = (requests.clone(), state.clone());
        let handler: Handler = Arc::new(move |recorded| {
            log.lock().unwrap().push(recorded);
            let mut st = st.lock().unwrap();
            match st.mode {
                UpstreamMode::Hang => return Action::Hang,
                UpstreamMode::Close => return Action::Close,
                UpstreamMode::Answer => {}
            }
            let body = match st.stream.take() {
                Some(stream) => stream.boxed(),
                None => server_body(st.body.clone()),
            };
            let mut response = Response::new(body);
            *response.status_mut() = st.status;
            *response.headers_mut() = st.headers.clone();
            Action::Respond {
                delay: st.delay,
                response,
            }
        });
        RecordingUpstream {
            server: TestServer::start(handler).await,
            requests,
            state,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:<port>`, the form `upstream.url` takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// The only request received; panics if there were none or several.
    pub fn only(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one upstream request");
        requests.into_iter().next().unwrap()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.server.connections.load(Ordering::SeqCst)
    }

    /// Status for later requests (default 202).
    pub fn set_status(&self, status: StatusCode) {
        self.state.lock().unwrap().status = status;
    }

    /// Answer 500 from now on.
    pub fn fail(&self) {
        self.set_status(StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// Response headers for later requests.
    pub fn set_response_headers(&self, headers: HeaderMap) {
        self.state.lock().unwrap().headers = headers;
    }

    /// Response body for later requests (default empty).
    pub fn set_response_body(&self, body: impl Into<Bytes>) {
        self.state.lock().unwrap().body = body.into();
    }

    /// Wait this long (after reading the request) before answering.
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Record requests but never answer them.
    pub fn hang(&self) {
        self.state.lock().unwrap().mode = UpstreamMode::Hang;
    }

    /// Record requests, then close the connection without a response.
    pub fn close_without_response(&self) {
        self.state.lock().unwrap().mode = UpstreamMode::Close;
    }

    /// Back to answering normally.
    pub fn answer(&self) {
        self.state.lock().unwrap().mode = UpstreamMode::Answer;
    }

    /// The next request is answered with a body that streams whatever is sent through the
    /// returned handle, ending when it is dropped.
    pub fn respond_streaming(&self) -> StreamHandle {
        let (tx, body) = channel_body();
        self.state.lock().unwrap().stream = Some(body);
        StreamHandle { tx }
    }
}
