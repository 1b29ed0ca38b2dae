use super::*;
use http::{HeaderValue, Method};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn base_for(h: &HeaderMap, target: &str, authority: &str) -> Result<String, SigError> {
    let input = parse(h)?;
    let msg = Message {
        method: &Method::POST,
        path_and_query: target,
        headers: h,
        scheme: "https",
        authority: Some(authority),
    };
    signature_base(&msg, &input).map(|b| String::from_utf8(b).unwrap())
}

const SIG: (&str, &str) = ("signature", "sig1=:AAAA:");

#[test]
fn derived_components() {
    let h = headers(&[
        (
            "signature-input",
            r#"sig1=("@method" "@target-uri" "@authority" "@scheme" "@path" "@query" "@request-target");created=1;keyid="k""#,
        ),
        SIG,
    ]);
    let base = base_for(&h, "/users/a/inbox?x=1&y", "Example.COM:443").unwrap();
    assert_eq!(
        base,
        "\"@method\": POST\n\
         \"@target-uri\": https://example.com/users/a/inbox?x=1&y\n\
         \"@authority\": example.com\n\
         \"@scheme\": https\n\
         \"@path\": /users/a/inbox\n\
         \"@query\": ?x=1&y\n\
         \"@request-target\": /users/a/inbox?x=1&y\n\
         \"@signature-params\": (\"@method\" \"@target-uri\" \"@authority\" \"@scheme\" \"@path\" \"@query\" \"@request-target\");created=1;keyid=\"k\""
    );
    // No query: `@query` is a lone `?`, `@target-uri` has none; a non-default port stays.
    let base = base_for(&h, "/inbox", "example.com:8443").unwrap();
    assert!(base.contains("\"@target-uri\": https://example.com:8443/inbox\n"));
    assert!(base.contains("\"@query\": ?\n"));
}

#[test]
fn signature_params_are_reserialized_canonically() {
    // Extra whitespace and a `?1` boolean: the base carries the canonical form.
    let h = headers(&[
        (
            "signature-input",
            r#"sig1=( "@method"   "@path" );keyid="k";created=1;x=?1"#,
        ),
        SIG,
    ]);
    let base = base_for(&h, "/inbox", "a.example").unwrap();
    assert!(
        base.ends_with("\"@signature-params\": (\"@method\" \"@path\");keyid=\"k\";created=1;x")
    );
}

#[test]
fn header_fields_are_trimmed_joined_and_transformed() {
    let h = headers(&[
        (
            "signature-input",
            r#"sig1=("x-list" "content-digest";sf "content-digest";key="sha-256" "x-list";bs);created=1"#,
        ),
        SIG,
        ("x-list", " a "),
        ("x-list", "b,  c"),
        ("content-digest", "sha-256=:AAA=:,   sha-512=:BBA=:"),
    ]);
    let base = base_for(&h, "/inbox", "a.example").unwrap();
    let lines: Vec<&str> = base.lines().collect();
    assert_eq!(lines[0], "\"x-list\": a, b,  c");
    assert_eq!(
        lines[1],
        "\"content-digest\";sf: sha-256=:AAA=:, sha-512=:BBA=:"
    );
    assert_eq!(lines[2], "\"content-digest\";key=\"sha-256\": :AAA=:");
    assert_eq!(lines[3], "\"x-list\";bs: :YQ==:, :YiwgIGM=:");
}

#[test]
fn query_param_reencodes_names_and_values() {
    let h = headers(&[
        (
            "signature-input",
            r#"sig1=("@query-param";name="var" "@query-param";name="bar" "@query-param";name="fa%C3%A7ade%22%3A%20");created=1"#,
        ),
        SIG,
    ]);
    // RFC 9421 §2.2.8's example.
    let target = "/path?var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something";
    let base = base_for(&h, target, "a.example").unwrap();
    let lines: Vec<&str> = base.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "\"@query-param\";name=\"var\": this%20is%20a%20big%0Amultiline%20value",
            "\"@query-param\";name=\"bar\": with%20plus%20whitespace",
            "\"@query-param\";name=\"fa%C3%A7ade%22%3A%20\": something",
        ]
    );
}

