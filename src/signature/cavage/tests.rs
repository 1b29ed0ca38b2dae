use super::*;

fn parse(s: &str) -> Result<Params<'_>, SigError> {
    parse_params(s.as_bytes())
}

#[test]
fn parses_quoted_and_token_values_with_spaces() {
    let p = parse(
        r#"keyId="https://a.example/u#k" ,  algorithm=rsa-sha256,created=1402170695, expires = "1402170699",headers="(request-target) date",signature="c2ln""#,
    )
    .unwrap();
    assert_eq!(p.key_id, Some(&b"https://a.example/u#k"[..]));
    assert_eq!(p.algorithm, Some(&b"rsa-sha256"[..]));
    assert_eq!(p.created, Some(&b"1402170695"[..]));
    assert_eq!(p.expires, Some(&b"1402170699"[..]));
    assert_eq!(p.headers, Some(&b"(request-target) date"[..]));
    assert_eq!(p.signature, Some(&b"c2ln"[..]));
}

#[test]
fn stray_signature_prefix_is_dropped() {
    let p = parse(r#"Signature keyId="k",signature="c2ln""#).unwrap();
    assert_eq!(p.key_id, Some(&b"k"[..]));
    // Only the exact prefix: anything else is a parse error.
    assert!(matches!(
        parse(r#"signature  keyId="k""#),
        Err(SigError::Malformed)
    ));
}

#[test]
fn comma_inside_quotes_is_part_of_the_value() {
    let p = parse(r#"keyId="a,b=c",signature="x""#).unwrap();
    assert_eq!(p.key_id, Some(&b"a,b=c"[..]));
    // Escapes are kept verbatim, like Mastodon.
    let p = parse(r#"keyId="a\"b",signature="x""#).unwrap();
    assert_eq!(p.key_id, Some(&br#"a\"b"#[..]));
    // An escaped backslash does not escape the quote after it.
    let p = parse(r#"keyId="a\\",signature="x""#).unwrap();
    assert_eq!(p.key_id, Some(&br#"a\\"#[..]));
    assert_eq!(p.signature, Some(&b"x"[..]));
}

#[test]
fn duplicates_are_refused_known_or_not() {
    assert!(matches!(
        parse(r#"keyId="a",keyId="b",signature="x""#),
        Err(SigError::DuplicateParameter)
    ));
    assert!(matches!(
        parse(r#"keyId="a",foo=1,signature="x",foo=2"#),
        Err(SigError::DuplicateParameter)
    ));
    // Names are case-sensitive, so these are two different parameters.
    let p = parse(r#"keyId="a",keyid="b",signature="x""#).unwrap();
    assert_eq!(p.key_id, Some(&b"a"[..]));
}

#[test]
fn malformed_inputs() {
    for bad in [
        "",
        " ",
        "keyId",
        "keyId=",
        r#"keyId="unterminated"#,
        r#"keyId="a""#.trim_end_matches('"'),
        r#"keyId="a",,signature="x""#,
        r#"keyId="a",signature="x","#,
        r#"keyId="a" signature="x""#,
        r#"keyId="a\"#,
        "keyId=a b",
        "=x",
        "keyId=\"a\\\nb\"",
    ] {
        assert!(
            matches!(parse(bad), Err(SigError::Malformed)),
            "accepted {bad:?}"
        );
    }
    // Trailing whitespace is fine.
    assert!(parse("keyId=a, signature=b \t").is_ok());
}

#[test]
fn parameter_count_is_bounded() {
    let many: Vec<String> = (0..=MAX_PARAMETERS).map(|i| format!("p{i}=1")).collect();
    assert!(matches!(
        parse(&many.join(",")),
        Err(SigError::TooManyParameters)
    ));
    assert!(parse(&many[..MAX_PARAMETERS].join(",")).is_ok());
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Deterministic pseudo-random inputs drawn from the characters that matter.
    let alphabet = b"keyId=\"\\, \t\nsignature()abc";
    let mut x: u32 = 0x1234_5678;
    for len in 0..64 {
        for _ in 0..200 {
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    alphabet[(x as usize) % alphabet.len()]
                })
                .collect();
            let _ = parse_params(&input);
        }
    }
    let _ = parse_params(&[0xff, b'=', 0xfe]);
}

#[test]
fn default_headers_depend_on_algorithm() {
    assert_eq!(
        signed_header_list(None, Algorithm::RsaSha256).unwrap(),
        "date"
    );
    assert_eq!(
        signed_header_list(None, Algorithm::Hs2019).unwrap(),
        "(created)"
    );
    assert_eq!(
        signed_header_list(Some(b"(Request-Target) HOST\tDate"), Algorithm::Hs2019).unwrap(),
        "(request-target) host\tdate"
    );
}

fn cov(list: &str) -> Coverage {
    coverage(list).unwrap()
}

#[test]
fn strength_rules_match_mastodon() {
    let post = http::Method::POST;
    let check = |list: &str, m: &http::Method| check_strength(&cov(list), m);
    assert!(matches!(
        check("(request-target) host digest", &post),
        Err(SigError::MissingDate)
    ));
    assert!(matches!(
        check("(request-target) host date", &post),
        Err(SigError::DigestNotSigned)
    ));
    // digest alone satisfies the request-target rule; host is not required for POST.
    assert!(check("date digest", &post).is_ok());
    assert!(matches!(
        check("date host", &http::Method::PUT),
        Err(SigError::TargetNotSigned)
    ));
    assert!(matches!(
        check("(request-target) date", &http::Method::GET),
        Err(SigError::HostNotSigned)
    ));
    assert!(check("(request-target) date host", &http::Method::GET).is_ok());
}

#[test]
fn pseudo_headers_need_hs2019_and_their_parameter() {
    let with_created = Params {
        created: Some(&b"1"[..]),
        ..Params::default()
    };
    let list = "(request-target) (created) digest";
    assert!(matches!(
        check_pseudo_headers(&cov(list), Algorithm::RsaSha256, &with_created),
        Err(SigError::InvalidPseudoHeader("(created)"))
    ));
    assert!(matches!(
        check_pseudo_headers(&cov(list), Algorithm::Hs2019, &Params::default()),
        Err(SigError::PseudoHeaderArgumentMissing("(created)"))
    ));
    assert!(check_pseudo_headers(&cov(list), Algorithm::Hs2019, &with_created).is_ok());
    assert!(matches!(
        check_pseudo_headers(
            &cov("(created) (expires) digest"),
            Algorithm::Hs2019,
            &with_created
        ),
        Err(SigError::PseudoHeaderArgumentMissing("(expires)"))
    ));
}

#[test]
fn signed_header_count_is_bounded() {
    let ok = vec!["x"; MAX_SIGNED_HEADERS].join(" ");
    assert!(coverage(&ok).is_ok());
    let too_many = vec!["x"; MAX_SIGNED_HEADERS + 1].join(" ");
    assert!(matches!(
        coverage(&too_many),
        Err(SigError::TooManySignedHeaders)
    ));
}

#[test]
fn timestamps() {
    assert_eq!(
        parse_timestamp(b"1402170695", "created").unwrap(),
        Duration::from_secs(1402170695)
    );
    assert_eq!(
        parse_timestamp(b"10.25", "created").unwrap(),
        Duration::from_millis(10250)
    );
    for bad in [
        &b""[..],
        b"-1",
        b"1e9",
        b"1.",
        b".5",
        b" 1",
        b"99999999999999999999",
    ] {
        assert!(
            matches!(
                parse_timestamp(bad, "expires"),
                Err(SigError::InvalidTimestamp("expires"))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn window_edges() {
    let s = Duration::from_secs;
    let (skew, max_age) = (s(3600), s(43200));
    let now = s(1_000_000);
    let w = |c: Option<Duration>, e: Option<Duration>| check_window(c, e, now, skew, max_age);
    // created exactly now + skew passes; one second later fails.
    assert!(w(Some(now + skew), None).is_ok());
    assert!(matches!(
        w(Some(now + skew + s(1)), None),
        Err(SigError::OutsideWindow)
    ));
    // No expires: created + 5 min + skew is the last accepted instant.
    assert!(w(Some(now - s(300) - skew), None).is_ok());
    assert!(matches!(
        w(Some(now - s(301) - skew), None),
        Err(SigError::OutsideWindow)
    ));
    // A far expires is capped at created + max_age.
    let created = now - max_age - skew;
    assert!(w(Some(created), Some(now + s(999_999))).is_ok());
    assert!(matches!(
        w(Some(created - s(1)), Some(now + s(999_999))),
        Err(SigError::OutsideWindow)
    ));
    // An explicit expires shorter than 5 min is honoured.
    assert!(matches!(
        w(Some(now - skew - s(20)), Some(now - skew - s(10))),
        Err(SigError::OutsideWindow)
    ));
    // Neither: passes. Only expires: it still applies.
    assert!(w(None, None).is_ok());
    assert!(w(None, Some(now - skew)).is_ok());
    assert!(matches!(
        w(None, Some(now - skew - s(1))),
        Err(SigError::OutsideWindow)
    ));
    // Saturating arithmetic: huge values do not panic.
    assert!(check_window(Some(Duration::MAX), None, now, skew, max_age).is_err());
    assert!(check_window(Some(now), Some(Duration::MAX), Duration::MAX, skew, max_age).is_err());
}

#[test]
fn repeated_headers_are_joined() {
    let mut h = HeaderMap::new();
    h.append("x-a", "1".parse().unwrap());
    h.append("x-a", "2".parse().unwrap());
    h.insert("x-b", "3".parse().unwrap());
    assert_eq!(header_value(&h, "x-a").unwrap().as_ref(), b"1, 2");
    assert!(matches!(header_value(&h, "x-b"), Some(Cow::Borrowed(b"3"))));
    assert!(header_value(&h, "x-c").is_none());
    assert!(header_value(&h, "(not a name)").is_none());
}

#[test]
fn signing_string_layout_and_query_ranges() {
    let mut h = HeaderMap::new();
    h.insert("host", "example.com".parse().unwrap());
    let p = Params {
        created: Some(&b"123"[..]),
        ..Params::default()
    };
    let s = build_signing_string(
        "(request-target) (created) host missing",
        &http::Method::POST,
        "/inbox?a=1&b",
        &h,
        &p,
    );
    assert_eq!(
        String::from_utf8(s.bytes.clone()).unwrap(),
        "(request-target): post /inbox?a=1&b\n(created): 123\nhost: example.com\nmissing: "
    );
    assert_eq!(s.query_ranges.len(), 1);
    assert_eq!(&s.bytes[s.query_ranges[0].clone()], b"?a=1&b");

    // Empty query: signed without the `?`, and no retry candidate.
    let s = build_signing_string("(request-target)", &http::Method::POST, "/inbox?", &h, &p);
    assert_eq!(s.bytes, b"(request-target): post /inbox");
    assert!(s.query_ranges.is_empty());
}

/// The fast path must give exactly what the URL parser gives, or step aside.
#[test]
fn plain_hosts_agree_with_the_url_parser() {
    let pieces = [
        "a",
        "b1",
        "x-y",
        "-",
        "xn--",
        "xn--bcher-kva",
        "0",
        "0x7f",
        "127",
        "1",
        "",
        ".",
        "..",
        "A",
        ":",
        ":8443",
        "@",
        "%41",
        "[",
        "]",
        "\\",
        " ",
        "\t",
        "é",
        "_",
        "/",
        "?",
        "#",
    ];
    let mut checked = 0;
    for a in pieces {
        for b in pieces {
            for c in pieces {
                for tail in ["", "/users/a#main-key", "?x", "#k"] {
                    for scheme in ["https://", "http://"] {
                        let key_id = format!("{scheme}{a}{b}.{c}{tail}");
                        let parsed = url::Url::parse(&key_id)
                            .ok()
                            .and_then(|u| u.host_str().map(str::to_string));
                        if let Some(fast) = plain_host(&key_id) {
                            assert_eq!(Some(fast.to_string()), parsed, "{key_id:?}");
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "the fast path took only {checked} cases");
    assert_eq!(
        plain_host("https://inst1.example/users/u1#main-key"),
        Some("inst1.example")
    );
    assert_eq!(plain_host("https://social.example:8443/k"), None);
    assert_eq!(plain_host("https://10.0.0.1/k"), None);
}

#[test]
fn key_hosts() {
    assert_eq!(
        key_host("https://Social.Example:8443/users/a#main-key").as_deref(),
        Some("social.example")
    );
    assert_eq!(
        key_host("acct:alice@sub@Host.Example").as_deref(),
        Some("Host.Example")
    );
    assert_eq!(key_host("https://[::1]/k").as_deref(), Some("[::1]"));
    for bad in [
        "",
        "main-key",
        "acct:alice",
        "acct:alice@",
        "urn:x:y",
        "/users/a",
    ] {
        assert!(key_host(bad).is_none(), "{bad:?}");
    }
}
