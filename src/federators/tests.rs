//! The laundering check per kind, the evidence store and its file, escalation and the report.

use super::content;
use super::evidence::with_suffix;
use super::report::rfc3339;
use super::*;
use crate::activity::Facts;
use crate::config::EscalationAction;
use crate::policy::content::ContentRules;
use crate::policy::FriendlyFederatorSettings;
use crate::policy::{sources, DomainRule, Severity, Snapshot};
use crate::rules::MemorySource;
use std::borrow::Cow;

fn snapshot() -> Snapshot {
    Snapshot::from_rules([
        DomainRule::test("bad.example", Severity::Suspend),
        DomainRule::test("quiet.example", Severity::Silence),
        DomainRule::test("fine.example", Severity::Noop),
        DomainRule {
            dry_run: true,
            ..DomainRule::test("preview.example", Severity::Suspend)
        },
    ])
}

fn reference(kind: Kind, rule: &DomainRule) -> Reference<'_> {
    Reference {
        kind,
        uri: "https://listed.example/n/1",
        host: Cow::Borrowed(&rule.domain),
        rule,
    }
}

fn config() -> FriendlyFederatorsConfig {
    FriendlyFederatorsConfig::default()
}

/// The default config with its evidence file `ff.json` in a fresh directory (which lives as
/// long as the returned guard).
fn with_evidence_file() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    FriendlyFederatorsConfig,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ff.json");
    let mut c = config();
    c.evidence_file = Some(path.clone());
    (dir, path, c)
}

fn federators(config: FriendlyFederatorsConfig) -> Federators {
    Federators::new(&config, Arc::new(Metrics::new().expect("metrics")))
}

fn facts(json: &str) -> Facts {
    Facts::parse(json.as_bytes()).expect("activity")
}

fn check(f: &Federators, json: &str) -> Option<Stop> {
    f.inspect(
        &snapshot(),
        &facts(json),
        "friend.example",
        Some("friend.example"),
    )
}

fn stop(reason: &'static str) -> Option<Stop> {
    Some(Stop {
        reason,
        dry_run: false,
    })
}

#[test]
fn each_kind_is_found_and_only_enabled_kinds_stop() {
    let f = federators(config());
    let announce = r#"{"type":"Announce","id":"https://friend.example/a/1","actor":"https://friend.example/u/f","object":"https://bad.example/n/1"}"#;
    assert_eq!(check(&f, announce), stop("laundered_announce"));
    let announce_embedded = r#"{"type":"Announce","actor":"https://friend.example/u/f",
            "object":{"id":"https://relay.example/n/1","attributedTo":"https://sub.bad.example/u/b"}}"#;
    assert_eq!(check(&f, announce_embedded), stop("laundered_announce"));
    let attributed = r#"{"type":"Create","actor":"https://friend.example/u/f",
            "object":{"id":"https://friend.example/n/1","attributedTo":"https://bad.example/u/b"}}"#;
    assert_eq!(check(&f, attributed), stop("laundered_attributed"));
    let reply = r#"{"type":"Create","actor":"https://friend.example/u/f",
            "object":{"attributedTo":"https://friend.example/u/f","inReplyTo":"https://bad.example/n/1"}}"#;
    let quote = r#"{"type":"Create","actor":"https://friend.example/u/f",
            "object":{"attributedTo":"https://friend.example/u/f","_misskey_quote":"https://bad.example/n/1"}}"#;
    let mention = r#"{"type":"Create","actor":"https://friend.example/u/f",
            "object":{"attributedTo":"https://friend.example/u/f","tag":[{"type":"Mention","href":"https://bad.example/u/b"}]}}"#;
    // Off by default: counted, not stopped.
    for body in [reply, quote, mention] {
        assert_eq!(check(&f, body), None, "{body}");
    }
    let mut on = config();
    (on.reply, on.quote, on.mention) = (true, true, true);
    let f2 = federators(on);
    assert_eq!(check(&f2, reply), stop("laundered_reply"));
    assert_eq!(check(&f2, quote), stop("laundered_quote"));
    assert_eq!(check(&f2, mention), stop("laundered_mention"));

    let report = f.report(unix_now(), None, None);
    let d = &report.domains[0];
    assert_eq!(d.domain, "friend.example");
    assert_eq!((d.total, d.dropped), (6, 3));
    let k = d.by_kind;
    assert_eq!(
        (k.announce, k.attributed_to, k.reply, k.quote, k.mention),
        (2, 1, 1, 1, 1)
    );
    assert_eq!(d.by_severity.suspend, 6);
    assert_eq!(
        d.referenced,
        [
            Referenced {
                domain: "bad.example".into(),
                count: 5
            },
            Referenced {
                domain: "sub.bad.example".into(),
                count: 1
            }
        ]
    );
    assert_eq!(d.samples, ["https://friend.example/a/1"]);
}

