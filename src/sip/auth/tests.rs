use super::*;

// RFC 7616 §3.9.1.
const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";

fn rfc7616_challenge(algorithm: &str) -> String {
    format!(
        "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
         algorithm={algorithm}, nonce=\"{RFC7616_NONCE}\", opaque=\"{RFC7616_OPAQUE}\""
    )
}

fn mufasa(password: &str) -> Credentials {
    Credentials {
        username: "Mufasa".into(),
        password: password.into(),
    }
}

/// The value of `name=` in a rendered header, quotes removed.
fn param<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header
        .trim_start_matches("Digest ")
        .split(", ")
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}

fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

fn simple_challenge(alg: Algorithm, nonce: &str, qop: &[&str]) -> Challenge {
    Challenge {
        realm: "sip.example.net".into(),
        nonce: nonce.into(),
        opaque: None,
        algorithm: alg,
        qop: qop.iter().map(|q| q.to_string()).collect(),
        stale: false,
    }
}

#[test]
fn rfc7616_sha256_worked_example() {
    let challenge = Challenge::parse(&rfc7616_challenge("SHA-256")).unwrap();
    let header = DigestClient::new()
        .authorize_with_cnonce(
            &challenge,
            &mufasa("Circle of Life"),
            "GET",
            "/dir/index.html",
            b"",
            RFC7616_CNONCE,
        )
        .unwrap();
    assert_eq!(
        header,
        format!(
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
             nonce=\"{RFC7616_NONCE}\", uri=\"/dir/index.html\", \
             response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", \
             algorithm=SHA-256, cnonce=\"{RFC7616_CNONCE}\", opaque=\"{RFC7616_OPAQUE}\", \
             qop=auth, nc=00000001"
        )
    );
}

#[test]
fn rfc7616_md5_worked_example() {
    let challenge = Challenge::parse(&rfc7616_challenge("MD5")).unwrap();
    let header = DigestClient::new()
        .authorize_with_cnonce(
            &challenge,
            &mufasa("Circle of Life"),
            "GET",
            "/dir/index.html",
            b"",
            RFC7616_CNONCE,
        )
        .unwrap();
    assert_eq!(
        param(&header, "response"),
        Some("8ca523f5e9506fed4657c9700eebdbec")
    );
    assert_eq!(param(&header, "algorithm"), Some("MD5"));
}

#[test]
fn rfc7616_sha512_256_example_with_erratum_4897() {
    // RFC 7616 §3.9.2 as corrected by erratum 4897: the published response was not of
    // the published inputs. The username sent is hashed there (userhash). The response
    // uses the plain name, so it is checked here with the plain name sent.
    let challenge = Challenge::parse(
        "Digest realm=\"api@example.org\", qop=\"auth\", algorithm=SHA-512-256, \
         nonce=\"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK\", \
         opaque=\"HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS\", charset=UTF-8, userhash=true",
    )
    .unwrap();
    assert_eq!(challenge.algorithm, Algorithm::Sha512_256);
    let credentials = Credentials {
        username: "J\u{e4}s\u{f8}n Doe".into(),
        password: "Secret, or not?".into(),
    };
    let header = DigestClient::new()
        .authorize_with_cnonce(
            &challenge,
            &credentials,
            "GET",
            "/doe.json",
            b"",
            "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
        )
        .unwrap();
    assert_eq!(
        param(&header, "response"),
        Some("3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5")
    );
}

#[test]
fn rfc2617_worked_example() {
    let challenge = Challenge::parse(
        "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
         nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
         opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
    )
    .unwrap();
    let header = DigestClient::new()
        .authorize_with_cnonce(
            &challenge,
            &mufasa("Circle Of Life"),
            "GET",
            "/dir/index.html",
            b"",
            "0a4f113b",
        )
        .unwrap();
    assert_eq!(
        param(&header, "response"),
        Some("6629fae49393a05397450978507c4ef1")
    );
    assert_eq!(param(&header, "qop"), Some("auth"));
    assert_eq!(param(&header, "nc"), Some("00000001"));
    assert_eq!(param(&header, "cnonce"), Some("0a4f113b"));
    assert_eq!(
        param(&header, "opaque"),
        Some("5ccc069c403ebaf9f0171e9517f40e41")
    );
}

