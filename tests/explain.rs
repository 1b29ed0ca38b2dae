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
    // The proxy drops this boost of suspended content (202, laundered_announce); explain must
    // say so, naming the reference and the rule it matched.
    let csv = dir.path().join("blocks.csv").display().to_string();
    assert!(
        out.stdout.contains(&format!(
            "decision: drop (202)\nreason: laundered_announce\ndeciding rule: bad.example ({csv}:2)\n\
             laundered: announce of https://bad.example/statuses/1 (host bad.example) matches \
             suspend bad.example ({csv}:2) \"Spam and abuse\"\n"
        )),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains(&format!(
            "friendly federators: laundering kinds that drop: announce, attributed_to\n  \
             announce https://bad.example/statuses/1 -> suspend bad.example ({csv}:2)\n"
        )),
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
            "object attributedTo: https://bad.example/users/mallory\n\n\
             no actor rule matches attributedTo https://bad.example/users/mallory\n"
        ) && out
            .stdout
            .contains("  as a sender this host would be: reject (403)\n"),
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

/// A config with a TOML rules file, an allow list, an exception list and a threshold, in
/// allowlist mode.
fn setup_rules() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[domain]]\n\
         domain = \"bad.example\"\n\
         comment = \"spam\"\n\n\
         [[actor]]\n\
         actor = \"@mallory@friend.example\"\n\
         comment = \"harassment\"\n\n\
         [[actor]]\n\
         actor = \"https://friend.example/users/pat\"\n\
         dry_run = true\n",
    )
    .unwrap();
    let allows = dir.path().join("allows.txt");
    std::fs::write(&allows, "friend.example\nbad.example\na.ok.bad.example\n").unwrap();
    let exceptions = dir.path().join("exceptions.csv");
    std::fs::write(
        &exceptions,
        "#domain,#public_comment\nok.bad.example,their moderators asked\n",
    )
    .unwrap();
    let quote = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let config = dir.path().join("inboxguard.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:18080\"\n\n\
             [upstream]\nurl = \"http://127.0.0.1:13000\"\n\n\
             [admin]\nlisten = \"127.0.0.1:19100\"\n\n\
             [policy]\nmode = \"allowlist\"\nsubscription_threshold = 2\n\n\
             [[blocklists]]\npath = {}\n\n\
             [[blocklists]]\npath = {}\nkind = \"allow\"\n\n\
             [[blocklists]]\npath = {}\nexclude = true\n",
            quote(&rules),
            quote(&allows),
            quote(&exceptions)
        ),
    )
    .unwrap();
    (dir, config)
}

#[test]
fn allow_rules_and_allowlist_mode_are_explained() {
    let (_dir, config) = setup_rules();
    let out = explain(&config, "friend.example");
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let s = &out.stdout;
    assert!(s.contains("mode: allowlist"), "{}", out.describe());
    assert!(
        s.contains("subscription_threshold: 2"),
        "{}",
        out.describe()
    );
    assert!(s.contains("decision: forward\n"), "{}", out.describe());
    assert!(
        s.contains("\nallowed: friend.example by friend.example (") && s.contains("allows.txt:1)"),
        "{}",
        out.describe()
    );
    // An allow entry names its own host only, as Mastodon's.
    let out = explain(&config, "x.friend.example");
    assert!(
        out.stdout
            .contains("reason: not_allowed\nnot allowed: no allow entry names x.friend.example\n"),
        "{}",
        out.describe()
    );

    let out = explain(&config, "stranger.example");
    assert!(
        out.stdout
            .contains("decision: reject (403)\nreason: not_allowed\nnot allowed: no allow entry names stranger.example\n"),
        "{}",
        out.describe()
    );
}

#[test]
fn exclusions_are_explained_with_their_source_and_comment() {
    let (_dir, config) = setup_rules();
    let out = explain(&config, "a.ok.bad.example");
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let s = &out.stdout;
    assert!(
        s.contains("decision: forward\nreason: allowed\n"),
        "{}",
        out.describe()
    );
    assert!(
        s.contains("\nexception: ok.bad.example (")
            && s.contains("exceptions.csv:2) \"their moderators asked\" (block rules on it"),
        "{}",
        out.describe()
    );
    let row = s
        .lines()
        .find(|l| l.contains("rules.toml:2"))
        .unwrap_or_else(|| panic!("{}", out.describe()));
    assert!(
        row.starts_with(" x  bad.example") && row.ends_with("\"spam\""),
        "{}",
        out.describe()
    );
    // Outside the exception, the block decides.
    let out = explain(&config, "bad.example");
    assert!(
        out.stdout
            .contains("reason: suspended_key_host\ndeciding rule: bad.example ("),
        "{}",
        out.describe()
    );
}