#[test]
fn limited_noop_self_and_other_types_are_not_dropped() {
    let f = federators(config());
    // A boost of limited content is evidence, never a drop.
    let quiet = r#"{"type":"Announce","id":"https://friend.example/a/2","actor":"https://friend.example/u/f","object":"https://quiet.example/n/1"}"#;
    assert_eq!(check(&f, quiet), None);
    for body in [
        r#"{"type":"Announce","actor":"https://friend.example/u/f","object":"https://fine.example/n/1"}"#,
        r#"{"type":"Announce","actor":"https://friend.example/u/f","object":"https://friend.example/n/1"}"#,
        r#"{"type":"Like","actor":"https://friend.example/u/f","object":"https://bad.example/n/1"}"#,
        r#"{"type":"Create","actor":"https://friend.example/u/f","object":"https://bad.example/n/1"}"#,
        r#"{"type":"Create","actor":"https://friend.example/u/f","object":{"inReplyTo":"not a uri"}}"#,
    ] {
        assert_eq!(check(&f, body), None, "{body}");
    }
    let report = f.report(unix_now(), None, None);
    assert_eq!(report.domains.len(), 1);
    let d = &report.domains[0];
    assert_eq!((d.total, d.dropped, d.by_severity.silence), (1, 0, 1));
}

#[test]
fn a_dry_run_suspend_would_drop_and_an_enforcing_one_wins() {
    let f = federators(config());
    let preview = r#"{"type":"Announce","actor":"https://friend.example/u/f","object":"https://preview.example/n/1"}"#;
    assert_eq!(
        check(&f, preview),
        Some(Stop {
            reason: "laundered_announce",
            dry_run: true
        })
    );
    assert!(
        f.report(unix_now(), None, None).domains.is_empty(),
        "a dry-run rule is no evidence"
    );
    let both = r#"{"type":"Create","actor":"https://friend.example/u/f","object":{
            "tag":[{"type":"Mention","href":"https://preview.example/u/p"}],
            "attributedTo":"https://bad.example/u/b"}}"#;
    let mut on = config();
    on.mention = true;
    let f = federators(on);
    assert_eq!(check(&f, both), stop("laundered_attributed"));
}

#[test]
fn the_store_keeps_the_domains_with_most_references() {
    let mut c = config();
    c.max_tracked_domains = 2;
    let f = federators(c);
    let bad = DomainRule::test("bad.example", Severity::Suspend);
    let found = [reference(Kind::Announce, &bad)];
    for _ in 0..3 {
        f.record("a.example", None, &found, true, 100, 7);
    }
    f.record("b.example", None, &found, true, 200, 7);
    f.record("c.example", None, &found, true, 300, 7);
    f.record(
        "c.example",
        Some("https://c.example/1"),
        &found,
        true,
        300,
        7,
    );
    let report = f.report(400, None, None);
    let names: Vec<&str> = report.domains.iter().map(|d| &*d.domain).collect();
    assert_eq!(names, ["a.example", "c.example"]);
    assert_eq!(report.tracked_domains, 2);
    for i in 0..10 {
        f.record("a.example", Some(&format!("id{i}")), &found, true, 500, 7);
    }
    let report = f.report(600, None, None);
    assert_eq!(
        report.domains[0].samples,
        ["id5", "id6", "id7", "id8", "id9"]
    );
    assert_eq!(report.domains[0].first_seen, rfc3339(100));
    assert_eq!(report.domains[0].last_seen, rfc3339(500));
}

