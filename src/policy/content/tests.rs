use super::*;
use crate::policy::sources::{parse_bytes, BlocklistFormat, LoadErrorKind, ParsedSource};

fn parse(text: &str) -> Result<ParsedSource, crate::policy::sources::LoadError> {
    parse_bytes(
        text.as_bytes(),
        Arc::from("rules.toml"),
        BlocklistFormat::Auto,
    )
}

fn rules(text: &str) -> ContentRules {
    ContentRules::new(parse(text).expect("parses").content_rules)
}

/// The February 2024 wave's shape: a fresh account, ten mentions (two of them local), an
/// image and a Discord invite link.
fn spam() -> Facts {
    let body = serde_json::json!({
        "id": "https://tiny.example/activities/1",
        "type": "Create",
        "actor": "https://tiny.example/users/x1",
        "object": {
            "id": "https://tiny.example/notes/1",
            "type": "Note",
            "content": "<p>join <a href=\"https://discord.gg/abcdef\">DISCORD.GG/abcdef</a> \
                        <a href=\"https://mastodon.local/@a\" class=\"mention\">@a</a></p>",
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
            "tag": (0..10).map(|i| serde_json::json!({
                "type": "Mention",
                "href": if i < 2 { format!("https://mastodon.local/users/u{i}") }
                        else { format!("https://elsewhere.example/users/u{i}") },
            })).chain([serde_json::json!({"type": "Hashtag", "name": "#FreeNitro"})])
              .collect::<Vec<_>>(),
            "attachment": [{"type": "Document", "mediaType": "image/png",
                            "url": "https://tiny.example/m.png", "blurhash": "LEHV6nWB2yk8"}],
        }
    });
    Facts::parse_with_content(body.to_string().as_bytes()).expect("facts")
}

fn subject<'a>(facts: &'a Facts, sender: &'a str) -> Subject<'a> {
    Subject {
        facts,
        sender_host: sender,
        local_host: Some("mastodon.local"),
        actor: None,
        actor_first_seen: None,
        now: 1_800_000_000,
    }
}

#[test]
fn every_condition_matches_the_wave_and_says_why() {
    let r = rules(
        r##"
[[content_rules]]
name = "discord-nuke-2024"
comment = "mention spam with a Discord invite"
types = ["Create"]
object_types = ["Note"]
mentions_at_least = 5
mentions_local_at_least = 2
links_at_least = 1
link_domains = ["discord.gg", "discord.com"]
hashtags_any = ["#freenitro"]
text_matches = ['discord\.gg/']
has_attachment = true
attachment_blurhash = ["LEHV6nWB2yk8"]
sender_domains = ["example"]
not_sender_domains = ["big.example"]
public_only = true
action = "drop"
"##,
    );
    let facts = spam();
    let (rule, why) = first_match(&r, &subject(&facts, "tiny.example")).expect("matches");
    assert_eq!(
        (&*rule.name, rule.action, rule.line),
        ("discord-nuke-2024", ContentAction::Drop, 3)
    );
    assert_eq!(
        why,
        [
            "type Create",
            "object type Note",
            "sender tiny.example under example",
            "10 mentions (at least 5)",
            "2 local mentions (at least 2)",
            "1 links (at least 1)",
            "link to discord.gg under discord.gg",
            "hashtag #freenitro",
            "text matches \"discord\\\\.gg/\"",
            "1 attachments",
            "attachment blurhash LEHV6nWB2yk8",
            "public",
        ]
    );
    // Each condition can also fail on its own.
    assert!(
        first_match(&r, &subject(&facts, "big.example")).is_none(),
        "not_sender_domains"
    );
    assert!(
        first_match(&r, &subject(&facts, "other.org")).is_none(),
        "sender_domains"
    );
}

#[test]
fn a_condition_that_does_not_hold_stops_the_rule() {
    let facts = spam();
    for condition in [
        "types = [\"Announce\"]",
        "object_types = [\"Question\"]",
        "mentions_at_least = 11",
        "mentions_local_at_least = 3",
        "links_at_least = 2",
        "link_domains = [\"evil.example\"]",
        "hashtags_any = [\"cats\"]",
        "text_matches = ['free\\s+money']",
        "has_attachment = false",
        "attachment_blurhash = [\"other\"]",
        "attachment_digest = [\"zQm\"]",
    ] {
        let r = rules(&format!(
            "[[content_rules]]\nname = \"r\"\naction = \"drop\"\n{condition}\n"
        ));
        assert!(
            first_match(&r, &subject(&facts, "tiny.example")).is_none(),
            "{condition}"
        );
    }
    // An activity without an embedded object has no mentions, links or attachments.
    let like = Facts::parse_with_content(
        br#"{"type":"Like","actor":"https://a.example/u","object":"https://b.example/n"}"#,
    )
    .expect("facts");
    let r = rules("[[content_rules]]\nname = \"r\"\naction = \"drop\"\nmentions_at_least = 1\n");
    assert!(first_match(&r, &subject(&like, "a.example")).is_none());
    // A rule on the type alone matches it.
    let r = rules("[[content_rules]]\nname = \"r\"\naction = \"drop\"\ntypes = [\"Like\"]\n");
    assert!(first_match(&r, &subject(&like, "a.example")).is_some());
}

