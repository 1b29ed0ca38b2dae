//! Actor rules: single remote accounts suspended by actor URI or by `@user@host`, and the
//! matching of an activity's actor (or its object's `attributedTo`) against them.
//!
//! A handle (`@user@host`) cannot be resolved to an actor URI without a WebFinger lookup, and
//! policy does no I/O. So a handle rule matches the actor URIs most servers give their
//! accounts: `<scheme>://host/users/<user>` (Mastodon, GoToSocial, Pleroma, Akkoma) and
//! `<scheme>://host/@<user>`, the username compared without regard to case (Mastodon's
//! usernames are case-insensitive). An account whose URI has another shape (Misskey's
//! `/users/<id>`, Lemmy's `/u/<name>`) needs a rule with its actor URI.
//!
//! A URI rule matches that URI with the scheme, port, query and fragment ignored and the host
//! normalised as for domain rules (`https://Bad.Example/users/m#main-key` is
//! `bad.example/users/m`); the path must match exactly, but for one trailing `/`.

use super::host;
use std::collections::HashMap;
use std::sync::Arc;
use url::Url;

/// One actor rule and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorRule {
    /// As written in the rule file, for display.
    pub actor: String,
    pub pattern: ActorPattern,
    pub comment: Option<String>,
    /// Matched and reported, never enforced (the rule's or its source's `dry_run`).
    pub dry_run: bool,
    /// File (or source label) the rule came from, and its 1-based line.
    pub source: Arc<str>,
    pub line: usize,
}

/// What an actor rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActorPattern {
    /// `host/path` of an actor URI (see the module docs).
    Uri(String),
    /// `user@host`, the user lower-cased, from `@user@host`, `user@host` or `acct:user@host`.
    Handle(String),
}

impl ActorPattern {
    /// Parses an actor URI (`http`/`https`) or a handle; `None` when it is neither.
    pub fn parse(text: &str) -> Option<ActorPattern> {
        let text = text.trim();
        if text.contains("://") {
            let url = Url::parse(text).ok()?;
            return uri_key(&url).map(ActorPattern::Uri);
        }
        let handle = text
            .strip_prefix("acct:")
            .or_else(|| text.strip_prefix('@'))
            .unwrap_or(text);
        let (user, domain) = handle.split_once('@')?;
        let valid_user = !user.is_empty()
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid_user {
            return None;
        }
        let domain = host::normalize(domain)?;
        Some(ActorPattern::Handle(handle_key(user, &domain)))
    }

    /// The normalised host the pattern names.
    pub fn host(&self) -> &str {
        match self {
            ActorPattern::Uri(key) => key.split_once('/').map_or(key.as_str(), |(h, _)| h),
            ActorPattern::Handle(key) => key.rsplit_once('@').map_or(key.as_str(), |(_, h)| h),
        }
    }
}

fn handle_key(user: &str, host: &str) -> String {
    format!("{}@{host}", user.to_ascii_lowercase())
}

/// `host/path` for an http(s) URL, the host normalised and one trailing `/` dropped.
fn uri_key(url: &Url) -> Option<String> {
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = host::of_uri(url.as_str())?;
    let path = url.path();
    let path = if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        ""
    };
    Some(format!("{host}{path}"))
}

/// The username of a `/users/<user>` or `/@<user>` path, when the path has that shape.
fn username_of_path(path: &str) -> Option<&str> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let user = path
        .strip_prefix("/users/")
        .or_else(|| path.strip_prefix("/@"))?;
    (!user.is_empty() && !user.contains('/')).then_some(user)
}

/// Actor rules of one tier (enforcing or dry run), by pattern. The first rule listed for a
/// pattern is kept.
#[derive(Debug, Default)]
pub(crate) struct ActorIndex {
    rules: HashMap<ActorPattern, ActorRule>,
}

impl ActorIndex {
    pub(crate) fn insert(&mut self, rule: ActorRule) {
        self.rules.entry(rule.pattern.clone()).or_insert(rule);
    }

