//! The merge: how sources compete (priority, threshold, exceptions, dry run) and what each counts.

use super::*;
use crate::policy::Severity;
use crate::rules::testing::{files, memory, source, subscribed, threshold};
use std::path::Path;

#[test]
fn load_merges_sources_and_counts_what_is_in_force() {
    let (_dir, [a, b]) = files([
        (
            "a.csv",
            "#domain,#severity,#reject_media,#reject_reports\n\
             shared.example,silence,false,false\n\
             only-a.example,noop,false,true\n\
             ba**.example,suspend,false,false\n",
        ),
        ("b.txt", "shared.example\nonly-b.example\n"),
    ]);
    let (snapshot, summaries) =
        load(&[source(&a), source(&b)], &[], &PolicyConfig::default()).expect("loads");
    assert_eq!(snapshot.len(), 3);
    let shared = snapshot.get("shared.example").expect("listed");
    assert_eq!(
        shared.severity,
        Severity::Suspend,
        "the harshest source wins"
    );
    assert_eq!(&*shared.source, b.display().to_string());
    assert_eq!(
        summaries,
        [
            SourceSummary {
                source: a.display().to_string(),
                suspend: 0,
                silence: 0,
                noop: 1,
                overridden: 1,
                obfuscated: 1,
                dry_run: false,
                ..SourceSummary::default()
            },
            SourceSummary {
                source: b.display().to_string(),
                suspend: 2,
                silence: 0,
                noop: 0,
                overridden: 0,
                obfuscated: 0,
                dry_run: false,
                ..SourceSummary::default()
            },
        ]
    );
    assert_eq!(
        load(&[], &[], &PolicyConfig::default())
            .expect("no sources")
            .0
            .len(),
        0
    );
}

#[test]
fn dry_run_sources_load_as_dry_run_rules() {
    let (_dir, [enforced, preview]) = files([
        ("enforced.txt", "both.example\n"),
        ("preview.txt", "both.example\npreview.example\n"),
    ]);
    let mut dry = source(&preview);
    dry.dry_run = true;
    let (snapshot, summaries) =
        load(&[source(&enforced), dry], &[], &PolicyConfig::default()).expect("loads");
    assert!(snapshot.is_suspended("both.example").is_some());
    assert!(snapshot.is_suspended("preview.example").is_none());
    let rule = snapshot.get("preview.example").expect("listed");
    assert!(rule.dry_run);
    assert_eq!(
        summaries
            .iter()
            .map(|s| (s.suspend, s.dry_run))
            .collect::<Vec<_>>(),
        [(1, false), (2, true)]
    );
}

#[test]
fn load_error_names_file_and_line() {
    let (_dir, [good, bad]) = files([
        ("good.txt", "ok.example\n"),
        ("bad.txt", "ok.example\n\nnot valid!\n"),
    ]);
    let e = load(
        &[source(&good), source(&bad)],
        &[],
        &PolicyConfig::default(),
    )
    .expect_err("must fail");
    assert_eq!(e.file, bad.display().to_string());
    assert_eq!(e.line, 3);
    assert!(
        e.to_string().ends_with(":3: invalid domain \"not valid!\""),
        "{e}"
    );
}

#[test]
fn kind_exception_is_an_exception_list_as_exclude_is() {
    let (_dir, [local, exceptions]) = files([
        (
            "local.csv",
            "#domain,#severity
bad.example,suspend
",
        ),
        (
            "exceptions.txt",
            "# ours
ok.bad.example
",
        ),
    ]);
    let by_kind = BlocklistConfig {
        kind: crate::config::SourceKind::Exception,
        ..source(&exceptions)
    };
    let (snapshot, summaries) =
        load(&[source(&local), by_kind], &[], &PolicyConfig::default()).expect("loads");
    assert!(snapshot.is_suspended("bad.example").is_some());
    assert!(snapshot.is_suspended("a.ok.bad.example").is_none());
    let entry = snapshot
        .exception_for("a.ok.bad.example")
        .expect("exception");
    assert_eq!(entry.line, 2, "explain names the line");
    assert!(summaries[1].exception_list && summaries[1].exclude == 1);
}