#[test]
fn actor_rules_are_explained_for_handles_uris_and_authors() {
    let (dir, config) = setup_rules();
    let out = explain(&config, "@Mallory@friend.example");
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let s = &out.stdout;
    assert!(
        s.contains("assuming: the account's URI is https://friend.example/users/mallory"),
        "{}",
        out.describe()
    );
    assert!(
        s.contains("decision: reject (403)\nreason: actor_suspended\ndeciding rule: @mallory@friend.example ("),
        "{}",
        out.describe()
    );
    assert!(
        s.contains("actor rule matching actor https://friend.example/users/mallory: suspend @mallory@friend.example (")
            && s.contains("rules.toml:6) \"harassment\"\n"),
        "{}",
        out.describe()
    );

    // A dry-run actor rule, by URI.
    let out = explain(&config, "https://friend.example/users/pat");
    assert!(
        out.stdout.contains("decision: forward\nreason: actor_suspended\ndry run: would reject (403) (actor_suspended) by https://friend.example/users/pat ("),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("[dry run]\n"), "{}", out.describe());

    // The author of an activity's object.
    let boost = dir.path().join("boost.json");
    std::fs::write(
        &boost,
        r#"{"type":"Announce","actor":"https://friend.example/users/fay",
            "object":{"id":"https://friend.example/@mallory/1","type":"Note",
                      "attributedTo":"https://friend.example/@mallory"}}"#,
    )
    .unwrap();
    let out = explain(&config, boost.to_str().unwrap());
    let s = &out.stdout;
    assert!(
        s.contains("decision: reject (403)\nreason: actor_suspended\n"),
        "{}",
        out.describe()
    );
    assert!(
        s.contains("no actor rule matches actor https://friend.example/users/fay")
            && s.contains("actor rule matching attributedTo https://friend.example/@mallory: suspend @mallory@friend.example"),
        "{}",
        out.describe()
    );
}

#[test]
fn check_counts_every_kind_per_source() {
    let (_dir, config) = setup_rules();
    let out = Command::new(BIN)
        .args(["check", "--config", config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("policy    mode=allowlist subscription_threshold=2"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "rules.toml: suspend=1 silence=0 noop=0 allow=0 exclude=0 actor_suspend=2\n"
        ) && stdout.contains("allows.txt: suspend=0 silence=0 noop=0 allow=3 exclude=0 actor_suspend=0\n")
            && stdout.contains(
                "exceptions.csv: suspend=0 silence=0 noop=0 allow=0 exclude=1 actor_suspend=0 (exception list)\n"
            ),
        "{stdout}"
    );
}

/// Friendly-federator settings come from the config and a rules file's table, as in the proxy:
/// a table turning announce off makes the same boost a forward, and a dry-run suspend only
/// previews the drop.
#[test]
fn laundering_follows_the_rules_file_table_and_dry_run() {
    let (dir, config) = setup();
    let boost = |name: &str, object: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(r#"{{"type":"Announce","actor":"https://good.example/users/gil","object":"{object}"}}"#),
        )
        .unwrap();
        path
    };
    let preview = boost("preview.json", "https://preview.example/notes/1");
    let out = explain(&config, preview.to_str().unwrap());
    assert!(
        out.stdout.contains(
            "decision: forward\nreason: laundered_announce\ndry run: would drop (202) (laundered_announce) by preview.example ("
        ) && out.stdout.contains("laundered (dry run): announce of https://preview.example/notes/1"),
        "{}",
        out.describe()
    );

    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[friendly_federators]\nannounce = false\n").unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[blocklists]]\npath = {}\n",
        toml::Value::String(rules.display().to_string())
    ));
    std::fs::write(&config, text).unwrap();
    let bad = boost("bad.json", "https://bad.example/notes/1");
    let out = explain(&config, bad.to_str().unwrap());
    assert!(
        out.stdout.contains("decision: forward\nreason: allowed\n")
            && out
                .stdout
                .contains("laundering kinds that drop: attributed_to\n  announce https://bad.example/notes/1 -> suspend bad.example"),
        "{}",
        out.describe()
    );
}

/// Escalated friendly federators live in the evidence file; `explain` and `check` read them
/// (without writing) as the generated source `friendly-federators`, as `serve` puts them in
/// force at startup.
#[test]
fn escalated_domains_are_explained_from_the_evidence_file() {
    let (dir, config) = setup();
    let evidence = dir.path().join("ff.json");
    let saved = r#"{"version":1,"saved_at":1767225600,"domains":{},"escalated":{"friend.example":{"at":1767225600,"count":3}}}"#;
    std::fs::write(&evidence, saved).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[friendly_federators]\nevidence_file = {}\nthreshold = 2\naction = \"suspend\"\n",
        toml::Value::String(evidence.display().to_string())
    ));
    std::fs::write(&config, text).unwrap();
    let modified = std::fs::metadata(&evidence).unwrap().modified().unwrap();

    let out = explain(&config, "x.friend.example");
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains(
            "decision: reject (403)\nreason: suspended_key_host\ndeciding rule: friend.example (friendly-federators:2)\n"
        ),
        "{}",
        out.describe()
    );
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with(' ') && l.contains("friendly-federators:2"))
        .unwrap_or_else(|| panic!("{}", out.describe()));
    assert!(
        row.starts_with(" *  friend.example") && row.contains("friendly federator: 3 references"),
        "{}",
        out.describe()
    );

    let out = Command::new(BIN)
        .args(["check", "--config", config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "friendly-federators: suspend=1 silence=0 noop=0 allow=0 exclude=0 actor_suspend=0\n"
        ),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&evidence).unwrap(), saved);
    assert_eq!(
        std::fs::metadata(&evidence).unwrap().modified().unwrap(),
        modified,
        "read only"
    );
    assert!(!dir.path().join("ff.json.tmp").exists());
}

