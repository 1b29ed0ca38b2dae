//! A minimal HTTP/1.1 client: one request per fresh connection, raw bytes when a test needs
//! a request the client cannot produce.

use super::*;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// Sends one request on a fresh connection and reads the whole response. `path` is the
/// origin-form target, sent as is. A `Host: <addr>` header is added only when `headers` has
/// none. Panics on transport errors; see [`try_send`].
pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: HeaderMap,
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Bytes) {
    try_send(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("request to {addr}{path} failed: {e}"))
}

/// [`send`] that returns transport errors (the server closed the connection, etc.).
pub async fn try_send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    mut headers: HeaderMap,
    body: Vec<u8>,
) -> Result<(StatusCode, HeaderMap, Bytes), BoxError> {
    if !headers.contains_key(http::header::HOST) {
        headers.insert(
            http::header::HOST,
            HeaderValue::from_str(&addr.to_string())?,
        );
    }
    let mut request = Request::new(Full::new(Bytes::from(body)));
    *request.method_mut() = method;
    *request.uri_mut() = path.parse()?;
    *request.headers_mut() = headers;
    let response = request_on_new_connection(addr, request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// Sends any request (e.g. with a [`ChannelBody`]) on a fresh connection; the response body
/// is left to stream. The request must carry its own Host header.
pub async fn request_on_new_connection<B>(
    addr: SocketAddr,
    request: Request<B>,
) -> Result<Response<Incoming>, BoxError>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender.send_request(request).await?)
}

/// `GET path` with an empty body; the body as (lossy) UTF-8. For /metrics, /healthz, ...
pub async fn get_text(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let (status, _, body) = send(addr, Method::GET, path, HeaderMap::new(), Vec::new()).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `GET path` answered with JSON: the status and the parsed body (a body that is not JSON
/// fails the test, showing it).
pub async fn get_json(addr: SocketAddr, path: &str) -> (StatusCode, serde_json::Value) {
    let (status, text) = get_text(addr, path).await;
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    (status, value)
}

/// Writes `raw` bytes on a new connection and returns everything read until the server
/// closes it. For malformed requests the client above cannot produce.
pub async fn send_raw(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    // A reset after the answer still leaves the answer in `out`.
    let _ = stream.read_to_end(&mut out).await;
    out
}

/// Headers from `(name, value)` pairs, appended in order (repeats allowed).
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// An empty body for responses built by hand in tests.
pub fn empty_server_body() -> ServerBody {
    Empty::new().boxed()
}
