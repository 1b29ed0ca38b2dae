//! `MastodonAdmin`: a stand-in for Mastodon's domain-blocks admin API
//! (`/api/v1/admin/domain_blocks`) as its controller behaves: bearer token checked (401
//! otherwise), blocks listed newest first in pages with `Link: rel="next"` (`max_id`) when a
//! page is full, a create refused with 422 `existing_domain_block` when the domain or a parent
//! already has a block, `PUT` that never changes the domain, `DELETE`, 404 for an unknown id.
//! Every request is recorded. It also serves plain files (a rule list to subscribe to).

use super::*;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

const BLOCKS: &str = "/api/v1/admin/domain_blocks";

struct AdminState {
    token: String,
    /// By id.
    blocks: BTreeMap<u64, Value>,
    next_id: u64,
    /// Entries per page at most (Mastodon: the `limit` asked for, up to 500).
    page_size: usize,
    calls: Vec<Recorded>,
    files: HashMap<String, String>,
}

pub struct MastodonAdmin {
    server: TestServer,
    state: Arc<Mutex<AdminState>>,
}

impl MastodonAdmin {
    pub async fn start(token: &str) -> MastodonAdmin {
        let state = Arc::new(Mutex::new(AdminState {
            token: token.to_string(),
            blocks: BTreeMap::new(),
            next_id: 100,
            page_size: 500,
            calls: Vec::new(),
            files: HashMap::new(),
        }));
        let st = state.clone();
        let handler: Handler = Arc::new(move |recorded: Recorded| {
            let mut st = st.lock().unwrap();
            st.calls.push(recorded.clone());
            let (status, headers, body) = answer(&mut st, &recorded);
            let mut response = Response::new(server_body(Bytes::from(body)));
            *response.status_mut() = status;
            for (name, value) in headers {
                response.headers_mut().append(name, value.parse().unwrap());
            }
            Action::Respond {
                delay: None,
                response,
            }
        });
        MastodonAdmin {
            server: TestServer::start(handler).await,
            state,
        }
    }

    /// `http://127.0.0.1:<port>`: `[mastodon] url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// A block made in Mastodon's admin UI; its id.
    pub fn add_block(&self, domain: &str, severity: &str) -> String {
        let mut st = self.state.lock().unwrap();
        let id = st.next_id;
        st.next_id += 1;
        let block = json!({
            "id": id.to_string(), "domain": domain, "severity": severity,
            "reject_media": false, "reject_reports": false,
            "private_comment": "made by hand", "public_comment": null, "obfuscate": false,
        });
        st.blocks.insert(id, block);
        id.to_string()
    }

    pub fn block(&self, domain: &str) -> Option<Value> {
        let st = self.state.lock().unwrap();
        st.blocks.values().find(|b| b["domain"] == domain).cloned()
    }

    pub fn calls(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().calls.clone()
    }

    /// `METHOD path` of every request that is not a GET.
    pub fn writes(&self) -> Vec<String> {
        self.calls()
            .iter()
            .filter(|c| c.method != Method::GET)
            .map(|c| format!("{} {}", c.method, c.uri.path()))
            .collect()
    }

    pub fn set_page_size(&self, n: usize) {
        self.state.lock().unwrap().page_size = n;
    }

    /// The token Mastodon accepts from now on (the old one is revoked).
    pub fn set_token(&self, token: &str) {
        self.state.lock().unwrap().token = token.to_string();
    }

    /// Serves `body` at `path` (no token needed).
    pub fn serve_file(&self, path: &str, body: &str) {
        let mut st = self.state.lock().unwrap();
        st.files.insert(path.to_string(), body.to_string());
    }
}