#[test]
fn evidence_survives_a_save_and_a_corrupt_file_is_set_aside() {
    let (dir, path, c) = with_evidence_file();
    let f = federators(c.clone());
    assert!(!f.save(1).expect("nothing to save"), "clean store");
    check(
        &f,
        r#"{"type":"Announce","id":"https://friend.example/a/9","actor":"https://friend.example/u/f","object":"https://bad.example/n/1"}"#,
    );
    assert!(f.save(2).expect("saved"));
    assert!(!f.save(3).expect("unchanged"));
    assert!(!dir.path().join("ff.json.tmp").exists());

    let again = federators(c.clone());
    let (before, after) = (f.report(10, None, None), again.report(10, None, None));
    assert_eq!(after.domains.len(), 1);
    assert_eq!(after.domains[0].samples, before.domains[0].samples);
    assert_eq!(after.domains[0].total, 1);
    let from_file = report_from_file(&c, 10, None).expect("report");
    assert_eq!(from_file.saved_at.as_deref(), Some(rfc3339(2).as_str()));

    std::fs::write(&path, b"{\"version\":1,\"domains\":").expect("write");
    let fresh = federators(c.clone());
    assert!(fresh.report(10, None, None).domains.is_empty());
    assert!(!path.exists());
    assert_eq!(
        std::fs::read(with_suffix(&path, ".corrupt")).expect("kept"),
        b"{\"version\":1,\"domains\":"
    );
    assert!(matches!(
        report_from_file(&c, 10, None),
        Err(EvidenceError::Missing { .. })
    ));
}

fn found(n: u64, f: &Federators, domain: &str, at: u64) {
    let quiet = DomainRule::test("quiet.example", Severity::Silence);
    let found = [reference(Kind::Reply, &quiet)];
    for _ in 0..n {
        f.record(domain, None, &found, false, at, 7);
    }
}

#[test]
fn escalation_counts_within_the_window_and_report_generates_nothing() {
    const DAY: u64 = SECS_PER_DAY;
    let now = 100 * DAY + 10;
    let mut c = config();
    c.threshold = Some(3);
    let f = federators(c.clone());
    found(5, &f, "old.example", now - 8 * DAY);
    found(2, &f, "old.example", now - DAY);
    found(3, &f, "busy.example", now - 6 * DAY);
    assert!(
        f.evaluate(now, None, &ContentRules::default()).is_none(),
        "report never generates rules"
    );
    let report = f.report(now, None, None);
    let status: Vec<_> = report
        .domains
        .iter()
        .map(|d| (&*d.domain, d.in_window, d.status))
        .collect();
    assert_eq!(
        status,
        [
            ("old.example", 2, None),
            ("busy.example", 3, Some("would_escalate"))
        ]
    );
    assert!(report.escalated.is_empty());

    c.action = Some(EscalationAction::Suspend);
    let f = federators(c);
    found(3, &f, "busy.example", now);
    found(2, &f, "calm.example", now);
    let Some(Some(source)) = f.evaluate(now, None, &ContentRules::default()) else {
        panic!("escalation must generate a source");
    };
    assert_eq!(source.label, SOURCE_LABEL);
    let rules: Vec<_> = source
        .parsed
        .rules
        .iter()
        .map(|r| (&*r.domain, r.severity, r.line))
        .collect();
    assert_eq!(rules, [("busy.example", Severity::Suspend, 2)]);
    assert!(
        f.evaluate(now, None, &ContentRules::default()).is_none(),
        "unchanged set: no reload"
    );
    // Sticky: the window moving on does not lift it.
    assert!(f
        .evaluate(now + 30 * DAY, None, &ContentRules::default())
        .is_none());
    assert_eq!(f.report(now + 30 * DAY, None, None).escalated.len(), 1);
}

/// A rules-file `[friendly_federators]` table (parsed by the real parser).
fn table(text: &str) -> FriendlyFederatorSettings {
    sources::parse_bytes(
        text.as_bytes(),
        Arc::from("rules.toml"),
        crate::config::BlocklistFormat::Toml,
    )
    .expect("parses")
    .friendly_federators
    .expect("table")
}

