//! The journal's JSON endpoints on the admin listener:
//!
//! | path | answer |
//! |------|--------|
//! | `GET /admin/domains?sort=&limit=&q=` | ledger rows, by `sort` (`total`, `forwarded`, `rejected`, `dropped`, `would_reject`, `last_seen`, `domain`; default `total`), at most `limit` (default 50), `q` a part of the name |
//! | `GET /admin/domains/<domain>` | one domain's counts by decision and reason, and its last activity ids; 404 if the ledger has none |
//! | `GET /admin/decisions?domain=&actor=&reason=&decision=&limit=` | the newest matching decisions (default 100) |
//! | `GET /admin/rule-changes?since=&limit=` | the rule-change log's lines since `since` (Unix seconds or RFC 3339; default: all), newest first (default 100) |

use super::{json, params, problem, Params};
use crate::app::App;
use crate::forward::Body;
pub(super) use crate::journal::Sort;
use crate::journal::{EntryView, Query};
use http::{Response, StatusCode};
use serde::Serialize;

/// The most rows one answer carries.
pub const MAX_LIMIT: usize = 10_000;

pub(super) fn domains(app: &App, query: Option<&str>) -> Response<Body> {
    let p = params(query);
    let sort = match p.get("sort").map(String::as_str) {
        None | Some("") => Sort::Total,
        Some(s) => match Sort::parse(s) {
            Some(sort) => sort,
            None => {
                let known = Sort::ALL.map(Sort::name);
                return problem(
                    StatusCode::BAD_REQUEST,
                    &format!("sort: one of {}", known.join(", ")),
                );
            }
        },
    };
    let limit = match limit(&p, 50) {
        Ok(l) => l,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &e),
    };
    let search = p.get("q").map(|s| s.trim()).filter(|s| !s.is_empty());
    json(&app.journal.domains(sort, limit, search))
}

pub(super) fn domain(app: &App, name: &str) -> Response<Body> {
    match app.journal.domain(name) {
        Some(detail) => json(&detail),
        None => problem(
            StatusCode::NOT_FOUND,
            "no decisions recorded for this domain",
        ),
    }
}

pub(super) fn decisions(app: &App, query: Option<&str>) -> Response<Body> {
    match decision_query(query) {
        Ok(q) => {
            let found = app.journal.decisions(&q);
            let views: Vec<EntryView<'_>> = found.iter().map(|e| e.view()).collect();
            json(&views)
        }
        Err(e) => problem(StatusCode::BAD_REQUEST, &e),
    }
}

pub(super) async fn rule_changes(app: &App, query: Option<&str>) -> Response<Body> {
    let p = params(query);
    let since = match p.get("since").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => 0,
        Some(s) => match s
            .parse::<u64>()
            .ok()
            .or_else(|| crate::clock::parse_rfc3339(s).map(|t| u64::try_from(t).unwrap_or(0)))
        {
            Some(t) => t,
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "since: Unix seconds or an RFC 3339 time",
                )
            }
        },
    };
    let limit = match limit(&p, 100) {
        Ok(l) => l,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &e),
    };
    let log = app.rule_changes.clone();
    match tokio::task::spawn_blocking(move || log.since(since, limit)).await {
        Ok(Ok(changes)) => json(&changes),
        Ok(Err(e)) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot read the rule-change log: {e}"),
        ),
        Err(_) => problem(StatusCode::INTERNAL_SERVER_ERROR, "read task failed"),
    }
}

/// The `GET /admin/decisions` parameters; empty ones are ignored. `Err` says which is wrong.
pub(super) fn decision_query(query: Option<&str>) -> Result<Query, String> {
    let p = params(query);
    let get = |k: &str| {
        p.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    Ok(Query {
        domain: get("domain").map(|d| d.to_ascii_lowercase()),
        actor: get("actor"),
        reason: get("reason"),
        decision: get("decision"),
        limit: limit(&p, 100)?,
    })
}

fn limit(p: &Params, default: usize) -> Result<usize, String> {
    match p.get("limit").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!("limit: a number from 1 to {MAX_LIMIT}")),
        },
    }
}

/// `{"error": "..."}`, as the proxy's own answers.
#[derive(Serialize)]
pub(super) struct Problem<'a> {
    pub error: &'a str,
}
