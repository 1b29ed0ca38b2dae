//! Unit tests of the activity-facts reader.
use super::*;

#[test]
fn create_with_embedded_note() {
    let body = br#"{"@context":"https://www.w3.org/ns/activitystreams","id":"https://a.example/1",
        "type":"Create","actor":"https://a.example/users/x",
        "object":{"id":"https://a.example/n/1","type":"Note","attributedTo":"https://a.example/users/x",
          "inReplyTo":"https://b.example/n/9","content":"<p>hi</p>","tag":[{"type":"Mention"}]}}"#;
    let f = Facts::parse(body).unwrap();
    assert_eq!(f.kind.as_deref(), Some("Create"));
    assert_eq!(f.actor.as_deref(), Some("https://a.example/users/x"));
    let o = f.object.unwrap();
    assert_eq!(o.kind.as_deref(), Some("Note"));
    assert_eq!(
        o.attributed_to.as_deref(),
        Some("https://a.example/users/x")
    );
    assert_eq!(o.in_reply_to.as_deref(), Some("https://b.example/n/9"));
}

#[test]
fn references_in_every_shape() {
    let body = br#"{"type":["Announce","as:Announce"],"actor":{"id":"https://a.example/u","type":"Person"},
        "object":["https://c.example/n/1","https://c.example/n/2"]}"#;
    let f = Facts::parse(body).unwrap();
    assert_eq!(f.kind.as_deref(), Some("Announce"));
    assert_eq!(f.actor.as_deref(), Some("https://a.example/u"));
    assert_eq!(
        f.object.unwrap().id.as_deref(),
        Some("https://c.example/n/1")
    );
    let f = Facts::parse(br#"{"type":"Like","actor":null,"object":12}"#);
    assert!(f.is_err(), "a number is not an object reference");
}

#[test]
fn self_delete_detected() {
    let f = Facts::parse(
        br#"{"type":"Delete","actor":"https://a.example/u","object":"https://a.example/u"}"#,
    )
    .unwrap();
    assert!(f.is_self_delete_or_update());
    let f = Facts::parse(
        br#"{"type":"Delete","actor":"https://a.example/u","object":{"id":"https://a.example/n/1"}}"#,
    )
    .unwrap();
    assert!(!f.is_self_delete_or_update());
}

#[test]
fn quotes_in_every_vocabulary() {
    let body = br#"{"type":"Create","actor":"https://a.example/u","object":{
        "id":"https://a.example/n/1","type":"Note",
        "quote":"https://q1.example/n/1",
        "quoteUrl":"https://q2.example/n/2",
        "quoteUri":{"id":"https://q3.example/n/3"},
        "_misskey_quote":["https://q4.example/n/4"]}}"#;
    let o = Facts::parse(body).unwrap().object.unwrap();
    assert_eq!(
        o.quotes,
        [
            "https://q1.example/n/1",
            "https://q2.example/n/2",
            "https://q3.example/n/3",
            "https://q4.example/n/4"
        ]
    );
    let o = Facts::parse(br#"{"object":{"quoteUrl":null}}"#)
        .unwrap()
        .object
        .unwrap();
    assert!(o.quotes.is_empty());
    let many: Vec<String> = (0..50)
        .map(|i| format!(r#""quote":"https://q.example/n/{i}""#))
        .collect();
    let many = format!("{{\"object\":{{{}}}}}", many.join(","));
    let o = Facts::parse(many.as_bytes()).unwrap().object.unwrap();
    assert_eq!(
        o.quotes,
        ["https://q.example/n/49"],
        "a repeated key keeps its last value, as Oj does"
    );
}

#[test]
fn mentions_keep_only_mention_hrefs() {
    let body = br##"{"type":"Create","object":{"type":"Note","tag":[
        {"type":"Hashtag","href":"https://a.example/tags/x","name":"#x"},
        {"href":"https://b.example/users/bob","name":"@bob@b.example","type":"Mention"},
        {"type":"Emoji","icon":{"url":"https://a.example/e.png"}},
        "junk", 3, null, [1,2],
        {"type":["Mention"],"href":"https://c.example/users/cy"},
        {"type":"Mention"}
      ]}}"##;
    let o = Facts::parse(body).unwrap().object.unwrap();
    assert_eq!(
        o.mentions,
        ["https://b.example/users/bob", "https://c.example/users/cy"]
    );
    // One tag object instead of an array.
    let body = br#"{"object":{"tag":{"type":"Mention","href":"https://d.example/u/d"}}}"#;
    let o = Facts::parse(body).unwrap().object.unwrap();
    assert_eq!(o.mentions, ["https://d.example/u/d"]);
}

#[test]
fn mentions_are_capped() {
    let tags: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"type":"Mention","href":"https://m{i}.example/u"}}"#))
        .collect();
    let body = format!(
        r#"{{"type":"Create","object":{{"tag":[{}],"inReplyTo":"https://r.example/n"}}}}"#,
        tags.join(",")
    );
    let o = Facts::parse(body.as_bytes()).unwrap().object.unwrap();
    assert_eq!(o.mentions.len(), MAX_MENTIONS);
    assert_eq!(o.mentions[15], "https://m15.example/u");
    assert_eq!(
        o.in_reply_to.as_deref(),
        Some("https://r.example/n"),
        "keys after the capped list are still read"
    );
}

#[test]
fn announce_of_an_embedded_object() {
    let body = br#"{"type":"Announce","actor":"https://a.example/u",
        "object":{"id":"https://b.example/n/1","attributedTo":"https://c.example/u/x"}}"#;
    let o = Facts::parse(body).unwrap().object.unwrap();
    assert_eq!(o.id.as_deref(), Some("https://b.example/n/1"));
    assert_eq!(o.attributed_to.as_deref(), Some("https://c.example/u/x"));
    assert!(o.mentions.is_empty());
}

#[test]
fn broken_json_is_an_error_not_a_panic() {
    for body in [
        &b""[..],
        b"[]",
        b"\"x\"",
        b"{",
        b"{\"type\":",
        b"\xff\xfe",
        b"nul",
    ] {
        assert!(Facts::parse(body).is_err(), "{body:?}");
    }
}
