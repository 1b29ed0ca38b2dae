use super::plan::{plan, wanted, Block, Change, SkipReason};
use super::*;
use crate::config::PolicyMode;
use crate::policy::{DomainEntry, DomainRule, Severity, Snapshot};
use crate::rules::{Listed, Standing};

fn block(id: &str, domain: &str, severity: &str) -> Block {
    Block {
        id: id.into(),
        domain: domain.into(),
        severity: severity.into(),
        reject_media: false,
        reject_reports: false,
        private_comment: None,
        public_comment: None,
    }
}

fn rule(domain: &str, severity: Severity, source: &str) -> DomainRule {
    let mut r = DomainRule::test(domain, severity);
    r.source = Arc::from(source);
    r
}

/// What the push wants for these domains listed by `LIST`, nothing escalated.
fn wanted_from_list(entries: &[(&str, Severity)]) -> BTreeMap<String, Wanted> {
    let rules: Vec<_> = entries.iter().map(|&(d, s)| rule(d, s, LIST)).collect();
    wanted(&listed(&rules), &Snapshot::from_rules([]))
}

fn listed(rules: &[DomainRule]) -> Vec<Listed> {
    rules
        .iter()
        .map(|r| Listed {
            rule: r.clone(),
            standing: Standing::Competes,
        })
        .collect()
}

fn managed(id: &str, source: &str) -> Managed {
    Managed {
        id: id.into(),
        severity: "suspend".into(),
        reject_media: false,
        reject_reports: false,
        source: source.into(),
        at: 0,
    }
}

/// What Mastodon would hold after the push wrote `w`: the block exactly as asked for.
fn as_written(id: &str, w: &Wanted) -> Block {
    Block {
        id: id.into(),
        domain: w.domain.clone(),
        severity: w.severity.as_str().into(),
        reject_media: w.reject_media,
        reject_reports: w.reject_reports,
        private_comment: Some(w.private_comment.clone()),
        public_comment: Some(w.public_comment.clone()),
    }
}

const LIST: &str = "https://lists.example/push.csv";

#[test]
fn wanted_keeps_only_rules_in_force_with_something_to_say() {
    let mut below = rule("below.example", Severity::Suspend, LIST);
    below.line = 2;
    let mut dry = rule("dry.example", Severity::Suspend, LIST);
    dry.dry_run = true;
    let mut digest = rule("obf***.example", Severity::Suspend, LIST);
    digest.digest = Some(Box::new(crate::policy::domain_digest("obfus.example")));
    let mut flagged_noop = rule("media.example", Severity::Noop, LIST);
    flagged_noop.reject_media = true;
    let mut rules = listed(&[
        rule("bad.example", Severity::Silence, LIST),
        rule("bad.example", Severity::Suspend, SOURCE_LABEL),
        rule("excluded.example", Severity::Suspend, LIST),
        rule("noop.example", Severity::Noop, LIST),
        flagged_noop,
        dry,
        digest,
        below,
    ]);
    rules[7].standing = Standing::BelowThreshold;
    let mut builder = Snapshot::builder(PolicyMode::Blocklist, 1);
    builder.exception(DomainEntry {
        domain: "excluded.example".into(),
        comment: None,
        source: Arc::from("exceptions.csv"),
        line: 1,
    });
    let w = wanted(&rules, &builder.build());
    let domains: Vec<&str> = w.keys().map(String::as_str).collect();
    assert_eq!(domains, ["bad.example", "media.example"]);
    // Two pushed sources list bad.example: the harsher is pushed, and says where it is from.
    let bad = &w["bad.example"];
    assert_eq!(
        (bad.severity, bad.source.as_str()),
        (Severity::Suspend, SOURCE_LABEL)
    );
    assert!(bad
        .public_comment
        .contains("inboxguard: friendly-federators"));
    assert!(bad.private_comment.contains("from friendly-federators"));
    // A list is named by its host on the public about page, in full in the private comment.
    let media = &w["media.example"];
    assert_eq!(media.public_comment, "inboxguard: lists.example");
    assert!(media.private_comment.contains(LIST));
}

