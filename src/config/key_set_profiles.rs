//! A key set's profiles (`profile = "..."` or `profiles = [...]`) and its issuer rule, apart from
//! `validate` to keep files short. Errors are `(key, reason)` like the rest of validation.

use crate::signing::Profile;

type Result<T> = std::result::Result<T, (String, String)>;

const KNOWN: &str =
    "id_token, access_token, jarm, introspection, logout_token, http_message, generic";

/// The profiles a key set names: exactly one of `profile` and `profiles`; several only among the
/// JWT profiles (an AS signing every token type with one key), none twice.
pub(super) fn profiles(
    key: &dyn Fn(&str) -> String,
    profile: Option<&str>,
    profiles: Option<&[String]>,
) -> Result<Vec<Profile>> {
    let parse = |field: &str, name: &str| {
        Profile::from_name(name)
            .ok_or_else(|| (key(field), format!("unknown profile `{name}` ({KNOWN})")))
    };
    match (profile, profiles) {
        (Some(p), None) => Ok(vec![parse("profile", p)?]),
        (None, Some(list)) => {
            let mut out = Vec::new();
            for name in list {
                let p = parse("profiles", name)?;
                if out.contains(&p) {
                    return Err((key("profiles"), format!("`{name}` is listed twice")));
                }
                out.push(p);
            }
            if out.is_empty() {
                return Err((key("profiles"), "must name at least one profile".into()));
            }
            if out.len() > 1
                && out
                    .iter()
                    .any(|p| matches!(p, Profile::HttpMessage | Profile::Generic))
            {
                return Err((
                    key("profiles"),
                    "several profiles may only be JWT profiles (id_token, access_token, jarm, \
                     introspection, logout_token)"
                        .into(),
                ));
            }
            Ok(out)
        }
        (Some(_), Some(_)) => Err((
            key("profiles"),
            "set `profile` or `profiles`, not both".into(),
        )),
        (None, None) => Err((key("profile"), format!("required ({KNOWN})"))),
    }
}

/// Under FAPI 2.0 the issuer is an https URL; plain http is allowed for a loopback host only
/// (`http://127.0.0.1:3000`, `http://localhost`, `http://[::1]`), for a demo or test AS.
pub(super) fn issuer_ok(issuer: &str) -> bool {
    if issuer.starts_with("https://") {
        return true;
    }
    let Some(rest) = issuer.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if authority.contains('@') {
        return false;
    }
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_http_issuers_only() {
        for ok in [
            "https://as.example.test",
            "http://127.0.0.1:3000",
            "http://localhost:3000/op",
            "http://[::1]:8443",
            "http://127.0.0.2",
        ] {
            assert!(issuer_ok(ok), "{ok}");
        }
        for bad in [
            "http://as.example.test",
            "http://127.0.0.1.example.test",
            "http://user@127.0.0.1",
            "ftp://127.0.0.1",
            "as.example.test",
        ] {
            assert!(!issuer_ok(bad), "{bad}");
        }
    }

    #[test]
    fn one_profile_or_several_jwt_profiles() {
        let key = |f: &str| f.to_string();
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(profiles(&key, Some("jarm"), None).unwrap(), [Profile::Jarm]);
        let two = list(&["id_token", "jarm"]);
        assert_eq!(
            profiles(&key, None, Some(&two)).unwrap(),
            [Profile::IdToken, Profile::Jarm]
        );
        for bad in [
            list(&[]),
            list(&["jarm", "jarm"]),
            list(&["jarm", "generic"]),
            list(&["id_token", "http_message"]),
            list(&["nope"]),
        ] {
            assert!(profiles(&key, None, Some(&bad)).is_err(), "{bad:?}");
        }
        assert!(profiles(&key, Some("jarm"), Some(&two)).is_err());
        assert!(profiles(&key, None, None).is_err());
    }
}
