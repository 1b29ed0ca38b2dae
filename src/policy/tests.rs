use super::*;
use std::sync::Arc;

fn rule(domain: &str, severity: Severity, reject_reports: bool) -> DomainRule {
    DomainRule {
        reject_reports,
        ..DomainRule::test(domain, severity)
    }
}

fn snapshot() -> Snapshot {
    Snapshot::from_rules([
        rule("bad.example", Severity::Suspend, false),
        rule("ok.bad.example", Severity::Noop, false),
        rule("limited.example", Severity::Silence, false),
        rule("reports.example", Severity::Noop, true),
        rule("loud.example", Severity::Silence, true),
        rule("192.0.2.1", Severity::Suspend, false),
        rule("2.1", Severity::Suspend, false),
    ])
}

#[test]
fn severity_words() {
    for s in Severity::ALL {
        assert_eq!(Severity::parse(s.as_str()), Some(s));
    }
    assert_eq!(Severity::parse(" SUSPEND "), Some(Severity::Suspend));
    assert_eq!(Severity::parse("Silence"), Some(Severity::Silence));
    assert_eq!(Severity::parse("block"), None);
    assert_eq!(Severity::parse(""), None);
    assert!(Severity::Noop < Severity::Silence && Severity::Silence < Severity::Suspend);
}

#[test]
fn suffix_matching() {
    let s = snapshot();
    let domain = |h: &str| s.rule_for(h).map(|r| &*r.domain);
    assert_eq!(domain("bad.example"), Some("bad.example"));
    assert_eq!(domain("sub.bad.example"), Some("bad.example"));
    assert_eq!(domain("a.b.c.bad.example"), Some("bad.example"));
    assert_eq!(domain("bad.example."), Some("bad.example"));
    assert_eq!(domain("notbad.example"), None);
    assert_eq!(domain("bad.example.net"), None);
    assert_eq!(domain("example"), None);
    assert_eq!(domain(""), None);
    // Longest listed suffix wins: the noop shadows the parent suspend.
    assert_eq!(domain("ok.bad.example"), Some("ok.bad.example"));
    assert_eq!(domain("x.ok.bad.example"), Some("ok.bad.example"));
    // IP literals are exact only: `2.1` is not a parent of an address.
    assert_eq!(domain("192.0.2.1"), Some("192.0.2.1"));
    assert_eq!(domain("198.51.2.1"), None);
    assert_eq!(domain("x.2.1"), Some("2.1"));
}

#[test]
fn only_label_counts_in_use_are_looked_up_and_every_depth_still_matches() {
    let s = Snapshot::from_rules([
        rule("bad.example", Severity::Suspend, false),
        rule("a.b.c.deep.example", Severity::Silence, false),
        rule("localhost", Severity::Suspend, false),
    ]);
    let domain = |h: &str| s.rule_for(h).map(|r| &*r.domain);
    assert_eq!(domain("x.y.a.b.c.deep.example"), Some("a.b.c.deep.example"));
    assert_eq!(domain("b.c.deep.example"), None);
    assert_eq!(domain("x.y.z.w.v.u.bad.example"), Some("bad.example"));
    assert_eq!(domain("localhost"), Some("localhost"));
    assert_eq!(domain("sub.localhost"), Some("localhost"));
    // Beyond 64 labels every depth shares one bit; matching stays exact.
    let long = format!("{}bad.example", "l.".repeat(70));
    assert_eq!(domain(&long), Some("bad.example"));
    let long_rule = format!("{}deep.example", "l.".repeat(70));
    let s = Snapshot::from_rules([rule(&long_rule, Severity::Suspend, false)]);
    assert!(s.rule_for(&format!("x.{long_rule}")).is_some());
    assert!(s
        .rule_for(&format!("x.{}deep.example", "l.".repeat(69)))
        .is_none());
}

#[test]
fn suspension_follows_the_most_specific_rule() {
    let s = snapshot();
    assert!(s.is_suspended("bad.example").is_some());
    assert!(s.is_suspended("deep.sub.bad.example").is_some());
    assert!(s.is_suspended("ok.bad.example").is_none());
    assert!(s.is_suspended("limited.example").is_none());
    assert!(s.is_suspended("unlisted.example").is_none());
}

