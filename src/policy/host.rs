//! Host normalisation: the one way a domain from a rule file, a keyId or an actor URI becomes
//! the key rules are matched on, following Mastodon's `TagManager#normalize_domain` and
//! `DomainValidator`.
//!
//! Rules and requests must go through the same function: a host that normalises differently on
//! the two sides (`Bad.Example.` vs `bad.example`, `bücher` vs `xn--bcher-kva`) is a way around
//! a block.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// Mastodon's `DomainValidator`: a normalised name must be shorter than this.
const MAX_NAME_LEN: usize = 256;
/// Mastodon's `DomainValidator`: each dot-separated label is 1 to 63 characters.
const MAX_LABEL_LEN: usize = 63;

/// Normalises a host as Mastodon stores and looks up domains: surrounding whitespace and one
/// trailing `/` trimmed, lowercased, IDNA → punycode, ONE trailing dot removed, a `:port` dropped, and `[…]` removed
/// from an IPv6 literal (which is written in its canonical compressed form).
///
/// `None` when the result is not a host: empty labels (`bad.example..`), a label longer than 63
/// characters, a name of 256 characters or more, or a character outside `[a-z0-9-_]` after
/// IDNA mapping (`*`, `%`, `/`, whitespace, …). Percent-escapes are not decoded here; `of_uri`
/// gets decoded hosts from the URL parser.
///
/// One deliberate difference from Mastodon's validator: `_` is accepted in labels. DNS and the
/// WHATWG URL parser accept it, so a sender can use `a_b.bad.example`; refusing to normalise
/// that name would let it slip past the `bad.example` rule wherever a caller treats "no host"
/// as "not listed".
pub fn normalize(host: &str) -> Option<String> {
    // Mastodon's TagManager strips one trailing slash too (`bad.example/` in a CSV).
    let host = host.trim();
    let host = host.strip_suffix('/').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    if let Some(rest) = host.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        if !after.is_empty() {
            valid_port(after.strip_prefix(':')?)?;
        }
        return addr.parse::<Ipv6Addr>().ok().map(|a| a.to_string());
    }
    // More than one colon without brackets can only be a bare IPv6 address.
    if host.bytes().filter(|&b| b == b':').count() > 1 {
        return host.parse::<Ipv6Addr>().ok().map(|a| a.to_string());
    }
    let name = match host.split_once(':') {
        Some((name, port)) => {
            valid_port(port)?;
            name
        }
        None => host,
    };
    // UTS 46 mapping lowercases, maps look-alike dots (`。`) to `.`, and punycodes.
    let mut ascii = idna::domain_to_ascii(name).ok()?;
    if ascii.ends_with('.') {
        ascii.pop();
    }
    valid_name(&ascii).then_some(ascii)
}

/// The normalised host of a URI: `https://Host.Example./x` → `host.example`, and for
/// `acct:user@host`, `user@host` or `@user@host` the part after the last `@`.
///
/// `None` when the input names no valid host (no `://` and no `@`, an unparsable URL, a URL
/// without a host). Callers must treat `None` as a malformed identifier, never as "not listed".
pub fn of_uri(uri: &str) -> Option<String> {
    let uri = uri.trim();
    if uri.contains("://") {
        let url = Url::parse(uri).ok()?;
        return match url.host()? {
            // For http(s) the URL parser has already lowercased, percent-decoded and
            // punycoded the name; `normalize` is idempotent on that and also handles the
            // opaque hosts of other schemes.
            Host::Domain(name) => normalize(name),
            Host::Ipv4(addr) => Some(addr.to_string()),
            Host::Ipv6(addr) => Some(addr.to_string()),
        };
    }
    let (_, host) = uri.rsplit_once('@')?;
    normalize(host)
}

/// [`of_uri`], borrowed from `uri` when it is already in the canonical form most senders use
/// (`https://lower.case.host/…`), so a per-request path does not allocate. Borrowing only
/// where `of_uri` would return the same text: no uppercase, port, userinfo, percent-escape,
/// trailing dot, punycode label (which IDNA validates), or numeric last label (which the URL
/// parser reads as an IPv4 address).
pub fn of_uri_borrowed(uri: &str) -> Option<Cow<'_, str>> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"));
    if let Some(rest) = rest {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let name = &rest[..end];
        if is_canonical_name(name) {
            return Some(Cow::Borrowed(name));
        }
    }
    of_uri(uri).map(Cow::Owned)
}

/// True for an IP literal as `normalize` writes it. Addresses are matched exactly, never by
/// suffix: `2.1` is not a parent of `192.0.2.1`.
pub(crate) fn is_ip_literal(host: &str) -> bool {
    host.contains(':') || host.parse::<Ipv4Addr>().is_ok()
}

/// `host` (one trailing dot dropped) and each parent suffix on a label boundary, longest
/// first; an IP literal only itself. The one walk every suffix match uses, so rules and
/// `explain` agree on which suffixes a host has.
pub fn suffixes(host: &str) -> impl Iterator<Item = &str> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let exact_only = is_ip_literal(host);
    std::iter::successors(Some(host), move |c| {
        if exact_only {
            None
        } else {
            c.split_once('.').map(|(_, parent)| parent)
        }
    })
}

/// `suffixes`, each with its label count (the lookup tables skip counts no entry has).
pub(crate) fn suffixes_with_labels(host: &str) -> impl Iterator<Item = (&str, usize)> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels = host.bytes().filter(|&b| b == b'.').count() + 1;
    suffixes(host).zip((1..=labels).rev())
}

