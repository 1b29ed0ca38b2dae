//! The real binary, run as an operator runs it: `check`, `serve` with a bad config, `demo`,
//! `--help`, with their exit codes and what they print.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_inboxguard");
/// `check` answers at once; `demo` generates several RSA keys in a debug build while other
/// tests run. Both bounds only turn a hang into a failure.
const QUICK: Duration = Duration::from_secs(60);
const DEMO: Duration = Duration::from_secs(300);

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs the binary with `args` (in `dir` if given), killing it if it outlives `deadline`.
fn run(args: &[&str], dir: Option<&Path>, deadline: Duration) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The test runner's RUST_LOG must not change what the binary prints.
        .env_remove("RUST_LOG");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn().unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("inboxguard {args:?} still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A TOML basic string.
fn quote(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

/// Writes `inboxguard.toml` into `dir` with the given blocklist paths and extra TOML.
fn write_config(dir: &Path, blocklists: &[&Path], extra_server: &str) -> PathBuf {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:18080\"\n{extra_server}\n\
         [upstream]\nurl = \"http://127.0.0.1:13000\"\n\n\
         [admin]\nlisten = \"127.0.0.1:19100\"\n\n"
    );
    for path in blocklists {
        text.push_str(&format!("[[blocklists]]\npath = {}\n\n", quote(path)));
    }
    let config = dir.join("inboxguard.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// A loopback address no one listens on right now.
fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn check_accepts_a_valid_config_and_summarises_it() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("domain_blocks.csv");
    std::fs::write(
        &csv,
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n\
         spam.example,suspend,false,false,,false\n\
         worse.example,suspend,false,false,,false\n\
         limited.example,silence,false,false,,false\n\
         reports.example,noop,false,true,,false\n",
    )
    .unwrap();
    let plain = dir.path().join("extra.txt");
    std::fs::write(
        &plain,
        "# one per line\nbad.example\nother.example\nthird.example\n",
    )
    .unwrap();
    let config = write_config(dir.path(), &[&csv, &plain], "");

    let out = run(&["check", "--config", arg(&config)], None, QUICK);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    let stdout = &out.stdout;
    for expected in [
        "127.0.0.1:18080".to_string(),
        "http://127.0.0.1:13000".to_string(),
        format!("{}: suspend=2 silence=1 noop=1", csv.display()),
        format!("{}: suspend=3 silence=0 noop=0", plain.display()),
    ] {
        assert!(
            stdout.contains(&expected),
            "missing {expected:?}\n{}",
            out.describe()
        );
    }
    let listen_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("listen"))
        .unwrap_or_else(|| panic!("no listen line\n{}", out.describe()));
    assert!(listen_line.contains("127.0.0.1:18080"), "{listen_line}");
    let upstream_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("upstream"))
        .unwrap_or_else(|| panic!("no upstream line\n{}", out.describe()));
    assert!(
        upstream_line.contains("http://127.0.0.1:13000"),
        "{upstream_line}"
    );
}

#[test]
fn check_refuses_an_unknown_key_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    // `[server]` is line 1, `listen` line 2, the unknown key line 3.
    let config = write_config(dir.path(), &[], "listen_backlog = 128\n");
    let out = run(&["check", "--config", arg(&config)], None, QUICK);
    assert_eq!(out.code(), Some(64), "{}", out.describe());
    assert!(
        out.stderr.contains(&config.display().to_string()),
        "{}",
        out.describe()
    );
    assert!(out.stderr.contains("line 3"), "{}", out.describe());
    assert!(out.stderr.contains("listen_backlog"), "{}", out.describe());
    assert!(!out.stdout.contains("is valid"), "{}", out.describe());
}

#[test]
fn check_refuses_a_bad_severity_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("domain_blocks.csv");
    std::fs::write(
        &csv,
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n\
         fine.example,suspend,false,false,,false\n\
         typo.example,block,false,false,,false\n\
         after.example,silence,false,false,,false\n",
    )
    .unwrap();
    let config = write_config(dir.path(), &[&csv], "");
    let out = run(&["check", "--config", arg(&config)], None, QUICK);
    assert_eq!(out.code(), Some(64), "{}", out.describe());
    assert!(
        out.stderr.contains(&format!("{}:3", csv.display())),
        "{}",
        out.describe()
    );
    assert!(out.stderr.contains("block"), "{}", out.describe());
}

#[test]
fn check_accepts_the_shipped_example_config_unchanged() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = run(
        &["check", "--config", "config/inboxguard.example.toml"],
        Some(root),
        QUICK,
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains("config/blocklist.csv"),
        "{}",
        out.describe()
    );
}

/// The systemd steps of deploy/README.md, into a tempdir standing for `/etc/inboxguard`:
/// the shipped example config and the starter blocklist, checked from the unit's
/// `WorkingDirectory`.
#[test]
fn the_shipped_example_passes_check_where_the_deploy_docs_install_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let etc = tempfile::tempdir().unwrap();
    std::fs::create_dir(etc.path().join("config")).unwrap();
    std::fs::copy(
        root.join("config/inboxguard.example.toml"),
        etc.path().join("inboxguard.toml"),
    )
    .unwrap();
    std::fs::copy(
        root.join("config/blocklist.csv"),
        etc.path().join("config/blocklist.csv"),
    )
    .unwrap();
    let config = etc.path().join("inboxguard.toml");
    let out = run(
        &["check", "--config", arg(&config)],
        Some(etc.path()),
        QUICK,
    );
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains(&format!(
            "relative paths (config/blocklist.csv) resolved against the working directory {}",
            etc.path().display()
        )),
        "{}",
        out.describe()
    );

    // Run by hand from elsewhere: the error says where the path pointed.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run(
        &["check", "--config", arg(&config)],
        Some(elsewhere.path()),
        QUICK,
    );
    assert_eq!(out.code(), Some(64), "{}", out.describe());
    assert!(
        out.stderr
            .contains(&format!("working directory {}", elsewhere.path().display())),
        "{}",
        out.describe()
    );
}

