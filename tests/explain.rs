//! `inboxguard explain`, run as an operator runs it: the real binary against a config and rule
//! files in a tempdir, with what it prints and its exit codes.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_inboxguard");

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Table rows (lines naming a rule file and line), in printed order.
    fn rows(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(' ') && (l.contains(".csv:") || l.contains(".txt:")))
            .collect()
    }
}

/// `explain` is offline and answers at once, so no deadline beyond the test runner's.
fn explain(config: &Path, subject: &str) -> Output {
    let out = Command::new(BIN)
        .args(["explain", "--config", config.to_str().unwrap(), subject])
        .stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A config with an enforcing Mastodon CSV and a dry-run plain list.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("blocks.csv");
    std::fs::write(
        &csv,
        "#domain,#severity,#reject_media,#reject_reports,#public_comment\n\
         bad.example,suspend,true,false,Spam and abuse\n\
         ok.bad.example,noop,false,false,Carved out\n\
         reports.example,noop,false,true,\n",
    )
    .unwrap();
    let preview = dir.path().join("preview.txt");
    std::fs::write(&preview, "preview.example # under review\n").unwrap();
    let quote = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let config = dir.path().join("inboxguard.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:18080\"\n\n\
             [upstream]\nurl = \"http://127.0.0.1:13000\"\n\n\
             [admin]\nlisten = \"127.0.0.1:19100\"\n\n\
             [[blocklists]]\npath = {}\n\n\
             [[blocklists]]\npath = {}\ndry_run = true\n",
            quote(&csv),
            quote(&preview)
        ),
    )
    .unwrap();
    (dir, config)
}

#[test]
fn domain_shows_decision_and_rule() {
    let (_dir, config) = setup();
    let out = explain(&config, "Bad.Example");
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout.starts_with(
            "subject: domain bad.example\ndecision: reject (403)\nreason: suspended_key_host\n"
        ),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("deciding rule: bad.example ("),
        "{}",
        out.describe()
    );
    let rows = out.rows();
    assert_eq!(rows.len(), 1, "{}", out.describe());
    let cells: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(
        cells[..5],
        ["*", "bad.example", "suspend", "reject_media", "no"],
        "{}",
        out.describe()
    );
    assert!(rows[0].contains("blocks.csv:2"), "{}", out.describe());
    assert!(
        rows[0].ends_with("\"Spam and abuse\""),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("DOMAIN"), "{}", out.describe());
}

#[test]
fn subdomain_shows_every_matching_rule_longest_first_and_marks_the_winner() {
    let (_dir, config) = setup();
    let out = explain(&config, "x.ok.bad.example");
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains("decision: forward\n"),
        "{}",
        out.describe()
    );
    let rows = out.rows();
    assert_eq!(rows.len(), 2, "{}", out.describe());
    assert!(
        rows[0].starts_with(" *  ok.bad.example"),
        "{}",
        out.describe()
    );
    assert!(rows[0].contains("blocks.csv:3"), "{}", out.describe());
    assert!(rows[1].starts_with("    bad.example"), "{}", out.describe());
    assert!(rows[1].contains("blocks.csv:2"), "{}", out.describe());

    // Under the parent only, the parent wins.
    let out = explain(&config, "deep.sub.bad.example");
    assert!(
        out.stdout.contains("decision: reject (403)\n"),
        "{}",
        out.describe()
    );
    assert_eq!(out.rows().len(), 1);
}

#[test]
fn actor_uris_are_explained_by_their_host() {
    let (_dir, config) = setup();
    for actor in [
        "https://sub.bad.example/users/mallory",
        "@mallory@bad.example",
        "acct:mallory@bad.example",
    ] {
        let out = explain(&config, actor);
        assert_eq!(out.code, Some(0), "{}", out.describe());
        assert!(
            out.stdout
                .starts_with(&format!("subject: actor {actor} (host ")),
            "{}",
            out.describe()
        );
        assert!(
            out.stdout.contains("decision: reject (403)\n"),
            "{}",
            out.describe()
        );
        assert!(
            out.stdout.contains("rules matching actor host "),
            "{}",
            out.describe()
        );
    }
}

#[test]
fn activity_files_show_actor_decision_author_and_report_outcome() {
    let (dir, config) = setup();
    let announce = dir.path().join("announce.json");
    std::fs::write(
        &announce,
        r#"{"type":"Announce","actor":"https://good.example/users/gil",
            "object":{"id":"https://bad.example/statuses/1","type":"Note",
                      "attributedTo":"https://bad.example/users/mallory"}}"#,
    )
    .unwrap();
    let out = explain(&config, announce.to_str().unwrap());
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout
            .contains("(type Announce, actor https://good.example/users/gil)"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("decision: forward\n"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout
            .contains("no rule matches actor host good.example"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains(
            "object attributedTo: https://bad.example/users/mallory (informational: not enforced yet)\n  as a sender this host would be: reject (403)"
        ),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout
            .contains("rules matching attributedTo host bad.example"),
        "{}",
        out.describe()
    );
    assert_eq!(out.stdout.matches("decision:").count(), 1);

    let flag = dir.path().join("flag.json");
    std::fs::write(
        &flag,
        r#"{"type":"Flag","actor":"https://reports.example/actor","object":["https://mastodon.local/users/alice"]}"#,
    )
    .unwrap();
    let out = explain(&config, flag.to_str().unwrap());
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout
            .contains("decision: drop (202)\nreason: reject_reports\n"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout
            .contains("report (Flag): dropped: the reporter's domain has reject_reports"),
        "{}",
        out.describe()
    );
    let cells: Vec<&str> = out.rows()[0].split_whitespace().collect();
    assert_eq!(
        cells[..4],
        ["*", "reports.example", "noop", "reject_reports"]
    );

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{not json").unwrap();
    let out = explain(&config, broken.to_str().unwrap());
    assert_eq!(out.code, Some(65), "{}", out.describe());
    assert!(out.stderr.contains("broken.json"), "{}", out.describe());
}

#[test]
fn dry_run_rules_are_shown_and_do_not_decide() {
    let (_dir, config) = setup();
    let out = explain(&config, "sub.preview.example");
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains("decision: forward\n"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout
            .contains("dry run: would reject (403) (suspended_key_host) by preview.example ("),
        "{}",
        out.describe()
    );
    let rows = out.rows();
    assert_eq!(rows.len(), 1, "{}", out.describe());
    let cells: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(cells[..5], ["~", "preview.example", "suspend", "-", "yes"]);
    assert!(rows[0].contains("preview.txt:1"), "{}", out.describe());
}

#[test]
fn unknown_domain_is_forwarded_with_no_rule() {
    let (_dir, config) = setup();
    let out = explain(&config, "unknown.example");
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(
        out.stdout,
        "subject: domain unknown.example\ndecision: forward\nreason: allowed\n\nno rule matches unknown.example\n"
    );
}

#[test]
fn bad_config_and_bad_subject_exit_non_zero() {
    let (dir, config) = setup();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"nowhere\"\n").unwrap();
    let out = explain(&bad, "bad.example");
    assert_eq!(out.code, Some(64), "{}", out.describe());
    assert!(out.stdout.is_empty(), "{}", out.describe());

    let out = explain(&config, "not a domain!");
    assert_eq!(out.code, Some(65), "{}", out.describe());
    assert!(out
        .stderr
        .contains("is not a domain, an actor URI or an activity file"));
}
