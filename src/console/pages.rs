//! The console's pages, server-rendered from the journal, the metrics and the live rules
//! snapshot: overview, domains, a domain, rule changes, explain.

use super::html::{domain_link, esc, num, page, table, time, url};
use crate::activity::Facts as ActivityFacts;
use crate::app::App;
use crate::explain::{self, Subject};
use crate::journal::{Entry, Query, RuleChange, Sort};
use crate::policy::host;
use std::fmt::Write;

/// Rows the domains table shows at most.
const DOMAIN_ROWS: usize = 500;
/// Decisions a domain's page lists.
const DOMAIN_DECISIONS: usize = 50;
/// The longest text the explain form takes (a pasted activity).
pub const MAX_EXPLAIN_BYTES: usize = 64 * 1024;

pub fn overview(app: &App, changes: &[RuleChange]) -> String {
    let now = crate::clock::unix_now();
    let (domains, decisions) = app.journal.sizes();
    let mut body = String::new();
    body.push_str(
        "<section aria-labelledby=\"h-chart\"><h2 id=\"h-chart\">Decisions per minute</h2>",
    );
    body.push_str(&super::chart::decisions_per_minute(
        &app.journal.per_minute(),
        now / 60,
    ));
    body.push_str("</section><section aria-labelledby=\"h-reasons\"><h2 id=\"h-reasons\">Why</h2>");
    body.push_str(&super::health::reasons(app));
    body.push_str("</section><section aria-labelledby=\"h-rules\"><h2 id=\"h-rules\">Rules</h2>");
    let _ = write!(
        body,
        "<p>Snapshot generation {}, {} domain rules in force. <a href=\"/admin/console/rule-changes\">What changed</a>.</p>",
        app.rules.generation(),
        app.rules.current().load().len()
    );
    body.push_str(&super::health::sources(app, now, changes));
    body.push_str(
        "</section><section aria-labelledby=\"h-health\"><h2 id=\"h-health\">Health</h2>",
    );
    body.push_str(&super::health::health(app));
    let _ = write!(
        body,
        "<p>This replica's journal holds {domains} of at most {} domains and {decisions} of at most {} decisions.</p></section>",
        app.config.admin.journal_domains, app.config.admin.journal_decisions
    );
    page("Overview", "/admin/", &body)
}

pub fn domains(app: &App, search: Option<&str>, sort: Sort) -> String {
    let rows = app.journal.domains(sort, DOMAIN_ROWS, search);
    let q = search.unwrap_or("");
    let mut body = format!(
        "<form role=\"search\" method=\"get\" action=\"/admin/console/domains\" class=\"search\">\
<label for=\"q\">Search domains</label> <input id=\"q\" name=\"q\" type=\"search\" value=\"{}\" autocomplete=\"off\" data-filter=\"domains\">\
<input type=\"hidden\" name=\"sort\" value=\"{}\"> <button type=\"submit\">Search</button></form>\
<p id=\"domains-count\" aria-live=\"polite\">{} domains (most first by {}; at most {DOMAIN_ROWS} shown).</p>",
        esc(q),
        sort.name(),
        rows.len(),
        sort.name()
    );
    let mut head = String::new();
    for (label, key) in [
        ("Domain", Sort::Domain),
        ("Last seen", Sort::LastSeen),
        ("Forwarded", Sort::Forwarded),
        ("Rejected", Sort::Rejected),
        ("Dropped", Sort::Dropped),
        ("Would reject", Sort::WouldReject),
        ("Total", Sort::Total),
    ] {
        let current = if key == sort {
            let order = if key == Sort::Domain {
                "ascending"
            } else {
                "descending"
            };
            format!(" aria-sort=\"{order}\"")
        } else {
            String::new()
        };
        let _ = write!(
            head,
            "<th scope=\"col\"{current}><a href=\"/admin/console/domains?sort={}&amp;q={}\">{label}</a></th>",
            key.name(),
            url(q)
        );
    }
    let mut trs = String::new();
    for r in &rows {
        let _ = write!(
            trs,
            "<tr data-domain=\"{}\"><th scope=\"row\">{}</th><td>{}</td>{}{}{}{}{}</tr>",
            esc(&r.domain),
            domain_link(&r.domain),
            time(r.last_seen),
            num(r.day.forwarded),
            num(r.day.rejected),
            num(r.day.dropped),
            num(r.day.would_reject),
            num(r.day.total())
        );
    }
    body.push_str(&super::html::table_with_head(
        "Sending domains, last day",
        "domains",
        &head,
        7,
        &trs,
    ));
    page("Domains", "/admin/console/domains", &body)
}

