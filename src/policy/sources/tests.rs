use super::*;
use crate::policy::escalation::EscalationAction;
use crate::policy::{DomainRule, Severity};
use crate::rule_files::{parse_file, parse_file_as};
use std::path::Path;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/blocklists")
        .join(name)
}

fn parse(text: &str, format: BlocklistFormat) -> Result<ParsedSource, LoadError> {
    parse_bytes(text.as_bytes(), Arc::from("mem.csv"), format)
}

fn find<'a>(p: &'a ParsedSource, domain: &str) -> &'a DomainRule {
    p.rules
        .iter()
        .find(|r| *r.domain == *domain)
        .unwrap_or_else(|| panic!("{domain} not parsed"))
}

#[test]
fn mastodon_export_fixture() {
    let p = parse_file(&fixture("mastodon.csv"), BlocklistFormat::Auto).expect("parses");
    assert_eq!(p.format, Format::MastodonCsv);
    assert_eq!(p.rules.len(), 6);
    let spam = find(&p, "spam.example");
    assert_eq!(spam.severity, Severity::Suspend);
    assert!(spam.reject_media && spam.reject_reports);
    assert_eq!(
        spam.public_comment.as_deref(),
        Some("Spam, harassment, and \"free speech\" trolling")
    );
    assert_eq!(spam.line, 2);
    assert!(spam
        .source
        .ends_with("tests/fixtures/blocklists/mastodon.csv"));
    let limited = find(&p, "limited.example");
    assert_eq!(limited.severity, Severity::Silence);
    assert!(!limited.reject_reports && limited.reject_media);
    assert_eq!(limited.public_comment, None);
    let reports = find(&p, "reports.example");
    assert_eq!(reports.severity, Severity::Noop);
    assert!(reports.reject_reports);
    // Normalised: upper case, IDN and trailing dot in the file.
    assert_eq!(
        find(&p, "xn--bcher-kva.example").severity,
        Severity::Suspend
    );
    assert_eq!(find(&p, "loud.example").severity, Severity::Silence);
    // The public comment's embedded newline keeps later line numbers right.
    assert_eq!(find(&p, "after.example").line, 9);
    assert_eq!((p.obfuscated, p.first_obfuscated_line), (1, Some(6)));
    assert_eq!(p.duplicates, 0);
}

#[test]
fn missing_columns_default_to_suspend() {
    let p = parse_file(&fixture("missing_columns.csv"), BlocklistFormat::Auto).expect("ok");
    assert_eq!(p.format, Format::MastodonCsv);
    let all = each_rule(&p, |r| (&*r.domain, r.severity, r.reject_reports));
    assert_eq!(
        all,
        [
            ("full.example", Severity::Silence, true),
            ("short.example", Severity::Silence, false),
            ("bare.example", Severity::Suspend, false),
            ("empty-severity.example", Severity::Suspend, false),
        ]
    );
}

#[test]
fn bad_severity_names_file_and_line() {
    let e = parse_file(&fixture("bad_severity.csv"), BlocklistFormat::Auto).expect_err("must fail");
    assert_eq!(e.line, 4);
    assert!(matches!(&e.kind, LoadErrorKind::UnknownSeverity { value } if value == "block"));
    let msg = e.to_string();
    assert!(
        msg.contains("tests/fixtures/blocklists/bad_severity.csv:4: unknown severity \"block\""),
        "{msg}"
    );
}

#[test]
fn plain_list_fixture() {
    let p = parse_file(&fixture("plain.txt"), BlocklistFormat::Auto).expect("parses");
    assert_eq!(p.format, Format::Plain);
    let domains: Vec<_> = p.rules.iter().map(|r| (&*r.domain, r.line)).collect();
    assert_eq!(
        domains,
        [
            ("bad.example", 3),
            ("worse.example", 4),
            ("xn--bcher-kva.example", 7),
            ("trailing.example", 8),
        ]
    );
    assert!(p
        .rules
        .iter()
        .all(|r| r.severity == Severity::Suspend && !r.reject_reports));
    let comments = each_rule(&p, |r| r.public_comment.as_deref());
    assert_eq!(comments, [None, Some("inline comment"), None, None]);
    assert_eq!((p.duplicates, p.first_duplicate_line), (1, Some(9)));
    assert_eq!((p.obfuscated, p.first_obfuscated_line), (1, Some(10)));
}

