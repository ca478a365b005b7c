//! The profile checks a caller's JWT request goes through: `Profile::header` on the caller's
//! header members and `Profile::check_claims` on the claims. Input: one byte choosing the
//! profile, then a JSON object used as both.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::signing::{ClaimPolicy, Profile, TimePolicy};

const PROFILES: [&str; 7] = [
    "id_token",
    "access_token",
    "jarm",
    "introspection",
    "logout_token",
    "http_message",
    "generic",
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, json)) = data.split_first() else {
        return;
    };
    let Some(profile) = Profile::from_name(PROFILES[usize::from(which) % PROFILES.len()]) else {
        return;
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(json) else {
        return;
    };
    let policy = ClaimPolicy {
        issuer: "https://as.example.test",
        times: TimePolicy {
            max_lifetime_s: 3600,
            clock_skew_s: 60,
        },
    };
    let _ = profile.header(&map);
    for now in [0, 1_700_000_000, i64::MAX, i64::MIN] {
        let _ = profile.check_claims(&map, &policy, now);
    }
});
