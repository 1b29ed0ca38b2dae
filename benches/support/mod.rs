//! Realistic inputs shared by the benches and the load harness: Mastodon-shaped activities,
//! a signed inbox POST, and a large Mastodon `domain_blocks.csv`. Deterministic, so two runs
//! measure the same bytes.

use http::{header, HeaderMap, HeaderValue, Method};
use inboxguard::signature::{sign_request, SignStyle, SigningKey};
use std::fmt::Write;
use std::time::SystemTime;

/// The inbox every generated request is delivered to.
pub const INBOX: &str = "/users/admin/inbox";
/// The receiving instance, as the `Host` the sender signs.
pub const LOCAL_HOST: &str = "mastodon.local";

/// Roughly 1.3 KB of the HTML Mastodon puts in a Note's `content` (mentions, links, hashtags).
fn note_html(n: usize) -> String {
    let mut html = String::with_capacity(1400);
    html.push_str("<p><span class=\"h-card\" translate=\"no\"><a href=\"https://mastodon.local/@admin\" class=\"u-url mention\">@<span>admin</span></a></span> ");
    for i in 0..6 {
        let _ = write!(
            html,
            "Paragraph {i} of post {n}: federation works when servers are cheap to run, so the proxy in front of the inbox should cost little. "
        );
    }
    html.push_str("<a href=\"https://example.org/tags/fediverse\" class=\"mention hashtag\" rel=\"tag\">#<span>fediverse</span></a></p>");
    html
}

/// A Mastodon `Create` of a public `Note` (about 2.5 KB of JSON, the note itself ~2 KB).
pub fn create(actor: &str, n: usize) -> String {
    let content = note_html(n);
    serde_json::json!({
        "@context": [
            "https://www.w3.org/ns/activitystreams",
            {
                "ostatus": "http://ostatus.org#",
                "atomUri": "ostatus:atomUri",
                "inReplyToAtomUri": "ostatus:inReplyToAtomUri",
                "conversation": "ostatus:conversation",
                "sensitive": "as:sensitive",
                "toot": "http://joinmastodon.org/ns#",
                "votersCount": "toot:votersCount",
                "Hashtag": "as:Hashtag"
            }
        ],
        "id": format!("{actor}/statuses/{n}/activity"),
        "type": "Create",
        "actor": actor,
        "published": "2025-01-15T12:00:00Z",
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "cc": [format!("{actor}/followers"), "https://mastodon.local/users/admin"],
        "object": {
            "id": format!("{actor}/statuses/{n}"),
            "type": "Note",
            "summary": null,
            "inReplyTo": null,
            "published": "2025-01-15T12:00:00Z",
            "url": format!("{actor}/statuses/{n}"),
            "attributedTo": actor,
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
            "cc": [format!("{actor}/followers"), "https://mastodon.local/users/admin"],
            "sensitive": false,
            "atomUri": format!("{actor}/statuses/{n}"),
            "inReplyToAtomUri": null,
            "conversation": format!("tag:remote,2025-01-15:objectId={n}:objectType=Conversation"),
            "content": content,
            "contentMap": {"en": content},
            "attachment": [],
            "tag": [
                {"type": "Mention", "href": "https://mastodon.local/users/admin", "name": "@admin@mastodon.local"},
                {"type": "Hashtag", "href": "https://example.org/tags/fediverse", "name": "#fediverse"}
            ],
            "replies": {
                "id": format!("{actor}/statuses/{n}/replies"),
                "type": "Collection",
                "first": {
                    "type": "CollectionPage",
                    "next": format!("{actor}/statuses/{n}/replies?only_other_accounts=true&page=true"),
                    "partOf": format!("{actor}/statuses/{n}/replies"),
                    "items": []
                }
            }
        }
    })
    .to_string()
}

/// A Mastodon boost: `Announce` of a status URI.
pub fn announce(actor: &str, n: usize) -> String {
    serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{actor}/statuses/{n}/activity"),
        "type": "Announce",
        "actor": actor,
        "published": "2025-01-15T12:00:00Z",
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "cc": ["https://mastodon.local/users/admin", format!("{actor}/followers")],
        "object": format!("https://other.example/users/bob/statuses/{n}")
    })
    .to_string()
}

/// A Mastodon status deletion: `Delete` of a `Tombstone`.
pub fn delete(actor: &str, n: usize) -> String {
    serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{actor}/statuses/{n}#delete"),
        "type": "Delete",
        "actor": actor,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "object": {
            "id": format!("{actor}/statuses/{n}"),
            "type": "Tombstone",
            "atomUri": format!("{actor}/statuses/{n}")
        }
    })
    .to_string()
}