#[test]
fn first_rule_in_file_order_decides_and_expired_rules_step_aside() {
    let r = rules(
        r#"
[[content_rules]]
name = "old"
types = ["Create"]
action = "reject"
expires = "2026-01-01T00:00:00Z"

[[content_rules]]
name = "watch"
types = ["Create"]
action = "report"

[[content_rules]]
name = "later"
types = ["Create"]
action = "drop"
"#,
    );
    let facts = spam();
    let before = Subject {
        now: 1_767_225_599,
        ..subject(&facts, "tiny.example")
    };
    assert_eq!(&*first_match(&r, &before).expect("old").0.name, "old");
    let after = Subject {
        now: 1_767_225_600,
        ..before
    };
    assert_eq!(&*first_match(&r, &after).expect("watch").0.name, "watch");
    assert!(
        !r.rules()[0].when.needs_content(),
        "a type-only rule does not need the content read"
    );
}

#[test]
fn the_parser_refuses_what_would_misbehave_with_the_line() {
    for (text, line, wanted) in [
        ("[[content_rules]]\nname = \"r\"\naction = \"drop\"\ntext_matches = ['(unclosed']\n", 4, "text_matches: regex parse error"),
        ("[[content_rules]]\nname = \"r\"\naction = \"ban\"\ntypes = [\"Create\"]\n", 3, "action \"ban\""),
        ("[[content_rules]]\nname = \"r\"\naction = \"drop\"\n", 2, "has no condition"),
        ("[[content_rules]]\nname = \"has space\"\naction = \"drop\"\ntypes = [\"Create\"]\n", 2, "metric label"),
        ("[[content_rules]]\nname = \"r\"\naction = \"drop\"\ntypes = [\"Create\"]\nexpires = \"tomorrow\"\n", 5, "RFC 3339"),
        ("[[content_rules]]\nname = \"r\"\naction = \"drop\"\nlink_domains = [\"not a host\"]\n", 4, "invalid domain"),
        ("[[content_rules]]\nname = \"r\"\naction = \"drop\"\ntypes = [\"Create\"]\n\n[[content_rules]]\nname = \"r\"\naction = \"drop\"\ntypes = [\"Like\"]\n", 7, "used by an earlier rule"),
        ("[[content_rules]]\nname = \"r\"\naction = \"drop\"\nactor_follows = 3\n", 4, "unknown field"),
        ("[[content_rules]]\nname = \"r\"\naction = \"drop\"\ntypes = [\"Create\"]\nescalate = { threshold = 0, window = \"1d\" }\n", 5, "threshold must be at least 1"),
        ("[[content_rules]]\nname = \"r\"\naction = \"drop\"\ntypes = [\"Create\"]\nescalate = { window = \"1d\" }\n", 5, "escalate needs a threshold"),
        ("[[content_rules]]\nname = \"r\"\naction = \"drop\"\ntypes = [\"Create\"]\n\n[content_rules.escalate]\nthreshold = 5\nwindow = \"12h\"\n", 8, "escalate.window \"12h\": expected whole days"),
        ("[[content_rules]]\nname = \"r\"\naction = \"drop\"\ntypes = [\"Create\"]\n\n[content_rules.escalate]\nthreshold = 5\naction = \"ban\"\n", 8, "escalate.action \"ban\""),
        ("[[content_rules]]\nname = \"r\"\naction = \"drop\"\ntypes = [\"Create\"]\nescalate = { threshold = 5, after = \"1d\" }\n", 5, "unknown field"),
    ] {
        let e = parse(text).expect_err(text);
        assert_eq!(e.line, line, "{text}: {e}");
        assert!(e.to_string().contains(wanted), "{text}: {e}");
        if !wanted.contains("unknown") {
            assert!(matches!(e.kind, LoadErrorKind::InvalidContentRule { .. }), "{e}");
        }
    }
}

