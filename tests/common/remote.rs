//! `RemoteInstance`: a made-up ActivityPub server publishing actors and their keys, reached
//! through the proxy's `[key_fetch.resolve]` map.

use super::*;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use inboxguard::signature::SigningKey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    pub(super) key: Arc<Mutex<Arc<SigningKey>>>,
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

pub(super) fn respond(
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