fn generated(source: Option<Option<MemorySource>>) -> Vec<(String, Severity)> {
    let Some(Some(source)) = source else {
        panic!("expected a generated source, got {source:?}");
    };
    source
        .parsed
        .rules
        .iter()
        .map(|r| (r.domain.to_string(), r.severity))
        .collect()
}

#[test]
fn a_domain_over_the_threshold_under_report_escalates_when_the_action_enforces() {
    let now = 100 * SECS_PER_DAY;
    let mut c = config();
    c.threshold = Some(2);
    let f = federators(c);
    found(2, &f, "busy.example", now);
    // Over the threshold while the action only reports: remembered, no rule.
    assert!(f.evaluate(now, None, &ContentRules::default()).is_none());
    // A rules reload turns the action to limit: the domain escalates at the next tick.
    let limit = table("[friendly_federators]\naction = \"limit\"\n");
    assert_eq!(
        generated(f.evaluate(now, Some(&limit), &ContentRules::default())),
        [("busy.example".to_string(), Severity::Silence)]
    );
    assert!(
        f.evaluate(now, Some(&limit), &ContentRules::default())
            .is_none(),
        "nothing changed"
    );
    // limit -> suspend regenerates the rules with the new severity.
    let suspend = table("[friendly_federators]\naction = \"suspend\"\n");
    assert_eq!(
        generated(f.evaluate(now, Some(&suspend), &ContentRules::default())),
        [("busy.example".to_string(), Severity::Suspend)]
    );
    assert_eq!(
        f.report(now, Some(&suspend), None).escalated[0].severity,
        "suspend"
    );
}

#[test]
fn a_table_without_escalation_keys_keeps_the_config_escalation_and_nothing_is_forgotten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = 100 * SECS_PER_DAY;
    let mut c = config();
    c.threshold = Some(2);
    c.action = Some(EscalationAction::Suspend);
    c.evidence_file = Some(dir.path().join("ff.json"));
    let f = federators(c.clone());
    found(2, &f, "busy.example", now);
    assert_eq!(
        generated(f.evaluate(now, None, &ContentRules::default())).len(),
        1
    );
    // A table that only changes a laundering kind inherits threshold, window and action.
    let kinds = table("[friendly_federators]\nreply = true\n");
    let settings = effective(&c, Some(&kinds));
    assert_eq!(
        (settings.threshold, settings.action(), settings.reply),
        (Some(2), EscalationAction::Suspend, true)
    );
    assert!(
        f.evaluate(now, Some(&kinds), &ContentRules::default())
            .is_none(),
        "still in force"
    );
    // Setting the action to report takes the rules out of force but keeps the escalation,
    // in memory and in the evidence file; back to suspend puts it in force again.
    let report = table("[friendly_federators]\naction = \"report\"\n");
    assert!(matches!(
        f.evaluate(now, Some(&report), &ContentRules::default()),
        Some(None)
    ));
    assert!(f
        .evaluate(now, Some(&report), &ContentRules::default())
        .is_none());
    assert!(f.save(now).expect("saved"));
    let from_file = report_from_file(&effective(&c, Some(&report)), now, None).expect("file");
    assert_eq!(from_file.escalated[0].domain, "busy.example");
    assert_eq!(from_file.escalated[0].severity, "not_enforced");
    assert!(
        escalated_from_file(&effective(&c, Some(&report)), &ContentRules::default())
            .expect("file")
            .is_none()
    );
    assert_eq!(
        generated(f.evaluate(now, Some(&kinds), &ContentRules::default())),
        [("busy.example".to_string(), Severity::Suspend)]
    );
    let source = escalated_from_file(&c, &ContentRules::default())
        .expect("file")
        .expect("enforced");
    assert_eq!(&*source.parsed.rules[0].domain, "busy.example");
}

#[test]
fn rfc3339_dates() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
}

