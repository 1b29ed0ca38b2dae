//! Prometheus metrics. One `Metrics` value owns its own registry (no global registry), is
//! created once at boot and shared through `App`. Labels are bounded: never a domain, actor,
//! keyId or path — only fixed reason/result words and configured source names.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets from 100 µs (a cached verify) to 30 s (the upstream timeout).
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// One maker per kind of metric: build it from its name, help (and label names), register it.
macro_rules! makers {
    ($($(#[$doc:meta])* $maker:ident -> $kind:ty = |$name:ident, $help:ident $(, $labels:ident)?| $make:expr;)*) => {
        $(
            $(#[$doc])*
            pub(crate) fn $maker(
                &self,
                $name: &str,
                $help: &str,
                $($labels: &[&str],)?
            ) -> Result<$kind, prometheus::Error> {
                self.add($make?)
            }
        )*
    };
}

/// Creates each metric and registers it in one step, so no metric is made and left out.
/// Modules with metrics of their own get one from [`Metrics::registrar`].
pub(crate) struct Registrar(Registry);

impl Registrar {
    pub(crate) fn add<M: prometheus::core::Collector + Clone + 'static>(
        &self,
        metric: M,
    ) -> Result<M, prometheus::Error> {
        self.0.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    makers! {
        counter -> IntCounter = |name, help| IntCounter::new(name, help);
        counter_vec -> IntCounterVec =
            |name, help, labels| IntCounterVec::new(Opts::new(name, help), labels);
        gauge -> IntGauge = |name, help| IntGauge::new(name, help);
        /// A gauge of fractional values (seconds).
        float_gauge -> Gauge = |name, help| Gauge::new(name, help);
        gauge_vec -> IntGaugeVec =
            |name, help, labels| IntGaugeVec::new(Opts::new(name, help), labels);
        /// With the latency buckets.
        histogram -> Histogram = |name, help| Histogram::with_opts(latency(name, help));
        /// With the latency buckets.
        histogram_vec -> HistogramVec =
            |name, help, labels| HistogramVec::new(latency(name, help), labels);
    }
}

fn latency(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
}

pub struct Metrics {
    registry: Registry,
    /// Inbox requests by outcome: `decision` is forwarded | rejected | dropped | would_reject
    /// (forwarded, but a dry-run rule would have stopped it); `reason` is a `reject::Rejection`
    /// label (for would_reject, the reason it would have had).
    pub requests_total: IntCounterVec,
    /// Whole inbox request time, from the first header byte to the response head.
    pub request_duration_seconds: HistogramVec,
    /// Verified inbox requests whose activity actor is not the key's owner (relays,
    /// forwarded replies), by `decision`; they are also counted in `requests_total`.
    pub relayed_requests_total: IntCounterVec,
    /// Time Mastodon took to answer a forwarded request with a status line.
    pub upstream_duration_seconds: Histogram,
    /// Forwarded requests (inbox and pass-through) by upstream outcome:
    /// 2xx | 3xx | 4xx | 5xx, or a `reject::upstream_result` (unreachable, timeout,
    /// connection_lost, overloaded, client_aborted, invalid_target).
    pub upstream_responses_total: IntCounterVec,
    /// Requests waiting for Mastodon's status line now (set at scrape time); compare with
    /// `upstream.max_in_flight`, past which senders get 503.
    pub upstream_in_flight: IntGauge,
    /// Non-inbox requests streamed to Mastodon untouched.
    pub passthrough_requests_total: IntCounter,
    /// Requests refused for their signature (a subset of `requests_total`), by
    /// `signature::SigError::reason`, so alerts need not list every signature reason.
    pub signature_failures_total: IntCounterVec,
    /// `result` = hit | miss.
    pub key_cache_requests_total: IntCounterVec,
    /// Verifications that found their key parsed (`hit`) or parsed it from the cached DER
    /// (`miss`): how well `key_fetch.parsed_cache_capacity` fits the senders.
    pub parsed_key_cache_requests_total: IntCounterVec,
    /// One per network fetch attempt; `result` is a `keys::FetchError` label or `ok`.
    pub key_fetches_total: IntCounterVec,
    pub key_fetch_duration_seconds: Histogram,
    /// `result` = success | failure.
    pub rules_reloads_total: IntCounterVec,
    /// Rules in force, per source and kind (`policy::RuleKind`: the three severities, allow,
    /// exclude, actor_suspend).
    pub rules_loaded: IntGaugeVec,
    pub rules_last_reload_timestamp_seconds: IntGaugeVec,
    /// Unix time of the first refused reload since the last successful one; 0 while the last
    /// reload succeeded. Non-zero means an edit is not in force, however long ago it was made
    /// (the failure counter's increase only says "recently"), with no same-second ambiguity
    /// that comparing two timestamps would have.
    pub rules_reload_failing_since_timestamp_seconds: IntGauge,
    /// Per local rule file (`source` = its configured path): 1 while the last reload refused
    /// its current contents and its last good copy is in force, else 0.
    pub rules_source_stale: IntGaugeVec,
    pub connections_active: IntGauge,
    /// Connections the proxy cut or hyper refused before any request reached the pipeline, by
    /// `kind` (`server::ConnectionError`): none of them has an access-log line, so this is
    /// where a slowloris, an h2c flood or malformed heads show.
    pub connection_errors_total: IntCounterVec,
    pub build_info: IntGaugeVec,
    /// Verified activities that referenced a limited or suspended domain, by `kind`
    /// (announce | reply | quote | mention | attributed_to) and the referenced rule's
    /// `severity` (silence | suspend); once per activity per pair. No domain label: the
    /// per-domain evidence is at `/admin/friendly-federators`.
    pub friendly_federator_references_total: IntCounterVec,
    /// Sending domains the evidence store tracks now (at most `max_tracked_domains`).
    pub friendly_federator_tracked_domains: IntGauge,
    /// Domains at or over the escalation threshold, by configured `action`
    /// (report | limit | suspend); for limit and suspend, the rules of the generated source.
    pub friendly_federator_escalations: IntGaugeVec,
    /// Evidence file loads and saves: `op` = load | save, `result` = ok | missing | corrupt |
    /// error.
    pub friendly_federator_evidence_file_total: IntCounterVec,
    /// Remote rule source fetches (subscriptions, Mastodon admin API) by configured `source`
    /// (URL) and `result`: updated | unchanged | not_modified | malformed, or a
    /// `subscriptions::FetchError::reason`.
    pub subscription_fetches_total: IntCounterVec,
    /// Unix time of each remote source's last successful fetch (a 200 that parsed, or a 304).
    pub subscription_last_success_timestamp_seconds: IntGaugeVec,
    /// Disk cache failures per remote source, `op` = read | write.
    pub subscription_cache_errors_total: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let r = Registrar(Registry::new());
        let metrics = Metrics {
            requests_total: r.counter_vec(
                "inboxguard_requests_total",
                "Inbox requests by decision and reason",
                &["decision", "reason"],
            )?,
            request_duration_seconds: r.histogram_vec(
                "inboxguard_request_duration_seconds",
                "Inbox request handling time in seconds",
                &["decision"],
            )?,
            relayed_requests_total: r.counter_vec(
                "inboxguard_relayed_requests_total",
                "Verified inbox requests whose actor is not the signing key's owner, by decision",
                &["decision"],
            )?,
            upstream_duration_seconds: r.histogram(
                "inboxguard_upstream_duration_seconds",
                "Time until Mastodon answered a forwarded request, in seconds",
            )?,
            upstream_responses_total: r.counter_vec(
                "inboxguard_upstream_responses_total",
                "Forwarded requests by upstream outcome",
                &["result"],
            )?,
            upstream_in_flight: r.gauge(
                "inboxguard_upstream_in_flight",
                "Requests currently waiting for the upstream's answer",
            )?,
            passthrough_requests_total: r.counter(
                "inboxguard_passthrough_requests_total",
                "Non-inbox requests streamed to the upstream untouched",
            )?,
            signature_failures_total: r.counter_vec(
                "inboxguard_signature_failures_total",
                "Inbox requests refused for their HTTP signature, by reason",
                &["reason"],
            )?,
            key_cache_requests_total: r.counter_vec(
                "inboxguard_key_cache_requests_total",
                "Public key cache lookups by result",
                &["result"],
            )?,
            parsed_key_cache_requests_total: r.counter_vec(
                "inboxguard_parsed_key_cache_requests_total",
                "Verifications by whether their key was kept parsed (hit) or parsed again (miss)",
                &["result"],
            )?,
            key_fetches_total: r.counter_vec(
                "inboxguard_key_fetches_total",
                "Remote public key fetches by result",
                &["result"],
            )?,
            key_fetch_duration_seconds: r.histogram(
                "inboxguard_key_fetch_duration_seconds",
                "Remote public key fetch time in seconds",
            )?,
            rules_reloads_total: r.counter_vec(
                "inboxguard_rules_reloads_total",
                "Rule set reloads by result",
                &["result"],
            )?,
            rules_loaded: r.gauge_vec(
                "inboxguard_rules_loaded",
                "Rules in force by source and kind (severity: suspend, silence, noop, allow, exclude, actor_suspend)",
                &["source", "severity"],
            )?,
            rules_last_reload_timestamp_seconds: r.gauge_vec(
                "inboxguard_rules_last_reload_timestamp_seconds",
                "Unix time of the last successful load of each rule source",
                &["source"],
            )?,
            rules_reload_failing_since_timestamp_seconds: r.gauge(
                "inboxguard_rules_reload_failing_since_timestamp_seconds",
                "Unix time of the first failed rule set reload since the last successful one (0: the last reload succeeded)",
            )?,
            rules_source_stale: r.gauge_vec(
                "inboxguard_rules_source_stale",
                "1 while a rule file's current contents are refused and its last good copy is in force",
                &["source"],
            )?,
            connections_active: r.gauge(
                "inboxguard_connections_active",
                "Client connections currently open on the proxy listener",
            )?,
            connection_errors_total: r.counter_vec(
                "inboxguard_connection_errors_total",
                "Client connections cut by a connection deadline or refused by the HTTP layer before the pipeline, by kind",
                &["kind"],
            )?,
            build_info: r.gauge_vec(
                "inboxguard_build_info",
                "Always 1; labelled with the version",
                &["version"],
            )?,
            friendly_federator_references_total: r.counter_vec(
                "inboxguard_friendly_federator_references_total",
                "Verified activities that referenced a limited or suspended domain, by kind and severity",
                &["kind", "severity"],
            )?,
            friendly_federator_tracked_domains: r.gauge(
                "inboxguard_friendly_federator_tracked_domains",
                "Sending domains with friendly-federator evidence in memory",
            )?,
            friendly_federator_escalations: r.gauge_vec(
                "inboxguard_friendly_federator_escalations",
                "Domains at or over the friendly-federator escalation threshold, by action",
                &["action"],
            )?,
            friendly_federator_evidence_file_total: r.counter_vec(
                "inboxguard_friendly_federator_evidence_file_total",
                "Friendly-federator evidence file loads and saves by result",
                &["op", "result"],
            )?,
            subscription_fetches_total: r.counter_vec(
                "inboxguard_subscription_fetches_total",
                "Remote rule source fetches by source and result",
                &["source", "result"],
            )?,
            subscription_last_success_timestamp_seconds: r.gauge_vec(
                "inboxguard_subscription_last_success_timestamp_seconds",
                "Unix time of the last successful fetch of each remote rule source",
                &["source"],
            )?,
            subscription_cache_errors_total: r.counter_vec(
                "inboxguard_subscription_cache_errors_total",
                "Remote rule source disk cache failures by source and operation",
                &["source", "op"],
            )?,
            registry: r.0,
        };
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Pre-create the label pairs dashboards and alerts divide by, so a rate() over them
        // exists (as 0) before the first event.
        for r in ["hit", "miss"] {
            metrics.key_cache_requests_total.with_label_values(&[r]);
            metrics
                .parsed_key_cache_requests_total
                .with_label_values(&[r]);
        }
        for r in ["success", "failure"] {
            metrics.rules_reloads_total.with_label_values(&[r]);
        }
        for r in ["ok", "error"] {
            metrics
                .friendly_federator_evidence_file_total
                .with_label_values(&["save", r]);
        }
        Ok(metrics)
    }

    /// The Prometheus text exposition of every metric.
    /// Adds a module's own metrics (e.g. `shedding::ShedMetrics`) to the one registry.
    /// Registers the metrics a module makes itself into this registry.
    pub(crate) fn registrar(&self) -> Registrar {
        Registrar(self.registry.clone())
    }

    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(8192);
        // Encoding into a Vec cannot fail for the text format except on invalid metric
        // families, which `new` rules out; an empty answer is better than a panic.
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_named_metrics() {
        let m = Metrics::new().expect("metrics");
        m.requests_total
            .with_label_values(&["rejected", "bad_signature"])
            .inc();
        let text = m.render();
        assert!(text.contains(
            r#"inboxguard_requests_total{decision="rejected",reason="bad_signature"} 1"#
        ));
        assert!(text.contains(r#"inboxguard_key_cache_requests_total{result="hit"} 0"#));
    }
}