#[test]
fn bom_and_crlf() {
    let p = parse_file(&fixture("bom_crlf.csv"), BlocklistFormat::Auto).expect("parses");
    assert_eq!(
        p.format,
        Format::MastodonCsv,
        "the BOM must not hide the header"
    );
    let got = each_rule(&p, |r| (&*r.domain, r.severity, r.reject_reports, r.line));
    assert_eq!(
        got,
        [
            ("crlf.example", Severity::Suspend, true, 2),
            ("second.example", Severity::Noop, false, 3),
        ]
    );
    assert_eq!(
        find(&p, "crlf.example").public_comment.as_deref(),
        Some("windows")
    );
    let plain = parse_bytes(
        b"\xEF\xBB\xBFbom.example\r\n# c\r\nnext.example # why\r\n",
        Arc::from("p.txt"),
        BlocklistFormat::Auto,
    )
    .expect("parses");
    let got: Vec<_> = plain.rules.iter().map(|r| (&*r.domain, r.line)).collect();
    assert_eq!(got, [("bom.example", 1), ("next.example", 3)]);
}

#[test]
fn invalid_domain_names_the_line_and_text() {
    let e = parse(
        "#domain,#severity\nok.example,suspend\nbad..example,silence\n",
        BlocklistFormat::Auto,
    )
    .expect_err("must fail");
    assert_eq!(e.line, 3);
    assert_eq!(e.to_string(), "mem.csv:3: invalid domain \"bad..example\"");
    let e = parse("ok.example\n\nnot a domain\n", BlocklistFormat::Auto).expect_err("fail");
    assert_eq!(e.to_string(), "mem.csv:3: invalid domain \"not a domain\"");
    let e = parse("#domain,#severity\n , \n,suspend\n", BlocklistFormat::Auto).expect_err("fail");
    assert_eq!(e.to_string(), "mem.csv:3: invalid domain \"\"");
}

#[test]
fn booleans_cast_like_rails_but_strictly() {
    for (word, want) in [
        ("true", true),
        ("TRUE", true),
        ("t", true),
        ("1", true),
        ("yes", true),
        ("On", true),
        ("false", false),
        ("F", false),
        ("0", false),
        ("no", false),
        ("off", false),
    ] {
        let text = format!(
            "#domain,#severity,#reject_media,#reject_reports\nx.example,noop,false,{word}\n"
        );
        let p = parse(&text, BlocklistFormat::Auto).expect(word);
        assert_eq!(p.rules[0].reject_reports, want, "{word}");
    }
    let e = parse(
        "#domain,#severity,#reject_media,#reject_reports\nx.example,noop,maybe,true\n",
        BlocklistFormat::Auto,
    )
    .expect_err("fail");
    assert_eq!(e.line, 2);
    assert!(e
        .to_string()
        .contains("#reject_media: \"maybe\" is not a boolean"));
}

#[test]
fn columns_are_found_by_name() {
    let p = parse(
        "#domain,#private_comment,#reject_reports,#severity\nx.example,secret,true,SILENCE\n",
        BlocklistFormat::Auto,
    )
    .expect("parses");
    let r = &p.rules[0];
    assert_eq!(
        (r.severity, r.reject_reports, r.reject_media),
        (Severity::Silence, true, false)
    );
}

#[test]
fn duplicates_keep_the_harsher_rule() {
    let p = parse(
        "#domain,#severity,#reject_media,#reject_reports\n\
         dup.example,silence,false,false\n\
         DUP.example.,suspend,false,false\n\
         dup.example,noop,true,true\n",
        BlocklistFormat::Auto,
    )
    .expect("parses");
    assert_eq!(p.rules.len(), 1);
    assert_eq!(
        (p.rules[0].severity, p.rules[0].line),
        (Severity::Suspend, 3)
    );
    assert_eq!((p.duplicates, p.first_duplicate_line), (2, Some(3)));
}