/// One domain in two local files and in a subscription's cached copy: the snapshot keeps one
/// rule, but `explain` lists all three with where each is written, its comment, and why the
/// losers lost.
#[test]
fn every_source_listing_a_domain_is_shown_with_why_it_lost() {
    let (dir, config) = setup();
    let second = dir.path().join("more.txt");
    std::fs::write(&second, "# reviewed 2026-01\nbad.example # seen again\n").unwrap();
    let url = "https://lists.example/blocks.csv";
    let state = dir.path().join("state");
    inboxguard::subscriptions::Cache::new(&state)
        .write(
            url,
            &inboxguard::subscriptions::CachedCopy {
                body: b"#domain,#severity,#public_comment\nbad.example,silence,shared list\n"
                    .to_vec(),
                etag: None,
                last_modified: None,
                fetched_at: 1_767_225_600,
            },
        )
        .unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[[blocklists]]\npath = {}\n\n[state]\ndir = {}\n\n[[subscriptions]]\nurl = {}\n",
        toml::Value::String(second.display().to_string()),
        toml::Value::String(state.display().to_string()),
        toml::Value::String(url.to_string()),
    ));
    std::fs::write(&config, text).unwrap();

    let out = explain(&config, "x.bad.example");
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout
            .contains("decision: reject (403)\nreason: suspended_key_host\n"),
        "{}",
        out.describe()
    );
    let rows: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with(' ') && l.contains("bad.example "))
        .collect();
    assert_eq!(rows.len(), 3, "{}", out.describe());
    let blocks = dir.path().join("blocks.csv").display().to_string();
    // The first file's suspend with reject_media is the harshest and wins; the rest follow in
    // load order, each naming what shadows it.
    assert!(
        rows[0].starts_with(" *  bad.example")
            && rows[0].contains(&format!("{blocks}:2"))
            && rows[0].ends_with("\"Spam and abuse\""),
        "{}",
        out.describe()
    );
    let cells: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(
        cells[..4],
        ["bad.example", "suspend", "-", "no"],
        "{}",
        out.describe()
    );
    assert!(
        rows[1].starts_with("    bad.example")
            && rows[1].contains(&format!("{}:2", second.display()))
            && rows[1].contains("\"seen again\"")
            && rows[1].ends_with(&format!("shadowed: harsher rule ({blocks}:2)")),
        "{}",
        out.describe()
    );
    assert!(
        rows[2].starts_with("    bad.example")
            && rows[2].contains(&format!("{url}:2"))
            && rows[2].contains("\"shared list\"")
            && rows[2].ends_with(&format!("shadowed: harsher rule ({blocks}:2)")),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(' ') && l.trim_end().ends_with("NOTE")),
        "{}",
        out.describe()
    );
}

#[test]
fn a_missing_activity_file_is_a_bad_subject_not_a_domain() {
    let (dir, config) = setup();
    for subject in [
        "missing.json".to_string(),
        dir.path().join("gone.json").display().to_string(),
        "activities/create".to_string(),
    ] {
        let out = explain(&config, &subject);
        assert_eq!(out.code, Some(65), "{subject}: {}", out.describe());
        assert!(
            out.stderr.contains(&subject) && out.stderr.contains("cannot read"),
            "{subject}: {}",
            out.describe()
        );
        assert!(out.stdout.is_empty(), "{}", out.describe());
    }
}

#[test]
fn a_silenced_domain_is_forwarded_and_says_it_is_silenced() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("blocks.csv");
    std::fs::write(
        &csv,
        "#domain,#severity,#reject_media,#reject_reports,#public_comment\n\
         loud.example,silence,false,false,Too noisy\n",
    )
    .unwrap();
    let config = dir.path().join("inboxguard.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:18080\"\n\n\
             [upstream]\nurl = \"http://127.0.0.1:13000\"\n\n\
             [[blocklists]]\npath = {}\n",
            toml::Value::String(csv.display().to_string())
        ),
    )
    .unwrap();
    let out = explain(&config, "sub.loud.example");
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout
            .contains("decision: forward\nreason: silenced (forwarded; Mastodon limits it)\n"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains(&format!(
            "rule in force: loud.example ({}:2)",
            csv.display()
        )),
        "{}",
        out.describe()
    );
}