#[test]
fn empty_snapshot_matches_nothing() {
    let s = Snapshot::default();
    assert!(s.is_empty());
    assert!(s.rule_for("bad.example").is_none());
}

#[test]
fn harshest_duplicate_wins() {
    let mut later = rule("dup.example", Severity::Suspend, false);
    later.line = 9;
    let s = Snapshot::from_rules([
        rule("dup.example", Severity::Silence, true),
        later,
        rule("dup.example", Severity::Noop, true),
        rule("tie.example", Severity::Silence, false),
        rule("tie.example", Severity::Silence, true),
    ]);
    assert_eq!(s.len(), 2);
    let dup = s.get("dup.example").expect("listed");
    assert_eq!((dup.severity, dup.line), (Severity::Suspend, 9));
    assert!(!dup.reject_reports, "flags come from the winning rule only");
    assert!(s.get("tie.example").expect("listed").reject_reports);
}

#[test]
fn decide_table() {
    let s = snapshot();
    // (key host, actor host, type, reason, deciding rule's domain)
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
        Option<&'static str>,
    );
    let cases: &[Case] = &[
        (
            "good.example",
            Some("good.example"),
            Some("Create"),
            "allowed",
            None,
        ),
        ("good.example", None, None, "allowed", None),
        (
            "bad.example",
            Some("bad.example"),
            Some("Create"),
            "suspended_key_host",
            Some("bad.example"),
        ),
        (
            "sub.bad.example",
            None,
            Some("Delete"),
            "suspended_key_host",
            Some("bad.example"),
        ),
        (
            "ok.bad.example",
            Some("ok.bad.example"),
            Some("Create"),
            "allowed",
            Some("ok.bad.example"),
        ),
        (
            "relay.example",
            Some("x.bad.example"),
            Some("Announce"),
            "suspended_actor_host",
            Some("bad.example"),
        ),
        (
            "bad.example",
            Some("good.example"),
            Some("Create"),
            "suspended_key_host",
            Some("bad.example"),
        ),
        (
            "limited.example",
            Some("limited.example"),
            Some("Create"),
            "allowed",
            Some("limited.example"),
        ),
        (
            "limited.example",
            Some("limited.example"),
            Some("Flag"),
            "allowed",
            Some("limited.example"),
        ),
        (
            "reports.example",
            Some("reports.example"),
            Some("Flag"),
            "reject_reports",
            Some("reports.example"),
        ),
        (
            "reports.example",
            None,
            Some("Flag"),
            "reject_reports",
            Some("reports.example"),
        ),
        (
            "sub.reports.example",
            Some("sub.reports.example"),
            Some("Flag"),
            "reject_reports",
            Some("reports.example"),
        ),
        (
            "reports.example",
            Some("reports.example"),
            Some("Create"),
            "allowed",
            Some("reports.example"),
        ),
        (
            "reports.example",
            Some("reports.example"),
            Some("flag"),
            "allowed",
            Some("reports.example"),
        ),
        (
            "loud.example",
            Some("loud.example"),
            Some("Flag"),
            "reject_reports",
            Some("loud.example"),
        ),
        // The reporter is the actor: a relay with reject_reports does not drop another
        // server's report, and a reporter with reject_reports is dropped via any relay.
        (
            "reports.example",
            Some("good.example"),
            Some("Flag"),
            "allowed",
            Some("reports.example"),
        ),
        (
            "good.example",
            Some("reports.example"),
            Some("Flag"),
            "reject_reports",
            Some("reports.example"),
        ),
        // Forward names the harsher of the two rules.
        (
            "reports.example",
            Some("limited.example"),
            Some("Create"),
            "allowed",
            Some("limited.example"),
        ),
        (
            "limited.example",
            Some("reports.example"),
            Some("Create"),
            "allowed",
            Some("limited.example"),
        ),
        (
            "192.0.2.1",
            None,
            Some("Create"),
            "suspended_key_host",
            Some("192.0.2.1"),
        ),
    ];
    for &(key_host, actor_host, activity_type, reason, domain) in cases {
        let d = s.decide(&Facts {
            key_host,
            actor_host,
            activity_type,
            ..Facts::default()
        });
        assert_eq!(
            (d.reason(), d.rule().map(|r| &*r.domain)),
            (reason, domain),
            "decide({key_host}, {actor_host:?}, {activity_type:?})"
        );
        if let Decision::Reject { party, host, .. } = d {
            let want = if party == Party::KeyHost {
                key_host
            } else {
                actor_host.expect("actor")
            };
            assert_eq!(host, want);
        }
    }
}