#[test]
fn plan_creates_updates_lifts_and_leaves_manual_blocks_alone() {
    let w = wanted_from_list(&[
        ("new.example", Severity::Suspend),
        ("harsher.example", Severity::Suspend),
        ("same.example", Severity::Silence),
        ("manual.example", Severity::Suspend),
    ]);
    let existing = vec![
        block("10", "harsher.example", "silence"),
        as_written("11", &w["same.example"]),
        block("12", "gone.example", "suspend"),
        block("13", "manual.example", "silence"),
        block("14", "unlisted.example", "suspend"),
    ];
    let state = BTreeMap::from([
        ("harsher.example".to_string(), managed("10", LIST)),
        ("same.example".to_string(), managed("11", LIST)),
        ("gone.example".to_string(), managed("12", LIST)),
    ]);
    let p = plan(&w, &existing, &state, &|_| true);
    let shown: Vec<(Option<&str>, &str)> = p.changes.iter().map(|c| (c.op(), c.domain())).collect();
    assert_eq!(
        shown,
        [
            (Some("delete"), "gone.example"),
            (Some("update"), "harsher.example"),
            (Some("create"), "new.example"),
            (None, "manual.example"),
        ]
    );
    assert!(matches!(
        &p.changes[3],
        Change::Skip { reason: SkipReason::Manual { id }, .. } if id == "13"
    ));
    // Control: unlisted.example is not ours and not wanted; nothing touches it.
    assert!(p.changes.iter().all(|c| c.domain() != "unlisted.example"));
    assert_eq!(p.skipped(), (1, 0));
    assert!(p
        .summary()
        .starts_with("1 to create, 1 to update, 1 to lift, 1 manual"));
}

#[test]
fn plan_keeps_blocks_of_a_source_without_a_copy_and_recreates_vanished_ones() {
    let w = wanted_from_list(&[("back.example", Severity::Suspend)]);
    let existing = vec![block("20", "waiting.example", "suspend")];
    let state = BTreeMap::from([
        ("waiting.example".to_string(), managed("20", LIST)),
        ("back.example".to_string(), managed("21", LIST)),
    ]);
    let p = plan(&w, &existing, &state, &|source| source != LIST);
    assert_eq!(p.kept, ["waiting.example"]);
    assert_eq!(p.vanished, [("back.example".to_string(), "21".to_string())]);
    assert_eq!(p.changes.len(), 1);
    assert!(matches!(&p.changes[0], Change::Create(w) if w.domain == "back.example"));
    // Control: once the list has a copy in force without the domain, its block is lifted.
    let p = plan(&BTreeMap::new(), &existing, &state, &|_| true);
    assert_eq!(p.count("delete"), 1);
}

#[test]
fn plan_skips_domains_under_a_block_mastodon_would_refuse_them_under() {
    let w = wanted_from_list(&[
        ("parent.example", Severity::Suspend),
        ("child.parent.example", Severity::Suspend),
        ("sub.manual.example", Severity::Suspend),
        ("sub.lifted.example", Severity::Suspend),
    ]);
    let existing = vec![
        block("1", "manual.example", "silence"),
        block("2", "lifted.example", "suspend"),
    ];
    let state = BTreeMap::from([("lifted.example".to_string(), managed("2", LIST))]);
    let p = plan(&w, &existing, &state, &|_| true);
    let skips: Vec<(&str, &str)> = p
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Skip {
                domain,
                reason: SkipReason::Covered { by },
            } => Some((domain.as_str(), by.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        skips,
        [
            ("child.parent.example", "parent.example"),
            ("sub.manual.example", "manual.example")
        ]
    );
    // The lifted parent goes first, so its child can be created after it.
    let ops: Vec<(Option<&str>, &str)> = p.changes.iter().map(|c| (c.op(), c.domain())).collect();
    assert_eq!(
        &ops[..3],
        [
            (Some("delete"), "lifted.example"),
            (Some("create"), "parent.example"),
            (Some("create"), "sub.lifted.example"),
        ]
    );
}

#[test]
fn a_block_written_as_wanted_is_in_step_even_respaced() {
    let w = wanted_from_list(&[("a.example", Severity::Silence)]);
    let mut b = as_written("5", &w["a.example"]);
    b.private_comment = b
        .private_comment
        .map(|c| format!("  {}\n", c.replace(' ', "  ")));
    let state = BTreeMap::from([("a.example".to_string(), managed("5", LIST))]);
    assert!(plan(&w, &[b.clone()], &state, &|_| true).changes.is_empty());
    // Control: a moderator's edit of severity on a pushed block is put back.
    b.severity = "suspend".into();
    assert_eq!(plan(&w, &[b], &state, &|_| true).count("update"), 1);
}

#[test]
fn the_state_file_belongs_to_one_instance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = StateFile::new(dir.path(), "https://m.example");
    let mut state = file.read().expect("none yet is empty");
    assert!(state.blocks.is_empty());
    state.blocks.insert("a.example".into(), managed("7", LIST));
    file.write(&state).expect("write");
    assert_eq!(file.read().expect("read"), state);
    let other = StateFile::new(dir.path(), "https://other.example");
    assert!(matches!(
        other.read(),
        Err(StateError::OtherInstance { .. })
    ));
    std::fs::write(file.path(), b"{\"version\":1").expect("truncate");
    let e = file.read().expect_err("corrupt");
    assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
}

