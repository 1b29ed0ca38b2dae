//! inboxguard decides on the facts Mastodon will act on, read Mastodon's way. A body that one
//! reader sees as alice on an allowed server and the other as mallory on a suspended one is
//! a policy bypass, so the reading is pinned three ways: a table of tricky documents with
//! Mastodon's reading written beside each, a property test against a naive last-key-wins
//! reader (`inboxguard::fuzz::mastodon_reading`), and the attack itself end to end.

// Helpers outside #[test] fns panic on a broken environment too, which is the right failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use http::StatusCode;
use inboxguard::activity::Facts;
use inboxguard::fuzz::mastodon_reading as oracle;

/// Mastodon's reading of a body, as far as inboxguard's rules look at it.
struct Expect {
    actor: Option<&'static str>,
    kind: Option<&'static str>,
    object_id: Option<&'static str>,
    attributed_to: Option<&'static str>,
    mentions: &'static [&'static str],
}

const NONE: Expect = Expect {
    actor: None,
    kind: None,
    object_id: None,
    attributed_to: None,
    mentions: &[],
};

/// Each row: a body and what Mastodon acts on, with the Mastodon code that says so.
/// `Oj.load(body, mode: :strict)` keeps the last of a repeated key (the reference notes,
/// "Reading an activity as Mastodon reads it"); references go through
/// `JsonLdHelper#value_or_id` / `first_of_value` (`app/helpers/jsonld_helper.rb`).
fn table() -> Vec<(&'static str, &'static str, Expect)> {
    vec![
        (
            "repeated id in an embedded actor: Oj keeps the last, value_or_id reads it",
            r#"{"type":"Create","actor":{"id":"https://good.example/users/alice","id":"https://bad.example/users/mallory"}}"#,
            Expect { actor: Some("https://bad.example/users/mallory"), kind: Some("Create"), ..NONE },
        ),
        (
            "href is not read by value_or_id, only id",
            r#"{"type":"Create","actor":{"href":"https://good.example/users/alice","id":"https://bad.example/users/mallory"}}"#,
            Expect { actor: Some("https://bad.example/users/mallory"), kind: Some("Create"), ..NONE },
        ),
        (
            "an actor object with only href has no id for Mastodon",
            r#"{"type":"Create","actor":{"href":"https://good.example/users/alice"}}"#,
            Expect { kind: Some("Create"), ..NONE },
        ),
        (
            "repeated top-level actor: the last wins",
            r#"{"actor":"https://good.example/users/alice","type":"Follow","actor":"https://bad.example/users/mallory"}"#,
            Expect { actor: Some("https://bad.example/users/mallory"), kind: Some("Follow"), ..NONE },
        ),
        (
            "repeated type: the last wins (ActivityPub::Activity.factory dispatches on json['type'])",
            r#"{"type":"Like","type":"Delete","actor":"https://a.example/u","object":"https://a.example/u"}"#,
            Expect { actor: Some("https://a.example/u"), kind: Some("Delete"), object_id: Some("https://a.example/u"), ..NONE },
        ),
        (
            "repeated object: the last one is the object",
            r#"{"type":"Announce","object":{"id":"https://good.example/n/1"},"object":"https://bad.example/n/2"}"#,
            Expect { kind: Some("Announce"), object_id: Some("https://bad.example/n/2"), ..NONE },
        ),
        (
            "repeated attributedTo inside the object: the last wins",
            r#"{"type":"Create","object":{"attributedTo":"https://good.example/u","type":"Note","attributedTo":"https://bad.example/u"}}"#,
            Expect { kind: Some("Create"), attributed_to: Some("https://bad.example/u"), ..NONE },
        ),
        (
            "attributedTo array: value_or_id(first_of_value(..)) (activity/create.rb, status_parser.rb)",
            r#"{"type":"Create","object":{"attributedTo":[{"id":"https://bad.example/u","type":"Person"},"https://good.example/u"]}}"#,
            Expect { kind: Some("Create"), attributed_to: Some("https://bad.example/u"), ..NONE },
        ),
        (
            "actor array: the first element (Mastodon's value_or_id fails on it; reading it keeps rules on)",
            r#"{"type":"Create","actor":["https://bad.example/u","https://good.example/u"]}"#,
            Expect { actor: Some("https://bad.example/u"), kind: Some("Create"), ..NONE },
        ),
        (
            "an array inside the actor array is no reference",
            r#"{"type":"Create","actor":[["https://bad.example/u"]]}"#,
            Expect { kind: Some("Create"), ..NONE },
        ),
        (
            "an object whose id is an object has no URI (value['id'] is a Hash)",
            r#"{"type":"Create","actor":{"id":{"id":"https://bad.example/u"}}}"#,
            Expect { kind: Some("Create"), ..NONE },
        ),
        (
            "a later non-string id replaces an earlier string one",
            r#"{"type":"Create","actor":{"id":"https://good.example/u","id":5}}"#,
            Expect { kind: Some("Create"), ..NONE },
        ),
        (
            "null and numbers are no reference",
            r#"{"type":"Create","actor":null,"object":{"attributedTo":7}}"#,
            Expect { kind: Some("Create"), ..NONE },
        ),
        (
            "escaped key names are decoded before matching, as Oj decodes them",
            r#"{"type":"Create","act\u006fr":"https://bad.example/u"}"#,
            Expect { actor: Some("https://bad.example/u"), kind: Some("Create"), ..NONE },
        ),
        (
            "a key that only looks alike (case) is another key",
            r#"{"type":"Create","Actor":"https://bad.example/u","actor":"https://good.example/u"}"#,
            Expect { actor: Some("https://good.example/u"), kind: Some("Create"), ..NONE },
        ),
        (
            "repeated tag: only the last list is processed (create.rb process_tags)",
            r#"{"type":"Create","object":{"tag":[{"type":"Mention","href":"https://x.example/u/1"}],"tag":[{"type":"Mention","href":"https://y.example/u/2"}]}}"#,
            Expect { kind: Some("Create"), mentions: &["https://y.example/u/2"], ..NONE },
        ),
        (
            "tag typed both Hashtag and Mention is a hashtag (Hashtag is tested first)",
            r#"{"type":"Create","object":{"tag":[{"type":["Hashtag","Mention"],"href":"https://x.example/u/1"},{"type":["Link","Mention"],"href":"https://y.example/u/2"}]}}"#,
            Expect { kind: Some("Create"), mentions: &["https://y.example/u/2"], ..NONE },
        ),
        (
            "repeated href in a tag: the last wins; a blank href is skipped (process_mention)",
            r#"{"type":"Create","object":{"tag":[{"type":"Mention","href":"https://x.example/u/1","href":"https://z.example/u/3"},{"type":"Mention","href":"  "}]}}"#,
            Expect { kind: Some("Create"), mentions: &["https://z.example/u/3"], ..NONE },
        ),
        (
            "one tag object instead of an array (as_array)",
            r#"{"type":"Create","object":{"tag":{"type":"Mention","href":"https://x.example/u/1"}}}"#,
            Expect { kind: Some("Create"), mentions: &["https://x.example/u/1"], ..NONE },
        ),
        (
            "the object's id is read as a string only (object['id'])",
            r#"{"type":"Delete","actor":"https://a.example/u","object":{"id":{"id":"https://a.example/u"}}}"#,
            Expect { actor: Some("https://a.example/u"), kind: Some("Delete"), ..NONE },
        ),
        (
            "repeated id inside a nested object is independent of the outer one",
            r#"{"id":"https://a.example/1","type":"Announce","object":{"id":"https://a.example/n/1","id":"https://b.example/n/2"},"id":"https://a.example/2"}"#,
            Expect { kind: Some("Announce"), object_id: Some("https://b.example/n/2"), ..NONE },
        ),
    ]
}