fn dry(domain: &str, severity: Severity, reject_reports: bool) -> DomainRule {
    DomainRule {
        dry_run: true,
        ..rule(domain, severity, reject_reports)
    }
}

fn hashed(listed: &str, real: &str, severity: Severity) -> DomainRule {
    DomainRule {
        digest: Some(Box::new(domain_digest(real))),
        ..rule(listed, severity, false)
    }
}

fn decide_reason(
    s: &Snapshot,
    key: &str,
    actor: Option<&str>,
    kind: Option<&str>,
) -> (&'static str, bool, Option<String>) {
    let d = s.decide(&Facts {
        key_host: key,
        actor_host: actor,
        activity_type: kind,
        ..Facts::default()
    });
    (
        d.reason(),
        d.forwards(),
        d.rule().map(|r| r.domain.to_string()),
    )
}

#[test]
fn dry_run_rules_forward_and_report_what_they_would_do() {
    let s = Snapshot::from_rules([
        rule("enforced.example", Severity::Suspend, false),
        dry("enforced.example", Severity::Suspend, false),
        dry("preview.example", Severity::Suspend, false),
        rule("ok.preview.example", Severity::Noop, false),
        dry("reports.example", Severity::Noop, true),
        rule("limited.example", Severity::Silence, false),
        dry("deep.limited.example", Severity::Suspend, false),
        rule("silenced.example", Severity::Silence, false),
        dry("silenced.example", Severity::Suspend, false),
    ]);
    assert!(s.has_dry_run());
    // Pre-fetch checks see enforcing rules only.
    assert!(s.is_suspended("preview.example").is_none());
    assert!(s.rule_for("preview.example").is_none());
    assert_eq!(
        s.rule_for_including_dry_run("x.preview.example")
            .map(|r| r.dry_run),
        Some(true)
    );
    let want = |reason: &'static str, forwards: bool, domain: &str| {
        (reason, forwards, Some(domain.to_string()))
    };
    // An enforcing rule decides, even when a dry-run rule names the same domain.
    let got = decide_reason(&s, "enforced.example", None, Some("Create"));
    assert_eq!(got, want("suspended_key_host", false, "enforced.example"));
    let d = s.decide(&Facts {
        key_host: "enforced.example",
        actor_host: None,
        activity_type: None,
        ..Facts::default()
    });
    assert!(!d.rule().expect("rule").dry_run);
    // A dry-run suspend forwards, carrying the reason it would have had.
    assert_eq!(
        decide_reason(
            &s,
            "preview.example",
            Some("preview.example"),
            Some("Create")
        ),
        want("suspended_key_host", true, "preview.example")
    );
    assert_eq!(
        decide_reason(
            &s,
            "good.example",
            Some("sub.preview.example"),
            Some("Announce")
        ),
        want("suspended_actor_host", true, "preview.example")
    );
    let d = s.decide(&Facts {
        key_host: "good.example",
        actor_host: Some("sub.preview.example"),
        activity_type: None,
        ..Facts::default()
    });
    assert_eq!(
        d,
        Decision::WouldStop {
            party: Some(Party::ActorHost),
            host: "sub.preview.example",
            rule: s
                .rule_for_including_dry_run("preview.example")
                .expect("dry"),
        }
    );
    assert!(matches!(
        d.would(),
        Some(Decision::Reject {
            party: Party::ActorHost,
            ..
        })
    ));
    // A longer enforcing suffix shadows the dry-run parent, as it would when enforced.
    assert_eq!(
        decide_reason(&s, "ok.preview.example", None, Some("Create")),
        want("allowed", true, "ok.preview.example")
    );
    // A longer dry-run suffix under an enforcing silence would suspend.
    assert_eq!(
        decide_reason(&s, "x.deep.limited.example", None, None),
        want("suspended_key_host", true, "deep.limited.example")
    );
    assert_eq!(
        decide_reason(&s, "limited.example", None, None),
        want("allowed", true, "limited.example")
    );
    // Same domain, enforcing silence and dry-run suspend: the harsher would win.
    assert_eq!(
        decide_reason(&s, "silenced.example", None, None),
        want("suspended_key_host", true, "silenced.example")
    );
    // Dry-run reject_reports: the report is forwarded, and would have been dropped.
    let d = s.decide(&Facts {
        key_host: "reports.example",
        actor_host: Some("reports.example"),
        activity_type: Some("Flag"),
        ..Facts::default()
    });
    assert_eq!(d.reason(), "reject_reports");
    assert!(d.forwards());
    assert!(matches!(d.would(), Some(Decision::Drop { .. })));
    assert_eq!(
        decide_reason(&s, "reports.example", None, Some("Create")),
        ("allowed", true, None),
        "a forward names enforcing rules only"
    );
    assert_eq!(
        decide_reason(&s, "good.example", None, None),
        ("allowed", true, None)
    );
    // Without dry-run rules, nothing changes.
    let plain = snapshot();
    assert!(!plain.has_dry_run());
}