/// An inbox POST as Mastodon sends it: `Host`, `Date`, `Digest`, `Content-Type`, and a
/// `Signature` over `(request-target) host date digest content-type` (rsa-sha256), or the
/// hs2019 form with `(created)`/`(expires)`.
pub fn signed_post(
    key: &SigningKey,
    key_id: &str,
    body: &[u8],
    date: SystemTime,
    style: SignStyle,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static(LOCAL_HOST));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/activity+json"),
    );
    headers.insert(
        header::DATE,
        HeaderValue::from_str(&httpdate::fmt_http_date(date)).expect("HTTP date is ASCII"),
    );
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static("http.rb/5.2.0 (Mastodon/4.3.2; +https://remote.example/)"),
    );
    sign_request(key, key_id, &Method::POST, INBOX, &mut headers, body, style)
        .expect("signing a well-formed request");
    headers
}

/// The `n`th of the generated blocked domains: spread over several TLDs and parents and over
/// two to five labels, like a shared blocklist (`bad.example`, `spam.host.example`,
/// `a.spam.host.example`, ...), so suffix matching meets every depth a real list has.
pub fn blocked_domain(n: usize) -> String {
    const TLDS: [&str; 8] = [
        "example", "social", "net", "org", "xyz", "online", "club", "io",
    ];
    let tld = TLDS[n % TLDS.len()];
    match n % 4 {
        0 => format!("spam{n}.{tld}"),
        1 => format!("spam{n}.host{}.{tld}", n % 997),
        2 => format!("a{n}.spam{}.host{}.{tld}", n % 499, n % 997),
        _ => format!("x{n}.a{}.spam{}.host{}.{tld}", n % 101, n % 499, n % 997),
    }
}

/// A Mastodon `domain_blocks.csv` export with `n` rules (mostly suspend, some silence and
/// noop, a few `reject_reports`), plus the given extra suspended domains.
pub fn mastodon_csv(n: usize, extra_suspended: &[&str]) -> String {
    let mut csv = String::with_capacity(n * 64);
    csv.push_str("#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n");
    for i in 0..n {
        let (severity, reports) = match i % 10 {
            0 => ("silence", "false"),
            1 => ("noop", "true"),
            _ => ("suspend", "false"),
        };
        let _ = writeln!(
            csv,
            "{},{severity},false,{reports},Spam,false",
            blocked_domain(i)
        );
    }
    for d in extra_suspended {
        let _ = writeln!(csv, "{d},suspend,false,false,Harassment,false");
    }
    csv
}

/// `n` content rules in the shape operators write during a wave, none of which matches
/// [`create`]: an ordinary post is checked against every rule, the worst case for a request
/// that passes. With `wave`, the last rule is the 2024 waves' rule, which matches
/// [`wave_create`].
pub fn content_rules(n: usize, wave: bool) -> String {
    let fillers = if wave { n.saturating_sub(1) } else { n };
    let mut out: String = (0..fillers)
        .map(|i| {
            let condition = match i % 5 {
                0 => format!("mentions_at_least = {}", 20 + i),
                1 => format!("text_matches = ['spam{i}\\.example/', 'promo code {i}']"),
                2 => format!("link_domains = [\"spam{i}.example\"]"),
                3 => format!("hashtags_any = [\"wave{i}\"]"),
                _ => format!("attachment_blurhash = [\"L{i}HV6nWB2yk8pyo0adR\"]"),
            };
            format!(
                "[[content_rules]]\nname = \"rule-{i}\"\ntypes = [\"Create\"]\n{condition}\naction = \"drop\"\n\n"
            )
        })
        .collect();
    if wave {
        out.push_str(concat!(
            "[[content_rules]]\n",
            "name = \"discord-wave\"\n",
            "types = [\"Create\"]\n",
            "mentions_at_least = 5\n",
            "actor_age_under = \"2d\"\n",
            "text_matches = ['discord\\.gg/', 'discord\\.com/invite']\n",
            "action = \"drop\"\n",
        ));
    }
    out
}

/// A post of the 2024 spam waves: a `Create` of a public `Note` from a fresh account with ten
/// mentions of local accounts, an image, and a Discord invite link.
pub fn wave_create(actor: &str, n: usize) -> String {
    let mentions: Vec<_> = (0..10)
        .map(|i| {
            serde_json::json!({
                "type": "Mention",
                "href": format!("https://{LOCAL_HOST}/users/user{}", (n + i) % 500),
                "name": format!("@user{}@{LOCAL_HOST}", (n + i) % 500),
            })
        })
        .collect();
    serde_json::json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{actor}/statuses/{n}/activity"),
        "type": "Create",
        "actor": actor,
        "published": "2025-01-15T12:00:00Z",
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "object": {
            "id": format!("{actor}/statuses/{n}"),
            "type": "Note",
            "attributedTo": actor,
            "published": "2025-01-15T12:00:00Z",
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
            "content": format!("<p>free nitro for everyone, join now <a href=\"https://discord.gg/x{n}\">discord.gg/x{n}</a></p>"),
            "attachment": [{
                "type": "Document",
                "mediaType": "image/png",
                "url": format!("{actor}/media/{n}.png"),
                "blurhash": "UBL_:rOpGG-oBUNG,qRj2so|=eE1w^n4S5NH",
            }],
            "tag": mentions,
        }
    })
    .to_string()
}