#[test]
fn obfuscated_entries_with_a_digest_become_digest_rules() {
    use crate::policy::{digest_hex, domain_digest};
    let bad = digest_hex(&domain_digest("bad.example"));
    let other = digest_hex(&domain_digest("bar.example"));
    let text = format!(
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate,#digest\n\
         ba*.example,suspend,false,true,spam,true,{}\n\
         ba*.example,silence,false,false,,true,{other}\n\
         no**.example,suspend,false,false,,true,\n\
         plain.example,silence,false,false,,false,{bad}\n",
        bad.to_ascii_uppercase()
    );
    let p = parse(&text, BlocklistFormat::Auto).expect("parses");
    assert_eq!(p.rules.len(), 3, "same text, different digests: two rules");
    assert_eq!(&*p.rules[0].domain, "ba*.example");
    assert_eq!(
        p.rules[0].digest.as_deref(),
        Some(&domain_digest("bad.example"))
    );
    assert!(p.rules[0].reject_reports);
    assert_eq!(
        p.rules[1].digest.as_deref(),
        Some(&domain_digest("bar.example"))
    );
    assert_eq!((p.obfuscated, p.first_obfuscated_line), (1, Some(4)));
    // A named entry is matched by name; its digest column is not needed.
    assert_eq!(
        (&*p.rules[2].domain, p.rules[2].digest.as_deref()),
        ("plain.example", None)
    );

    let e = parse(
        "#domain,#digest\nba*.example,nothex\n",
        BlocklistFormat::Auto,
    )
    .expect_err("bad digest");
    assert_eq!(
        e.to_string(),
        "mem.csv:2: invalid SHA-256 digest \"nothex\" (expected 64 hex digits)"
    );
}

#[test]
fn plain_lists_take_sha256_entries() {
    use crate::policy::{digest_hex, domain_digest};
    let hex = digest_hex(&domain_digest("bad.example"));
    let text = format!("sha256:{hex} # bad, obfuscated\nSHA256:{hex}\nok.example\n");
    let p = parse(&text, BlocklistFormat::Auto).expect("parses");
    assert_eq!(p.rules.len(), 2);
    assert_eq!(&*p.rules[0].domain, format!("sha256:{hex}"));
    assert_eq!(
        p.rules[0].digest.as_deref(),
        Some(&domain_digest("bad.example"))
    );
    assert_eq!(p.rules[0].severity, Severity::Suspend);
    assert_eq!((p.duplicates, p.first_duplicate_line), (1, Some(2)));
    let e = parse("sha256:1234\n", BlocklistFormat::Auto).expect_err("short");
    assert_eq!(e.line, 1);
    assert!(matches!(e.kind, LoadErrorKind::InvalidDigest { .. }));
}

#[test]
fn folded_duplicates_keep_first_appearance_order() {
    let p = parse(
        "a.example\nb.example\n#x\nc.example\n",
        BlocklistFormat::Plain,
    )
    .expect("parses");
    assert_eq!(p.duplicates, 0);
    let p = parse(
        "#domain,#severity\n\
         a.example,noop\n\
         b.example,silence\n\
         a.example,suspend\n\
         c.example,noop\n\
         b.example,noop\n",
        BlocklistFormat::Auto,
    )
    .expect("parses");
    let got = each_rule(&p, |r| (&*r.domain, r.severity, r.line));
    assert_eq!(
        got,
        [
            ("a.example", Severity::Suspend, 4),
            ("b.example", Severity::Silence, 3),
            ("c.example", Severity::Noop, 5),
        ]
    );
    assert_eq!((p.duplicates, p.first_duplicate_line), (2, Some(4)));
}

#[test]
fn forced_formats() {
    let e = parse("bad.example\n", BlocklistFormat::MastodonCsv).expect_err("no header");
    assert!(matches!(e.kind, LoadErrorKind::MissingHeader));
    assert_eq!(e.line, 1);
    // Forced plain: the export header is just a comment line, and a CSV row is not a domain.
    let p = parse(
        &format!("{MASTODON_HEADER}\nbad.example\n"),
        BlocklistFormat::Plain,
    )
    .expect("plain");
    assert_eq!(p.format, Format::Plain);
    assert_eq!(&*p.rules[0].domain, "bad.example");
    assert!(parse("bad.example,silence\n", BlocklistFormat::Plain).is_err());
    // The header alone is an empty list (the shipped starter file).
    let p = parse(&format!("{MASTODON_HEADER}\n"), BlocklistFormat::Auto).expect("empty");
    assert_eq!((p.format, p.rules.len()), (Format::MastodonCsv, 0));
    assert_eq!(
        parse("", BlocklistFormat::Auto).expect("empty").rules.len(),
        0
    );
}