#[test]
fn digests() {
    let d = domain_digest("bad.example");
    assert_eq!(parse_digest_hex(&digest_hex(&d)), Some(d));
    assert_eq!(
        parse_digest_hex(&digest_hex(&d).to_ascii_uppercase()),
        Some(d)
    );
    assert_eq!(parse_digest_hex("abc"), None);
    assert_eq!(parse_digest_hex(&"g".repeat(64)), None);
    // Known value: SHA-256("example.com").
    assert_eq!(
        digest_hex(&domain_digest("example.com")),
        "a379a6f6eeafb9a55e378c118034e2751e682fab9f2d30ab13d2125586ce1947"
    );
}

#[test]
fn digest_rules_match_by_longest_suffix_across_kinds() {
    let s = Snapshot::from_rules([
        hashed("ba*.example", "bad.example", Severity::Suspend),
        rule("ok.bad.example", Severity::Noop, false),
        hashed(
            "sub***.ok.bad.example",
            "sub.ok.bad.example",
            Severity::Silence,
        ),
        rule("named.example", Severity::Noop, false),
        hashed("nam**.example", "named.example", Severity::Suspend),
        dry("preview.example", Severity::Noop, false),
        DomainRule {
            dry_run: true,
            ..hashed("pre****.example", "preview.example", Severity::Suspend)
        },
    ]);
    let domain = |h: &str| s.rule_for(h).map(|r| &*r.domain);
    // A digest of a parent domain covers its sub-domains.
    assert_eq!(domain("bad.example"), Some("ba*.example"));
    assert_eq!(domain("x.y.bad.example"), Some("ba*.example"));
    assert!(s.is_suspended("x.bad.example").is_some());
    // The obfuscated text itself is never matched by name.
    assert_eq!(domain("ba*.example"), None);
    // A longer named rule shadows a digest parent, and a longer digest shadows a name.
    assert_eq!(domain("a.ok.bad.example"), Some("ok.bad.example"));
    assert_eq!(
        domain("a.sub.ok.bad.example"),
        Some("sub***.ok.bad.example")
    );
    // Name and digest of the same domain: the harsher wins.
    assert_eq!(domain("named.example"), Some("nam**.example"));
    assert_eq!(domain("other.example"), None);
    // Dry-run digests are consulted only as dry run.
    assert_eq!(domain("preview.example"), None);
    assert_eq!(
        s.rule_for_including_dry_run("x.preview.example")
            .map(|r| &*r.domain),
        Some("pre****.example")
    );
    let all: Vec<&str> = s
        .matching_rules("a.sub.ok.bad.example")
        .map(|r| &*r.domain)
        .collect();
    assert_eq!(
        all,
        ["sub***.ok.bad.example", "ok.bad.example", "ba*.example"]
    );
    let all: Vec<&str> = s
        .matching_rules("preview.example")
        .map(|r| &*r.domain)
        .collect();
    assert_eq!(all, ["preview.example", "pre****.example"]);
    assert_eq!(s.matching_rules("good.example").count(), 0);
    assert_eq!(s.len(), 7);
}

