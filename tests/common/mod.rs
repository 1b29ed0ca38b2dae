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
pub use proxy::{Proxy, ProxyBuilder};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use inboxguard::signature::SigningKey;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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

// ---------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------

/// A body fed through a channel: each `Ok` is a data frame, an `Err` fails the body, dropping
/// the sender ends it. Used for streaming responses and for request bodies that break
/// mid-upload.
pub struct ChannelBody<E> {
    rx: mpsc::UnboundedReceiver<Result<Bytes, E>>,
}

pub fn channel_body<E>() -> (mpsc::UnboundedSender<Result<Bytes, E>>, ChannelBody<E>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, ChannelBody { rx })
}

impl<E> http_body::Body for ChannelBody<E> {
    type Data = Bytes;
    type Error = E;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, E>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }
}

/// `inboxguard::forward::Body` holding `bytes`.
pub fn full_body(bytes: impl Into<Bytes>) -> inboxguard::forward::Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

// ---------------------------------------------------------------------------------------
// A tiny test server shared by RecordingUpstream and RemoteInstance
// ---------------------------------------------------------------------------------------

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

type Handler = Arc<dyn Fn(Recorded) -> Action + Send + Sync>;

struct TestServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    async fn start(handler: Handler) -> TestServer {
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

fn server_body(bytes: Bytes) -> ServerBody {
    Full::new(bytes).boxed()
}

// ---------------------------------------------------------------------------------------
// RecordingUpstream: stands in for Puma
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// RemoteInstance: a made-up ActivityPub server publishing actors and their keys
// ---------------------------------------------------------------------------------------

struct ActorRecord {
    key: Arc<Mutex<Arc<SigningKey>>>,
    status: StatusCode,
}

struct RawDocument {
    status: StatusCode,
    content_type: String,
    body: Bytes,
}

#[derive(Default)]
struct RemoteState {
    actors: HashMap<String, ActorRecord>,
    raw: HashMap<String, RawDocument>,
    gets: HashMap<String, usize>,
    requests: Vec<Recorded>,
    delay: Option<Duration>,
}

/// Serves `GET /users/<name>` for a made-up host (e.g. `remote.test`), reached through the
/// proxy's `[key_fetch.resolve]` map. URLs are `http://<host>/...` without a port.
pub struct RemoteInstance {
    host: String,
    server: TestServer,
    state: Arc<Mutex<RemoteState>>,
}

/// An actor on a [`RemoteInstance`]. Its key is shared with the instance, so a rotation is
/// seen by both the served document and later signatures.
#[derive(Clone)]
pub struct Actor {
    pub username: String,
    pub host: String,
    /// `http://<host>/users/<name>`
    pub id: String,
    /// `<id>#main-key`
    pub key_id: String,
    key: Arc<Mutex<Arc<SigningKey>>>,
}

impl RemoteInstance {
    pub async fn start(host: &str) -> RemoteInstance {
        let state = Arc::new(Mutex::new(RemoteState::default()));
        let st = state.clone();
        let host_owned = host.to_string();
        let handler: Handler = Arc::new(move |recorded| {
            let mut st = st.lock().unwrap();
            let path = recorded.uri.path().to_string();
            let is_get = recorded.method == Method::GET;
            st.requests.push(recorded);
            let delay = st.delay;
            if !is_get {
                return respond(delay, StatusCode::METHOD_NOT_ALLOWED, "text/plain", "");
            }
            *st.gets.entry(path.clone()).or_insert(0) += 1;
            if let Some(raw) = st.raw.get(&path) {
                return respond(delay, raw.status, &raw.content_type, raw.body.clone());
            }
            let Some(name) = path.strip_prefix("/users/") else {
                return respond(delay, StatusCode::NOT_FOUND, "text/plain", "");
            };
            let Some(actor) = st.actors.get(name) else {
                return respond(delay, StatusCode::NOT_FOUND, "text/plain", "");
            };
            if actor.status != StatusCode::OK {
                return respond(delay, actor.status, "text/plain", "");
            }
            let pem = actor.key.lock().unwrap().public_key_pem().unwrap();
            let doc = actor_document(&host_owned, name, &pem);
            respond(delay, StatusCode::OK, "application/activity+json", doc)
        });
        RemoteInstance {
            host: host.to_string(),
            server: TestServer::start(handler).await,
            state,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Where the made-up host really listens: the value for `[key_fetch.resolve]`.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://<host>`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// A new actor with a fresh RSA-2048 key.
    pub fn add_actor(&self, username: &str) -> Actor {
        self.add_actor_with_key(username, SigningKey::generate_rsa_2048().unwrap())
    }

    pub fn add_actor_with_key(&self, username: &str, key: SigningKey) -> Actor {
        let key = Arc::new(Mutex::new(Arc::new(key)));
        self.state.lock().unwrap().actors.insert(
            username.to_string(),
            ActorRecord {
                key: key.clone(),
                status: StatusCode::OK,
            },
        );
        let id = format!("http://{}/users/{username}", self.host);
        Actor {
            username: username.to_string(),
            host: self.host.clone(),
            key_id: format!("{id}#main-key"),
            id,
            key,
        }
    }

    /// A new actor with a fresh Ed25519 key published only as a FEP-521a `Multikey` in
    /// `assertionMethod` (no `publicKey`), under keyId `<id>#ed25519-key`.
    pub fn add_multikey_actor(&self, username: &str) -> Actor {
        let mut actor = self.add_actor_with_key(username, SigningKey::generate_ed25519().unwrap());
        actor.key_id = format!("{}#ed25519-key", actor.id);
        let doc = serde_json::json!({
            "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/multikey/v1"],
            "id": actor.id,
            "type": "Person",
            "preferredUsername": username,
            "inbox": format!("{}/inbox", actor.id),
            "assertionMethod": [{
                "id": actor.key_id,
                "type": "Multikey",
                "controller": actor.id,
                "publicKeyMultibase": ed25519_multibase(&actor.key()),
            }]
        });
        self.serve_raw(
            &actor.path(),
            StatusCode::OK,
            "application/activity+json",
            doc.to_string(),
        );
        actor
    }

    /// Gives `actor` a new RSA-2048 key under the same keyId; returns the old key (sign with
    /// it through [`SignOptions::key`] to play a sender that has not rotated yet).
    pub fn rotate_key(&self, actor: &Actor) -> Arc<SigningKey> {
        let new = Arc::new(SigningKey::generate_rsa_2048().unwrap());
        std::mem::replace(&mut *actor.key.lock().unwrap(), new)
    }

    /// Serve `actor` with this status and an empty body instead of its document
    /// (404, 410, 500...). `StatusCode::OK` restores the document.
    pub fn set_actor_status(&self, actor: &Actor, status: StatusCode) {
        if let Some(record) = self.state.lock().unwrap().actors.get_mut(&actor.username) {
            record.status = status;
        }
    }

    /// The actor was deleted: 410 Gone, as Mastodon answers for a deleted account.
    pub fn make_gone(&self, actor: &Actor) {
        self.set_actor_status(actor, StatusCode::GONE);
    }

    pub fn make_missing(&self, actor: &Actor) {
        self.set_actor_status(actor, StatusCode::NOT_FOUND);
    }

    /// Serve exactly this for `GET path` (takes precedence over actors): for documents with
    /// a wrong `id`, wrong content type, oversized bodies, and the like.
    pub fn serve_raw(
        &self,
        path: &str,
        status: StatusCode,
        content_type: &str,
        body: impl Into<Bytes>,
    ) {
        self.state.lock().unwrap().raw.insert(
            path.to_string(),
            RawDocument {
                status,
                content_type: content_type.to_string(),
                body: body.into(),
            },
        );
    }

    /// Answer every request only after this long (key fetch timeout tests).
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.state.lock().unwrap().delay = delay;
    }