pub fn domain(app: &App, name: &str) -> String {
    let mut body = String::new();
    match app.journal.domain(name) {
        None => body.push_str("<p>No decisions recorded for this domain since this replica started (or it was evicted as one of the quietest).</p>"),
        Some(d) => {
            let _ = write!(
                body,
                "<p>Last seen {}. Last hour: {} forwarded, {} rejected, {} dropped, {} would reject. Last day: {} forwarded, {} rejected, {} dropped, {} would reject.</p>",
                time(d.row.last_seen),
                d.row.hour.forwarded, d.row.hour.rejected, d.row.hour.dropped, d.row.hour.would_reject,
                d.row.day.forwarded, d.row.day.rejected, d.row.day.dropped, d.row.day.would_reject,
            );
            let mut rows = String::new();
            for r in &d.reasons {
                let ids: Vec<String> = r.last_activity_ids.iter().map(|id| format!("<li>{}</li>", esc(id))).collect();
                let _ = write!(
                    rows,
                    "<tr><td>{}</td><th scope=\"row\">{}</th>{}{}<td><ul class=\"ids\">{}</ul></td></tr>",
                    r.decision, esc(r.reason), num(r.hour), num(r.day), ids.join("")
                );
            }
            body.push_str(&table("By decision and reason", "reasons", &["Decision", "Reason", "Last hour", "Last day", "Last activity ids"], &rows));
        }
    }
    let recent = app.journal.decisions(&Query {
        domain: Some(name.to_string()),
        limit: DOMAIN_DECISIONS,
        ..Query::default()
    });
    body.push_str(&decisions_table("Recent decisions", &recent));
    body.push_str(&evidence(app, name));
    body.push_str(&content_evidence(app, name));
    let rules = app.rules.current().load();
    let report = explain::report(
        &rules,
        &[],
        &app.config.friendly_federators,
        &Subject::Domain(name.to_string()),
    );
    let _ = write!(body, "<section aria-labelledby=\"h-explain\"><h2 id=\"h-explain\">Its rules (live)</h2><pre class=\"report\">{}</pre></section>", esc(&report));
    page(name, "/admin/console/domains", &body)
}

/// The friendly-federator evidence the proxy holds on `domain`, if any.
fn evidence(app: &App, domain: &str) -> String {
    let rules = app.rules.current().load();
    let report = app
        .federators
        .report(crate::clock::unix_now(), rules.friendly_federators(), None);
    let Some(d) = report.domains.iter().find(|d| d.domain == domain) else {
        return String::new();
    };
    let samples: Vec<String> = d
        .samples
        .iter()
        .map(|s| format!("<li>{}</li>", esc(s)))
        .collect();
    format!(
        "<section aria-labelledby=\"h-evidence\"><h2 id=\"h-evidence\">Friendly-federator evidence</h2>\
<p>{} references to suspended content ({} in the window, {} dropped), first {}, last {}{}.</p><ul class=\"ids\">{}</ul></section>",
        d.total,
        d.in_window,
        d.dropped,
        esc(&d.first_seen),
        esc(&d.last_seen),
        d.status.map_or(String::new(), |s| format!("; {s}")),
        samples.join("")
    )
}

/// The content rules that matched what `domain` sent, with its counts and newest activity ids.
fn content_evidence(app: &App, domain: &str) -> String {
    let rules = app.rules.current().load();
    let report = app
        .federators
        .content_report(crate::clock::unix_now(), Some(rules.content_rules()));
    let mut rows = String::new();
    for rule in &report.rules {
        for d in rule.domains.iter().filter(|d| d.domain == domain) {
            let samples: Vec<String> = d.samples.iter().map(|s| esc(s)).collect();
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"wrap\">{}</td></tr>",
                esc(&rule.rule),
                d.matches,
                d.dry_run,
                esc(&d.first_seen),
                esc(&d.last_seen),
                samples.join("<br>")
            );
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "<section aria-labelledby=\"h-content\"><h2 id=\"h-content\">Content-rule evidence</h2>\
<table><caption>Content rules its posts matched</caption><thead><tr><th scope=\"col\">Rule</th><th scope=\"col\">Matches</th><th scope=\"col\">Of them in dry run</th><th scope=\"col\">First</th><th scope=\"col\">Last</th><th scope=\"col\">Newest activity ids</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )
}

fn decisions_table(caption: &str, entries: &[Entry]) -> String {
    let mut rows = String::new();
    for e in entries {
        let v = e.view();
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td class=\"wrap\">{}</td><td>{}</td><td class=\"wrap\">{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td>{}</tr>",
            time(v.unix_ms / 1000),
            v.key_host.map_or("-".to_string(), domain_link),
            esc(v.actor.unwrap_or("-")),
            esc(v.activity_type.unwrap_or("-")),
            esc(v.activity_id.unwrap_or("-")),
            v.decision.replace('_', "-"),
            v.decision,
            esc(v.reason),
            esc(v.rule.unwrap_or("-")),
            num(v.status),
        );
    }
    table(
        caption,
        "decisions",
        &[
            "Time",
            "Key host",
            "Actor",
            "Type",
            "Activity id",
            "Decision",
            "Reason",
            "Rule",
            "Status",
        ],
        &rows,
    )
}

