//! What a URL becomes before anything goes on the network: scheme checked, host normalised,
//! and the pieces the connection and the request line need.

use super::Error;
use std::net::IpAddr;
use url::{Host, Url};

/// One URL ready to be fetched: the checked pieces of a [`Url`].
pub(crate) struct Target {
    /// Host without a trailing dot, lowercase; for IPv6 literals, without brackets.
    pub host: String,
    /// The literal address when the URL names one.
    pub literal: Option<IpAddr>,
    pub port: u16,
    pub https: bool,
    /// `Host` header value: host, `[v6]` in brackets, `:port` when not the default.
    pub authority: String,
    /// Origin-form request target: path and `?query` (never the fragment).
    pub path_and_query: String,
}

impl Target {
    /// Host, port, authority and path, to compare a target with one value in tests.
    #[cfg(test)]
    pub(crate) fn parts(&self) -> (&str, u16, &str, &str) {
        (&self.host, self.port, &self.authority, &self.path_and_query)
    }

    /// Checks the scheme (https, or http when `allow_http`) and the host of `url`.
    pub(crate) fn of(url: &Url, allow_http: bool) -> Result<Target, Error> {
        let https = match url.scheme() {
            "https" => true,
            "http" if allow_http => false,
            "http" => return Err(Error::InsecureScheme),
            _ => return Err(Error::InvalidUrl),
        };
        let (host, literal) = host_parts(url).ok_or(Error::InvalidUrl)?;
        let port = url.port_or_known_default().ok_or(Error::InvalidUrl)?;
        let bracketed = if matches!(literal, Some(IpAddr::V6(_))) {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let authority = match url.port() {
            Some(p) => format!("{bracketed}:{p}"),
            None => bracketed,
        };
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        Ok(Target {
            host,
            literal,
            port,
            https,
            authority,
            path_and_query,
        })
    }
}

/// The host a fetch of `url` would connect to, as [`Target`] writes it (`Remote.Example./x`
/// is `remote.example`); `None` for text that is not a URL with a host (`acct:` included).
pub(crate) fn host_of(url: &str) -> Option<String> {
    host_parts(&Url::parse(url).ok()?).map(|(host, _)| host)
}

/// Whether `url` is http(s) with a host: the only URLs a fetch may go to.
pub(crate) fn is_web_url(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https") && url.host().is_some()
}

/// Lowercase, without one trailing dot, so `Remote.Example.` and `remote.example` are one
/// host for pinning, SNI, `Host` and per-host limits.
pub(crate) fn normalise_host(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// The normalised host of `url` and the address when it is an IP literal; `None` without a
/// (non-empty) host.
fn host_parts(url: &Url) -> Option<(String, Option<IpAddr>)> {
    let parts = match url.host()? {
        Host::Domain(d) => (normalise_host(d), None),
        Host::Ipv4(ip) => (ip.to_string(), Some(IpAddr::V4(ip))),
        Host::Ipv6(ip) => (ip.to_string(), Some(IpAddr::V6(ip))),
    };
    (!parts.0.is_empty()).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let u = |s| Url::parse(s).expect("url");
        let t = Target::of(&u("https://Lists.Example./x/y.csv?v=1"), false).expect("ok");
        assert_eq!(
            t.parts(),
            ("lists.example", 443, "lists.example", "/x/y.csv?v=1")
        );
        let t = Target::of(&u("http://[::1]:8080/l"), true).expect("ok");
        assert_eq!(t.authority, "[::1]:8080");
        assert!(matches!(
            Target::of(&u("http://lists.example/"), false),
            Err(Error::InsecureScheme)
        ));
        assert!(matches!(
            Target::of(&u("ftp://lists.example/"), true),
            Err(Error::InvalidUrl)
        ));
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(
            host_of("https://Remote.Test./x").as_deref(),
            Some("remote.test")
        );
        assert_eq!(host_of("acct:alice@remote.test"), None);
        assert_eq!(host_of("not a url"), None);
    }

    #[test]
    fn host_of_is_the_host_a_target_connects_to() {
        for url in [
            "https://Remote.Test./x",
            "http://192.0.2.1:8080/a",
            "https://[2001:DB8::1]/a",
            "https://bücher.example/a",
        ] {
            let parsed = Url::parse(url).expect("url");
            let target = Target::of(&parsed, true).expect("target");
            assert_eq!(host_of(url), Some(target.host), "{url}");
        }
    }
}
