//! Reloads of the live rules: refused files and their last good copies, memory sources,
//! gauges, timestamps and the change log.

use super::*;
use crate::policy::sources::{self, LoadErrorKind};
use crate::policy::Severity;
use crate::rules::testing::{
    files, loaded, metrics, reloads, rules_over, source, subscribed, suspended,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Rules over one file `name` holding `text`: the directory's guard, the file, the rules and
/// their metrics.
fn over_one_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf, Arc<Rules>, Arc<Metrics>) {
    let (dir, [path]) = files([(name, text)]);
    let (rules, m) = rules_over(&[&path]);
    (dir, path, rules, m)
}

#[test]
fn failed_reload_keeps_the_old_snapshot() {
    let _serial = log_call_sites();
    let (_dir, path, rules, m) = over_one_file("blocklist.csv", "old.example\n");
    let label = path.display().to_string();
    let gauge = |sev: &str| loaded(&m, &path, sev);
    assert_eq!((gauge("suspend"), gauge("silence")), (1, 0));
    assert!(
        m.rules_last_reload_timestamp_seconds
            .with_label_values(&[label.as_str()])
            .get()
            > 0
    );

    std::fs::write(&path, "#domain,#severity\nnew.example,banish\n").expect("write");
    let e = rules.reload().expect_err("broken file");
    assert_eq!(e.refused.len(), 1);
    assert_eq!(e.refused[0].line, 2);
    let applied = e.applied.expect("the last good copy stands in");
    assert!(applied[0].stale && applied[0].changes.is_empty());
    assert!(
        applied[0]
            .to_string()
            .ends_with(" (refused: last good copy in force)"),
        "{}",
        applied[0]
    );
    assert!(suspended(&rules, "old.example"), "old rules stay in force");
    assert!(!suspended(&rules, "new.example"));
    assert_eq!((reloads(&m, "failure"), reloads(&m, "success")), (1, 0));
    let stale = || {
        m.rules_source_stale
            .with_label_values(&[label.as_str()])
            .get()
    };
    assert_eq!(stale(), 1);
    assert_eq!(gauge("suspend"), 1);
    let failing_since = || m.rules_reload_failing_since_timestamp_seconds.get();
    let first_failure = failing_since();
    assert!(first_failure > 0);
    // A second broken save: still failing since the first one.
    std::fs::write(&path, "#domain,#severity\nnew.example,exile\n").expect("write");
    std::thread::sleep(Duration::from_millis(1100));
    rules.reload().expect_err("still broken");
    assert_eq!(failing_since(), first_failure);

    std::fs::write(
        &path,
        "#domain,#severity\nnew.example,suspend\nlimit.example,silence\n",
    )
    .expect("write");
    let summaries = rules.reload().expect("fixed");
    assert_eq!((summaries[0].suspend, summaries[0].silence), (1, 1));
    assert!(suspended(&rules, "new.example"));
    assert!(!suspended(&rules, "old.example"));
    assert_eq!((reloads(&m, "failure"), reloads(&m, "success")), (2, 1));
    assert_eq!(failing_since(), 0, "a successful reload ends the failure");
    assert_eq!(stale(), 0);
    assert_eq!((gauge("suspend"), gauge("silence")), (1, 1));
    assert!(m
        .render()
        .contains("inboxguard_rules_loaded{severity=\"noop\""));
}

