use super::*;
use crate::policy::{domain_digest, Severity};
use crate::rules::Standing;
use std::sync::Arc;

fn rule(domain: &str, severity: Severity, line: u32) -> DomainRule {
    DomainRule {
        source: Arc::from("rules.csv"),
        line,
        ..DomainRule::test(domain, severity)
    }
}

/// The report on `domain` under `rules`, with nothing listed beside them and default settings.
fn domain_report(rules: &Snapshot, domain: &str) -> String {
    report(
        rules,
        &[],
        &FriendlyFederatorsConfig::default(),
        &Subject::Domain(domain.into()),
    )
}

#[test]
fn subjects() {
    assert_eq!(
        Subject::parse("Bad.Example.").expect("domain"),
        Subject::Domain("bad.example".into())
    );
    assert_eq!(
        Subject::parse("@mallory@Bad.Example").expect("acct"),
        Subject::Actor {
            uri: "@mallory@Bad.Example".into(),
            host: "bad.example".into()
        }
    );
    assert!(matches!(
        Subject::parse("https://x.bad.example/users/m").expect("uri"),
        Subject::Actor { host, .. } if host == "x.bad.example"
    ));
    assert!(matches!(
        Subject::parse("not a domain"),
        Err(ExplainError::Unrecognised { .. })
    ));
}

#[test]
fn report_marks_the_winner_and_the_dry_run_candidate() {
    let mut dry = rule("deep.bad.example", Severity::Suspend, 7);
    dry.dry_run = true;
    let mut hashed = rule("ba***.example", Severity::Silence, 9);
    hashed.digest = Some(Box::new(domain_digest("bad.example")));
    let rules = Snapshot::from_rules([rule("bad.example", Severity::Noop, 3), dry, hashed]);
    let text = domain_report(&rules, "x.deep.bad.example");
    assert!(text.contains("decision: forward\n"), "{text}");
    assert!(
        text.contains(
            "dry run: would reject (403) (suspended_key_host) by deep.bad.example (rules.csv:7)"
        ),
        "{text}"
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("rules.csv:"))
        .filter(|l| !l.starts_with("dry run"))
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[0].starts_with(" ~  deep.bad.example"), "{text}");
    // On one suffix, the harsher of name and digest is in force.
    assert!(
        rows[1].contains("bad.example") && rows[1].contains("noop"),
        "{text}"
    );
    assert!(rows[2].starts_with(" *  ba***.example (sha256:"), "{text}");
}

#[test]
fn report_lists_rules_held_back_by_the_threshold() {
    let mut held = rule("bad.example", Severity::Suspend, 4);
    held.source = Arc::from("https://lists.example/blocks.csv");
    held.public_comment = Some("spam".into());
    let mut b = Snapshot::builder(crate::policy::PolicyMode::Blocklist, 3);
    b.withhold(held);
    let rules = b.build();
    let text = domain_report(&rules, "x.bad.example");
    assert!(text.contains("subscription_threshold: 3 ("), "{text}");
    assert!(text.contains("decision: forward\n"), "{text}");
    assert!(
        text.contains(
            "held back by subscription_threshold = 3 (listed by too few subscribed sources):\n  \
             bad.example suspend (https://lists.example/blocks.csv:4) \"spam\"\n"
        ),
        "{text}"
    );
}

#[test]
fn report_says_why_each_listed_rule_lost() {
    use crate::config::{BlocklistFormat, PolicyConfig};
    use crate::rules::MemorySource;
    let source = |label: &str, text: &str, subscribed: bool, priority: i32| {
        let parsed = crate::policy::sources::parse_bytes(
            text.as_bytes(),
            Arc::from(label),
            BlocklistFormat::Auto,
        )
        .expect("parses");
        MemorySource {
            subscribed,
            priority,
            ..MemorySource::new(label, Arc::new(parsed))
        }
    };
    let memory = [
        source("https://a.example/l", "bad.example\n", true, 0),
        source("https://b.example/l", "bad.example # again\n", true, 0),
        source("local-api", "bad.example\n", false, -1),
        source("https://d.example/l", "\nx.bad.example\n", true, 0),
    ];
    let policy = PolicyConfig {
        subscription_threshold: 2,
        ..PolicyConfig::default()
    };
    let subject = Subject::Domain("x.bad.example".into());
    let (rules, _, listed) =
        rules::load_listing(&[], &memory, &policy, on_hosts(&subject.hosts())).expect("loads");
    let text = report(
        &rules,
        &listed,
        &FriendlyFederatorsConfig::default(),
        &subject,
    );
    let rows: Vec<&str> = text
        .lines()
        // Table rows, not the held-back section's lines (indented by two).
        .filter(|l| (l.starts_with(" *  ") || l.starts_with("    ")) && !l.contains("DOMAIN"))
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(
        rows[0].starts_with("    x.bad.example")
            && rows[0].contains("https://d.example/l:2")
            && rows[0].ends_with("below threshold"),
        "{text}"
    );
    assert!(rows[1].starts_with(" *  bad.example"), "{text}");
    assert!(
        rows[2].contains("\"again\"")
            && rows[2].ends_with("shadowed: earlier rule (https://a.example/l:1)"),
        "{text}"
    );
    assert!(
        rows[3].contains("local-api:1") && rows[3].ends_with("lower priority"),
        "{text}"
    );
}