#[test]
fn refused_components_and_parameters() {
    let cases: &[(&str, &str)] = &[
        (r#"("@status")"#, "rfc9421_unsupported_component"),
        (r#"("@signature-params")"#, "rfc9421_unsupported_component"),
        (r#"("Content-Type")"#, "rfc9421_unsupported_component"),
        (r#"("@method";req)"#, "rfc9421_unsupported_parameter"),
        (r#"("content-type";tr)"#, "rfc9421_unsupported_parameter"),
        (r#"("content-type";sf)"#, "rfc9421_unsupported_parameter"),
        (
            r#"("content-digest";sf;bs)"#,
            "rfc9421_unsupported_parameter",
        ),
        (r#"("@query-param")"#, "rfc9421_unsupported_parameter"),
        (
            r#"("@query-param";name="nope")"#,
            "rfc9421_component_absent",
        ),
        (
            r#"("@query-param";name="a")"#,
            "rfc9421_unsupported_parameter",
        ),
        (r#"("x-missing")"#, "rfc9421_component_absent"),
        (
            r#"("content-digest";key="sha-1")"#,
            "rfc9421_component_absent",
        ),
    ];
    for (list, reason) in cases {
        let h = headers(&[
            ("signature-input", &format!("sig1={list};created=1")),
            SIG,
            ("content-type", "application/activity+json"),
            ("content-digest", "sha-256=:AAA=:"),
        ]);
        let err = base_for(&h, "/inbox?a=1&a=2", "a.example").unwrap_err();
        assert_eq!(err.reason(), *reason, "{list}: {err}");
    }
}

#[test]
fn parse_errors() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("signature-input", "sig1=(")], "rfc9421_malformed"),
        (&[("signature-input", "sig1=\"str\"")], "rfc9421_malformed"),
        (
            &[("signature-input", "sig1=(@method)")],
            "rfc9421_malformed",
        ),
        (&[("signature-input", "sig1=(1)"), SIG], "rfc9421_malformed"),
        (
            &[("signature-input", r#"a=("@method"), b=("@method")"#), SIG],
            "rfc9421_multiple_signatures",
        ),
        (
            &[("signature-input", r#"sig1=("@method" "@method")"#), SIG],
            "rfc9421_duplicate_component",
        ),
        (
            &[("signature-input", r#"sig1=("@method")"#)],
            "rfc9421_signature_missing",
        ),
        (
            &[
                ("signature-input", r#"sig1=("@method")"#),
                ("signature", "sig2=:AAAA:"),
            ],
            "rfc9421_signature_missing",
        ),
        (
            &[
                ("signature-input", r#"sig1=("@method")"#),
                ("signature", "sig1=\"AAAA\""),
            ],
            "rfc9421_malformed",
        ),
        (
            &[("signature-input", r#"sig1=();created="1""#), SIG],
            "invalid_timestamp",
        ),
        (
            &[("signature-input", r#"sig1=();keyid=k"#), SIG],
            "rfc9421_malformed",
        ),
        (
            &[("signature-input", r#"sig1=();alg="hmac-sha256""#), SIG],
            "rfc9421_unsupported_algorithm",
        ),
        (
            &[
                ("signature-input", r#"sig1=();alg="ecdsa-p256-sha256""#),
                SIG,
            ],
            "rfc9421_unsupported_algorithm",
        ),
    ];
    for (pairs, reason) in cases {
        let err = parse(&headers(pairs)).unwrap_err();
        assert_eq!(err.reason(), *reason, "{pairs:?}: {err}");
    }
    let many = (0..=MAX_COMPONENTS)
        .map(|i| format!("\"x-{i}\""))
        .collect::<Vec<_>>()
        .join(" ");
    let h = headers(&[("signature-input", &format!("sig1=({many})")), SIG]);
    assert!(matches!(parse(&h), Err(SigError::TooManySignedHeaders)));
    let huge = format!("sig1=();keyid=\"{}\"", "k".repeat(MAX_FIELD_BYTES));
    let h = headers(&[("signature-input", &huge), SIG]);
    assert!(matches!(parse(&h), Err(SigError::Rfc9421TooLarge(_))));
}

#[test]
fn parameters_and_split_field_lines() {
    // Two `Signature-Input` lines are one dictionary; here still one member.
    let h = headers(&[
        ("signature-input", r#"sig1=("@method");created=5;expires=9"#),
        ("signature", "other=:AAAA:"),
        ("signature", "sig1=:AQID:"),
    ]);
    let input = parse(&h).unwrap();
    assert_eq!(input.label, "sig1");
    assert_eq!((input.created, input.expires), (Some(5), Some(9)));
    assert_eq!(input.signature, [1, 2, 3]);
    assert!(input.covers("@method"));
    assert!(timestamp(-1, "created").is_err());
}

fn sha(alg: &'static aws_lc_rs::digest::Algorithm, body: &[u8]) -> String {
    STANDARD.encode(digest(alg, body))
}

#[test]
fn content_digest() {
    let body = br#"{"hello": "world"}"#;
    let s256 = sha(&SHA256, body);
    let s512 = sha(&SHA512, body);
    let check = |v: &str| {
        check_content_digest(&headers(&[("content-digest", v)]), body, Rules::SpecVectors)
    };
    assert!(check(&format!("sha-256=:{s256}:")).is_ok());
    assert!(check(&format!("sha-512=:{s512}:")).is_ok());
    assert!(check(&format!("md5=:AAAA:, sha-512=:{s512}:, sha-256=:{s256}:")).is_ok());
    assert!(matches!(
        check(&format!("sha-256=:{s512}:")),
        Err(SigError::ContentDigestMismatch("sha-256"))
    ));
    // Every supported member must match, not just one.
    assert!(matches!(
        check(&format!("sha-256=:{s256}:, sha-512=:{s256}:")),
        Err(SigError::ContentDigestMismatch("sha-512"))
    ));
    let err = check("md5=:AAAA:, unixsum=:AAAA:").unwrap_err();
    assert_eq!(err.reason(), "content_digest_unsupported");
    assert!(err.to_string().contains("md5, unixsum"), "{err}");
    for bad in [
        format!("sha-256={s256}"),
        "sha-256=:not base64!:".to_string(),
        "SHA-256=:AAAA:".to_string(),
        "sha-256=\"x\"".to_string(),
        "sha-256=(:AAAA:)".to_string(),
    ] {
        let err = check(&bad).unwrap_err();
        assert_eq!(err.reason(), "content_digest_malformed", "{bad}");
        let status = crate::reject::Rejection::from(err).answer().status;
        assert_eq!(status, http::StatusCode::BAD_REQUEST);
    }
    assert!(matches!(
        check_content_digest(&HeaderMap::new(), body, Rules::SpecVectors),
        Err(SigError::ContentDigestMissing)
    ));
}

#[test]
fn content_digest_under_mastodon_rules_compares_only_sha256() {
    let body = br#"{"hello": "world"}"#;
    let (s256, s512) = (sha(&SHA256, body), sha(&SHA512, body));
    let check =
        |v: &str| check_content_digest(&headers(&[("content-digest", v)]), body, Rules::Mastodon);
    assert!(check(&format!("sha-256=:{s256}:")).is_ok());
    // A wrong sha-512 beside the right sha-256 is not looked at.
    assert!(check(&format!("sha-256=:{s256}:, sha-512=:{s256}:")).is_ok());
    assert!(check(&format!("sha-512=:AAAA:, sha-256=:{s256}:")).is_ok());
    // A right sha-512 alone is refused, with Mastodon's message.
    let err = check(&format!("sha-512=:{s512}:")).unwrap_err();
    assert_eq!(err.reason(), "content_digest_unsupported");
    assert_eq!(
        err.to_string(),
        "Mastodon only supports SHA-256 in Content-Digest header. Offered algorithms: sha-512"
    );
    assert!(matches!(
        check(&format!("sha-256=:{s512}:, sha-512=:{s512}:")),
        Err(SigError::ContentDigestMismatch("sha-256"))
    ));
    assert_eq!(
        check("sha-256=(:AAAA:)").unwrap_err().reason(),
        "content_digest_malformed"
    );
}