#[test]
fn memory_sources_merge_survive_a_broken_file_and_can_be_removed() {
    let _serial = log_call_sites();
    let (_dir, path, rules, m) =
        over_one_file("local.csv", "#domain,#severity\nshared.example,silence\n");
    let remote = |domains: &[&str]| {
        let text: String = domains.iter().map(|d| format!("{d}\n")).collect();
        let label: Arc<str> = Arc::from("https://lists.example/blocks.txt");
        MemorySource {
            label: label.to_string(),
            parsed: Arc::new(
                sources::parse_bytes(
                    text.as_bytes(),
                    label,
                    crate::config::BlocklistFormat::Plain,
                )
                .expect("parses"),
            ),
            dry_run: false,
            exclude: false,
            subscribed: true,
            priority: 0,
            max_shrink: None,
        }
    };
    let summaries = rules
        .set_memory_source(remote(&["shared.example", "remote.example"]))
        .expect("reload");
    assert_eq!(summaries.len(), 2);
    assert_eq!(
        (summaries[1].source.as_str(), summaries[1].suspend),
        ("https://lists.example/blocks.txt", 2),
        "the harsher remote rule wins for the shared domain"
    );
    assert_eq!(summaries[0].overridden, 1);
    assert!(suspended(&rules, "remote.example") && suspended(&rules, "shared.example"));

    // A broken local file is refused, but does not hold back the new remote copy: the
    // file's last good copy stands in beside it.
    std::fs::write(&path, "#domain,#severity\nx.example,banish\n").expect("write");
    let e = rules
        .set_memory_source(remote(&["later.example"]))
        .expect_err("broken file");
    assert_eq!(e.refused[0].file, path.display().to_string());
    assert!(suspended(&rules, "later.example") && !suspended(&rules, "remote.example"));
    assert_eq!(
        rules
            .current()
            .load()
            .rule_for("shared.example")
            .map(|r| r.severity),
        Some(Severity::Silence),
        "the file's last good rules are in force"
    );
    std::fs::write(&path, "#domain,#severity\nother.example,silence\n").expect("write");
    rules.reload().expect("fixed");
    assert!(rules.current().load().rule_for("shared.example").is_none());

    let label = "https://lists.example/blocks.txt";
    assert!(rules.remove_memory_source(label).expect("reload").is_some());
    assert!(!suspended(&rules, "later.example"));
    assert!(rules
        .remove_memory_source(label)
        .expect("nothing")
        .is_none());
    assert!(rules.memory_sources().is_empty());
    assert_eq!(
        m.rules_loaded.with_label_values(&[label, "suspend"]).get(),
        0,
        "gauges of a removed source are dropped (a fresh series reads 0)"
    );
}

#[test]
fn unreadable_source_fails_the_first_load() {
    let e = Rules::new(
        vec![source(Path::new("/nonexistent/x.csv"))],
        PolicyConfig::default(),
        metrics(),
    )
    .err()
    .expect("must fail");
    assert_eq!(e.line, 0);
    assert!(matches!(e.kind, LoadErrorKind::Read(_)));
}

#[test]
fn stale_gauges_are_removed() {
    let (_dir, _, rules, m) = over_one_file("a.txt", "a.example\n");
    let mut state = State {
        published: vec!["gone.csv".to_string()],
        ..State::default()
    };
    m.rules_loaded
        .with_label_values(&["gone.csv", "suspend"])
        .set(5);
    rules.publish(&mut state, &[], &[]);
    assert!(state.published.is_empty());
    assert!(!m.render().contains("gone.csv"));
}

/// A `tracing` writer into a shared buffer, to read what a reload logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Held by the test that captures logs and by the tests here that reload (and so log the same
/// call sites): `tracing` caches per call site whether anyone listens, and a site first
/// reached on another thread while the capturing subscriber is being set up can stay cached
/// as unheard, so its lines go missing from the capture.
static LOG_CALL_SITES: Mutex<()> = Mutex::new(());

fn log_call_sites() -> std::sync::MutexGuard<'static, ()> {
    LOG_CALL_SITES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