fn content_match<'a>(rule: &'a str, domain: &'a str, id: Option<&'a str>) -> ContentMatch<'a> {
    ContentMatch {
        rule,
        domain,
        dry_run: false,
        id,
        window_days: 1,
    }
}

#[test]
fn content_evidence_counts_per_rule_and_domain_with_newest_samples_and_a_bound() {
    let f = federators(config());
    for n in 0..7 {
        let id = format!("https://a.example/{n}");
        f.record_content(&content_match("wave", "a.example", Some(&id)), 100 + n);
    }
    let preview = ContentMatch {
        dry_run: true,
        ..content_match("wave", "b.example", None)
    };
    f.record_content(&preview, 200);
    let long = "x".repeat(600);
    f.record_content(&content_match("other", "a.example", Some(&long)), 300);
    let r = f.content_report(300, None).rules;
    assert_eq!((r[0].rule.as_str(), r[0].matches), ("wave", 8));
    let a = &r[0].domains[0];
    assert_eq!(
        (a.domain.as_str(), a.matches, a.dry_run),
        ("a.example", 7, 0)
    );
    assert_eq!(a.samples.len(), content::MAX_SAMPLES);
    assert_eq!(a.samples[0], "https://a.example/2");
    assert_eq!(a.first_seen, "1970-01-01T00:01:40Z");
    assert_eq!(a.in_window, None, "no escalation, no window");
    assert_eq!(r[0].domains[1].dry_run, 1);
    assert_eq!(r[1].domains[0].samples[0].len(), 512);

    let f = federators(config());
    f.record_content(&content_match("r", "big.example", None), 1);
    f.record_content(&content_match("r", "big.example", None), 2);
    for n in 0..MAX_PAIRS {
        f.record_content(&content_match("r", &format!("d{n}.example"), None), 3);
    }
    let r = f.content_report(3, None).rules;
    assert_eq!(r[0].matches, MAX_PAIRS as u64 + 1, "one pair made room");
    assert_eq!(r[0].domains[0].domain, "big.example", "the largest stays");
}

#[test]
fn content_evidence_is_saved_with_the_evidence_file_and_loaded_again() {
    let (_dir, path, c) = with_evidence_file();
    let f = federators(c.clone());
    let m = content_match("wave", "spam.example", Some("https://spam.example/1"));
    f.record_content(&m, 50);
    assert!(
        f.save(60).expect("saved"),
        "a content match makes the store dirty"
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("file")).expect("json");
    assert_eq!(saved["content_rules"][0]["rule"], "wave", "{saved:#}");

    let again = federators(c.clone());
    again.record_content(&m, 70);
    let r = again.report(70, None, None).content_rules;
    assert_eq!(r[0].domains[0].matches, 2);
    assert_eq!(r[0].domains[0].first_seen, rfc3339(50));
    assert_eq!(r[0].domains[0].samples.len(), 2);
    let from_file = report_from_file(&c, 70, None).expect("report");
    assert_eq!(from_file.content_rules[0].domains[0].matches, 1);
    assert!(from_file
        .to_string()
        .contains("content rule wave: 1 matches"));
}

fn content_rules(text: &str) -> ContentRules {
    let parsed = sources::parse_bytes(
        text.as_bytes(),
        Arc::from("rules.toml"),
        crate::config::BlocklistFormat::Auto,
    )
    .expect("rules");
    ContentRules::new(parsed.content_rules)
}

fn lines(source: &MemorySource) -> Vec<(String, Severity, String)> {
    source
        .parsed
        .rules
        .iter()
        .map(|r| {
            let comment = r.public_comment.as_deref().unwrap_or_default().to_string();
            (r.domain.to_string(), r.severity, comment)
        })
        .collect()
}