/// config/rules.toml loads as shipped (every entry commented out) and with its entries
/// uncommented, so the example stays a valid rules file.
#[test]
fn the_example_rules_file_loads_commented_and_uncommented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = std::fs::read_to_string(root.join("config/rules.toml")).unwrap();
    let uncommented: String = shipped
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if !rest.is_empty() && !rest.starts_with([' ', '#']) => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for (name, text, summary) in [
        (
            "shipped.toml",
            &shipped,
            "suspend=0 silence=0 noop=0 allow=0 exclude=0 actor_suspend=0",
        ),
        (
            "uncommented.toml",
            &uncommented,
            "suspend=1 silence=0 noop=0 allow=1 exclude=1 actor_suspend=1",
        ),
    ] {
        let rules = dir.path().join(name);
        std::fs::write(&rules, text).unwrap();
        let config = write_config(dir.path(), &[&rules], "");
        let out = run(&["check", "--config", arg(&config)], None, QUICK);
        assert_eq!(out.code(), Some(0), "{name}: {}", out.describe());
        assert!(
            out.stdout
                .contains(&format!("{}: {summary}", rules.display())),
            "{name}: {}",
            out.describe()
        );
    }
}

#[test]
fn a_csv_without_its_header_is_reported_as_read_as_a_plain_list() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("domain_blocks.csv");
    std::fs::write(
        &csv,
        "spam.example,suspend,false,false,,false
",
    )
    .unwrap();
    let config = write_config(dir.path(), &[&csv], "");
    let out = run(&["check", "--config", arg(&config)], None, QUICK);
    assert_eq!(out.code(), Some(64), "{}", out.describe());
    assert!(
        out.stderr
            .contains(&format!("{}:1: invalid domain", csv.display()))
            && out.stderr.contains("read as a plain list")
            && out.stderr.contains("#domain,#severity"),
        "{}",
        out.describe()
    );
}

#[test]
fn serve_refuses_a_bad_config_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[], "listen_backlog = 128\n");
    let out = run(&["serve", "--config", arg(&config)], None, QUICK);
    assert_eq!(out.code(), Some(64), "{}", out.describe());
    assert!(out.stderr.contains("listen_backlog"), "{}", out.describe());

    let missing = dir.path().join("does-not-exist.toml");
    let out = run(&["serve", "--config", arg(&missing)], None, QUICK);
    assert_eq!(out.code(), Some(64), "{}", out.describe());
    assert!(
        out.stderr.contains("does-not-exist.toml"),
        "{}",
        out.describe()
    );
}

#[test]
fn serve_refuses_a_broken_blocklist() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("domain_blocks.csv");
    std::fs::write(&csv, "#domain,#severity\nbad.example,block\n").unwrap();
    // `serve` binds before it loads the rules, so the ports must be free (a busy one would
    // answer 1); both the same port 0 is refused by validation.
    let config = dir.path().join("inboxguard.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{}\"\n[upstream]\nurl = \"http://127.0.0.1:13000\"\n\
             [admin]\nlisten = \"{}\"\n[[blocklists]]\npath = {}\n",
            free_port(),
            free_port(),
            quote(&csv)
        ),
    )
    .unwrap();
    let out = run(&["serve", "--config", arg(&config)], None, QUICK);
    assert_eq!(out.code(), Some(64), "{}", out.describe());
    assert!(
        out.stdout.contains(&format!("{}:2", csv.display()))
            || out.stderr.contains(&format!("{}:2", csv.display())),
        "{}",
        out.describe()
    );
}

#[test]
fn demo_runs_every_scripted_case() {
    let out = run(&["demo"], None, DEMO);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    // (decision, reason, status) of each case the README promises.
    for (decision, reason, status) in [
        ("forwarded", "forwarded", "202"),
        ("rejected", "bad_signature", "401"),
        ("rejected", "digest_mismatch", "401"),
        ("rejected", "outside_window", "401"),
        ("rejected", "suspended_key_host", "403"),
        ("dropped", "reject_reports", "202"),
        ("dropped", "gone_actor", "202"),
        ("dropped", "laundered_announce", "202"),
        ("rejected", "actor_suspended", "403"),
    ] {
        let found = out.stdout.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() >= 3 && fields[fields.len() - 3..] == [decision, reason, status]
        });
        assert!(
            found,
            "no line ending in `{decision} {reason} {status}`\n{}",
            out.describe()
        );
    }
    // The floods no domain rule names: each shed by its own rule or gate, ordinary posts kept.
    for wanted in [
        "mention-spam wave                 70 sent: 10 forwarded (the 10 ordinary posts); 60 dropped content_rule",
        "Delete storm (one id, repeated)   20 sent: 1 forwarded; 19 dropped duplicate",
        "PeerTube View flood               20 sent: 0 forwarded; 20 dropped unhandled_type",
    ] {
        assert!(
            out.stdout.lines().any(|l| l.trim() == wanted),
            "no line `{wanted}`\n{}",
            out.describe()
        );
    }
}

#[test]
fn help_lists_the_commands() {
    let out = run(&["--help"], None, QUICK);
    assert_eq!(out.code(), Some(0), "{}", out.describe());
    for command in ["serve", "check", "healthcheck", "demo"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(command)),
            "{command} not listed\n{}",
            out.describe()
        );
    }
}