#[test]
fn bounds_and_encoding() {
    let long = format!("ok.example\n# {}\n", "x".repeat(MAX_LINE_BYTES));
    let e = parse(&long, BlocklistFormat::Auto).expect_err("too long");
    assert_eq!(e.line, 2);
    assert!(matches!(e.kind, LoadErrorKind::LineTooLong { .. }));
    let e = parse_bytes(
        b"ok.example\nbad\xff.example\n",
        Arc::from("b.txt"),
        BlocklistFormat::Auto,
    )
    .expect_err("not utf-8");
    assert_eq!(
        (e.line, e.to_string().as_str()),
        (2, "b.txt:2: not valid UTF-8")
    );
    let e = parse_file(
        Path::new("/nonexistent/blocklist.csv"),
        BlocklistFormat::Auto,
    )
    .expect_err("missing");
    assert_eq!(e.line, 0);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/blocklist.csv: cannot read: "),
        "{e}"
    );
}

#[test]
fn example_and_starter_configs_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = parse_file(
        &root.join("config/blocklist.example.csv"),
        BlocklistFormat::Auto,
    )
    .expect("example parses");
    assert_eq!(example.format, Format::MastodonCsv);
    assert!(example
        .rules
        .iter()
        .any(|r| r.severity == Severity::Suspend));
    assert!(example
        .rules
        .iter()
        .any(|r| r.severity == Severity::Silence));
    assert!(example
        .rules
        .iter()
        .any(|r| r.severity == Severity::Noop && r.reject_reports));
    assert!(example.rules.iter().all(|r| r.domain.ends_with(".example")));
    let starter = parse_file(&root.join("config/blocklist.csv"), BlocklistFormat::Auto)
        .expect("starter parses");
    assert_eq!(
        (starter.format, starter.rules.len()),
        (Format::MastodonCsv, 0)
    );
}

#[test]
fn mastodon_allows_fixture_and_plain_allow_list() {
    let p = parse_file_as(
        &fixture("domain_allows.csv"),
        BlocklistFormat::Auto,
        SourceKind::Allow,
    )
    .expect("parses");
    assert_eq!(p.format, Format::MastodonCsv);
    assert!(p.rules.is_empty());
    let got: Vec<_> = p.allows.iter().map(|e| (&*e.domain, e.line)).collect();
    assert_eq!(
        got,
        [
            ("friend.example", 2),
            ("partner.example", 3),
            ("xn--bcher-kva.example", 5),
        ]
    );
    assert_eq!((p.obfuscated, p.first_obfuscated_line), (1, Some(6)));
    let p = parse_file_as(
        &fixture("allows.txt"),
        BlocklistFormat::Auto,
        SourceKind::Allow,
    )
    .expect("parses");
    assert_eq!(p.format, Format::Plain);
    let got: Vec<_> = p.allows.iter().map(|e| &*e.domain).collect();
    assert_eq!(got, ["friend.example", "partner.example"]);
    let e = parse_file_as(
        &fixture("bad_allows.csv"),
        BlocklistFormat::Auto,
        SourceKind::Allow,
    )
    .expect_err("digest in an allow list");
    assert!(
        e.to_string().ends_with(
            "bad_allows.csv:3: \"sha256:a379a6f6eeafb9a55e378c118034e2751e682fab9f2d30ab13d2125586ce1947\": \
             only block rules can be given by digest; name the domain"
        ),
        "{e}"
    );
}

