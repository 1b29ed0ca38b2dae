//! The tiny HTTP server behind `RecordingUpstream` and `RemoteInstance`: it reads each
//! request completely, records it, then does what the owner's handler says.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub type ServerBody = BoxBody<Bytes, Infallible>;

/// One request as a test server received it (body complete).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// The single value of `name` as a string; panics if it is missing or repeated.
    pub fn header(&self, name: &str) -> &str {
        let mut values = self.headers.get_all(name).iter();
        let first = values
            .next()
            .unwrap_or_else(|| panic!("header {name} missing in {:?}", self.headers));
        assert!(values.next().is_none(), "header {name} repeated");
        first.to_str().unwrap()
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers.contains_key(name)
    }

    /// Path and query exactly as received.
    pub fn target(&self) -> &str {
        self.uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
    }
}

/// What a test server does with a request once it has read it completely.
pub enum Action {
    Respond {
        delay: Option<Duration>,
        response: Response<ServerBody>,
    },
    /// Close the connection without writing a response.
    Close,
    /// Never answer (the connection stays open until the test ends).
    Hang,
}

pub(super) type Handler = Arc<dyn Fn(Recorded) -> Action + Send + Sync>;

pub(super) struct TestServer {
    pub(super) addr: SocketAddr,
    pub(super) connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub(super) async fn start(handler: Handler) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        async move { handle(req, handler).await }
                    });
                    // Connection errors (a client that hung up) are part of what tests do.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestServer {
            addr,
            connections,
            task,
        }
    }
}

// A concrete error type: hyper's `Into<BoxError>` bound does not infer through a boxed one.
async fn handle(
    req: Request<Incoming>,
    handler: Handler,
) -> Result<Response<ServerBody>, std::io::Error> {
    let (parts, body) = req.into_parts();
    // A body that fails (client gone mid-upload) is not recorded: the request never arrived.
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let recorded = Recorded {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        body,
    };
    match handler(recorded) {
        Action::Respond { delay, response } => {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            Ok(response)
        }
        // hyper/1 closes the connection without a response when the service fails.
        Action::Close => Err(std::io::Error::other("closing without a response")),
        Action::Hang => std::future::pending().await,
    }
}

pub(super) fn server_body(bytes: Bytes) -> ServerBody {
    Full::new(bytes).boxed()
}