    pub(crate) fn len(&self) -> usize {
        self.rules.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &ActorRule> {
        self.rules.values()
    }

    pub(crate) fn get(&self, pattern: &ActorPattern) -> Option<&ActorRule> {
        self.rules.get(pattern)
    }

    /// The rule matching actor URI `uri`: by URI first, then by handle. Parses the URI, so it
    /// costs an allocation or two; callers skip it when no actor rule exists.
    pub(crate) fn find(&self, uri: &str) -> Option<&ActorRule> {
        if self.rules.is_empty() {
            return None;
        }
        let url = Url::parse(uri.trim()).ok()?;
        let key = uri_key(&url)?;
        if let Some(rule) = self.rules.get(&ActorPattern::Uri(key)) {
            return Some(rule);
        }
        let user = username_of_path(url.path())?;
        let host = host::of_uri(url.as_str())?;
        self.rules
            .get(&ActorPattern::Handle(handle_key(user, &host)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> ActorRule {
        ActorRule {
            actor: text.to_string(),
            pattern: ActorPattern::parse(text).expect(text),
            comment: None,
            dry_run: false,
            source: Arc::from("rules.toml"),
            line: 1,
        }
    }

    #[test]
    fn patterns() {
        let uri = |s: &str| Some(ActorPattern::Uri(s.to_string()));
        let handle = |s: &str| Some(ActorPattern::Handle(s.to_string()));
        let cases: &[(&str, Option<ActorPattern>)] = &[
            (
                "https://Bad.Example/users/Mallory",
                uri("bad.example/users/Mallory"),
            ),
            (
                "http://bad.example:8443/users/m/#main-key",
                uri("bad.example/users/m"),
            ),
            ("https://bad.example/", uri("bad.example")),
            ("@Mallory@Bad.Example.", handle("mallory@bad.example")),
            ("mallory@bad.example", handle("mallory@bad.example")),
            ("acct:mallory@bad.example", handle("mallory@bad.example")),
            ("@a.b-c_d@bad.example", handle("a.b-c_d@bad.example")),
            ("@@bad.example", None),
            ("@mallory", None),
            ("@mal/lory@bad.example", None),
            ("@mallory@bad..example", None),
            ("ftp://bad.example/users/m", None),
            ("https://", None),
            ("bad.example", None),
        ];
        for (text, want) in cases {
            assert_eq!(&ActorPattern::parse(text), want, "{text}");
        }
        assert_eq!(
            ActorPattern::parse("@m@bad.example")
                .expect("handle")
                .host(),
            "bad.example"
        );
        assert_eq!(
            ActorPattern::parse("https://bad.example/users/m")
                .expect("uri")
                .host(),
            "bad.example"
        );
    }

    #[test]
    fn matching() {
        let mut index = ActorIndex::default();
        assert!(index.find("https://bad.example/users/m").is_none());
        index.insert(rule("https://bad.example/users/exact"));
        index.insert(rule("@Mallory@bad.example"));
        let exact = Some("https://bad.example/users/exact");
        let handle = Some("@Mallory@bad.example");
        for (uri, want) in [
            ("https://bad.example/users/exact", exact),
            ("http://BAD.example:80/users/exact/", exact),
            ("https://bad.example/users/Exact", None),
            ("https://bad.example/users/exact/statuses/1", None),
            // A handle matches both common URI shapes, ignoring case.
            ("https://bad.example/users/mallory", handle),
            ("https://bad.example/@MALLORY", handle),
            ("https://bad.example/u/mallory", None),
            ("https://sub.bad.example/users/mallory", None),
            ("https://bad.example/users/mallory2", None),
            ("not a uri", None),
        ] {
            assert_eq!(index.find(uri).map(|r| r.actor.as_str()), want, "{uri}");
        }
        // The first rule for a pattern stays.
        let mut second = rule("@mallory@bad.example");
        second.line = 9;
        index.insert(second);
        assert_eq!(
            index
                .find("https://bad.example/@mallory")
                .map(|r| (r.actor.as_str(), r.line)),
            Some(("@Mallory@bad.example", 1))
        );
        assert_eq!(index.len(), 2);
    }
}