#[test]
fn toml_rules_fixture() {
    let p = parse_file(&fixture("rules.toml"), BlocklistFormat::Auto).expect("parses");
    assert_eq!(p.format, Format::Toml);
    let rules = each_rule(&p, |r| {
        (
            &*r.domain,
            r.severity,
            r.reject_media,
            r.reject_reports,
            r.dry_run,
            r.line,
        )
    });
    assert_eq!(
        rules,
        [
            ("bad.example", Severity::Suspend, false, true, false, 4),
            ("preview.example", Severity::Suspend, false, false, true, 10),
            ("limited.example", Severity::Silence, true, false, false, 16),
        ]
    );
    assert_eq!(
        p.rules[0].public_comment.as_deref(),
        Some("spam and harassment")
    );
    assert_eq!(
        (&*p.allows[0].domain, p.allows[0].line),
        ("friend.example", 21)
    );
    assert_eq!(p.allows[0].comment.as_deref(), Some("sister instance"));
    assert_eq!(
        (&*p.exceptions[0].domain, p.exceptions[0].line),
        ("ok.bad.example", 25)
    );
    let actors: Vec<_> = p
        .actors
        .iter()
        .map(|a| (a.actor.as_str(), a.dry_run, a.line))
        .collect();
    assert_eq!(
        actors,
        [
            ("@mallory@elsewhere.example", false, 29),
            ("https://elsewhere.example/users/preview", true, 33),
        ]
    );
    assert!(p.actors[0].source.ends_with("rules.toml"));
    let ff = p.friendly_federators.expect("table");
    assert_eq!(ff.reply, Some(true));
    assert_eq!(ff.threshold, Some(20));
    assert_eq!(ff.window.map(|w| w.as_secs()), Some(7 * 86_400));
    assert_eq!(ff.action, Some(EscalationAction::Limit));
    assert_eq!(ff.line, 36);
    // A forced format reads any name as TOML.
    let forced = parse_bytes(
        b"[[domain]]\ndomain = \"x.example\"\n",
        Arc::from("rules.conf"),
        BlocklistFormat::Toml,
    )
    .expect("forced");
    assert_eq!((forced.format, forced.rules.len()), (Format::Toml, 1));
}

/// The fixture `name` is refused at `line`, the error naming the file, the line and `message`.
fn refused_at(name: &str, line: usize, message: &str) {
    let e = parse_file(&fixture(name), BlocklistFormat::Auto).expect_err(name);
    assert_eq!(e.line, line, "{name}: {e}");
    let text = e.to_string();
    assert!(
        text.contains(&format!("tests/fixtures/blocklists/{name}:{line}: "))
            && text.contains(message),
        "{name}: {text}"
    );
}

#[test]
fn malformed_toml_rules_name_file_and_line() {
    for (name, line, message) in [
        (
            "bad_actor.toml",
            6,
            "invalid actor \"mallory at elsewhere\" (expected an https:// actor URI or @user@host)",
        ),
        ("bad_syntax.toml", 3, "unknown variant `obliterate`"),
        ("bad_key.toml", 6, "unknown field `reason`"),
        ("bad_domain.toml", 5, "invalid domain \"not a domain\""),
    ] {
        refused_at(name, line, message);
    }
    let e = parse("[[domain]\n", BlocklistFormat::Toml).expect_err("syntax");
    assert_eq!(e.line, 1, "{e}");
    assert!(matches!(e.kind, LoadErrorKind::Toml { .. }));
}

fn json_fixture(name: &str) -> ParsedSource {
    let bytes = std::fs::read(fixture(name)).expect("fixture");
    parse_json_bytes(&bytes, Arc::from(name)).expect("parses")
}

#[test]
fn mastodon_admin_api_json() {
    let p = json_fixture("mastodon_admin_api.json");
    assert_eq!(p.format, Format::Json);
    assert_eq!(p.rules.len(), 3);
    let spam = find(&p, "spam.example");
    assert_eq!(spam.severity, Severity::Suspend);
    assert!(spam.reject_media && spam.reject_reports);
    assert_eq!(spam.public_comment.as_deref(), Some("Spam and harassment"));
    // The digest of a real (not obfuscated) domain is not needed to match it.
    assert_eq!(spam.digest, None);
    assert_eq!(spam.line, 2, "the line where the entry starts");
    let limited = find(&p, "limited.example");
    assert_eq!(limited.severity, Severity::Silence);
    assert!(limited.reject_media && !limited.reject_reports);
    assert_eq!(limited.public_comment, None);
    let reports = find(&p, "reports.example");
    assert_eq!(
        (reports.severity, reports.reject_reports),
        (Severity::Noop, true)
    );
}

#[test]
fn mastodon_public_api_json_matches_obfuscated_entries_by_digest() {
    let p = json_fixture("mastodon_public_api.json");
    assert_eq!(p.rules.len(), 3);
    let hidden = find(&p, "hidd**.example");
    assert_eq!(
        hidden.digest.as_deref(),
        Some(&crate::policy::domain_digest("hidden.example"))
    );
    assert_eq!(hidden.severity, Severity::Silence);
    assert_eq!(
        hidden.public_comment.as_deref(),
        Some("Obfuscated on the about page"),
        "the public API calls it comment"
    );
    let snapshot = crate::policy::Snapshot::from_rules(p.rules.clone());
    assert!(snapshot.rule_for("sub.hidden.example").is_some());
    assert_eq!(p.obfuscated, 0);
}

