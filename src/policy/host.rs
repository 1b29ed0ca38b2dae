//! Host normalisation, as Mastodon's `TagManager#normalize_domain`.

/// Lowercase, IDNA → punycode, one trailing dot removed, port dropped. `None` for input that
/// is not a valid host.
pub fn normalize(_host: &str) -> Option<String> {
    todo!()
}

/// The normalised host of a URI (`https://Host.Example./x` → `host.example`), or of an
/// `acct:user@host` / `user@host` string.
pub fn of_uri(_uri: &str) -> Option<String> {
    todo!()
}
