//! The `sign/compact` signing-input parser (`signing::compact::parse`): the caller's
//! `BASE64URL(header).BASE64URL(payload)`, with the header's `alg` checked, duplicate member
//! names refused at any depth and, for JWT profiles, a payload that must be a JSON object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::signing::compact::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    for alg in ["EdDSA", "ES256", "PS256"] {
        for any_payload in [false, true] {
            if let Ok(parsed) = parse(input, alg, any_payload) {
                let _ = (parsed.kid(), parsed.typ(), parsed.caller_members());
            }
        }
    }
});