#[test]
fn gotosocial_export_json_is_all_suspends() {
    let p = json_fixture("gotosocial_export.json");
    let all = each_rule(&p, |r| {
        (&*r.domain, r.severity, r.public_comment.as_deref())
    });
    assert_eq!(
        all,
        [
            (
                "spam.example",
                Severity::Suspend,
                Some("Spam and harassment")
            ),
            ("hidden.example", Severity::Suspend, None),
            ("xn--bcher-kva.example", Severity::Suspend, Some("IDN")),
        ]
    );
}

#[test]
fn json_errors_name_the_entry_line() {
    let bytes = std::fs::read(fixture("bad_entry.json")).expect("fixture");
    let e = parse_json_bytes(&bytes, Arc::from("bad_entry.json")).expect_err("bad");
    assert_eq!(e.line, 4);
    assert_eq!(
        e.to_string(),
        "bad_entry.json:4: invalid domain \"not valid!\""
    );

    let json = |text: &str| parse_json_bytes(text.as_bytes(), Arc::from("j"));
    let kind = |text: &str| json(text).expect_err("must fail").kind;
    assert!(matches!(
        kind("{\"domain\": \"a.example\"}"),
        LoadErrorKind::NotJsonArray
    ));
    assert!(matches!(
        kind("[{\"domain\": \"a.example\""),
        LoadErrorKind::Json(_)
    ));
    assert!(matches!(
        kind("[{\"severity\": \"silence\"}]"),
        LoadErrorKind::MissingDomain
    ));
    assert!(matches!(kind("[{\"domain\": 5}]"), LoadErrorKind::Json(_)));
    assert!(matches!(kind("[\"a.example\"]"), LoadErrorKind::Json(_)));
    assert!(matches!(
        kind("[{\"domain\": \"a.example\", \"severity\": \"banish\"}]"),
        LoadErrorKind::UnknownSeverity { .. }
    ));
    assert!(matches!(
        kind("[{\"domain\": \"a.example\", \"reject_media\": 2}]"),
        LoadErrorKind::InvalidBoolean {
            column: "reject_media",
            ..
        }
    ));
    assert!(matches!(
        kind("[{\"domain\": \"a***.example\", \"digest\": \"xyz\"}]"),
        LoadErrorKind::InvalidDigest { .. }
    ));
    let e = json("[\n{\"domain\": \"a.example\"},\n{\"domain\": \"b.example\",\n \"x\": }]")
        .expect_err("syntax");
    assert_eq!(e.line, 4, "{e}");
    // Words as booleans, nulls, an empty list, an obfuscated entry without a digest.
    let p = json(
        "\u{feff}[{\"domain\": \"a.example\", \"reject_reports\": \"yes\", \"severity\": null},\
         {\"domain\": \"b***.example\"}]",
    )
    .expect("ok");
    assert!(p.rules[0].reject_reports);
    assert_eq!(p.rules[0].severity, Severity::Suspend);
    assert_eq!((p.rules.len(), p.obfuscated), (1, 1));
    assert!(json("[]").expect("empty").rules.is_empty());
}

#[test]
fn allow_json() {
    let bytes = std::fs::read(fixture("mastodon_admin_allows.json")).expect("fixture");
    let allows = parse_allow_json_bytes(&bytes, "allows").expect("parses");
    assert_eq!(
        allows
            .iter()
            .map(|a| (&*a.domain, a.line))
            .collect::<Vec<_>>(),
        [("friends.example", 2), ("pals.example", 7)]
    );
    let e = parse_allow_json_bytes(b"[{\"domain\": \"a*.example\"}]", "allows")
        .expect_err("no wildcards");
    assert!(matches!(e.kind, LoadErrorKind::InvalidDomain { .. }));
    let e = parse_allow_json_bytes(b"[{\"id\": \"1\"}]", "allows").expect_err("no domain");
    assert!(matches!(e.kind, LoadErrorKind::MissingDomain));
}

