use super::*;

/// The minimal documented configuration; it must load unchanged.
const EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8080"          # where Mastodon's edge (nginx) sends inbox traffic
max_body_bytes = 1048576           # Mastodon's own inbox cap is 1 MiB -> 413 above it

[upstream]
url = "http://127.0.0.1:3000"      # Mastodon's Puma
timeout_secs = 30

[admin]
listen = "127.0.0.1:9100"          # /metrics /healthz /readyz /admin/reload

[signatures]
clock_skew_secs = 3600             # Mastodon: CLOCK_SKEW_MARGIN = 1 h
max_age_secs = 43200               # Mastodon: EXPIRATION_WINDOW_LIMIT = 12 h

[key_fetch]
timeout_secs = 10
cache_ttl_secs = 86400
cache_capacity = 100000
allow_http = false                 # true only for tests and the demo
allow_private_addresses = false    # true only for tests and the demo
# Optional signed fetch (for remotes in authorized-fetch mode): the instance actor's key.
# key_id = "https://example.social/actor#main-key"
# private_key_file = "/etc/inboxguard/instance-actor.pem"

[key_fetch.resolve]                # like curl --resolve: host -> address, overrides DNS
# "remote.example" = "127.0.0.1:9000"

[[blocklists]]
path = "config/blocklist.csv"      # Mastodon's domain_blocks.csv export, or one domain per line
"#;

#[test]
fn the_documented_example_loads() {
    let c = Config::from_toml(EXAMPLE, Path::new("x.toml")).expect("loads");
    assert_eq!(c.server.max_body_bytes, 1048576);
    assert_eq!(c.blocklists.len(), 1);
    assert_eq!(c.upstream_uri().expect("uri").port_u16(), Some(3000));
}

#[test]
fn public_scheme_defaults_to_https_and_is_checked() {
    let c = Config::from_toml(EXAMPLE, Path::new("x.toml")).expect("loads");
    assert_eq!(c.server.public_scheme, PublicScheme::Https);
    let text = EXAMPLE.replace(
        "max_body_bytes = 1048576 ",
        "public_scheme = \"http\"\nmax_body_bytes = 1048576 ",
    );
    let c = Config::from_toml(&text, Path::new("x.toml")).expect("loads");
    assert_eq!(c.server.public_scheme.as_str(), "http");
    let text = text.replace("\"http\"\n", "\"ftp\"\n");
    assert!(Config::from_toml(&text, Path::new("x.toml")).is_err());
}

#[test]
fn unknown_key_is_an_error_with_a_line() {
    let text = EXAMPLE.replace("timeout_secs = 30", "timeout_sec = 30");
    let e = Config::from_toml(&text, Path::new("x.toml")).expect_err("must fail");
    let msg = e.to_string();
    assert!(msg.contains("x.toml") && msg.contains("line 8"), "{msg}");
}

#[test]
fn public_admin_needs_a_token() {
    let text = EXAMPLE.replace("127.0.0.1:9100", "0.0.0.0:9100");
    let e = Config::from_toml(&text, Path::new("x.toml")).expect_err("must fail");
    assert!(e.to_string().contains("admin.token_file"));
}

#[test]
fn the_journal_keeps_ten_thousand_of_each_and_refuses_zero() {
    let c = Config::from_toml(EXAMPLE, Path::new("x.toml")).expect("loads");
    assert_eq!(
        (c.admin.journal_decisions, c.admin.journal_domains),
        (10_000, 10_000)
    );
    assert!(!c.admin.journal_client_ip);
    let text = EXAMPLE.replace(
        "listen = \"127.0.0.1:9100\"",
        "listen = \"127.0.0.1:9100\"\njournal_decisions = 0",
    );
    let e = Config::from_toml(&text, Path::new("x.toml")).expect_err("must fail");
    assert!(e.to_string().contains("admin.journal_decisions"), "{e}");
}