#[test]
fn a_reload_reports_and_logs_what_changed_per_source() {
    let _serial = log_call_sites();
    let (_dir, [csv, toml]) = files([
        (
            "a.csv",
            "#domain,#severity\nkeep.example,suspend\nup.example,silence\ngone.example,suspend\n",
        ),
        ("b.toml", "[[allow]]\ndomain = \"friend.example\"\n"),
    ]);
    let (rules, _) = rules_over(&[&csv, &toml]);
    rules
        .set_memory_source(subscribed("https://lists.example/x", "remote.example\n"))
        .expect("reload");

    std::fs::write(
        &csv,
        "#domain,#severity\nkeep.example,suspend\nup.example,suspend\nnew.example,silence\n",
    )
    .expect("write");
    std::fs::write(
        &toml,
        "[[allow]]\ndomain = \"friend.example\"\n[[exclude]]\ndomain = \"ok.example\"\n\
             [[actor]]\nactor = \"@m@bad.example\"\n",
    )
    .expect("write");
    let (summaries, log) = logged(|| rules.reload());
    let summaries = summaries.expect("reload");
    let changes: Vec<String> = summaries.iter().map(|s| s.changes.to_string()).collect();
    assert_eq!(
        changes,
        [
            "suspend +0 -1 ~1, silence +1 -0 ~0, noop +0 -0 ~0, allow +0 -0 ~0, \
                 exclude +0 -0 ~0, actor_suspend +0 -0 ~0",
            "suspend +0 -0 ~0, silence +0 -0 ~0, noop +0 -0 ~0, allow +0 -0 ~0, \
                 exclude +1 -0 ~0, actor_suspend +1 -0 ~0",
            "suspend +0 -0 ~0, silence +0 -0 ~0, noop +0 -0 ~0, allow +0 -0 ~0, \
                 exclude +0 -0 ~0, actor_suspend +0 -0 ~0",
        ]
    );
    let line = |source: &Path| {
        log.lines()
            .find(|l| {
                l.contains("rule source changed")
                    && l.contains(&format!("source={}", source.display()))
            })
            .unwrap_or_else(|| panic!("no change line for {}:\n{log}", source.display()))
            .to_string()
    };
    assert!(
        line(&csv).contains("changes=suspend +0 -1 ~1, silence +1 -0 ~0,"),
        "{log}"
    );
    assert!(
        line(&toml).contains("exclude +1 -0 ~0, actor_suspend +1 -0 ~0"),
        "{log}"
    );
    assert!(!log.contains("source=https://lists.example/x"), "{log}");
    assert!(
            log.contains("rules reloaded") && log.contains("changes=suspend +0 -1 ~1, silence +1 -0 ~0, noop +0 -0 ~0, allow +0 -0 ~0, exclude +1 -0 ~0, actor_suspend +1 -0 ~0"),
            "{log}"
        );
}

#[test]
fn reload_timestamps_move_only_for_sources_loaded_anew() {
    let _serial = log_call_sites();
    let (_dir, path, rules, m) = over_one_file("local.txt", "local.example\n");
    let remote = "https://lists.example/blocks.txt";
    rules
        .set_memory_source(subscribed(remote, "remote.example\n"))
        .expect("reload");
    let file = path.display().to_string();
    let stamp = |label: &str| {
        m.rules_last_reload_timestamp_seconds
            .with_label_values(&[label])
            .get()
    };
    assert!(stamp(&file) > 1 && stamp(remote) > 1);
    let reset = || {
        for label in [file.as_str(), remote] {
            m.rules_last_reload_timestamp_seconds
                .with_label_values(&[label])
                .set(1);
        }
    };

    // A reload of the file (every file is read again) leaves the subscription's copy,
    // and the time it came into force, alone.
    reset();
    std::fs::write(&path, "local.example\nother.example\n").expect("write");
    rules.reload().expect("reload");
    assert!(stamp(&file) > 1);
    assert_eq!(
        stamp(remote),
        1,
        "the subscription did not load anything new"
    );

    // A new copy of the subscription moves its own timestamp.
    reset();
    rules
        .set_memory_source(subscribed(remote, "remote.example\nmore.example\n"))
        .expect("reload");
    assert!(stamp(remote) > 1);

    // A refused file keeps the time its last good copy came into force; a subscription's
    // new copy still moves its own.
    reset();
    std::fs::write(&path, "not a domain!\n").expect("write");
    rules.reload().expect_err("broken");
    assert_eq!((stamp(&file), stamp(remote)), (1, 1));
    rules
        .set_memory_source(subscribed(remote, "third.example\n"))
        .expect_err("broken file");
    assert_eq!(stamp(&file), 1);
    assert!(stamp(remote) > 1);
}