#[test]
fn diff_sees_digest_and_dry_run_rules() {
    let old = Snapshot::from_rules([hashed("a*.example", "ab.example", Severity::Suspend)]);
    let new = Snapshot::from_rules([
        hashed("a*.example", "ab.example", Severity::Silence),
        dry("preview.example", Severity::Suspend, false),
    ]);
    let c = old.diff(&new);
    assert_eq!(c.changed(Severity::Silence), 1);
    assert_eq!(c.added(Severity::Suspend), 1);
    assert!(new.diff(&new).is_empty());
}

#[test]
fn diff_counts_per_severity() {
    let old = Snapshot::from_rules([
        rule("gone.example", Severity::Silence, false),
        rule("same.example", Severity::Suspend, false),
        rule("moved.example", Severity::Suspend, false),
        rule("up.example", Severity::Silence, false),
        rule("flag.example", Severity::Noop, false),
    ]);
    let mut moved = rule("moved.example", Severity::Suspend, false);
    moved.line = 40;
    moved.source = Arc::from("other.csv");
    let new = Snapshot::from_rules([
        rule("same.example", Severity::Suspend, false),
        moved,
        rule("up.example", Severity::Suspend, false),
        rule("flag.example", Severity::Noop, true),
        rule("new1.example", Severity::Suspend, false),
        rule("new2.example", Severity::Suspend, false),
    ]);
    let c = old.diff(&new);
    assert_eq!(c.added(Severity::Suspend), 2);
    assert_eq!(c.removed(Severity::Silence), 1);
    assert_eq!(c.changed(Severity::Suspend), 1);
    assert_eq!(c.changed(Severity::Noop), 1);
    assert_eq!(c.added(Severity::Noop) + c.removed(Severity::Suspend), 0);
    assert_eq!(
        c.to_string(),
        "suspend +2 -0 ~1, silence +0 -1 ~0, noop +0 -0 ~1, allow +0 -0 ~0, \
         exclude +0 -0 ~0, actor_suspend +0 -0 ~0"
    );
    assert!(new.diff(&new).is_empty());
}

fn entry(domain: &str) -> DomainEntry {
    DomainEntry {
        domain: domain.into(),
        comment: None,
        source: Arc::from("list.txt"),
        line: 1,
    }
}

fn actor(text: &str, dry_run: bool) -> ActorRule {
    ActorRule {
        actor: text.into(),
        pattern: ActorPattern::parse(text).expect(text),
        comment: None,
        dry_run,
        source: Arc::from("rules.toml"),
        line: 1,
    }
}

