//! RFC 9421 verifying side: `Signature-Input` and `Signature` field values (structured-field
//! dictionaries) over a message. Input: the Signature-Input line, a newline, the Signature line,
//! and optionally a newline and the message as `sign/http` JSON (else an RFC 9421 B.2 request).
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::signing::http_sig::{HttpMessage, verify_message};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let input = parts.next().unwrap_or_default();
    let signature = parts.next().unwrap_or_default();
    let message = parts
        .next()
        .and_then(|json| serde_json::from_str::<HttpMessage>(json).ok())
        .unwrap_or_else(example);
    for label in [None, Some("sig")] {
        let _ = verify_message(&message, None, input, signature, label, |_, _, _, _| false);
    }
});

fn example() -> HttpMessage {
    HttpMessage {
        method: Some("POST".into()),
        target_uri: Some("https://example.com/foo?param=Value&Pet=dog".into()),
        status: None,
        headers: vec![
            ("Host".into(), "example.com".into()),
            ("Date".into(), "Tue, 20 Apr 2021 02:07:55 GMT".into()),
            ("Content-Type".into(), "application/json".into()),
            ("Example-Dict".into(), "a=1, b=2;x=1;y=2, c=(a b c)".into()),
            ("Content-Length".into(), "18".into()),
        ],
        body: Some(br#"{"hello": "world"}"#.to_vec()),
    }
}