#[test]
fn friendly_federators_defaults_and_the_inline_table_spelling() {
    let c = Config::from_toml(EXAMPLE, Path::new("x.toml")).expect("loads");
    let ff = &c.friendly_federators;
    assert!(ff.announce && ff.attributed_to && !ff.reply && !ff.quote && !ff.mention);
    assert_eq!((ff.threshold, ff.window_days()), (None, 7));
    assert_eq!(ff.action(), EscalationAction::Report);

    let text = format!(
        "friendly_federators = {{ threshold = 50, window = \"2w\", action = \"suspend\" }}\n{EXAMPLE}"
    );
    let c = Config::from_toml(&text, Path::new("x.toml")).expect("the inline-table spelling loads");
    let ff = &c.friendly_federators;
    assert_eq!((ff.threshold, ff.window_days()), (Some(50), 14));
    assert_eq!(ff.action(), EscalationAction::Suspend);

    for (bad, key) in [
        ("window = \"7h\"", "line"),
        ("window = \"91d\"", "line"),
        ("window = \"0d\"", "line"),
        ("action = \"ban\"", "line"),
        ("threshold = 0", "friendly_federators.threshold"),
        ("action = \"limit\"", "friendly_federators.threshold"),
        (
            "max_tracked_domains = 0",
            "friendly_federators.max_tracked_domains",
        ),
        (
            "persist_interval_secs = 0",
            "friendly_federators.persist_interval_secs",
        ),
        ("mentions = true", "line"),
    ] {
        let text = format!("{EXAMPLE}\n[friendly_federators]\n{bad}\n");
        let e = Config::from_toml(&text, Path::new("x.toml")).expect_err(bad);
        assert!(e.to_string().contains(key), "{bad}: {e}");
    }
}

#[test]
fn https_upstream_is_refused() {
    let text = EXAMPLE.replace("http://127.0.0.1:3000", "https://127.0.0.1:3000");
    assert!(Config::from_toml(&text, Path::new("x.toml")).is_err());
}

#[test]
fn policy_and_source_kinds_are_validated() {
    let c = Config::from_toml(EXAMPLE, Path::new("x.toml")).expect("loads");
    assert_eq!(c.policy.mode, PolicyMode::Blocklist);
    assert_eq!(c.policy.subscription_threshold, 1);
    assert_eq!(c.blocklists[0].kind, SourceKind::Block);
    assert!(!c.blocklists[0].is_toml());
    let with = |extra: &str| Config::from_toml(&format!("{EXAMPLE}{extra}"), Path::new("x.toml"));
    let c = with("kind = \"allow\"\npriority = 5\n[policy]\nmode = \"allowlist\"\nsubscription_threshold = 3\n")
        .expect("loads");
    assert_eq!(
        (
            c.blocklists[0].kind,
            c.blocklists[0].priority,
            c.policy.mode
        ),
        (SourceKind::Allow, 5, PolicyMode::Allowlist)
    );
    assert_eq!(c.policy.subscription_threshold, 3);
    for (extra, key) in [
        (
            "[policy]\nsubscription_threshold = 0\n",
            "policy.subscription_threshold",
        ),
        ("exclude = true\ndry_run = true\n", "blocklists.dry_run"),
        ("kind = \"allow\"\ndry_run = true\n", "blocklists.dry_run"),
        (
            "[[blocklists]]\npath = \"rules.toml\"\nexclude = true\n",
            "blocklists.kind",
        ),
    ] {
        let e = with(extra).expect_err(extra);
        assert!(e.to_string().contains(key), "{extra}: {e}");
    }
    assert!(with("[policy]\nmode = \"openlist\"\n").is_err());
    let c = with("[[blocklists]]\npath = \"r.TOML\"\n").expect("loads");
    assert!(c.blocklists[1].is_toml());
}

#[test]
fn a_wrong_type_names_its_key() {
    let text = EXAMPLE.replace("timeout_secs = 30", "timeout_secs = \"30s\"");
    let e = Config::from_toml(&text, Path::new("x.toml")).expect_err("must fail");
    assert_eq!(
        e.to_string(),
        "x.toml: line 8: upstream.timeout_secs: invalid type: string \"30s\", expected u64"
    );
}

/// The config file and a rules file's `[friendly_federators]` table accept the same windows
/// and read them as the same number of days.
#[test]
fn config_and_rules_file_agree_on_windows() {
    use crate::policy::sources::parse_bytes;
    use std::sync::Arc;
    for window in [
        "7d", "2w", "48h", "90d", "1d", "12h", "7h", "91d", "0d", "30m", "1440m", "soon", "13w",
    ] {
        let config =
            format!("{EXAMPLE}\n[friendly_federators]\nthreshold = 5\nwindow = \"{window}\"\n");
        let from_config = Config::from_toml(&config, Path::new("x.toml"))
            .map(|c| u64::from(c.friendly_federators.window_days()));
        let table = format!("[friendly_federators]\nwindow = \"{window}\"\n");
        let from_rules = parse_bytes(
            table.as_bytes(),
            Arc::from("rules.toml"),
            BlocklistFormat::Toml,
        )
        .map(|p| {
            let window = p.friendly_federators.and_then(|t| t.window);
            window.map_or(0, |w| w.as_secs() / 86_400)
        });
        match (from_config, from_rules) {
            (Ok(config), Ok(rules)) => assert_eq!(config, rules, "{window}"),
            (Err(_), Err(_)) => {}
            (config, rules) => panic!("{window}: config {config:?}, rules file {rules:?}"),
        }
    }
}