#[test]
fn escalate_reads_the_friendly_federators_vocabulary_with_defaults() {
    let r = rules(
        "[[content_rules]]\nname = \"a\"\naction = \"drop\"\ntypes = [\"Create\"]\n\
         escalate = { threshold = 20, window = \"1d\", action = \"limit\" }\n\n\
         [[content_rules]]\nname = \"b\"\naction = \"drop\"\ntypes = [\"Like\"]\n\
         escalate = { threshold = 3 }\n\n\
         [[content_rules]]\nname = \"c\"\naction = \"drop\"\ntypes = [\"View\"]\n",
    );
    let escalate = |name: &str| r.named(name).and_then(|rule| rule.escalate);
    assert_eq!(
        escalate("a"),
        Some(RuleEscalation {
            threshold: 20,
            window: Window { days: 1 },
            action: EscalationAction::Limit
        })
    );
    assert_eq!(
        escalate("b"),
        Some(RuleEscalation {
            threshold: 3,
            window: Window { days: 7 },
            action: EscalationAction::Report
        })
    );
    assert_eq!(escalate("c"), None);
}

#[test]
fn patterns_are_case_insensitive_and_size_bounded() {
    let r = rules(
        "[[content_rules]]\nname = \"r\"\naction = \"drop\"\ntext_matches = ['DISCORD\\.GG']\n",
    );
    let facts = spam();
    assert!(first_match(&r, &subject(&facts, "tiny.example")).is_some());
    // A pattern whose compiled program would be huge is refused, not built.
    let e = parse(
        "[[content_rules]]\nname = \"r\"\naction = \"drop\"\ntext_matches = ['(\\w{100}){100}']\n",
    )
    .expect_err("too big");
    assert!(e.to_string().contains("size limit"), "{e}");
}

#[test]
fn one_scan_for_all_rules_finds_each_rules_own_pattern() {
    let r = rules(
        r#"
[[content_rules]]
name = "a"
text_matches = ['never here', 'nor this']
action = "drop"

[[content_rules]]
name = "b"
types = ["Like"]
action = "drop"

[[content_rules]]
name = "c"
text_matches = ['also absent', 'DISCORD\.gg/\w+']
action = "report"
"#,
    );
    let facts = spam();
    let (rule, why) = first_match(&r, &subject(&facts, "tiny.example")).expect("c");
    assert_eq!(&*rule.name, "c");
    assert_eq!(why, ["text matches \"DISCORD\\\\.gg/\\\\w+\""]);
}

#[test]
fn fresh_accounts_and_their_names_from_the_actor_document() {
    let r = rules(
        r#"
[[content_rules]]
name = "fresh"
types = ["Create"]
actor_age_under = "2d"
actor_name_matches = ['^nitro_\d+$', 'free nitro']
action = "drop"
"#,
    );
    let facts = spam();
    let now = 1_800_000_000;
    let fresh = ActorFacts {
        published: Some(now - 3600),
        preferred_username: Some("nitro_42".into()),
        name: None,
    };
    let s = Subject {
        actor: Some(&fresh),
        ..subject(&facts, "tiny.example")
    };
    let (_, why) = first_match(&r, &s).expect("fresh and named");
    assert_eq!(
        why,
        [
            "type Create",
            "actor published 3600s ago (under 172800s)",
            "actor name \"nitro_42\" matches \"^nitro_\\\\d+$\"",
        ]
    );
    // Old enough, unknown age, another name, or no actor document (relayed): no match.
    let old = ActorFacts {
        published: Some(now - 3 * 86_400),
        ..fresh.clone()
    };
    let unknown = ActorFacts {
        published: None,
        ..fresh.clone()
    };
    let named = ActorFacts {
        preferred_username: Some("alice".into()),
        name: Some("Alice".into()),
        ..fresh.clone()
    };
    for actor in [Some(&old), Some(&unknown), Some(&named), None] {
        let s = Subject {
            actor,
            ..subject(&facts, "tiny.example")
        };
        assert!(first_match(&r, &s).is_none(), "{actor:?}");
    }
    let e =
        parse("[[content_rules]]\nname = \"r\"\naction = \"drop\"\nactor_age_under = \"soon\"\n")
            .expect_err("bad age");
    assert_eq!(e.line, 4, "{e}");
}

#[test]
fn actors_first_seen_recently() {
    let r = rules(
        "[[content_rules]]\nname = \"new\"\nactor_first_seen_under = \"1h\"\naction = \"report\"\n",
    );
    let facts = spam();
    let now = 1_800_000_000;
    let seen = |at: Option<i64>| Subject {
        actor_first_seen: at,
        ..subject(&facts, "tiny.example")
    };
    let (_, why) = first_match(&r, &seen(Some(now - 10))).expect("new actor");
    assert_eq!(why, ["actor first seen 10s ago (under 3600s)"]);
    assert!(first_match(&r, &seen(Some(now - 7200))).is_none());
    assert!(first_match(&r, &seen(None)).is_none());
}
