//! The rule that picks the profile of a JWT for a key set with several profiles
//! (`profiles = [...]`), from the header's `typ` and the claims. Documented in README
//! ("Key sets with several profiles"); pure.
//!
//! 1. An explicit `typ` names its profile: `at+jwt` -> `access_token`,
//!    `token-introspection+jwt` -> `introspection`, `logout+jwt` -> `logout_token` (compared
//!    case-insensitively, `application/` optional).
//! 2. Without `typ`, or with `typ` `JWT`: claims that belong to those typed profiles
//!    (`token_introspection`, `events`) match nothing, since RFC 9701 and Back-Channel Logout
//!    require their `typ`. Otherwise a payload with `sub` is an `id_token`, one with `code`,
//!    `error` or `response` (and no `sub`) a `jarm` response; one with both `sub` and `code`/`error`
//!    is ambiguous and matches nothing.
//! 3. Any other `typ` matches nothing.
//!
//! The profile so picked must be one of the key set's, else nothing matches (400
//! `profile_unmatched`).

use serde_json::{Map, Value};

use super::Profile;

/// Why no profile fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no profile of this key set ({profiles}) fits: {reason}")]
pub struct Unmatched {
    pub profiles: String,
    pub reason: &'static str,
}

/// The profile among `profiles` that a JWT with header `typ` and `claims` is signed under.
pub fn select(
    profiles: &[Profile],
    typ: Option<&str>,
    claims: &Map<String, Value>,
) -> Result<Profile, Unmatched> {
    let unmatched = |reason| Unmatched {
        profiles: profiles
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", "),
        reason,
    };
    if let [only] = profiles {
        return Ok(*only);
    }
    let picked = match typ.map(normalise).as_deref() {
        Some("at+jwt") => Profile::AccessToken,
        Some("token-introspection+jwt") => Profile::Introspection,
        Some("logout+jwt") => Profile::LogoutToken,
        None | Some("jwt") => untyped(claims).map_err(unmatched)?,
        Some(_) => return Err(unmatched("typ names no profile")),
    };
    if profiles.contains(&picked) {
        Ok(picked)
    } else {
        Err(unmatched(match picked {
            Profile::AccessToken => "typ at+jwt, but no access_token profile",
            Profile::Introspection => "typ token-introspection+jwt, but no introspection profile",
            Profile::LogoutToken => "typ logout+jwt, but no logout_token profile",
            Profile::IdToken => "claims of an ID token (sub), but no id_token profile",
            _ => "claims of a JARM response (code, error or response), but no jarm profile",
        }))
    }
}

fn normalise(typ: &str) -> String {
    let typ = typ.to_ascii_lowercase();
    typ.strip_prefix("application/")
        .map(str::to_string)
        .unwrap_or(typ)
}

fn untyped(claims: &Map<String, Value>) -> Result<Profile, &'static str> {
    if claims.contains_key("token_introspection") {
        return Err("token_introspection without typ token-introspection+jwt");
    }
    if claims.contains_key("events") {
        return Err("events without typ logout+jwt");
    }
    let sub = claims.contains_key("sub");
    let response = ["code", "error", "response"]
        .iter()
        .any(|c| claims.contains_key(*c));
    match (sub, response) {
        (true, false) => Ok(Profile::IdToken),
        (false, true) => Ok(Profile::Jarm),
        (true, true) => Err("ambiguous: sub (ID token) with code or error (JARM)"),
        (false, false) => Err("neither sub (ID token) nor code, error or response (JARM)"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use Profile::*;

    const ALL: &[Profile] = &[IdToken, AccessToken, Jarm, Introspection, LogoutToken];

    fn pick(profiles: &[Profile], typ: Option<&str>, claims: Value) -> Result<Profile, Unmatched> {
        let Value::Object(map) = claims else {
            panic!("claims must be an object")
        };
        select(profiles, typ, &map)
    }

    #[test]
    fn one_profile_per_shape_of_token() {
        let id = json!({"iss": "i", "sub": "alice", "aud": "c", "nonce": "n"});
        let jarm = json!({"iss": "i", "aud": "c", "code": "abc", "state": "s"});
        let jarm_error = json!({"iss": "i", "aud": "c", "error": "access_denied"});
        let at = json!({"iss": "i", "sub": "alice", "client_id": "c", "jti": "j"});
        let intro = json!({"iss": "i", "token_introspection": {"active": true}});
        let logout = json!({"iss": "i", "sub": "alice", "events": {}});
        assert_eq!(pick(ALL, None, id.clone()), Ok(IdToken));
        assert_eq!(pick(ALL, Some("JWT"), id), Ok(IdToken));
        assert_eq!(pick(ALL, None, jarm.clone()), Ok(Jarm));
        assert_eq!(pick(ALL, Some("jwt"), jarm), Ok(Jarm));
        assert_eq!(pick(ALL, None, jarm_error), Ok(Jarm));
        assert_eq!(pick(ALL, Some("at+jwt"), at.clone()), Ok(AccessToken));
        assert_eq!(pick(ALL, Some("application/AT+JWT"), at), Ok(AccessToken));
        assert_eq!(
            pick(ALL, Some("token-introspection+jwt"), intro),
            Ok(Introspection)
        );
        assert_eq!(pick(ALL, Some("logout+jwt"), logout), Ok(LogoutToken));
    }

    #[test]
    fn ambiguous_or_unknown_shapes_match_nothing() {
        let cases = [
            (None, json!({"sub": "alice", "code": "abc"})),
            (Some("JWT"), json!({"sub": "alice", "error": "x"})),
            (None, json!({"iss": "i", "aud": "c"})),
            (None, json!({"token_introspection": {"active": true}})),
            (Some("JWT"), json!({"sub": "a", "events": {}})),
            (Some("secevent+jwt"), json!({"sub": "a"})),
            (Some("dpop+jwt"), json!({"sub": "a"})),
        ];
        for (typ, claims) in cases {
            assert!(pick(ALL, typ, claims.clone()).is_err(), "{typ:?} {claims}");
        }
    }

    #[test]
    fn the_picked_profile_must_be_the_key_sets() {
        let set = &[IdToken, Jarm];
        let err = pick(set, Some("at+jwt"), json!({"sub": "a"})).unwrap_err();
        assert!(err.to_string().contains("id_token, jarm"), "{err}");
        assert!(pick(&[AccessToken, Introspection], None, json!({"sub": "a"})).is_err());
        assert!(pick(&[IdToken, AccessToken], None, json!({"code": "c"})).is_err());
    }

    #[test]
    fn a_single_profile_is_fixed() {
        // The profile's own checks (typ_mismatch...) judge the token; the rule picks nothing.
        assert_eq!(pick(&[Jarm], Some("at+jwt"), json!({})), Ok(Jarm));
    }
}