#[test]
fn explain_and_the_proxy_agree_on_an_ip_literal() {
    // An address is matched exactly: `2.1` is not a parent of `192.0.2.1` for the proxy,
    // so explain must neither load nor list a rule on it.
    let host = "192.0.2.1";
    let on_address = rule(host, Severity::Suspend, 1);
    let not_parents = [
        rule("0.2.1", Severity::Suspend, 2),
        rule("2.1", Severity::Suspend, 3),
    ];
    let rules = Snapshot::from_rules([on_address.clone()]);
    let listed: Vec<Listed> = not_parents
        .iter()
        .map(|r| Listed {
            rule: r.clone(),
            standing: Standing::LowerPriority,
        })
        .collect();
    let proxy: Vec<&str> = rules.matching_rules(host).map(|r| &*r.domain).collect();
    assert_eq!(proxy, [host]);
    let kept = on_hosts(&[host.to_string()]);
    assert!(kept(&on_address));
    assert!(not_parents.iter().all(|r| !kept(r)));
    let text = report(
        &rules,
        &listed,
        &FriendlyFederatorsConfig::default(),
        &Subject::Domain(host.into()),
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(' ') && l.contains("rules.csv:"))
        .collect();
    assert_eq!(
        rows,
        [" *  192.0.2.1  suspend   -      no       rules.csv:1  -"],
        "{text}"
    );
    // Control: a name's parents are its suffixes, for both.
    let kept = on_hosts(&["x.2.1.example".to_string()]);
    assert!(kept(&rule("2.1.example", Severity::Suspend, 4)));
    assert!(!kept(&rule("2.1", Severity::Suspend, 5)));
}

#[test]
fn an_activity_names_the_content_rule_that_decides_and_the_expired_ones() {
    let parsed = crate::policy::sources::parse_bytes(
        br#"
[[content_rules]]
name = "old-wave"
types = ["Create"]
mentions_at_least = 3
action = "reject"
expires = "2020-01-01T00:00:00Z"

[[content_rules]]
name = "wave"
types = ["Create"]
text_matches = ['discord\.gg/']
action = "drop"
"#,
        Arc::from("rules.toml"),
        crate::policy::sources::BlocklistFormat::Toml,
    )
    .expect("rules");
    let mut b = Snapshot::builder(crate::policy::PolicyMode::Blocklist, 1);
    for rule in parsed.content_rules {
        b.content_rule(rule);
    }
    let rules = b.build();
    let body = serde_json::json!({
        "id": "https://a.example/activities/1",
        "type": "Create",
        "actor": "https://a.example/users/x",
        "object": {
            "id": "https://a.example/notes/1",
            "type": "Note",
            "content": "<p>join discord.gg/abc</p>",
            "tag": [
                {"type": "Mention", "href": "https://b.example/users/1"},
                {"type": "Mention", "href": "https://b.example/users/2"},
                {"type": "Mention", "href": "https://b.example/users/3"},
            ],
        }
    })
    .to_string();
    let subject = Subject::activity("a.json".into(), body.as_bytes()).expect("activity");
    let out = report(&rules, &[], &FriendlyFederatorsConfig::default(), &subject);
    assert!(
        out.contains(
            "content rules (2 loaded):\n  expired 2020-01-01T00:00:00Z: old-wave (rules.toml:3) \
             would reject: type Create; 3 mentions (at least 3)\n* wave (rules.toml:10) drop: \
             type Create; text matches \"discord\\\\.gg/\"\n"
        ),
        "{out}"
    );
}
