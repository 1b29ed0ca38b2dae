use super::*;
use crate::policy::sources::BlocklistFormat;
use crate::policy::sources::{filter_labels, parse_bytes};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/blocklists/fediseer")
        .join(name)
}

fn read(name: &str, list: FediseerList, min_count: Option<u64>) -> Result<ParsedSource, LoadError> {
    let path = fixture(name);
    let bytes = std::fs::read(&path).expect("fixture");
    let settings = FediseerSettings { list, min_count };
    parse_fediseer_bytes(&bytes, Arc::from(path.display().to_string()), settings)
}

fn domains(p: &ParsedSource) -> Vec<&str> {
    p.rules.iter().map(|r| &*r.domain).collect()
}

fn comment<'p>(p: &'p ParsedSource, domain: &str) -> Option<&'p str> {
    let rule = p.rules.iter().find(|r| &*r.domain == domain);
    rule.unwrap_or_else(|| panic!("{domain} not parsed"))
        .public_comment
        .as_deref()
}

#[test]
fn censures_full_form_suspends_with_reasons_as_labels() {
    let p = read("censures_given.json", FediseerList::Censures, None).expect("parses");
    assert_eq!(p.format, Format::Fediseer);
    assert_eq!(
        domains(&p),
        [
            "csam-host.example",
            "nazi.example",
            "spam-farm.example",
            "quiet-censure.example"
        ]
    );
    assert!(p.rules.iter().all(|r| r.severity == Severity::Suspend));
    assert!(p.rules.iter().all(|r| r.line == 1), "served on one line");
    assert_eq!(
        comment(&p, "csam-host.example"),
        Some("[csam] [loli] [shota] (3 censures)")
    );
    assert_eq!(comment(&p, "quiet-censure.example"), Some("(1 censure)"));
    assert!(p.rules[0].source.ends_with("fediseer/censures_given.json"));
}

#[test]
fn hesitations_silence_and_pretty_printed_entries_keep_their_lines() {
    let p = read("hesitations_given.json", FediseerList::Hesitations, None).expect("parses");
    assert_eq!(
        domains(&p),
        ["edgy.example", "loose-mods.example", "mixed-case.example"]
    );
    assert!(p.rules.iter().all(|r| r.severity == Severity::Silence));
    let lines: Vec<usize> = p.rules.iter().map(|r| r.line_number()).collect();
    assert_eq!(lines, [3, 23, 46], "where each entry opens");
    assert_eq!(
        comment(&p, "loose-mods.example"),
        Some("[lax moderation] [spam] (1 hesitation)")
    );
}

#[test]
fn min_count_keeps_instances_with_enough_marks() {
    let p = read("censures_given.json", FediseerList::Censures, Some(2)).expect("parses");
    assert_eq!(domains(&p), ["csam-host.example", "nazi.example"]);
    let p = read("hesitations_given.json", FediseerList::Hesitations, Some(2)).expect("parses");
    assert_eq!(domains(&p), ["edgy.example"]);
}

#[test]
fn short_forms_list_domains_and_refuse_a_minimum() {
    let all = [
        "csam-host.example",
        "nazi.example",
        "spam-farm.example",
        "quiet-censure.example",
    ];
    for name in ["censures_given_domains.json", "censures_given_csv.json"] {
        let p = read(name, FediseerList::Censures, None).expect(name);
        assert_eq!(domains(&p), all, "{name}");
        assert!(p.rules.iter().all(|r| r.public_comment.is_none()));
        let e = read(name, FediseerList::Censures, Some(2)).expect_err(name);
        assert!(matches!(e.kind, LoadErrorKind::FediseerNoCounts { .. }));
        let text = e.to_string();
        assert!(
            text.contains(&format!(
                "{name}:1: min_censures needs each instance's censure_count"
            )),
            "{text}"
        );
        assert!(text.contains("?domains=true"), "{text}");
    }
    let p = read(
        "censures_given_domains.json",
        FediseerList::Hesitations,
        None,
    )
    .expect("short");
    assert!(
        p.rules.iter().all(|r| r.severity == Severity::Silence),
        "the setting decides what a short answer is"
    );
}

#[test]
fn the_other_list_is_refused_at_its_entry() {
    let e = read("hesitations_given.json", FediseerList::Censures, None).expect_err("wrong list");
    let text = e.to_string();
    assert!(
        text.ends_with(
            "hesitations_given.json:3: this entry is from Fediseer's hesitations list, but the source says fediseer = \"censures\""
        ),
        "{text}"
    );
    assert!(read("censures_given.json", FediseerList::Hesitations, None).is_err());
}

#[test]
fn malformed_json_names_file_line_and_column() {
    let e = read("malformed.json", FediseerList::Censures, None).expect_err("malformed");
    let text = e.to_string();
    assert_eq!(e.line, 6, "{text}");
    assert!(
        text.contains("fediseer/malformed.json:6: malformed JSON"),
        "{text}"
    );
    assert!(text.contains("line 6 column"), "{text}");

    let e = read("bad_domain.json", FediseerList::Censures, None).expect_err("bad domain");
    assert!(
        e.to_string()
            .ends_with("bad_domain.json:4: invalid domain \"not a domain\""),
        "{e}"
    );
}

#[test]
fn other_shapes_are_not_fediseer_answers() {
    let cases: [(&str, usize); 5] = [
        ("[{\"domain\": \"a.example\"}]", 1),
        ("\n\n{\"total\": 3}", 3),
        ("", 1),
        ("a.example\n", 1),
        ("{\"instances\": [{\"censure_count\": 1}]}", 1),
    ];
    for (text, line) in cases {
        let e = parse_fediseer_bytes(
            text.as_bytes(),
            Arc::from("mem.json"),
            FediseerSettings::default(),
        )
        .expect_err(text);
        assert_eq!(e.line, line, "{text:?}: {e}");
    }
    let wrong_type =
        "{\n\"instances\": [\n{\"domain\": \"a.example\", \"censure_count\": \"three\"}]}";
    let e = parse_fediseer_bytes(
        wrong_type.as_bytes(),
        Arc::from("mem.json"),
        FediseerSettings::default(),
    )
    .expect_err("wrong type");
    assert_eq!(e.line, 3, "{e}");
}

#[test]
fn reasons_work_with_label_filters() {
    let mut p = read("censures_given.json", FediseerList::Censures, None).expect("parses");
    filter_labels(
        &mut p,
        &["CSAM".into(), "fascism".into()],
        &["shota".into()],
    );
    assert_eq!(domains(&p), ["nazi.example"]);
}

#[test]
fn blocklist_format_fediseer_reads_censures_past_the_line_limit() {
    let long: Vec<String> = (0..400).map(|i| format!("\"d{i}.example\"")).collect();
    let text = format!("{{\"domains\": [{}], \"total\": 400}}", long.join(", "));
    assert!(text.len() > crate::policy::sources::MAX_LINE_BYTES);
    let p = parse_bytes(
        text.as_bytes(),
        Arc::from("f.json"),
        BlocklistFormat::Fediseer,
    )
    .expect("one long line");
    assert_eq!(p.rules.len(), 400);
    assert!(p.rules.iter().all(|r| r.severity == Severity::Suspend));
}