    /// GET requests received for `path` (path only, no query).
    pub fn gets(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .gets
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Fetches of `actor`'s document (which is also where its keyId resolves).
    pub fn key_fetches(&self, actor: &Actor) -> usize {
        self.gets(&actor.path())
    }

    /// All GETs on this instance.
    pub fn total_gets(&self) -> usize {
        self.state.lock().unwrap().gets.values().sum()
    }

    /// Every request received, for asserting on fetch headers (Accept, Signature, ...).
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn respond(
    delay: Option<Duration>,
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Action {
    let mut response = Response::new(server_body(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap(),
    );
    Action::Respond { delay, response }
}

/// The actor document, shaped like Mastodon's.
pub fn actor_document(host: &str, username: &str, public_key_pem: &str) -> String {
    let id = format!("http://{host}/users/{username}");
    serde_json::json!({
        "@context": [
            "https://www.w3.org/ns/activitystreams",
            "https://w3id.org/security/v1"
        ],
        "id": id,
        "type": "Person",
        "preferredUsername": username,
        "inbox": format!("{id}/inbox"),
        "outbox": format!("{id}/outbox"),
        "publicKey": {
            "id": format!("{id}#main-key"),
            "owner": id,
            "publicKeyPem": public_key_pem
        }
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------
// Test signer: Mastodon-style draft-cavage signatures, built independently of the proxy
// ---------------------------------------------------------------------------------------

/// Deviations from a well-formed signed POST.
#[derive(Default, Clone)]
pub struct SignOptions {
    /// Raw `Date` header value (default: now). See [`http_date`].
    pub date: Option<String>,
    /// Send everything but the `Signature` header.
    pub omit_signature: bool,
    /// `algorithm=` value (default `rsa-sha256`). The signature is still RSA-SHA256.
    pub algorithm: Option<String>,
    /// Change the body after signing and digesting (the Digest no longer matches).
    pub tamper_body: bool,
    /// Sign with this key instead of the actor's current one.
    pub key: Option<Arc<SigningKey>>,
    /// `keyId=` value instead of the actor's.
    pub key_id: Option<String>,
    /// The `headers=` list (default `(request-target) host date digest content-type`).
    pub signed_headers: Option<Vec<String>>,
}

/// A signed request: headers to send and the body to send with them.
pub struct Signed {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

const DEFAULT_SIGNED_HEADERS: [&str; 5] =
    ["(request-target)", "host", "date", "digest", "content-type"];

impl Actor {
    /// `/users/<name>`
    pub fn path(&self) -> String {
        format!("/users/{}", self.username)
    }

    /// The actor's current key.
    pub fn key(&self) -> Arc<SigningKey> {
        self.key.lock().unwrap().clone()
    }

    /// Headers for a correctly signed `POST path` to `host` carrying `body`.
    pub fn sign_post(&self, path: &str, host: &str, body: &[u8]) -> HeaderMap {
        self.sign_post_with(path, host, body, &SignOptions::default())
            .headers
    }

    pub fn sign_post_with(
        &self,
        path: &str,
        host: &str,
        body: &[u8],
        opts: &SignOptions,
    ) -> Signed {
        let date = opts
            .date
            .clone()
            .unwrap_or_else(|| http_date(SystemTime::now()));
        let digest = format!("SHA-256={}", sha256_base64(body));

        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_str(host).unwrap());
        headers.insert(http::header::DATE, HeaderValue::from_str(&date).unwrap());
        headers.insert("digest", HeaderValue::from_str(&digest).unwrap());
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/activity+json"),
        );

        let names: Vec<String> = match &opts.signed_headers {
            Some(names) => names.clone(),
            None => DEFAULT_SIGNED_HEADERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        let signing_string = signing_string("post", path, &headers, &names);
        let key = opts.key.clone().unwrap_or_else(|| self.key());
        let signature = base64::engine::general_purpose::STANDARD
            .encode(key.sign(signing_string.as_bytes()).unwrap());
        let header = format!(
            "keyId=\"{}\",algorithm=\"{}\",headers=\"{}\",signature=\"{}\"",
            opts.key_id.as_deref().unwrap_or(&self.key_id),
            opts.algorithm.as_deref().unwrap_or("rsa-sha256"),
            names.join(" "),
            signature
        );
        if !opts.omit_signature {
            headers.insert("signature", HeaderValue::from_str(&header).unwrap());
        }

        let mut body = body.to_vec();
        if opts.tamper_body {
            // Still valid JSON, so only the digest check can catch it.
            body.push(b' ');
        }
        Signed { headers, body }
    }

    /// An activity by this actor, e.g. `actor.activity("Follow", json!("http://local/users/bob"))`.
    pub fn activity(&self, kind: &str, object: serde_json::Value) -> Vec<u8> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        serde_json::json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": format!("{}/activities/{n}", self.id),
            "type": kind,
            "actor": self.id,
            "object": object,
        })
        .to_string()
        .into_bytes()
    }
}

// ---------------------------------------------------------------------------------------
// Test signer: RFC 9421 HTTP Message Signatures, the base written out by hand
// ---------------------------------------------------------------------------------------

/// Deviations from a well-formed RFC 9421 signed POST (Mastodon's double-knock form:
/// `@method @target-uri content-digest`, `created` and `keyid`).
#[derive(Clone)]
pub struct Rfc9421Options {
    /// Covered components, in order.
    pub covered: Vec<String>,
    /// An `alg` parameter (default: none, the key type decides).
    pub alg: Option<String>,
    /// Scheme the sender puts in `@target-uri`.
    pub scheme: String,
    /// Raw `Content-Digest` value instead of `sha-256=:<body digest>:`.
    pub content_digest: Option<String>,
    /// `created` relative to now, in seconds.
    pub created_offset: i64,
    /// `keyid` instead of the actor's.
    pub key_id: Option<String>,
    /// Change the body after signing and digesting.
    pub tamper_body: bool,
}

impl Default for Rfc9421Options {
    fn default() -> Self {
        Rfc9421Options {
            covered: ["@method", "@target-uri", "content-digest"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            alg: None,
            scheme: "https".to_string(),
            content_digest: None,
            created_offset: 0,
            key_id: None,
            tamper_body: false,
        }
    }
}

impl Actor {
    /// Headers for an RFC 9421 signed `POST path` to `host` carrying `body`.
    pub fn sign_rfc9421(
        &self,
        path: &str,
        host: &str,
        body: &[u8],
        opts: &Rfc9421Options,
    ) -> Signed {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_str(host).unwrap());
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/activity+json"),
        );
        let digest = opts
            .content_digest
            .clone()
            .unwrap_or_else(|| format!("sha-256=:{}:", sha256_base64(body)));
        headers.insert("content-digest", HeaderValue::from_str(&digest).unwrap());

        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let key_id = opts.key_id.as_deref().unwrap_or(&self.key_id);
        let list: Vec<String> = opts.covered.iter().map(|c| format!("\"{c}\"")).collect();
        let mut params = format!(
            "({});created={};keyid=\"{key_id}\"",
            list.join(" "),
            now + opts.created_offset
        );
        if let Some(alg) = &opts.alg {
            params.push_str(&format!(";alg=\"{alg}\""));
        }
        let mut base = String::new();
        for c in &opts.covered {
            let value = match c.as_str() {
                "@method" => "POST".to_string(),
                "@target-uri" => format!("{}://{host}{path}", opts.scheme),
                "@authority" => host.to_string(),
                "@path" => path.to_string(),
                name => headers
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default(),
            };
            base.push_str(&format!("\"{c}\": {value}\n"));
        }
        base.push_str(&format!("\"@signature-params\": {params}"));
        let signature = base64::engine::general_purpose::STANDARD
            .encode(self.key().sign(base.as_bytes()).unwrap());
        headers.insert(
            "signature-input",
            HeaderValue::from_str(&format!("sig1={params}")).unwrap(),
        );
        headers.insert(
            "signature",
            HeaderValue::from_str(&format!("sig1=:{signature}:")).unwrap(),
        );
        let mut body = body.to_vec();
        if opts.tamper_body {
            body.push(b' ');
        }
        Signed { headers, body }
    }
}

/// Base58 (Bitcoin alphabet), for FEP-521a `publicKeyMultibase` values.
pub fn base58btc(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut digits: Vec<u8> = Vec::new();
    for &b in bytes {
        let mut carry = usize::from(b);
        for d in digits.iter_mut() {
            carry += usize::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    std::iter::repeat('1')
        .take(zeros)
        .chain(
            digits
                .iter()
                .rev()
                .map(|&d| ALPHABET[usize::from(d)] as char),
        )
        .collect()
}

/// `z` + base58btc(0xed01 + raw key): the Multikey form of an Ed25519 key.
pub fn ed25519_multibase(key: &SigningKey) -> String {
    let pem = key.public_key_pem().unwrap();
    let (_, spki) = inboxguard::signature::signing_key::pem_decode(&pem).unwrap();
    // An Ed25519 SPKI is a fixed 12-byte header followed by the 32-byte key.
    assert_eq!(spki.len(), 44, "not an Ed25519 SPKI");
    let mut prefixed = vec![0xed, 0x01];
    prefixed.extend_from_slice(&spki[12..]);
    format!("z{}", base58btc(&prefixed))
}

/// The draft-cavage signing string: one `name: value` line per signed header, in order.
/// A header missing from `headers` contributes an empty value, as Mastodon does.
pub fn signing_string(method: &str, path: &str, headers: &HeaderMap, names: &[String]) -> String {
    names
        .iter()
        .map(|name| {
            if name == "(request-target)" {
                format!("(request-target): {} {path}", method.to_ascii_lowercase())
            } else {
                let value = headers
                    .get(name.as_str())
                    .map(|v| v.to_str().unwrap())
                    .unwrap_or("");
                format!("{name}: {value}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn sha256_base64(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// IMF-fixdate, the `Date` header format.
pub fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// `http_date` of now shifted by `offset_secs` (negative = past).
pub fn http_date_offset(offset_secs: i64) -> String {
    let now = SystemTime::now();
    let t = if offset_secs >= 0 {
        now + Duration::from_secs(offset_secs.unsigned_abs())
    } else {
        now - Duration::from_secs(offset_secs.unsigned_abs())
    };
    http_date(t)
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 client
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Prometheus text parsing
// ---------------------------------------------------------------------------------------

/// The value of the series `name_with_labels`, e.g.
/// `inboxguard_requests_total{decision="rejected",reason="bad_signature"}` or a bare name.
/// Label order does not matter; the label set must match exactly. `None` if absent.
pub fn metric_value(metrics_text: &str, name_with_labels: &str) -> Option<f64> {
    let (want_name, want_labels) = parse_series(name_with_labels)?;
    series(metrics_text)
        .find(|(name, labels, _)| *name == want_name && *labels == want_labels)
        .map(|(_, _, value)| value)
}

/// Sum over every series of `name` whose labels include the given ones, e.g.
/// `inboxguard_requests_total{decision="rejected"}` across all reasons. 0 if none.
pub fn metric_sum(metrics_text: &str, name_with_labels: &str) -> f64 {
    let Some((want_name, want_labels)) = parse_series(name_with_labels) else {
        return 0.0;
    };
    series(metrics_text)
        .filter(|(name, labels, _)| {
            *name == want_name && want_labels.iter().all(|l| labels.contains(l))
        })
        .map(|(_, _, value)| value)
        .sum()
}

type Labels = Vec<(String, String)>;

fn series(text: &str) -> impl Iterator<Item = (String, Labels, f64)> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            // The value is the first field after the series (a timestamp may follow).
            let series_end = match line.find('{') {
                Some(open) if open < line.find(' ').unwrap_or(usize::MAX) => {
                    open + closing_brace(&line[open..])? + 1
                }
                _ => line.find(' ')?,
            };
            let (series, rest) = line.split_at(series_end);
            let value = rest.split_whitespace().next()?;
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().ok()?,
            };
            let (name, labels) = parse_series(series)?;
            Some((name, labels, value))
        })
}

/// Index of the `}` closing the label set that starts at `s[0] == '{'`, skipping quoted values.
fn closing_brace(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// `name{a="x",b="y"}` -> (name, sorted labels). Values are unescaped.
fn parse_series(s: &str) -> Option<(String, Labels)> {
    let s = s.trim();
    let Some(open) = s.find('{') else {
        return Some((s.to_string(), Vec::new()));
    };
    let name = s[..open].to_string();
    let inner = s[open + 1..].strip_suffix('}')?;
    let mut labels = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(',') | Some(' ')) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key.trim().to_string(), value));
    }
    labels.sort();
    Some((name, labels))
}