fn valid_port(port: &str) -> Option<()> {
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok())
        .then_some(())
}

/// A name `normalize` would return unchanged, judged without IDNA: see [`of_uri_borrowed`].
fn is_canonical_name(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or("");
    let numeric_last = last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x");
    valid_name(name) && !name.split('.').any(|label| label.starts_with("xn--")) && !numeric_last
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < MAX_NAME_LEN
        && name.split('.').all(|label| {
            (1..=MAX_LABEL_LEN).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        let long_label = "a".repeat(64);
        let ok_label = "a".repeat(63);
        let too_long = format!("{ok_label}.{ok_label}.{ok_label}.{ok_label}.example");
        let cases: &[(&str, Option<&str>)] = &[
            ("bad.example", Some("bad.example")),
            ("Bad.Example.", Some("bad.example")),
            ("  BAD.example  ", Some("bad.example")),
            ("bücher.example", Some("xn--bcher-kva.example")),
            ("BÜCHER.example", Some("xn--bcher-kva.example")),
            ("xn--bcher-kva.example", Some("xn--bcher-kva.example")),
            ("bad。example", Some("bad.example")),
            ("bad.example:443", Some("bad.example")),
            ("Bad.Example.:8080", Some("bad.example")),
            ("bad.example:", None),
            ("bad.example:99999", None),
            ("bad.example:12ab", None),
            ("bad.example..", None),
            ("bad..example", None),
            (".bad.example", None),
            (".", None),
            ("", None),
            ("   ", None),
            ("*.bad.example", None),
            ("b*d.example", None),
            ("bad example", None),
            ("bad.example/", Some("bad.example")),
            ("bad.example//", None),
            ("bad.example/x", None),
            ("bad%2eexample", None),
            ("user@bad.example", None),
            ("a_b.bad.example", Some("a_b.bad.example")),
            ("-x-.example", Some("-x-.example")),
            ("192.0.2.1", Some("192.0.2.1")),
            ("192.0.2.1:8443", Some("192.0.2.1")),
            ("[2001:DB8::1]", Some("2001:db8::1")),
            ("[2001:db8:0:0::1]:443", Some("2001:db8::1")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("[2001:db8::1]x", None),
            ("[2001:db8::1", None),
            ("[bad.example]", None),
            ("fe80::1%eth0", None),
            (&long_label, None),
            (&ok_label, Some(&ok_label)),
            (&too_long, None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), *want, "normalize({input:?})");
        }
    }

    #[test]
    fn name_length_limit_is_below_256() {
        let label = "a".repeat(63);
        // 4 × 63 + 3 dots = 255 characters: the longest accepted name.
        let at_limit = format!("{label}.{label}.{label}.{label}");
        assert_eq!(at_limit.len(), 255);
        assert_eq!(normalize(&at_limit).as_deref(), Some(at_limit.as_str()));
        let over = format!("a{at_limit}");
        assert_eq!(normalize(&over), None);
    }

    #[test]
    fn of_uri_table() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "https://Host.Example./users/a#main-key",
                Some("host.example"),
            ),
            ("https://bad.example:8443/users/a", Some("bad.example")),
            ("http://bücher.example/actor", Some("xn--bcher-kva.example")),
            ("https://user:pw@bad.example/x", Some("bad.example")),
            ("https://[2001:db8::1]:443/actor", Some("2001:db8::1")),
            ("https://192.0.2.1/actor", Some("192.0.2.1")),
            ("https://bad%2Eexample/actor", Some("bad.example")),
            ("https://bad.example../x", None),
            ("file:///etc/passwd", None),
            ("acct:alice@Bad.Example", Some("bad.example")),
            ("alice@bad.example.", Some("bad.example")),
            ("@alice@bad.example", Some("bad.example")),
            ("@a@b@bad.example", Some("bad.example")),
            ("alice@", None),
            ("bad.example", None),
            ("/users/alice", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(of_uri(input).as_deref(), *want, "of_uri({input:?})");
        }
    }

    #[test]
    fn ip_literals() {
        assert!(is_ip_literal("192.0.2.1"));
        assert!(is_ip_literal("2001:db8::1"));
        assert!(!is_ip_literal("bad.example"));
        assert!(!is_ip_literal("1.example"));
    }

    #[test]
    fn canonical_hosts_are_borrowed_and_agree_with_of_uri() {
        for uri in [
            "https://bad.example/users/x",
            "http://a-b_c.example",
            "https://bad.example?x#y",
            "https://Bad.Example/x",
            "https://bad.example./x",
            "https://bad.example:443/x",
            "https://user@bad.example/x",
            "https://b%61d.example/x",
            "https://xn--bcher-kva.example/x",
            "https://bücher.example/x",
            "https://192.0.2.1/x",
            "https://0x7f.1/x",
            "https://[2001:db8::1]/x",
            "acct:x@bad.example",
            "https://",
            "https:///x",
            "not a uri",
            " https://bad.example/x ",
        ] {
            assert_eq!(
                of_uri_borrowed(uri).map(Cow::into_owned),
                of_uri(uri),
                "{uri}"
            );
        }
        assert!(matches!(
            of_uri_borrowed("https://bad.example/x"),
            Some(Cow::Borrowed("bad.example"))
        ));
    }
}
