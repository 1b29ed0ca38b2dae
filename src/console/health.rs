//! What the overview reads from the metrics registry: rule sources (rules in force, when
//! loaded, stale), key cache and key fetches, upstream answers, backpressure. Read through
//! `Collector::collect`, which copies the series that exist and creates none.

use super::html::{age, esc, num, table, time};
use crate::app::App;
use crate::journal::RuleChange;
use prometheus::core::Collector;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Each series of `c`: its labels and its value (a gauge's or a counter's).
fn series(c: &dyn Collector) -> Vec<(BTreeMap<String, String>, f64)> {
    c.collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| {
            let labels = m
                .get_label()
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect();
            (
                labels,
                m.get_gauge().get_value() + m.get_counter().get_value(),
            )
        })
        .collect()
}

fn label<'a>(labels: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

/// The rule sources table: per source, its rules in force by severity, when its rules in
/// force were loaded, whether its file is stale (refused, last good copy in force), and the
/// newest refusal the rule-change log holds for it.
pub fn sources(app: &App, now: u64, changes: &[RuleChange]) -> String {
    let m = &app.metrics;
    let mut by_source: BTreeMap<String, (String, u64, bool)> = BTreeMap::new();
    for (labels, value) in series(&m.rules_loaded) {
        if value > 0.0 {
            let entry = by_source
                .entry(label(&labels, "source").into())
                .or_default();
            let _ = write!(entry.0, "{} {value} ", label(&labels, "severity"));
        }
    }
    for (labels, value) in series(&m.rules_last_reload_timestamp_seconds) {
        by_source
            .entry(label(&labels, "source").into())
            .or_default()
            .1 = value as u64;
    }
    for (labels, value) in series(&m.rules_source_stale) {
        by_source
            .entry(label(&labels, "source").into())
            .or_default()
            .2 = value > 0.0;
    }
    let mut rows = String::new();
    for (source, (counts, loaded, stale)) in &by_source {
        let error = if *stale {
            changes
                .iter()
                .flat_map(|c| &c.refused)
                .find(|e| e.starts_with(source.as_str()))
                .map_or("refused (see the log)".to_string(), |e| esc(e))
        } else {
            String::new()
        };
        let _ = write!(
            rows,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{} ({} ago)</td><td>{}</td><td>{error}</td></tr>",
            esc(source),
            esc(counts.trim()),
            time(*loaded),
            age(now, *loaded),
            if *stale { "<strong class=\"bad\">stale</strong>" } else { "fresh" },
        );
    }
    table(
        "Rule sources",
        "sources",
        &["Source", "Rules in force", "Loaded", "State", "Last error"],
        &rows,
    )
}

/// Key cache, key fetches, upstream answers (counts since start) and backpressure.
pub fn health(app: &App) -> String {
    let m = &app.metrics;
    let mut rows = String::new();
    let mut add = |what: &str, detail: String| {
        let _ = write!(
            rows,
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
            esc(what),
            if detail.is_empty() {
                "none yet".to_string()
            } else {
                esc(&detail)
            }
        );
    };
    let by = |c: &dyn Collector, name: &str| {
        series(c)
            .iter()
            .map(|(l, v)| format!("{} {v}", label(l, name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    add(
        "Key cache lookups",
        by(&m.key_cache_requests_total, "result"),
    );
    add("Key fetches", by(&m.key_fetches_total, "result"));
    add(
        "Upstream answers",
        by(&m.upstream_responses_total, "result"),
    );
    let now = crate::clock::unix_now();
    let fetched: Vec<String> = series(&m.subscription_last_success_timestamp_seconds)
        .iter()
        .map(|(l, v)| {
            let at = *v as u64;
            let ago = if at == 0 {
                "never".to_string()
            } else {
                format!("{} ago", age(now, at))
            };
            format!("{} {ago}", label(l, "source"))
        })
        .collect();
    add("Remote sources, last good fetch", fetched.join(", "));
    add(
        "Upstream requests in flight",
        app.upstream.in_flight().to_string(),
    );
    let shed = &app.shedding.metrics;
    let backpressure = if app.config.sidekiq.is_none() {
        "not configured ([mastodon.sidekiq])".to_string()
    } else {
        let active: Vec<String> = series(&shed.backpressure_active)
            .iter()
            .filter(|(_, v)| *v > 0.0)
            .map(|(l, _)| label(l, "class").to_string())
            .collect();
        format!(
            "Sidekiq latency {:.1} s{}; shedding: {}",
            shed.sidekiq_queue_latency_seconds.get(),
            if shed.sidekiq_signal_stale.get() > 0 {
                " (stale reading: nothing shed)"
            } else {
                ""
            },
            if active.is_empty() {
                "nothing".to_string()
            } else {
                active.join(", ")
            }
        )
    };
    add("Backpressure", backpressure);
    table("Health since start", "health", &["What", "State"], &rows)
}

/// The ledger's reasons over the last hour and day.
pub fn reasons(app: &App) -> String {
    let mut rows = String::new();
    for (decision, reason, hour, day) in app.journal.reasons() {
        let _ = write!(
            rows,
            "<tr><td>{}</td><th scope=\"row\"><a href=\"/admin/decisions?reason={}\">{}</a></th>{}{}</tr>",
            decision.as_str(),
            super::html::url(reason),
            esc(reason),
            num(hour),
            num(day)
        );
    }
    table(
        "Decisions by reason",
        "reasons",
        &["Decision", "Reason", "Last hour", "Last day"],
        &rows,
    )
}
