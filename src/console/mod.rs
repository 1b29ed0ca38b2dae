//! What the admin listener shows moderators: the journal's JSON endpoints (`api`) and the
//! web console at `/admin/` (`pages`), server-rendered HTML with an embedded stylesheet and
//! script (no build step, nothing fetched from elsewhere; it works offline). Read-only; the
//! admin listener's bearer token (when configured) covers all of it.
//!
//! | path | page |
//! |------|------|
//! | `/admin/` | overview: decisions per minute (chart), reasons, rule sources, health |
//! | `/admin/console/domains?q=&sort=` | the ledger's domains, searchable and sortable |
//! | `/admin/console/domains/<domain>` | a domain: its counts, recent decisions, evidence, its rules |
//! | `/admin/console/rule-changes` | the rule-change log |
//! | `/admin/console/explain?q=` | explain a domain, actor or pasted activity from the live rules |

mod api;
mod chart;
mod health;
mod html;
mod pages;

use crate::app::App;
use crate::forward::Body;
use crate::policy::host;
use crate::reject::full;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;
use std::collections::HashMap;

type Params = HashMap<String, String>;

/// Whether `path` is one of this module's GET endpoints.
pub fn serves(path: &str) -> bool {
    matches!(
        path,
        "/admin" | "/admin/" | "/admin/domains" | "/admin/decisions" | "/admin/rule-changes"
    ) || path.starts_with("/admin/domains/")
        || path.starts_with("/admin/console/")
}

/// Answers a GET of a path [`serves`] says is ours.
pub async fn get(app: &App, path: &str, query: Option<&str>) -> Response<Body> {
    match path {
        "/admin/rule-changes" => api::rule_changes(app, query).await,
        "/admin/domains" => api::domains(app, query),
        "/admin/decisions" => api::decisions(app, query),
        "/admin" => {
            let mut resp = with_type(StatusCode::MOVED_PERMANENTLY, Vec::new(), "text/plain");
            resp.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/admin/"));
            resp
        }
        "/admin/" => {
            let changes = recent_changes(app).await;
            html(StatusCode::OK, pages::overview(app, &changes))
        }
        "/admin/console/console.css" => asset(CSS, "text/css; charset=utf-8"),
        "/admin/console/console.js" => asset(JS, "text/javascript; charset=utf-8"),
        "/admin/console/domains" => {
            let p = params(query);
            let sort = p
                .get("sort")
                .and_then(|s| api::Sort::parse(s))
                .unwrap_or(api::Sort::Total);
            let search = p.get("q").map(|s| s.trim()).filter(|s| !s.is_empty());
            html(StatusCode::OK, pages::domains(app, search, sort))
        }
        "/admin/console/rule-changes" => {
            let changes = recent_changes(app).await;
            html(StatusCode::OK, pages::rule_changes(&changes))
        }
        "/admin/console/explain" => {
            let p = params(query);
            html(
                StatusCode::OK,
                pages::explain(app, p.get("q").map(String::as_str)),
            )
        }
        _ => {
            if let Some(segment) = path.strip_prefix("/admin/domains/") {
                return match domain_name(segment) {
                    Some(name) => api::domain(app, &name),
                    None => problem(StatusCode::NOT_FOUND, "not a domain name"),
                };
            }
            match path
                .strip_prefix("/admin/console/domains/")
                .and_then(domain_name)
            {
                Some(name) => html(StatusCode::OK, pages::domain(app, &name)),
                None => html(
                    StatusCode::NOT_FOUND,
                    html::page("Not found", "", "<p>No such page.</p>"),
                ),
            }
        }
    }
}

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// Reloads the console lists, newest first.
const CHANGES_SHOWN: usize = 200;

/// The newest lines of the rule-change log (none if it cannot be read: the page says so by
/// showing none, and the JSON endpoint gives the error).
async fn recent_changes(app: &App) -> Vec<crate::journal::RuleChange> {
    let log = app.rule_changes.clone();
    match tokio::task::spawn_blocking(move || log.since(0, CHANGES_SHOWN)).await {
        Ok(Ok(changes)) => changes,
        _ => Vec::new(),
    }
}

/// Only this listener's own stylesheet and script; no frames, no form posts elsewhere.
const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = with_type(status, body.into_bytes(), "text/html; charset=utf-8");
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn asset(body: &'static str, content_type: &'static str) -> Response<Body> {
    let mut resp = with_type(StatusCode::OK, body.as_bytes().to_vec(), content_type);
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// A domain from a path segment: percent-decoded and normalised as rules are.
fn domain_name(segment: &str) -> Option<String> {
    let decoded: String = url::form_urlencoded::parse(format!("d={segment}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    host::normalize(&decoded)
}

/// A query string's parameters, percent-decoded; the last of a repeated name wins.
fn params(query: Option<&str>) -> Params {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn json<T: Serialize + ?Sized>(value: &T) -> Response<Body> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => with_type(StatusCode::OK, body, "application/json"),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode: {e}"),
        ),
    }
}

fn problem(status: StatusCode, error: &str) -> Response<Body> {
    let body = serde_json::to_vec(&api::Problem { error }).unwrap_or_default();
    with_type(status, body, "application/json")
}

fn with_type(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