#[test]
fn one_cycle_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = StateFile::new(dir.path(), "https://m.example");
    let held = file.lock().expect("first");
    assert!(matches!(file.lock(), Err(StateError::Busy { .. })));
    drop(held);
    assert!(file.lock().is_ok(), "released with the first");
}

#[test]
fn push_mode_and_interval_in_the_config() {
    let base = "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n";
    let load =
        |extra: &str| Config::from_toml(&format!("{base}{extra}"), std::path::Path::new("t.toml"));
    let m = "[mastodon]\nurl = \"https://m.example\"\ntoken_file = \"t\"\n";
    let c = load(m).expect("default");
    let api = c.mastodon.as_ref().expect("mastodon");
    assert_eq!(
        (api.push, api.push_interval()),
        (PushMode::Off, Duration::from_secs(300))
    );
    for (text, mode) in [
        ("true", PushMode::On),
        ("false", PushMode::Off),
        ("\"dry-run\"", PushMode::DryRun),
    ] {
        let c = load(&format!("{m}push = {text}\npush_interval = \"90s\"\n")).expect(text);
        let api = c.mastodon.as_ref().expect("mastodon");
        assert_eq!(
            (api.push, api.push_interval()),
            (mode, Duration::from_secs(90))
        );
    }
    // Push alone needs no pull.
    assert!(load(&format!("{m}push = true\ndomain_blocks = false\n")).is_ok());
    let sub = "[[subscriptions]]\nurl = \"https://l.example/b\"\npush = true\n";
    for (extra, key, says) in [
        (format!("{m}push = \"yes\"\n"), "push", "dry-run"),
        (
            format!("{m}push_interval = \"0s\"\n"),
            "mastodon.push_interval",
            "between 1s and 1d",
        ),
        (
            format!("{m}push_interval = \"5\"\n"),
            "mastodon.push_interval",
            "duration",
        ),
        (sub.to_string(), "subscriptions.push", "needs [mastodon]"),
        (
            format!("{m}push = true\n{sub}dry_run = true\n"),
            "subscriptions.push",
            "previews",
        ),
        (
            format!("{m}push = true\n{sub}exclude = true\n"),
            "subscriptions.push",
            "exception list",
        ),
        (
            format!("{m}push = true\n{sub}kind = \"exception\"\n"),
            "subscriptions.push",
            "exception list",
        ),
        (
            format!("{m}push = true\n{sub}kind = \"allow\"\n"),
            "subscriptions.push",
            "allow list",
        ),
        (
            format!("{m}push = true\n{sub}priority = -1\n"),
            "subscriptions.push",
            "priority",
        ),
    ] {
        let e = load(&extra).expect_err(&extra).to_string();
        assert!(e.contains(key) && e.contains(says), "{extra}: {e}");
    }
    // Control: the same subscription with the push on is accepted and pushed.
    let c = load(&format!("{m}push = true\n{sub}")).expect("pushed list");
    assert!(pushed_sources(&c).contains("https://l.example/b"));
}

#[test]
fn a_refused_create_names_the_block_in_the_way() {
    // As Mastodon answers a create under an existing block (422, ExistingDomainBlockError).
    let body = r#"{"error":"A domain block for this domain already exists","existing_domain_block":{"id":"42","domain":"bad.example","severity":"suspend"}}"#;
    match api::existing(body) {
        Some(ApiError::Exists { id, domain }) => {
            assert_eq!((id.as_str(), domain.as_str()), ("42", "bad.example"))
        }
        other => panic!("{other:?}"),
    }
    // A validation error is no such refusal.
    assert!(api::existing(r#"{"error":"Validation failed: Domain is invalid"}"#).is_none());
    let e = ApiError::Status {
        status: 422,
        message: String::new(),
    };
    assert!(!e.stops_cycle() && e.reason() == "http_status");
    assert!(ApiError::Unauthorized { status: 403 }.stops_cycle());
}