pub fn rule_changes(changes: &[RuleChange]) -> String {
    let mut rows = String::new();
    for c in changes {
        let mut what = String::new();
        for (source, ch) in &c.changes {
            let mut parts = Vec::new();
            for (sign, map) in [("+", &ch.added), ("−", &ch.removed), ("~", &ch.changed)] {
                for (severity, n) in map {
                    parts.push(format!("{sign}{n} {severity}"));
                }
            }
            let _ = write!(
                what,
                "<li><strong>{}</strong>: {}</li>",
                esc(source),
                esc(&parts.join(", "))
            );
        }
        for d in &c.domains {
            let sign = match d.change.as_str() {
                "added" => "+",
                "removed" => "−",
                _ => "~",
            };
            let _ = write!(
                what,
                "<li>{sign} {} {}</li>",
                esc(&d.severity),
                domain_link(&d.domain)
            );
        }
        for refused in &c.refused {
            let _ = write!(what, "<li class=\"bad\">refused {}</li>", esc(refused));
        }
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td class=\"wrap\">{}</td>{}<td><ul class=\"ids\">{}</ul></td></tr>",
            time(c.unix),
            esc(&c.trigger),
            esc(c.source.as_deref().unwrap_or("-")),
            num(c.generation),
            if what.is_empty() { "<li>no change</li>".to_string() } else { what }
        );
    }
    let body = format!(
        "<p>Every reload that put rules in force, newest first (<a href=\"/admin/rule-changes\">JSON</a>). Domains added (+), removed (−) and changed (~), per source and severity.</p>{}",
        table("Reloads", "rule-changes", &["Time", "Trigger", "Source", "Generation", "Changes"], &rows)
    );
    page("Rule changes", "/admin/console/rule-changes", &body)
}

pub fn explain(app: &App, text: Option<&str>) -> String {
    let q = text.unwrap_or("");
    let mut body = format!(
        "<form method=\"get\" action=\"/admin/console/explain\" class=\"explain\">\
<label for=\"subject\">A domain, an actor URI (<code>https://…</code> or <code>@user@host</code>), or an activity's JSON</label>\
<textarea id=\"subject\" name=\"q\" rows=\"4\" required>{}</textarea>\
<button type=\"submit\">Explain</button></form>",
        esc(q)
    );
    if !q.trim().is_empty() {
        let answer = match subject(q) {
            Ok(subject) => {
                let rules = app.rules.current().load();
                explain::report(&rules, &[], &app.config.friendly_federators, &subject)
            }
            Err(e) => e,
        };
        let _ = write!(
            body,
            "<section aria-labelledby=\"h-answer\" aria-live=\"polite\"><h2 id=\"h-answer\">Answer, from the rules in force</h2><pre class=\"report\" id=\"answer\">{}</pre></section>",
            esc(&answer)
        );
    }
    page("Explain", "/admin/console/explain", &body)
}

/// What the explain form was asked about. Unlike the command line, text is never taken as
/// a file name: the console reads no files on a visitor's word.
fn subject(text: &str) -> Result<Subject, String> {
    let text = text.trim();
    if text.len() > MAX_EXPLAIN_BYTES {
        return Err(format!("longer than {MAX_EXPLAIN_BYTES} bytes"));
    }
    if text.starts_with('{') {
        let facts =
            ActivityFacts::parse(text.as_bytes()).map_err(|e| format!("not an activity: {e}"))?;
        if facts.actor.as_deref().and_then(host::of_uri).is_none() {
            return Err("the activity names no actor with a valid host".into());
        }
        return Ok(Subject::Activity {
            path: "pasted".into(),
            facts,
        });
    }
    if text.contains("://") || text.contains('@') {
        let host = host::of_uri(text).ok_or_else(|| format!("{text:?}: no valid host"))?;
        return Ok(Subject::Actor {
            uri: text.to_string(),
            host,
        });
    }
    host::normalize(text)
        .map(Subject::Domain)
        .ok_or_else(|| format!("{text:?} is not a domain, an actor URI or an activity"))
}