#[test]
fn a_content_rule_escalates_a_domain_at_its_threshold_under_its_own_action() {
    const DAY: u64 = 86_400;
    let now = 100 * DAY;
    let rule = |action: &str| {
        content_rules(&format!(
            "[[content_rules]]\nname = \"wave\"\ntypes = [\"Create\"]\naction = \"drop\"\n\
             escalate = {{ threshold = 3, window = \"2d\", action = \"{action}\" }}\n"
        ))
    };
    let f = federators(config());
    let m = |domain| ContentMatch {
        window_days: 2,
        ..content_match("wave", domain, None)
    };
    // Two days ago falls outside a two-day window; yesterday and today count.
    f.record_content(&m("spam.example"), now - 2 * DAY);
    f.record_content(&m("spam.example"), now - DAY);
    f.record_content(&m("spam.example"), now);
    f.record_content(&m("other.example"), now);
    let limit = rule("limit");
    assert!(
        f.evaluate(now, None, &limit).is_none(),
        "2 within the window"
    );
    f.record_content(&m("spam.example"), now);
    let Some(Some(source)) = f.evaluate(now, None, &limit) else {
        panic!("escalated");
    };
    let got = lines(&source);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].0.as_str(), got[0].1),
        ("spam.example", Severity::Silence)
    );
    assert!(
        got[0]
            .2
            .starts_with("content rule wave: 3 matches within 2 days; escalated "),
        "{}",
        got[0].2
    );
    let report = f.report(now, None, Some(&limit));
    assert_eq!(report.escalated[0].cause, "content rule wave");
    assert_eq!(report.escalated[0].severity, "silence");
    assert_eq!(report.content_rules[0].domains[0].in_window, Some(3));

    // The rule's action in force decides; report takes it out of force, kept.
    let Some(Some(source)) = f.evaluate(now, None, &rule("suspend")) else {
        panic!("regenerated");
    };
    assert_eq!(lines(&source)[0].1, Severity::Suspend);
    assert!(matches!(f.evaluate(now, None, &rule("report")), Some(None)));
    assert_eq!(
        f.report(now, None, Some(&rule("report"))).escalated.len(),
        1
    );
    // A rule no longer loaded: the action it escalated with (limit) stays in force.
    let Some(Some(source)) = f.evaluate(now, None, &ContentRules::default()) else {
        panic!("back in force");
    };
    assert_eq!(lines(&source)[0].1, Severity::Silence);
}

#[test]
fn a_content_rule_with_action_report_generates_nothing() {
    let f = federators(config());
    let rules = content_rules(
        "[[content_rules]]\nname = \"watch\"\ntypes = [\"Like\"]\naction = \"report\"\n\
         escalate = { threshold = 1, window = \"1d\" }\n",
    );
    let m = content_match("watch", "spam.example", None);
    f.record_content(&m, 10);
    assert!(f.evaluate(10, None, &rules).is_none());
    assert!(f.report(10, None, Some(&rules)).escalated.is_empty());
}

#[test]
fn a_lifted_domain_escalates_again_only_on_matches_counted_after_the_lift() {
    let rules = content_rules(
        "[[content_rules]]\nname = \"wave\"\ntypes = [\"Create\"]\naction = \"drop\"\n\
         escalate = { threshold = 2, window = \"1d\", action = \"suspend\" }\n",
    );
    let f = federators(config());
    let m = content_match("wave", "spam.example", None);
    f.record_content(&m, 10);
    f.record_content(&m, 11);
    assert!(matches!(f.evaluate(12, None, &rules), Some(Some(_))));
    let lifted = f
        .lock()
        .lift("Spam.Example.", "alice", "wrong wave", 13, 10)
        .expect("lifted");
    assert_eq!(lifted.escalated.rule.as_deref(), Some("wave"));
    assert!(matches!(
        f.lock().lift("spam.example", "alice", "", 13, 10),
        Err(LiftError::NotEscalated(_))
    ));
    assert!(
        matches!(f.evaluate(14, None, &rules), Some(None)),
        "out of force"
    );
    f.record_content(&m, 15);
    assert!(
        f.evaluate(16, None, &rules).is_none(),
        "one match since the lift"
    );
    f.record_content(&m, 17);
    assert!(
        matches!(f.evaluate(18, None, &rules), Some(Some(_))),
        "two since"
    );
    let list = f.escalations(18, None, Some(&rules));
    assert_eq!(list.escalated[0].in_window, 2);
    assert_eq!(list.lifted[0].by, "alice");
    assert_eq!(list.lifted[0].cause, "content rule wave");
}