#[test]
fn gauges_and_reload_log_cover_every_kind() {
    let _serial = log_call_sites();
    let (_dir, path, rules, m) = over_one_file("rules.toml", "[[allow]]\ndomain = \"a.example\"\n");
    let gauge = |kind: &str| loaded(&m, &path, kind);
    assert_eq!((gauge("allow"), gauge("actor_suspend")), (1, 0));
    std::fs::write(
        &path,
        "[[actor]]\nactor = \"@m@bad.example\"\n[[exclude]]\ndomain = \"x.example\"\n",
    )
    .expect("write");
    rules.reload().expect("reload");
    assert_eq!(
        (gauge("allow"), gauge("actor_suspend"), gauge("exclude")),
        (0, 1, 1)
    );
}

#[test]
fn a_refused_file_keeps_its_last_good_copy_while_other_files_reload() {
    let _serial = log_call_sites();
    let (_dir, [a, b]) = files([
        ("a.csv", "#domain,#severity\nold-a.example,suspend\n"),
        ("b.txt", "old-b.example\n"),
    ]);
    let (rules, m) = rules_over(&[&a, &b]);
    let (label_a, label_b) = (a.display().to_string(), b.display().to_string());
    let stale = |label: &str| m.rules_source_stale.with_label_values(&[label]).get();
    let failing_since = || m.rules_reload_failing_since_timestamp_seconds.get();
    assert_eq!((stale(&label_a), stale(&label_b)), (0, 0));

    // A broken, B gains a domain: B's edit applies, A's old rules stay.
    std::fs::write(&a, "#domain,#severity\nnew-a.example,banish\n").expect("write");
    std::fs::write(&b, "old-b.example\nnew-b.example\n").expect("write");
    let e = rules.reload().expect_err("a is broken");
    assert_eq!(
        e.to_string(),
        format!("{label_a}:2: unknown severity \"banish\" (expected suspend, silence or noop)")
    );
    let applied = e.applied.expect("b applied");
    assert_eq!(
        applied
            .iter()
            .map(|s| (s.stale, s.suspend))
            .collect::<Vec<_>>(),
        [(true, 1), (false, 2)]
    );
    assert!(suspended(&rules, "new-b.example") && suspended(&rules, "old-a.example"));
    assert!(!suspended(&rules, "new-a.example"));
    assert_eq!((stale(&label_a), stale(&label_b)), (1, 0));
    assert_eq!((reloads(&m, "failure"), reloads(&m, "success")), (1, 0));
    let since = failing_since();
    assert!(since > 0);

    // Another reload while A is still broken (B edited again): still failing since the
    // first refusal, and A's last good copy is still the one in force.
    std::fs::write(&b, "new-b.example\n").expect("write");
    rules.reload().expect_err("a still broken");
    assert!(!suspended(&rules, "old-b.example") && suspended(&rules, "old-a.example"));
    assert_eq!((failing_since(), stale(&label_a)), (since, 1));

    // A deleted is refused the same way.
    std::fs::remove_file(&a).expect("remove");
    let e = rules.reload().expect_err("a missing");
    assert!(matches!(e.refused[0].kind, LoadErrorKind::Read(_)));
    assert!(suspended(&rules, "old-a.example"));

    // A fixed: its new rules are in force, and nothing is stale or failing.
    std::fs::write(&a, "#domain,#severity\nnew-a.example,suspend\n").expect("write");
    let summaries = rules.reload().expect("fixed");
    assert!(summaries.iter().all(|s| !s.stale));
    assert!(suspended(&rules, "new-a.example") && !suspended(&rules, "old-a.example"));
    assert_eq!((stale(&label_a), failing_since()), (0, 0));
    assert_eq!(reloads(&m, "success"), 1);
}

