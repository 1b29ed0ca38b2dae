//! Stand-in key servers for the tests: tiny hyper servers on 127.0.0.1:0 that record every
//! request they get.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub uri: String,
    pub headers: HeaderMap,
}

impl Seen {
    /// The path without the query.
    pub(crate) fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }
}

/// What the handler answers.
pub(crate) enum Reply {
    Response(Response<Full<Bytes>>),
    /// Never answer (for timeouts).
    Hang,
}

pub(crate) fn json_reply(status: u16, content_type: &str, body: String) -> Reply {
    let mut builder = Response::builder().status(StatusCode::from_u16(status).expect("status"));
    if !content_type.is_empty() {
        builder = builder.header(http::header::CONTENT_TYPE, content_type);
    }
    Reply::Response(
        builder
            .body(Full::new(Bytes::from(body)))
            .expect("response"),
    )
}

pub(crate) fn redirect(status: u16, location: &str) -> Reply {
    Reply::Response(
        Response::builder()
            .status(StatusCode::from_u16(status).expect("status"))
            .header(http::header::LOCATION, location)
            .body(Full::new(Bytes::new()))
            .expect("response"),
    )
}

pub(crate) struct TestServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Answers wait for a permit when the test holds the gate closed.
    gate: Arc<Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Permits of an open gate: more than any test sends.
const OPEN: usize = 1 << 20;

impl TestServer {
    /// A server answering every request with `handler`.
    pub(crate) async fn start<F>(handler: F) -> TestServer
    where
        F: Fn(&Seen) -> Reply + Send + Sync + 'static,
    {
        Self::start_gated(handler, OPEN).await
    }

    /// Like [`start`](Self::start), with `permits` answers allowed before [`open`](Self::open).
    pub(crate) async fn start_gated<F>(handler: F, permits: usize) -> TestServer
    where
        F: Fn(&Seen) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(permits));
        let handler = Arc::new(handler);
        let (seen2, gate2) = (seen.clone(), gate.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (seen, gate, handler) = (seen2.clone(), gate2.clone(), handler.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (seen, gate, handler) = (seen.clone(), gate.clone(), handler.clone());
                        async move {
                            let request = Seen {
                                uri: req.uri().to_string(),
                                headers: req.headers().clone(),
                            };
                            seen.lock().expect("lock").push(request.clone());
                            let _permit = gate.acquire().await.expect("gate");
                            match handler(&request) {
                                Reply::Response(r) => Ok::<_, Infallible>(r),
                                Reply::Hang => {
                                    std::future::pending::<()>().await;
                                    unreachable!()
                                }
                            }
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestServer {
            addr,
            seen,
            gate,
            task,
        }
    }

    /// A server that reads one request head and writes `raw` bytes back, then closes.
    pub(crate) async fn start_raw(raw: Vec<u8>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen2.lock().expect("lock").push(Seen {
                    uri: String::from_utf8_lossy(&head).into_owned(),
                    headers: HeaderMap::new(),
                });
                let _ = stream.write_all(&raw).await;
                let _ = stream.shutdown().await;
            }
        });
        TestServer {
            addr,
            seen,
            gate: Arc::new(Semaphore::new(OPEN)),
            task,
        }
    }

    /// Releases answers held by a closed gate.
    pub(crate) fn open(&self) {
        self.gate.add_permits(OPEN);
    }

    /// Every request received so far, in order.
    pub(crate) fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// A key-fetch config that reaches `server` as `remote.test` over plain HTTP on loopback.
pub(crate) fn cfg_for(server: &TestServer) -> crate::config::KeyFetchConfig {
    let mut cfg = crate::config::KeyFetchConfig {
        allow_http: true,
        allow_private_addresses: true,
        timeout_secs: 5,
        ..crate::config::KeyFetchConfig::default()
    };
    cfg.resolve.insert("remote.test".into(), server.addr);
    cfg
}