#[test]
fn rfc2069_form_without_qop() {
    // RFC 2069 §2.4 with its erratum: the printed response is not of its inputs, the
    // corrected one is 1949323746fe6a43ef61f9606e7febea.
    let challenge = Challenge::parse(
        "Digest realm=\"testrealm@host.com\", \
         nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
         opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
    )
    .unwrap();
    assert!(challenge.qop.is_empty());
    let header = DigestClient::new()
        .authorize(
            &challenge,
            &mufasa("CircleOfLife"),
            "GET",
            "/dir/index.html",
            b"",
            &mut rand::rng(),
        )
        .unwrap();
    assert_eq!(
        param(&header, "response"),
        Some("1949323746fe6a43ef61f9606e7febea")
    );
    assert_eq!(param(&header, "cnonce"), None);
    assert_eq!(param(&header, "nc"), None);
    assert_eq!(param(&header, "qop"), None);
}

#[test]
fn md5_sess_ha1_covers_nonce_and_cnonce() {
    let challenge = simple_challenge(Algorithm::Md5Sess, "abc123", &["auth"]);
    let header = DigestClient::new()
        .authorize_with_cnonce(
            &challenge,
            &mufasa("Circle Of Life"),
            "REGISTER",
            "sip:sip.example.net",
            b"",
            "0a4f113b",
        )
        .unwrap();
    // RFC 2617 §3.2.2.2, computed apart from the module's code.
    let ha1 = md5_hex(&format!(
        "{}:abc123:0a4f113b",
        md5_hex("Mufasa:sip.example.net:Circle Of Life")
    ));
    let ha2 = md5_hex("REGISTER:sip:sip.example.net");
    let expected = md5_hex(&format!("{ha1}:abc123:00000001:0a4f113b:auth:{ha2}"));
    assert_eq!(param(&header, "response"), Some(expected.as_str()));
    assert_eq!(param(&header, "algorithm"), Some("MD5-sess"));
}

#[test]
fn sess_keeps_the_first_cnonce_for_the_nonce() {
    let mut client = DigestClient::new();
    let creds = mufasa("pw");
    let challenge = simple_challenge(Algorithm::Sha256Sess, "n1", &["auth"]);
    let first = client
        .authorize(
            &challenge,
            &creds,
            "REGISTER",
            "sip:a",
            b"",
            &mut rand::rng(),
        )
        .unwrap();
    let second = client
        .authorize(
            &challenge,
            &creds,
            "REGISTER",
            "sip:a",
            b"",
            &mut rand::rng(),
        )
        .unwrap();
    assert_eq!(param(&first, "cnonce"), param(&second, "cnonce"));
    assert_ne!(param(&first, "response"), param(&second, "response"));
    let renewed = simple_challenge(Algorithm::Sha256Sess, "n2", &["auth"]);
    let third = client
        .authorize(&renewed, &creds, "REGISTER", "sip:a", b"", &mut rand::rng())
        .unwrap();
    assert_ne!(param(&first, "cnonce"), param(&third, "cnonce"));
}

#[test]
fn nonce_count_is_hex_and_counts_each_use() {
    let mut client = DigestClient::new();
    let creds = mufasa("pw");
    let challenge = simple_challenge(Algorithm::Md5, "n1", &["auth"]);
    let mut header = String::new();
    for _ in 0..10 {
        header = client
            .authorize_with_cnonce(&challenge, &creds, "REGISTER", "sip:a", b"", "cn")
            .unwrap();
    }
    assert_eq!(param(&header, "nc"), Some("0000000a"));
    let ha1 = md5_hex("Mufasa:sip.example.net:pw");
    let ha2 = md5_hex("REGISTER:sip:a");
    let expected = md5_hex(&format!("{ha1}:n1:0000000a:cn:auth:{ha2}"));
    assert_eq!(param(&header, "response"), Some(expected.as_str()));
}

#[test]
fn stale_challenge_with_new_nonce_restarts_the_count() {
    let mut client = DigestClient::new();
    let creds = mufasa("pw");
    let first = simple_challenge(Algorithm::Sha256, "n1", &["auth"]);
    let proxy = Challenge {
        realm: "proxy.example.net".into(),
        ..simple_challenge(Algorithm::Md5, "p1", &["auth"])
    };
    for _ in 0..3 {
        client
            .authorize(&first, &creds, "REGISTER", "sip:a", b"", &mut rand::rng())
            .unwrap();
    }
    client
        .authorize(&proxy, &creds, "REGISTER", "sip:a", b"", &mut rand::rng())
        .unwrap();
    let stale = Challenge::parse(
        "Digest realm=\"sip.example.net\", nonce=\"n2\", algorithm=SHA-256, qop=\"auth\", stale=TRUE",
    )
    .unwrap();
    assert!(stale.stale);
    let header = client
        .authorize(&stale, &creds, "REGISTER", "sip:a", b"", &mut rand::rng())
        .unwrap();
    assert_eq!(param(&header, "nc"), Some("00000001"));
    assert_eq!(param(&header, "nonce"), Some("n2"));
    // The proxy realm keeps its own count.
    let header = client
        .authorize(&proxy, &creds, "REGISTER", "sip:a", b"", &mut rand::rng())
        .unwrap();
    assert_eq!(param(&header, "nc"), Some("00000002"));
}

