//! RFC 9421 signing side: a `sign/http` JSON body (component identifiers, structured-field
//! parameters, dictionary members of the message's fields, Content-Digest), then the signature
//! base. Any input must give `Ok` or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::signing::http_sig::{parse_sign_request, prepare};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_sign_request(data)
        && let Ok(p) = prepare(&req, "fuzz-key", Some("ed25519"), 1_700_000_000)
    {
        // Whatever is built must be a valid signature base: ASCII, and ending with the params.
        assert!(p.signature_base.is_ascii());
        assert!(p.signature_base.ends_with(&p.signature_params));
    }
});