#[test]
fn an_unclosed_quote_or_a_wide_row_refuses_the_file_at_its_line() {
    for (name, line, message) in [
        (
            "unclosed_quote.csv",
            2,
            "a quoted field runs past the end of its line",
        ),
        (
            "unclosed_quote_last_column.csv",
            2,
            "a quoted field runs past the end of its line",
        ),
        (
            "too_many_fields.csv",
            3,
            "row has 5 fields; the header has 3 columns",
        ),
    ] {
        refused_at(name, line, message);
    }
    // Mastodon's own comments over several lines, and short rows, still read.
    let p = parse(
        "#domain,#severity,#public_comment\na.example,suspend,\"one\ntwo, three\"\nb.example\n",
        BlocklistFormat::MastodonCsv,
    )
    .expect("whole records");
    assert_eq!(
        find(&p, "a.example").public_comment.as_deref(),
        Some("one\ntwo, three")
    );
    assert_eq!(find(&p, "b.example").line, 4);
}

#[test]
fn fediblockhole_headers_without_hash_in_any_order() {
    for format in [BlocklistFormat::Auto, BlocklistFormat::MastodonCsv] {
        let p = parse_file(&fixture("fediblockhole/merged.csv"), format).expect("merged");
        assert_eq!((p.format, p.rules.len()), (Format::MastodonCsv, 3));
        let spam = find(&p, "spam.example");
        assert_eq!(spam.severity, Severity::Suspend);
        assert!(spam.reject_media && spam.reject_reports);
        assert_eq!(spam.public_comment.as_deref(), Some("Spam, harassment"));
        assert_eq!(find(&p, "limited.example").severity, Severity::Silence);
        assert_eq!(find(&p, "reports.example").line, 4);

        let p = parse_file(&fixture("fediblockhole/subset_reordered.csv"), format).expect("subset");
        assert_eq!(p.format, Format::MastodonCsv);
        let quiet = find(&p, "quiet.example");
        assert_eq!(quiet.severity, Severity::Silence);
        assert_eq!(
            quiet.public_comment.as_deref(),
            Some("Merged from two sources")
        );
        assert_eq!(find(&p, "bad.example").severity, Severity::Suspend);
        assert_eq!(find(&p, "default.example").severity, Severity::Suspend);
    }
    let e = parse_file(
        &fixture("fediblockhole/bad_severity.csv"),
        BlocklistFormat::Auto,
    )
    .expect_err("unknown severity");
    assert!(
        e.to_string()
            .contains("fediblockhole/bad_severity.csv:3: unknown severity \"defederate\""),
        "{e}"
    );
    // A plain list's first line is never read as a header.
    for first in ["domain.example", "# domain blocks", "domain .example"] {
        let p = parse(&format!("{first}\nother.example\n"), BlocklistFormat::Auto);
        assert!(
            p.is_err() || p.expect("plain").format == Format::Plain,
            "{first}"
        );
    }
    assert!(has_mastodon_header(b"domain"));
    assert!(has_mastodon_header(
        b"\xEF\xBB\xBFseverity, #domain ,comment\n"
    ));
    assert!(!has_mastodon_header(b"severity,public_comment\n"));
}

#[test]
fn labels_in_comments_filter_a_sources_rules() {
    assert_eq!(
        labels_in("[CSAM] [spam, bots] IFTAS:CSAM, see https://x.example/why Note: none"),
        ["CSAM", "spam, bots", "IFTAS:CSAM"]
    );
    let text = "#domain,#severity,#public_comment\n\
                a.example,suspend,IFTAS:CSAM\n\
                b.example,suspend,[Harassment]\n\
                c.example,silence,\"[harassment] and IFTAS:Spam\"\n\
                d.example,suspend,\n";
    let kept = |any: &[&str], none: &[&str]| {
        let mut p = parse(text, BlocklistFormat::Auto).expect("parses");
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        filter_labels(&mut p, &owned(any), &owned(none));
        p.rules
            .iter()
            .map(|r| r.domain.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(kept(&[], &[]).len(), 4);
    assert_eq!(kept(&["iftas:csam"], &[]), ["a.example"]);
    assert_eq!(kept(&["HARASSMENT"], &[]), ["b.example", "c.example"]);
    assert_eq!(
        kept(&[], &["IFTAS:Spam"]),
        ["a.example", "b.example", "d.example"]
    );
    assert_eq!(kept(&["harassment"], &["iftas:spam"]), ["b.example"]);
}

/// Each rule of `p` as `f` reads it, in order.
fn each_rule<'a, T>(p: &'a ParsedSource, f: impl Fn(&'a DomainRule) -> T) -> Vec<T> {
    p.rules.iter().map(f).collect()
}