type Answer = (StatusCode, Vec<(&'static str, String)>, String);

fn answer(st: &mut AdminState, r: &Recorded) -> Answer {
    let path = r.uri.path();
    if !path.starts_with(BLOCKS) {
        return match st.files.get(path) {
            Some(body) if r.method == Method::GET => (StatusCode::OK, Vec::new(), body.clone()),
            _ => (StatusCode::NOT_FOUND, Vec::new(), String::new()),
        };
    }
    let authorized = r
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", st.token));
    if !authorized {
        let body = json!({"error": "The access token is invalid"}).to_string();
        return (StatusCode::UNAUTHORIZED, Vec::new(), body);
    }
    let id: Option<u64> = path
        .strip_prefix(BLOCKS)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(|id| id.parse().unwrap_or(0));
    let fields: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    match (&r.method, id) {
        (&Method::GET, None) => list(st, r),
        (&Method::POST, None) => create(st, fields),
        (&Method::PUT, Some(id)) => match st.blocks.get_mut(&id) {
            Some(block) => {
                for key in [
                    "severity",
                    "reject_media",
                    "reject_reports",
                    "private_comment",
                    "public_comment",
                    "obfuscate",
                ] {
                    if let Some(v) = fields.get(key) {
                        block[key] = v.clone();
                    }
                }
                (StatusCode::OK, Vec::new(), block.to_string())
            }
            None => not_found(),
        },
        (&Method::DELETE, Some(id)) => match st.blocks.remove(&id) {
            Some(_) => (StatusCode::OK, Vec::new(), "{}".into()),
            None => not_found(),
        },
        _ => not_found(),
    }
}

fn not_found() -> Answer {
    let body = json!({"error": "Record not found"}).to_string();
    (StatusCode::NOT_FOUND, Vec::new(), body)
}

fn list(st: &AdminState, r: &Recorded) -> Answer {
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(r.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let asked: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100);
    let limit = asked.min(500).min(st.page_size);
    let max_id: u64 = query
        .get("max_id")
        .and_then(|m| m.parse().ok())
        .unwrap_or(u64::MAX);
    let page: Vec<(&u64, &Value)> = st.blocks.range(..max_id).rev().take(limit).collect();
    let mut headers = Vec::new();
    if let (Some((last, _)), Some((first, _))) = (page.last(), page.first()) {
        let base = format!("http://{}{BLOCKS}", r.header("host"));
        let mut links = Vec::new();
        if page.len() == limit {
            links.push(format!(
                "<{base}?limit={asked}&max_id={last}>; rel=\"next\""
            ));
        }
        links.push(format!(
            "<{base}?limit={asked}&min_id={first}>; rel=\"prev\""
        ));
        headers.push(("link", links.join(", ")));
    }
    let body = Value::Array(page.into_iter().map(|(_, b)| b.clone()).collect());
    (StatusCode::OK, headers, body.to_string())
}

fn create(st: &mut AdminState, fields: Value) -> Answer {
    let Some(domain) = fields["domain"].as_str().map(str::to_string) else {
        let body = json!({"error": "Validation failed: Domain can't be blank"}).to_string();
        return (StatusCode::UNPROCESSABLE_ENTITY, Vec::new(), body);
    };
    // DomainBlock.rule_for: the domain itself or any parent, longest first.
    let labels: Vec<&str> = domain.split('.').collect();
    let variants: Vec<String> = (0..labels.len()).map(|i| labels[i..].join(".")).collect();
    let existing = variants
        .iter()
        .find_map(|v| st.blocks.values().find(|b| b["domain"] == v.as_str()));
    if let Some(existing) = existing {
        let body = json!({
            "error": "A domain block for this domain already exists",
            "existing_domain_block": existing,
        });
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Vec::new(),
            body.to_string(),
        );
    }
    let id = st.next_id;
    st.next_id += 1;
    let field = |k: &str, default: Value| fields.get(k).cloned().unwrap_or(default);
    let block = json!({
        "id": id.to_string(),
        "domain": domain,
        "severity": field("severity", json!("silence")),
        "reject_media": field("reject_media", json!(false)),
        "reject_reports": field("reject_reports", json!(false)),
        "private_comment": field("private_comment", Value::Null),
        "public_comment": field("public_comment", Value::Null),
        "obfuscate": field("obfuscate", json!(false)),
    });
    st.blocks.insert(id, block.clone());
    (StatusCode::OK, Vec::new(), block.to_string())
}
