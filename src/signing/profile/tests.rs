use super::*;
use serde_json::json;

const NOW: i64 = 1_800_000_000;

fn policy() -> ClaimPolicy<'static> {
    ClaimPolicy {
        issuer: "https://as.example.com",
        times: TimePolicy {
            max_lifetime_s: 3600,
            clock_skew_s: 60,
        },
    }
}

fn map(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn check(p: Profile, claims: Value) -> Result<(), PolicyError> {
    p.check_claims(&map(claims), &policy(), NOW)
}

fn id_token() -> Value {
    json!({"iss": "https://as.example.com", "sub": "a", "aud": ["c1", "c2"], "iat": NOW, "exp": NOW + 3600})
}

#[test]
fn valid_tokens_pass() {
    check(Profile::IdToken, id_token()).unwrap();
    check(
        Profile::Jarm,
        json!({"iss": "https://as.example.com", "aud": "c", "exp": NOW + 60}),
    )
    .unwrap();
    check(
        Profile::Introspection,
        json!({"iss": "https://as.example.com", "aud": "rs", "iat": NOW,
               "token_introspection": {"active": false}}),
    )
    .unwrap();
    check(
        Profile::LogoutToken,
        json!({"iss": "https://as.example.com", "aud": "c", "iat": NOW, "jti": "j", "sid": "s",
               "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}),
    )
    .unwrap();
    check(Profile::Generic, json!({})).unwrap();
}

#[test]
fn time_rules() {
    let mut c = id_token();
    c["exp"] = json!(NOW + 3601);
    assert_eq!(
        check(Profile::IdToken, c).unwrap_err(),
        PolicyError::LifetimeExceeded {
            members: TimeMembers::Jwt,
            lifetime: 3601,
            max: 3600
        }
    );
    let mut c = id_token();
    c["iat"] = json!(NOW - 61);
    c["exp"] = json!(NOW + 60);
    assert_eq!(
        check(Profile::IdToken, c).unwrap_err().code(),
        "iat_out_of_range"
    );
    let mut c = id_token();
    c["iat"] = json!(NOW + 60);
    c["exp"] = json!(NOW + 120);
    check(Profile::IdToken, c).unwrap();
    // JARM has no iat: the lifetime counts from now.
    let jarm = json!({"iss": "https://as.example.com", "aud": "c", "exp": NOW + 3700});
    assert_eq!(
        check(Profile::Jarm, jarm).unwrap_err().code(),
        "lifetime_exceeded"
    );
    let mut c = id_token();
    c["exp"] = json!(-5);
    assert_eq!(
        check(Profile::IdToken, c).unwrap_err().code(),
        "claim_invalid"
    );
}

#[test]
fn header_rules() {
    assert_eq!(
        Profile::AccessToken.header(&Map::new()).unwrap()["typ"],
        "at+jwt"
    );
    let ok = Profile::AccessToken
        .header(&map(json!({"typ": "application/at+JWT"})))
        .unwrap();
    assert_eq!(ok["typ"], "at+jwt");
    for member in ["alg", "kid", "jku", "x5u", "jwk", "crit", "x5c"] {
        let h = map(json!({member: "x"}));
        assert_eq!(
            Profile::Generic.header(&h).unwrap_err().code(),
            "header_forbidden",
            "{member}"
        );
        assert_eq!(
            Profile::IdToken.header(&h).unwrap_err().code(),
            "header_forbidden",
            "{member}"
        );
    }
    assert_eq!(
        Profile::IdToken
            .header(&map(json!({"cty": "JWT"})))
            .unwrap_err()
            .code(),
        "header_not_allowed"
    );
    let generic = Profile::Generic
        .header(&map(json!({"cty": "json", "typ": "x"})))
        .unwrap();
    assert_eq!(generic.len(), 2);
}

#[test]
fn names_round_trip() {
    for p in [
        Profile::IdToken,
        Profile::AccessToken,
        Profile::Jarm,
        Profile::Introspection,
        Profile::LogoutToken,
        Profile::HttpMessage,
        Profile::Generic,
    ] {
        assert_eq!(Profile::from_name(p.name()), Some(p));
    }
}

/// The rule `sign/http` applies to `created` and `expires` (the checks `service::http_sign` made
/// before the rule moved here).
#[test]
fn http_signature_times_follow_the_same_rule() {
    let times = TimePolicy {
        max_lifetime_s: 300,
        clock_skew_s: 60,
    };
    let code = |created: Option<i64>, expires: Option<i64>| {
        times
            .check(TimeMembers::HttpSignature, created, expires, 1_000)
            .err()
            .map(|e| e.code())
    };
    assert_eq!(code(None, None), None);
    assert_eq!(code(None, Some(1300)), None);
    assert_eq!(code(None, Some(1301)), Some("lifetime_exceeded"));
    assert_eq!(code(Some(940), Some(1240)), None);
    assert_eq!(code(Some(939), None), Some("created_out_of_range"));
    assert_eq!(code(Some(1061), None), Some("created_out_of_range"));
    assert_eq!(code(Some(1060), Some(1361)), Some("lifetime_exceeded"));
    // An expiry before the start is the caller's to refuse (RFC 9421: expires_not_after_created).
    assert_eq!(code(Some(1000), Some(900)), None);
}

/// Found by `fuzz/fuzz_targets/claims.rs`: `iat - now` overflowed for an extreme `now`.
#[test]
fn extreme_times_are_refused_not_panicked_on() {
    let claims = map(json!({
        "iss": "https://as.example.com", "sub": "a", "aud": "rp", "iat": NOW, "exp": NOW + 300
    }));
    for now in [i64::MIN, i64::MAX] {
        let e = Profile::IdToken
            .check_claims(&claims, &policy(), now)
            .unwrap_err();
        assert_eq!(e.code(), "iat_out_of_range", "{e}");
    }
    // Without `iat` the lifetime counts from `now`.
    let no_iat = map(json!({"iss": "https://as.example.com", "aud": "rp", "exp": 1}));
    let e = Profile::Jarm
        .check_claims(&no_iat, &policy(), i64::MIN)
        .unwrap_err();
    assert_eq!(e.code(), "lifetime_exceeded", "{e}");
}