#[test]
fn exception_sources_override_every_other_source() {
    let (_dir, [local, exceptions]) = files([
        (
            "local.csv",
            "#domain,#severity\nbad.example,suspend\nkept.example,silence\n",
        ),
        (
            "exceptions.csv",
            "#domain,#public_comment\nok.bad.example,\nkept.example,asked nicely\n",
        ),
    ]);
    let mut exclude = source(&exceptions);
    exclude.exclude = true;
    let mut remote_exceptions = memory("https://lists.example/exceptions.txt", "remote.example\n");
    remote_exceptions.exclude = true;
    let (snapshot, summaries) = load(
        &[source(&local), exclude],
        &[
            subscribed(
                "https://lists.example/blocks.txt",
                "remote.example\nx.ok.bad.example\n",
            ),
            remote_exceptions,
        ],
        &PolicyConfig::default(),
    )
    .expect("loads");
    assert!(snapshot.is_suspended("bad.example").is_some());
    assert!(snapshot.is_suspended("a.ok.bad.example").is_none());
    assert!(
        snapshot.is_suspended("y.x.ok.bad.example").is_some(),
        "a longer suffix than the exception still applies"
    );
    assert!(snapshot.rule_for("kept.example").is_none());
    assert!(
        snapshot.is_suspended("remote.example").is_none(),
        "a memory exception list works like a file"
    );
    assert_eq!(
        snapshot
            .exception_for("kept.example")
            .and_then(|e| e.comment.as_deref()),
        Some("asked nicely")
    );
    let counts: Vec<(usize, usize, usize, usize, bool)> = summaries
        .iter()
        .map(|s| {
            (
                s.suspend,
                s.silence,
                s.exclude,
                s.excluded,
                s.exception_list,
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            (1, 0, 0, 1, false),
            (0, 0, 2, 0, true),
            (1, 0, 0, 1, false),
            (0, 0, 1, 0, true),
        ]
    );
    assert_eq!(summaries[0].overridden, 0);
}

#[test]
fn subscribed_rules_need_the_threshold_and_local_files_always_apply() {
    let (_dir, [local]) = files([("local.txt", "local.example\n")]);
    let a = subscribed("https://a.example/list", "both.example\nonly-a.example\n");
    let b = subscribed(
        "https://b.example/list",
        "#domain,#severity\nboth.example,silence\nlocal.example,noop\n",
    );
    let mut preview = subscribed("https://c.example/list", "only-a.example\n");
    preview.dry_run = true;
    let api = memory("mastodon-api", "only-api.example\n");
    let (snapshot, summaries) = load(
        &[source(&local)],
        &[a.clone(), b.clone(), preview.clone(), api.clone()],
        &threshold(2),
    )
    .expect("loads");
    // Two sources agree: in force, the harsher wins.
    assert!(snapshot.is_suspended("both.example").is_some());
    // One enforcing source: held back; a dry-run preview agreeing does not tip it into
    // force, but the preview's own rule is judged with it.
    assert!(snapshot.rule_for("only-a.example").is_none());
    assert_eq!(
        snapshot
            .rule_for_including_dry_run("only-a.example")
            .map(|r| (r.dry_run, &*r.source)),
        Some((true, "https://c.example/list"))
    );
    // Local files, and memory sources that are not subscriptions, always apply.
    assert!(snapshot.is_suspended("local.example").is_some());
    assert!(snapshot.is_suspended("only-api.example").is_some());
    let withheld: Vec<&str> = snapshot
        .withheld_rules("only-a.example")
        .iter()
        .map(|r| &*r.source)
        .collect();
    assert_eq!(withheld, ["https://a.example/list"]);
    let below: Vec<(usize, usize, usize)> = summaries
        .iter()
        .map(|s| {
            (
                s.suspend + s.silence + s.noop,
                s.below_threshold,
                s.overridden,
            )
        })
        .collect();
    assert_eq!(
        below,
        [(1, 0, 0), (1, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 0)]
    );
    // Threshold 1: every subscribed rule applies.
    let (snapshot, _) =
        load(&[source(&local)], &[a, b, preview, api], &threshold(1)).expect("loads");
    assert!(snapshot.is_suspended("only-a.example").is_some());
    assert_eq!(snapshot.iter_withheld().count(), 0);
}

#[test]
fn priority_picks_which_sources_compete() {
    let (_dir, [ours]) = files([("ours.csv", "#domain,#severity\nshared.example,silence\n")]);
    let mut local = source(&ours);
    local.priority = 10;
    let remote = subscribed(
        "https://lists.example/blocks.txt",
        "shared.example\nother.example\n",
    );
    let (snapshot, summaries) = load(
        &[local.clone()],
        std::slice::from_ref(&remote),
        &PolicyConfig::default(),
    )
    .expect("loads");
    assert_eq!(
        snapshot.rule_for("shared.example").map(|r| r.severity),
        Some(Severity::Silence),
        "the higher priority wins even though milder"
    );
    assert!(snapshot.is_suspended("other.example").is_some());
    assert_eq!((summaries[1].suspend, summaries[1].overridden), (1, 1));
    // Equal priorities: the harshest wins, as before.
    local.priority = 0;
    let (snapshot, _) = load(&[local], &[remote], &PolicyConfig::default()).expect("loads");
    assert!(snapshot.is_suspended("shared.example").is_some());
}

#[test]
fn toml_and_allow_sources_load_with_their_kinds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blocklists");
    let mut allows = source(&root.join("domain_allows.csv"));
    allows.kind = crate::config::SourceKind::Allow;
    let policy = PolicyConfig {
        mode: crate::config::PolicyMode::Allowlist,
        ..PolicyConfig::default()
    };
    let (snapshot, summaries) =
        load(&[source(&root.join("rules.toml")), allows], &[], &policy).expect("loads");
    assert_eq!(snapshot.mode(), crate::config::PolicyMode::Allowlist);
    assert!(snapshot.allow_for("partner.example").is_some());
    assert!(snapshot
        .actor_rule_for("https://elsewhere.example/@mallory")
        .is_some());
    assert!(snapshot.friendly_federators().is_some());
    let toml = &summaries[0];
    assert_eq!(
        (
            toml.suspend,
            toml.silence,
            toml.allow,
            toml.exclude,
            toml.actor_suspend,
            toml.overridden
        ),
        (2, 1, 1, 1, 2, 0)
    );
    // friend.example is in both; the first source listing it counts it.
    assert_eq!((summaries[1].allow, summaries[1].overridden), (2, 1));
    assert_eq!(
        toml.to_string(),
        format!(
            "{}: suspend=2 silence=1 noop=0 allow=1 exclude=1 actor_suspend=2",
            root.join("rules.toml").display()
        )
    );
    // A second [friendly_federators] table is refused, naming both places.
    let e = load(
        &[
            source(&root.join("rules.toml")),
            source(&root.join("rules.toml")),
        ],
        &[],
        &policy,
    )
    .expect_err("two tables");
    assert_eq!(e.line, 36);
    assert!(matches!(
        e.kind,
        LoadErrorKind::DuplicateFriendlyFederators { .. }
    ));
}