fn reason_of(s: &Snapshot, facts: Facts<'_>) -> &'static str {
    s.decide(&facts).reason()
}

#[test]
fn exceptions_shadow_blocks_on_their_suffix_only() {
    let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
    b.rule(rule("bad.example", Severity::Suspend, false))
        .rule(rule("deep.ok.bad.example", Severity::Silence, false))
        .rule(rule("same.example", Severity::Suspend, false))
        .rule(dry("preview.example", Severity::Suspend, false))
        .rule(hashed(
            "ha****.example",
            "hashed.example",
            Severity::Suspend,
        ))
        .exception(entry("ok.bad.example"))
        .exception(entry("same.example"))
        .exception(entry("preview.example"))
        .exception(entry("hashed.example"));
    let s = b.build();
    let domain = |h: &str| s.rule_for(h).map(|r| &*r.domain);
    assert_eq!(domain("bad.example"), Some("bad.example"));
    assert_eq!(domain("x.bad.example"), Some("bad.example"));
    // The exception and everything under it: no rule from the parent.
    assert_eq!(domain("ok.bad.example"), None);
    assert_eq!(domain("a.ok.bad.example"), None);
    assert!(s.is_suspended("a.ok.bad.example").is_none());
    // A rule on a longer suffix than the exception still applies.
    assert_eq!(domain("x.deep.ok.bad.example"), Some("deep.ok.bad.example"));
    // An exception beats a rule on the same domain, named, by digest, or dry run.
    assert_eq!(domain("same.example"), None);
    assert_eq!(domain("hashed.example"), None);
    assert!(s.rule_for_including_dry_run("x.preview.example").is_none());
    assert_eq!(
        s.exception_for("a.ok.bad.example").map(|e| &*e.domain),
        Some("ok.bad.example")
    );
    let excluded: Vec<bool> = ["bad.example", "same.example", "ha****.example"]
        .iter()
        .map(|d| {
            let r = s.iter().find(|r| *r.domain == **d).expect(d);
            s.is_excluded(r)
        })
        .collect();
    assert_eq!(excluded, [false, true, true]);
    assert_eq!(
        reason_of(
            &s,
            Facts {
                key_host: "ok.bad.example",
                actor_host: Some("ok.bad.example"),
                ..Facts::default()
            }
        ),
        "allowed"
    );
}

#[test]
fn allowlist_mode_passes_allowed_domains_only_and_blocks_still_apply() {
    let mut b = Snapshot::builder(PolicyMode::Allowlist, 1);
    b.allow(entry("friend.example"))
        .allow(entry("mixed.example"))
        .allow(entry("192.0.2.1"))
        .allow(entry("bad.mixed.example"))
        .rule(rule("bad.mixed.example", Severity::Suspend, false))
        .rule(rule("mixed.example", Severity::Noop, true));
    let s = b.build();
    let check = |h: &'static str| s.check_host(h, Party::KeyHost).map(|d| d.reason());
    assert_eq!(check("friend.example"), None);
    assert_eq!(
        check("a.friend.example"),
        Some("not_allowed"),
        "an allow entry names its own domain only, as Mastodon's"
    );
    assert_eq!(check("stranger.example"), Some("not_allowed"));
    assert_eq!(check("friend.example.evil"), Some("not_allowed"));
    assert_eq!(check("bad.mixed.example"), Some("suspended_key_host"));
    assert_eq!(check("192.0.2.1"), None);
    let facts = |key: &'static str, actor: &'static str, kind| Facts {
        key_host: key,
        actor_host: Some(actor),
        activity_type: kind,
        ..Facts::default()
    };
    assert_eq!(
        reason_of(&s, facts("friend.example", "friend.example", None)),
        "allowed"
    );
    // A relayed activity: the actor's domain must be allowed too.
    let d = s.decide(&facts("friend.example", "stranger.example", None));
    assert_eq!(
        d,
        Decision::NotAllowed {
            party: Party::ActorHost,
            host: "stranger.example"
        }
    );
    assert!(!d.forwards() && d.rule().is_none() && d.origin().is_none());
    assert_eq!(
        reason_of(&s, facts("mixed.example", "bad.mixed.example", None)),
        "suspended_actor_host"
    );
    assert_eq!(
        reason_of(&s, facts("mixed.example", "mixed.example", Some("Flag"))),
        "reject_reports"
    );
    // Allow entries mean nothing in blocklist mode.
    let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
    b.allow(entry("friend.example"));
    let s = b.build();
    assert!(s.check_host("stranger.example", Party::KeyHost).is_none());
    assert!(s.allow_for("friend.example").is_some());
    assert!(s.allow_for("x.friend.example").is_none());
}

#[test]
fn actor_rules_apply_to_the_actor_and_the_author() {
    let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
    b.actor(actor("@mallory@bad.example", false))
        .actor(actor("https://other.example/users/x", false))
        .actor(actor("@preview@bad.example", true))
        .rule(rule("silenced.example", Severity::Silence, false));
    let s = b.build();
    assert!(s.has_dry_run());
    let facts = |actor: &'static str, author: Option<&'static str>| Facts {
        key_host: "bad.example",
        actor_host: Some("bad.example"),
        activity_type: Some("Create"),
        actor: Some(actor),
        attributed_to: author,
    };
    let d = s.decide(&facts("https://bad.example/users/Mallory", None));
    assert_eq!(d.reason(), "actor_suspended");
    assert!(matches!(
        d,
        Decision::ActorSuspended {
            party: ActorParty::Actor,
            actor: "https://bad.example/users/Mallory",
            ..
        }
    ));
    assert_eq!(d.origin().map(|o| o.0), Some("@mallory@bad.example"));
    let d = s.decide(&facts(
        "https://bad.example/users/bob",
        Some("https://other.example/users/x"),
    ));
    assert!(matches!(
        d,
        Decision::ActorSuspended {
            party: ActorParty::AttributedTo,
            ..
        }
    ));
    assert_eq!(
        reason_of(&s, facts("https://bad.example/users/bob", None)),
        "allowed"
    );
    // Dry run: forwarded, with the reason it would have had.
    let d = s.decide(&facts("https://bad.example/@preview", None));
    assert!(d.forwards());
    assert_eq!(d.reason(), "actor_suspended");
    assert!(matches!(d.would(), Some(Decision::ActorSuspended { .. })));
    assert_eq!(d.actor_rule().map(|r| r.dry_run), Some(true));
    // A domain suspension decides before actor rules.
    let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
    b.actor(actor("@mallory@bad.example", false)).rule(rule(
        "bad.example",
        Severity::Suspend,
        false,
    ));
    let s = b.build();
    assert_eq!(
        reason_of(&s, facts("https://bad.example/users/mallory", None)),
        "suspended_key_host"
    );
    assert_eq!(
        s.actor_rule_for("https://bad.example/@mallory")
            .map(|r| r.actor.as_str()),
        Some("@mallory@bad.example")
    );
}

#[test]
fn diff_counts_allows_exceptions_and_actors() {
    let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
    b.allow(entry("a.example"))
        .exception(entry("x.example"))
        .actor(actor("@m@bad.example", false))
        .actor(actor("@gone@bad.example", false));
    let old = b.build();
    let mut changed = actor("@m@bad.example", false);
    changed.comment = Some("now with a reason".into());
    let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
    b.allow(entry("a.example"))
        .allow(entry("b.example"))
        .actor(changed)
        .actor(actor("@new@bad.example", true));
    let new = b.build();
    let c = old.diff(&new);
    assert_eq!(
        (c.added(RuleKind::Allow), c.removed(RuleKind::Allow)),
        (1, 0)
    );
    assert_eq!(c.removed(RuleKind::Exclude), 1);
    assert_eq!(
        (
            c.added(RuleKind::ActorSuspend),
            c.removed(RuleKind::ActorSuspend),
            c.changed(RuleKind::ActorSuspend)
        ),
        (1, 1, 1)
    );
    assert!(new.diff(&new).is_empty());
    assert!(new.is_empty(), "no domain rules");
    assert_eq!(
        (new.iter_allows().count(), new.iter_actors().count()),
        (2, 2)
    );
}

#[test]
fn a_new_exception_under_a_listed_suspension_is_a_lift_of_its_list() {
    let blocks = || {
        [
            rule("bad.example", Severity::Suspend, false),
            rule("limited.example", Severity::Silence, false),
        ]
    };
    let exception = |domain: &str| DomainEntry {
        source: Arc::from("exceptions.txt"),
        ..entry(domain)
    };
    let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
    blocks().into_iter().for_each(|r| {
        b.rule(r);
    });
    let old = b.build();
    let mut b = Snapshot::builder(PolicyMode::Blocklist, 1);
    blocks().into_iter().for_each(|r| {
        b.rule(r);
    });
    b.exception(exception("ok.bad.example"))
        .exception(exception("limited.example"))
        .exception(exception("unlisted.example"));
    let new = b.build();
    let by = old.changed_domains_by_source(&new);
    let lifted = by
        .get("exceptions.txt")
        .expect("the exception list changed");
    assert_eq!(lifted.lifted(), 1, "only the suspension: {lifted:?}");
    assert_eq!(lifted.lifted_domains(), "ok.bad.example");
    assert!(by.get("test.csv").is_none_or(|c| c.lifted() == 0));
    // The same exceptions again lift nothing new.
    assert!(new
        .changed_domains_by_source(&new)
        .values()
        .all(|c| c.lifted() == 0));
}

#[test]
fn withheld_rules_are_never_matched_but_listed() {
    let mut b = Snapshot::builder(PolicyMode::Blocklist, 2);
    b.withhold(rule("bad.example", Severity::Suspend, false))
        .withhold(hashed("ha***.example", "hashed.example", Severity::Silence));
    let s = b.build();
    assert!(s.rule_for("x.bad.example").is_none());
    assert_eq!(s.subscription_threshold(), 2);
    let listed: Vec<&str> = s
        .withheld_rules("x.bad.example")
        .iter()
        .map(|r| &*r.domain)
        .collect();
    assert_eq!(listed, ["bad.example"]);
    assert_eq!(s.withheld_rules("hashed.example").len(), 1);
    assert_eq!(s.iter_withheld().count(), 2);
}