#[test]
fn a_conflicting_edit_is_refused_and_the_other_files_still_reload() {
    let _serial = log_call_sites();
    let table = "[friendly_federators]\nannounce = false\n";
    let (_dir, [first, second]) = files([
        ("first.toml", table),
        ("second.toml", "[[domain]]\ndomain = \"old.example\"\n"),
    ]);
    let (rules, m) = rules_over(&[&first, &second]);
    // The second file gains a second [friendly_federators] table and a domain: each parses,
    // but they conflict with the first file, so the edit is refused whole.
    std::fs::write(
        &second,
        format!("[[domain]]\ndomain = \"new.example\"\n\n{table}"),
    )
    .expect("write");
    let e = rules.reload().expect_err("conflict");
    assert!(matches!(
        e.refused[0].kind,
        LoadErrorKind::DuplicateFriendlyFederators { .. }
    ));
    assert!(suspended(&rules, "old.example") && !suspended(&rules, "new.example"));
    let label = second.display().to_string();
    assert_eq!(m.rules_source_stale.with_label_values(&[&label]).get(), 1);
    assert!(rules.current().load().friendly_federators().is_some());
}

/// Runs `f` with a subscriber writing into a buffer; what it logged.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(log.0.lock().expect("log").clone()).expect("utf-8");
    (out, text)
}

#[test]
fn an_unclosed_quote_is_logged_as_an_error_at_its_line() {
    let _serial = log_call_sites();
    let header = "#domain,#severity,#public_comment\n";
    let (_dir, path, rules, m) = over_one_file(
        "blocks.csv",
        &format!("{header}first.example,suspend,\nevil.example,suspend,\n"),
    );
    std::fs::write(
        &path,
        format!("{header}first.example,suspend,\"opens\nevil.example,suspend,\n"),
    )
    .expect("write");
    let (result, log) = logged(|| rules.reload());
    result.expect_err("refused");
    assert!(suspended(&rules, "evil.example"));
    assert_eq!(reloads(&m, "failure"), 1);
    let line = log
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("rule file refused"))
        .unwrap_or_else(|| panic!("no error line:\n{log}"));
    assert!(
        line.contains(&format!("file={}", path.display()))
            && line.contains("line=2")
            && line.contains("a quoted field runs past"),
        "{log}"
    );
}

#[test]
fn a_file_losing_too_much_waits_for_an_operator() {
    let _serial = log_call_sites();
    let rows = "#domain,#severity\na.example,suspend\nb.example,suspend\nc.example,silence\n";
    let (_dir, path, rules, m) = over_one_file("blocks.csv", rows);
    let label = path.display().to_string();

    // A header-only export: every rule would go.
    std::fs::write(&path, "#domain,#severity\n").expect("write");
    let (result, log) = logged(|| rules.reload());
    let e = result.expect_err("held back");
    assert!(e.refused_shrink(&label), "{e}");
    assert!(suspended(&rules, "a.example") && suspended(&rules, "b.example"));
    assert_eq!(
        (reloads(&m, "refused_shrink"), reloads(&m, "failure")),
        (1, 0)
    );
    assert_eq!(loaded(&m, &path, "suspend"), 2);
    let line = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("shrank too much"))
        .unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(
        line.contains(&format!("source={label}")) && line.contains("would remove 3 of its 3"),
        "{log}"
    );
    assert_eq!(rules.held_back(), std::slice::from_ref(&label));

    // Still held back on the next reload; one removal in three is within the default.
    rules.reload().expect_err("still held back");
    std::fs::write(
        &path,
        "#domain,#severity\na.example,suspend\nb.example,suspend\n",
    )
    .expect("write");
    rules.reload().expect("a third is not too much");
    assert!(rules.held_back().is_empty());

    // The operator's word puts the emptied file in force, once.
    std::fs::write(&path, "#domain,#severity\n").expect("write");
    rules.reload().expect_err("held back");
    assert!(rules
        .accept("nothing-by-that-name")
        .expect("reload")
        .is_none());
    rules.accept(&label).expect("reload").expect("known");
    assert!(!suspended(&rules, "a.example"));
    assert!(rules.held_back().is_empty());
    std::fs::write(&path, "#domain,#severity\nd.example,suspend\n").expect("write");
    rules.reload().expect("growing from nothing");
    std::fs::write(&path, "#domain,#severity\n").expect("write");
    rules
        .reload()
        .expect_err("the acceptance was for one version only");
}