#[test]
fn cnonce_is_fresh_random_hex() {
    let mut client = DigestClient::new();
    let challenge = simple_challenge(Algorithm::Md5, "n1", &["auth"]);
    let a = client
        .authorize(
            &challenge,
            &mufasa("pw"),
            "REGISTER",
            "sip:a",
            b"",
            &mut rand::rng(),
        )
        .unwrap();
    let b = client
        .authorize(
            &challenge,
            &mufasa("pw"),
            "REGISTER",
            "sip:a",
            b"",
            &mut rand::rng(),
        )
        .unwrap();
    let (ca, cb) = (param(&a, "cnonce").unwrap(), param(&b, "cnonce").unwrap());
    assert_ne!(ca, cb);
    assert_eq!(ca.len(), 32);
    assert!(ca.bytes().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn auth_int_hashes_the_body_when_auth_is_not_offered() {
    let challenge = simple_challenge(Algorithm::Md5, "n1", &["auth-int"]);
    let body = b"v=0\r\n";
    let header = DigestClient::new()
        .authorize_with_cnonce(&challenge, &mufasa("pw"), "INVITE", "sip:b", body, "cn")
        .unwrap();
    let ha1 = md5_hex("Mufasa:sip.example.net:pw");
    let ha2 = md5_hex(&format!("INVITE:sip:b:{}", md5_hex("v=0\r\n")));
    let expected = md5_hex(&format!("{ha1}:n1:00000001:cn:auth-int:{ha2}"));
    assert_eq!(param(&header, "response"), Some(expected.as_str()));
    assert_eq!(param(&header, "qop"), Some("auth-int"));
    // With both offered we choose auth.
    let both = simple_challenge(Algorithm::Md5, "n1", &["auth-int", "auth"]);
    assert_eq!(both.qop_choice(), Ok(Some(Qop::Auth)));
}

#[test]
fn unknown_qop_only_is_refused() {
    let challenge = simple_challenge(Algorithm::Md5, "n1", &["auth-conf"]);
    let err = DigestClient::new()
        .authorize(
            &challenge,
            &mufasa("pw"),
            "REGISTER",
            "sip:a",
            b"",
            &mut rand::rng(),
        )
        .unwrap_err();
    assert_eq!(err, AuthError::UnsupportedQop("auth-conf".into()));
}

#[test]
fn values_are_quoted_and_escaped() {
    let challenge = Challenge::parse(r#"Digest realm="a \"b\" \\c", nonce="x\"y""#).unwrap();
    assert_eq!(challenge.realm, r#"a "b" \c"#);
    assert_eq!(challenge.nonce, r#"x"y"#);
    let header = DigestClient::new()
        .authorize(
            &challenge,
            &mufasa("pw"),
            "REGISTER",
            "sip:a",
            b"",
            &mut rand::rng(),
        )
        .unwrap();
    assert!(header.contains(r#"realm="a \"b\" \\c""#), "{header}");
    assert!(header.contains(r#"nonce="x\"y""#), "{header}");
}

#[test]
fn control_characters_never_reach_our_header() {
    let challenge = simple_challenge(Algorithm::Md5, "n1", &["auth"]);
    let evil = Credentials {
        username: "bob\r\nVia: x".into(),
        password: "pw".into(),
    };
    assert_eq!(
        DigestClient::new().authorize(
            &challenge,
            &evil,
            "REGISTER",
            "sip:a",
            b"",
            &mut rand::rng()
        ),
        Err(AuthError::ControlCharacter("username"))
    );
    assert_eq!(
        Challenge::parse("Digest realm=\"r\", nonce=\"a\r\nVia: x\""),
        Err(AuthError::ControlCharacter("nonce"))
    );
}

#[test]
fn credentials_debug_hides_the_password() {
    let shown = format!("{:?}", mufasa("hunter2"));
    assert!(shown.contains("Mufasa"));
    assert!(!shown.contains("hunter2"));
}

#[test]
fn parses_asterisk_pjsip_challenge() {
    let c = Challenge::parse(
        "Digest realm=\"asterisk\",nonce=\"1565191219/8c8b8a45c0cb5bdb3f3b0bc4c0fd8e0c\",\
         opaque=\"5f2e0f7b7a1e6d5e\",algorithm=md5,qop=\"auth\"",
    )
    .unwrap();
    assert_eq!(
        c,
        Challenge {
            realm: "asterisk".into(),
            nonce: "1565191219/8c8b8a45c0cb5bdb3f3b0bc4c0fd8e0c".into(),
            opaque: Some("5f2e0f7b7a1e6d5e".into()),
            algorithm: Algorithm::Md5,
            qop: vec!["auth".into()],
            stale: false,
        }
    );
}

#[test]
fn parses_asterisk_chan_sip_challenge_without_qop() {
    let c =
        Challenge::parse("Digest algorithm=MD5, realm=\"asterisk\", nonce=\"3a4b6c1e\"").unwrap();
    assert_eq!(c.realm, "asterisk");
    assert_eq!(c.nonce, "3a4b6c1e");
    assert!(c.qop.is_empty());
    assert_eq!(c.qop_choice(), Ok(None));
}

#[test]
fn parses_kamailio_challenge_with_default_algorithm() {
    let c = Challenge::parse(
        "Digest realm=\"127.0.0.1\", nonce=\"ZPZ5QGT2eBQbKkWUgu3e9U4rGPX6K8yZ\", qop=\"auth\"",
    )
    .unwrap();
    assert_eq!(c.realm, "127.0.0.1");
    assert_eq!(c.algorithm, Algorithm::Md5);
    assert_eq!(c.qop, vec!["auth".to_string()]);
    assert_eq!(c.opaque, None);
}

#[test]
fn parses_freeswitch_challenge() {
    let c = Challenge::parse(
        "Digest realm=\"192.168.1.10\", nonce=\"9fa7d8b8-5c0e-11e9-8a5d-2b2f6c7c8f7d\", \
         algorithm=MD5, qop=\"auth\"",
    )
    .unwrap();
    assert_eq!(c.nonce, "9fa7d8b8-5c0e-11e9-8a5d-2b2f6c7c8f7d");
    assert_eq!(c.algorithm, Algorithm::Md5);
}

#[test]
fn parses_lowercase_names_extra_spaces_and_bare_values() {
    let c = Challenge::parse(
        "  digest   REALM = \"sip.example.net\" ,, nonce=AbC/d+e==  ,\tQop = auth , \
         ALGORITHM=sha-256-SESS, stale=true, domain=\"sip:example.net\", x-vendor=1",
    )
    .unwrap();
    assert_eq!(c.realm, "sip.example.net");
    assert_eq!(c.nonce, "AbC/d+e==");
    assert_eq!(c.qop, vec!["auth".to_string()]);
    assert_eq!(c.algorithm, Algorithm::Sha256Sess);
    assert!(c.stale);
}

#[test]
fn algorithm_tokens_are_case_insensitive() {
    for (token, alg) in [
        ("MD5", Algorithm::Md5),
        ("md5-SESS", Algorithm::Md5Sess),
        ("SHA-256", Algorithm::Sha256),
        ("sha-256", Algorithm::Sha256),
        ("Sha-512-256-Sess", Algorithm::Sha512_256Sess),
    ] {
        assert_eq!(Algorithm::from_token(token), Some(alg), "{token}");
    }
    assert_eq!(Algorithm::from_token("SHA256"), None);
    assert_eq!(Algorithm::from_token("AKAv1-MD5"), None);
}

#[test]
fn best_prefers_sha256_over_md5_in_either_order() {
    let sha = rfc7616_challenge("SHA-256");
    let md5 = rfc7616_challenge("MD5");
    for order in [[sha.as_str(), md5.as_str()], [md5.as_str(), sha.as_str()]] {
        assert_eq!(Challenge::best(order).unwrap().algorithm, Algorithm::Sha256);
    }
}

#[test]
fn best_skips_what_it_cannot_answer() {
    let values = [
        "Basic realm=\"x\"",
        "Digest realm=\"ims\", nonce=\"n\", algorithm=AKAv1-MD5",
        "Digest realm=\"r\", nonce=\"n\", qop=\"auth-conf\", algorithm=SHA-512-256",
        "Digest realm=\"r\", nonce=\"n2\", qop=\"auth\"",
    ];
    let best = Challenge::best(values).unwrap();
    assert_eq!(best.nonce, "n2");
    assert_eq!(best.algorithm, Algorithm::Md5);
    // Topmost wins a tie.
    let tie = [
        "Digest realm=\"r\", nonce=\"first\", algorithm=SHA-256",
        "Digest realm=\"r\", nonce=\"second\", algorithm=SHA-256-sess",
    ];
    assert_eq!(Challenge::best(tie).unwrap().nonce, "first");
}

#[test]
fn best_reports_why_nothing_fits() {
    assert_eq!(
        Challenge::best(["Basic realm=\"x\""]),
        Err(AuthError::NotDigest("Basic".into()))
    );
    assert_eq!(Challenge::best([]), Err(AuthError::NoChallenge));
}

#[test]
fn one_header_value_may_hold_several_challenges() {
    let value = "Digest realm=\"r\", nonce=\"a\", algorithm=MD5, \
                 Digest realm=\"r\", nonce=\"b\", algorithm=SHA-256, Negotiate, \
                 Basic realm=\"r\"";
    let all = Challenge::parse_all([value]);
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].as_ref().unwrap().nonce, "a");
    assert_eq!(all[1].as_ref().unwrap().algorithm, Algorithm::Sha256);
    assert_eq!(all[2], Err(AuthError::NotDigest("Negotiate".into())));
    assert_eq!(Challenge::best([value]).unwrap().nonce, "b");
    assert_eq!(Challenge::parse(value).unwrap().nonce, "a");
}

#[test]
fn malformed_challenges_are_errors() {
    let cases: [(&str, AuthError); 9] = [
        (
            "Digest realm=\"r\", nonce=\"abc",
            AuthError::Malformed {
                at: 24,
                reason: "unterminated quoted string",
            },
        ),
        ("Digest realm=\"r\"", AuthError::MissingParam("nonce")),
        ("Digest nonce=\"n\"", AuthError::MissingParam("realm")),
        (
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1",
            AuthError::UnsupportedAlgorithm("SHA-1".into()),
        ),
        (
            "Digest realm=\"r\", realm=\"s\", nonce=\"n\"",
            AuthError::DuplicateParam("realm"),
        ),
        (
            "Digest realm=\"r\" nonce=\"n\"",
            AuthError::Malformed {
                at: 17,
                reason: "expected a comma between parameters",
            },
        ),
        ("Bearer token=\"t\"", AuthError::NotDigest("Bearer".into())),
        ("  ", AuthError::NoChallenge),
        (
            "\"Digest\"",
            AuthError::Malformed {
                at: 0,
                reason: "expected an auth scheme",
            },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(Challenge::parse(input), Err(expected), "{input:?}");
    }
}

#[test]
fn oversized_challenge_is_refused() {
    let value = format!("Digest realm=\"r\", nonce=\"{}\"", "a".repeat(5000));
    assert!(matches!(
        Challenge::parse(&value),
        Err(AuthError::TooLong { max: 4096, .. })
    ));
}

#[test]
fn hostile_input_never_panics() {
    let samples = [
        rfc7616_challenge("SHA-256"),
        "Digest ééé=1, realm=\"ü\\".to_string(),
        "Digest realm=\"日本\", nonce=ñ\"\\\"".to_string(),
        "Digest \\\\\\\"\"\"===,,,".to_string(),
        format!("Digest realm=\"{}", "\\".repeat(4000)),
    ];
    for sample in &samples {
        // Every prefix, cut at every character boundary.
        for (i, _) in sample.char_indices() {
            let _ = Challenge::parse(&sample[..i]);
            let _ = Challenge::best([&sample[..i], &sample[i..]]);
        }
    }
    // The full RFC line still parses after all that.
    assert!(Challenge::parse(&samples[0]).is_ok());
}

#[test]
fn challenge_kind_names_the_headers() {
    let www = ChallengeKind::from_status(401).unwrap();
    assert_eq!(www.challenge_header(), "WWW-Authenticate");
    assert_eq!(www.credentials_header(), "Authorization");
    let proxy = ChallengeKind::from_status(407).unwrap();
    assert_eq!(proxy.challenge_header(), "Proxy-Authenticate");
    assert_eq!(proxy.credentials_header(), "Proxy-Authorization");
    assert_eq!(ChallengeKind::from_status(403), None);
}