#[test]
fn facts_are_what_mastodon_reads_for_every_tricky_document() {
    for (name, body, want) in table() {
        let f = Facts::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(f.actor.as_deref(), want.actor, "actor: {name}");
        assert_eq!(f.kind.as_deref(), want.kind, "type: {name}");
        let o = f.object.clone().unwrap_or_default();
        assert_eq!(o.id.as_deref(), want.object_id, "object id: {name}");
        assert_eq!(
            o.attributed_to.as_deref(),
            want.attributed_to,
            "attributedTo: {name}"
        );
        assert_eq!(o.mentions, want.mentions, "mentions: {name}");
        assert_eq!(
            oracle::read(body.as_bytes()),
            Ok(f),
            "oracle disagrees: {name}"
        );
    }
}

#[test]
fn the_top_level_id_is_the_last_string_id() {
    let f = Facts::parse(br#"{"id":"https://a.example/1","id":"https://a.example/2"}"#).unwrap();
    assert_eq!(f.id.as_deref(), Some("https://a.example/2"));
    let f = Facts::parse(br#"{"id":"https://a.example/1","id":["https://a.example/2"]}"#).unwrap();
    assert_eq!(f.id, None, "an array id is no URI to Mastodon");
}

#[test]
fn deep_nesting_is_read_like_oj_without_recursion() {
    // Ten thousand levels inside a field nobody reads are skipped without recursion (no stack
    // to overflow) and the facts are still read, as Oj reads them.
    let deep = format!(
        r#"{{"type":"Create","x":{}{},"actor":"https://a.example/u","y":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000),
        r#"{"a":"#.repeat(10_000),
        "}".repeat(10_000)
    );
    let f = Facts::parse(deep.as_bytes()).unwrap();
    assert_eq!(f.actor.as_deref(), Some("https://a.example/u"));
    assert_eq!(f.kind.as_deref(), Some("Create"));
    // Deep inside a reference: the first element is not a reference, nothing is read.
    let deep = format!(
        r#"{{"type":"Create","actor":[{}"https://a.example/u"{}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert_eq!(Facts::parse(deep.as_bytes()).unwrap().actor, None);
    // Nested arrays as the `object` (which Mastodon cannot act on) are refused past
    // serde_json's 128 levels: a 400, never a stack overflow.
    let deep = format!(
        r#"{{"type":"Create","object":{}"https://a.example/n"{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(Facts::parse(deep.as_bytes()).is_err());
}

/// A small deterministic generator of JSON texts made of the keys and values the readers
/// care about, repeated keys included (a `serde_json::Value` cannot hold them, so the text is
/// written by hand).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, so a failure names a seed that reproduces it.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
    fn value(&mut self, depth: u32, out: &mut String) {
        let choice = if depth == 0 {
            self.next() % 4
        } else {
            self.next() % 7
        };
        match choice {
            0 | 1 => {
                let s = self.pick(&[
                    "https://good.example/u/a",
                    "https://bad.example/u/m",
                    "Mention",
                    "Hashtag",
                    "Create",
                    "Note",
                    " ",
                    "",
                ]);
                out.push_str(&serde_json::to_string(s).unwrap());
            }
            2 => out.push_str(self.pick(&["null", "true", "0", "-1.5", "12"])),
            3 => out.push_str(self.pick(&["[]", "{}"])),
            4 | 5 => self.object(depth - 1, out),
            _ => {
                out.push('[');
                for i in 0..self.next() % 4 {
                    if i > 0 {
                        out.push(',');
                    }
                    self.value(depth - 1, out);
                }
                out.push(']');
            }
        }
    }
    fn object(&mut self, depth: u32, out: &mut String) {
        out.push('{');
        for i in 0..self.next() % 6 {
            if i > 0 {
                out.push(',');
            }
            let key = self.pick(&[
                "id",
                "type",
                "actor",
                "object",
                "attributedTo",
                "inReplyTo",
                "quote",
                "quoteUrl",
                "quoteUri",
                "_misskey_quote",
                "tag",
                "href",
                "name",
                "Actor",
                "act\\u006fr",
            ]);
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
            self.value(depth, out);
        }
        out.push('}');
    }
}

#[test]
fn the_streaming_reader_agrees_with_a_last_key_wins_reader_on_generated_bodies() {
    let mut agreed = 0;
    for seed in 1..=20_000u64 {
        let mut g = Gen(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut body = String::new();
        g.object(4, &mut body);
        let ours = Facts::parse(body.as_bytes()).map_err(|_| oracle::Refused);
        assert_eq!(ours, oracle::read(body.as_bytes()), "seed {seed}: {body}");
        agreed += ours.is_ok() as usize;
    }
    // The generator must mostly produce bodies both readers accept, or the property says little.
    assert!(agreed > 10_000, "only {agreed} bodies parsed");
}

/// The attack end to end: a Create signed by a key of an allowed domain whose embedded actor
/// object names, by a repeated `id` or behind an `href`, an account on a suspended domain.
#[tokio::test]
async fn an_embedded_actor_object_cannot_hide_a_suspended_actor() {
    let good = RemoteInstance::start("good.example").await;
    let bad = RemoteInstance::start("bad.example").await;
    let alice = good.add_actor("alice");
    let mallory = bad.add_actor("mallory");
    let puma = RecordingUpstream::start().await;
    let proxy = Proxy::builder(puma.addr())
        .remote(&good)
        .remote(&bad)
        .blocklist_file(
            "domain_blocks.csv",
            "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n\
             bad.example,suspend,false,false,Spam,false\n",
        )
        .start()
        .await;
    proxy.wait_ready().await;

    let bodies = [
        format!(
            r#"{{"type":"Create","id":"{a}/activities/1","actor":{{"id":"{a}","id":"{m}"}},"object":{{"type":"Note","id":"{a}/n/1","content":"x"}}}}"#,
            a = alice.id,
            m = mallory.id
        ),
        format!(
            r#"{{"type":"Create","id":"{a}/activities/2","actor":{{"href":"{a}","id":"{m}"}},"object":{{"type":"Note","id":"{a}/n/2","content":"x"}}}}"#,
            a = alice.id,
            m = mallory.id
        ),
        format!(
            r#"{{"type":"Create","id":"{a}/activities/3","actor":"{a}","actor":"{m}","object":{{"type":"Note","id":"{a}/n/3","content":"x"}}}}"#,
            a = alice.id,
            m = mallory.id
        ),
    ];
    for body in &bodies {
        let (status, _, _) = within(
            "signed delivery",
            proxy.post_signed(
                &alice,
                "/users/bob/inbox",
                "mastodon.local",
                body.as_bytes(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    assert_eq!(
        puma.count(),
        0,
        "a delivery Mastodon reads as mallory's was forwarded"
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "inboxguard_requests_total{decision=\"rejected\",reason=\"suspended_actor_host\"}"
        ),
        Some(3.0)
    );

    // Control: the same shape naming alice only is forwarded.
    let body = format!(
        r#"{{"type":"Create","id":"{a}/activities/4","actor":{{"href":"{m}","id":"{a}"}},"object":{{"type":"Note","id":"{a}/n/4","content":"x"}}}}"#,
        a = alice.id,
        m = mallory.id
    );
    let (status, _, _) = within(
        "signed delivery",
        proxy.post_signed(
            &alice,
            "/users/bob/inbox",
            "mastodon.local",
            body.as_bytes(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(puma.count(), 1);
}