#[test]
fn a_subscription_answering_nothing_waits_for_an_operator() {
    let _serial = log_call_sites();
    let (_dir, path, rules, m) =
        over_one_file("local.csv", "#domain,#severity\nlocal.example,silence\n");
    let label = "https://lists.example/blocks.txt";
    let guarded = |text: &str, max_shrink: f64| MemorySource {
        max_shrink: Some(max_shrink),
        ..subscribed(label, text)
    };
    rules
        .set_memory_source(guarded("a.example\nb.example\n", 0.5))
        .expect("first copy");
    let (result, log) = logged(|| rules.set_memory_source(guarded("", 0.5)));
    assert!(result.expect_err("held back").refused_shrink(label));
    assert!(
        log.contains("shrank too much") && log.contains(label),
        "{log}"
    );
    assert!(suspended(&rules, "a.example"));
    assert_eq!(reloads(&m, "refused_shrink"), 1);
    assert_eq!(rules.held_back(), [label.to_string()]);

    // A local edit reloads everything; the held copy stays held.
    std::fs::write(&path, "#domain,#severity\nlocal.example,suspend\n").expect("write");
    rules.reload().expect("reload");
    assert!(suspended(&rules, "a.example"));

    rules.accept(label).expect("reload").expect("known");
    assert!(!suspended(&rules, "a.example"));
    assert!(rules.held_back().is_empty());

    // `max_shrink = 1.0`: the source says any shrink is meant.
    rules
        .set_memory_source(guarded("a.example\n", 1.0))
        .expect("grows");
    rules
        .set_memory_source(guarded("", 1.0))
        .expect("guard off");
    assert!(!suspended(&rules, "a.example"));
}

#[test]
fn lifted_suspensions_are_warned_and_changes_name_their_domains() {
    let _serial = log_call_sites();
    let rows = |suspended: &[&str], silenced: usize| {
        let mut text = String::from("#domain,#severity\n");
        for d in suspended {
            text.push_str(&format!("{d},suspend\n"));
        }
        for i in 0..silenced {
            text.push_str(&format!("quiet{i}.example,silence\n"));
        }
        text
    };
    let (_dir, path, rules, _) = over_one_file(
        "blocks.csv",
        &rows(&["a.example", "b.example", "c.example", "d.example"], 0),
    );
    let label = path.display().to_string();

    // b.example goes, c.example is only limited now, 25 limits arrive.
    let mut text = rows(&["a.example", "d.example"], 25);
    text.push_str("c.example,silence\n");
    std::fs::write(&path, text).expect("write");
    let (result, log) = logged(|| rules.reload());
    result.expect("reload");
    assert!(!suspended(&rules, "b.example") && !suspended(&rules, "c.example"));
    let warn = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("suspend rules removed"))
        .unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(
        warn.contains(&format!("source={label}"))
            && warn.contains("suspensions=2")
            && warn.contains("domains=\"b.example c.example\""),
        "{warn}"
    );
    let change = log
        .lines()
        .find(|l| l.contains("rule source changed"))
        .unwrap_or_else(|| panic!("no change line:\n{log}"));
    let silence = change
        .split_once("domains=\"suspend -b.example; silence ")
        .unwrap_or_else(|| panic!("{change}"))
        .1;
    // 25 limits added and one changed: 20 named.
    let named = silence.matches("+quiet").count() + silence.matches("~c.example").count();
    assert_eq!(named, 20, "{change}");
    assert!(silence.contains(" (+6 more)\""), "{change}");

    // Additions alone lift nothing.
    let mut text = rows(&["a.example", "d.example", "e.example"], 25);
    text.push_str("c.example,silence\n");
    std::fs::write(&path, text).expect("write");
    let (result, log) = logged(|| rules.reload());
    result.expect("reload");
    assert!(!log.contains("suspend rules removed"), "{log}");
    assert!(log.contains("domains=\"suspend +e.example\""), "{log}");
}

