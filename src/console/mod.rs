//! What the admin listener shows moderators: the journal's JSON endpoints (`api`).
//! Read-only; the admin listener's bearer token (when configured) covers all of it.

mod api;

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
        "/admin/domains" | "/admin/decisions" | "/admin/rule-changes"
    ) || path.starts_with("/admin/domains/")
}

/// Answers a GET of a path [`serves`] says is ours.
pub async fn get(app: &App, path: &str, query: Option<&str>) -> Response<Body> {
    match path {
        "/admin/rule-changes" => api::rule_changes(app, query).await,
        "/admin/domains" => api::domains(app, query),
        "/admin/decisions" => api::decisions(app, query),
        _ => match path.strip_prefix("/admin/domains/").and_then(domain_name) {
            Some(name) => api::domain(app, &name),
            None => problem(StatusCode::NOT_FOUND, "not a domain name"),
        },
    }
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