#[test]
fn a_source_trusted_for_limits_only_imports_its_suspends_as_limits() {
    let _serial = log_call_sites();
    let (_dir, [path]) = files([(
        "shared.csv",
        "#domain,#severity,#reject_media\nharsh.example,suspend,true\nquiet.example,silence,false\nnote.example,noop,false\n",
    )]);
    let m = metrics();
    let capped = BlocklistConfig {
        max_severity: Some(Severity::Silence),
        ..source(&path)
    };
    let rules = Rules::new(vec![capped], PolicyConfig::default(), m.clone()).expect("load");
    assert!(!suspended(&rules, "harsh.example"));
    let rule = |d: &str| {
        rules
            .current()
            .load()
            .rule_for(d)
            .map(|r| (r.severity, r.reject_media))
    };
    assert_eq!(rule("harsh.example"), Some((Severity::Silence, true)));
    assert_eq!(rule("note.example"), Some((Severity::Noop, false)));
    assert_eq!(
        (loaded(&m, &path, "suspend"), loaded(&m, &path, "silence")),
        (0, 2)
    );

    // A map, then the cap.
    let mapped = BlocklistConfig {
        severity_map: [
            (Severity::Silence, Severity::Noop),
            (Severity::Noop, Severity::Suspend),
        ]
        .into(),
        max_severity: Some(Severity::Silence),
        ..source(&path)
    };
    let rules = Rules::new(vec![mapped], PolicyConfig::default(), metrics()).expect("load");
    let rule = |d: &str| rules.current().load().rule_for(d).map(|r| r.severity);
    assert_eq!(rule("harsh.example"), Some(Severity::Silence));
    assert_eq!(rule("quiet.example"), Some(Severity::Noop));
    assert_eq!(rule("note.example"), Some(Severity::Silence));
}

#[test]
fn a_reload_that_finds_nothing_changed_keeps_the_snapshot_in_force() {
    let (_dir, path, rules, m) = over_one_file("blocklist.csv", "a.example\nb.example\n");
    let before = rules.current().load_full();
    let generation = rules.generation();

    // The watcher's reload and the operator's after one edit: the second finds it all in force.
    let summaries = rules.reload().expect("reload");
    assert!(
        Arc::ptr_eq(&before, &rules.current().load_full()),
        "not rebuilt"
    );
    assert_eq!(rules.generation(), generation + 1);
    assert_eq!(reloads(&m, "success"), 1);
    assert_eq!(
        (summaries[0].suspend, summaries[0].changes.is_empty()),
        (2, true)
    );
    assert_eq!(loaded(&m, &path, "suspend"), 2);

    // A memory source put in force is not "nothing changed" for the reload after it either.
    rules
        .set_memory_source(subscribed("sub", "c.example\n"))
        .expect("memory source");
    let with_memory = rules.current().load_full();
    rules.reload().expect("reload");
    assert!(Arc::ptr_eq(&with_memory, &rules.current().load_full()));
    assert!(suspended(&rules, "c.example"));

    // An edit is rebuilt; so is the same bytes again after a refused edit.
    std::fs::write(&path, "a.example\n").expect("write");
    rules.reload().expect("reload");
    assert!(!suspended(&rules, "b.example"), "the edit is in force");
    std::fs::write(&path, "#domain,#severity\nx.example,banish\n").expect("write");
    rules.reload().expect_err("broken file");
    std::fs::write(&path, "a.example\n").expect("write");
    let refused = rules.current().load_full();
    let summaries = rules.reload().expect("reload");
    assert!(
        !Arc::ptr_eq(&refused, &rules.current().load_full()),
        "rebuilt"
    );
    assert!(!summaries[0].stale);
    assert_eq!(
        m.rules_source_stale
            .with_label_values(&[path.display().to_string().as_str()])
            .get(),
        0
    );
}
