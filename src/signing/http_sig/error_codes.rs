//! Test-only: every error code reached through the public API (`parse_sign_request`, `prepare`,
//! `verify_message`), one row per case, plus a check that no code is left untested.

use super::*;

const REQ: &str = r#""method":"POST","target_uri":"https://example.com/a?q=1""#;
const BODY: &str = r#""body":"eyJoZWxsbyI6ICJ3b3JsZCJ9""#;

/// The code `prepare` fails with for a `sign/http` JSON body (or the parse failure's code).
fn prepare_code(json: &str) -> &'static str {
    let req = match parse_sign_request(json.as_bytes()) {
        Ok(req) => req,
        Err(e) => return e.code(),
    };
    match prepare(&req, "k", None, 100) {
        Ok(p) => panic!(
            "expected an error for {json}, got base {:?}",
            p.signature_base
        ),
        Err(e) => e.code(),
    }
}

fn sign_code(message: &str, covered: &str, extra: &str) -> &'static str {
    prepare_code(&format!(
        r#"{{"message":{{{message}}},"covered":[{covered}]{extra}}}"#
    ))
}

fn verify_code(message: &HttpMessage, input: &str, signature: &str) -> &'static str {
    match verify_message(message, None, input, signature, None, |_, _, _, _| false) {
        Ok(_) => panic!("expected an error for {input}"),
        Err(e) => e.code(),
    }
}

// Over 80 lines on purpose: one table of cases and the check that it covers every code; split,
// the list of codes and the cases that reach them would drift apart.
#[test]
fn every_error_code_is_reachable_through_the_public_api() {
    let digest_of_other =
        r#"[["Content-Digest","sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"]]"#;
    let cases: Vec<(&str, &str)> = vec![
        ("invalid_request", prepare_code(r#"{"message":{}}"#)),
        ("bad_body_base64", sign_code(r#""body":"***""#, "", "")),
        ("bad_label", sign_code(REQ, "", r#","label":"Sig""#)),
        (
            "bad_signature_parameter",
            sign_code(REQ, "", r#","nonce":"n\u00e9""#),
        ),
        (
            "bad_signature_parameter",
            sign_code(REQ, "", r#","tag":"a\nb""#),
        ),
        (
            "expires_not_after_created",
            sign_code(REQ, "", r#","created":5,"expires":5"#),
        ),
        (
            "expires_not_after_created",
            sign_code(REQ, "", r#","expires":99"#),
        ),
        ("bad_component", sign_code(REQ, r#""@method;;""#, "")),
        (
            "duplicate_component",
            sign_code(REQ, r#""@method","\"@method\"""#, ""),
        ),
        (
            "unknown_derived_component",
            sign_code(REQ, r#""@body""#, ""),
        ),
        (
            "signature_params_covered",
            sign_code(REQ, r#""@signature-params""#, ""),
        ),
        (
            "unknown_component_parameter",
            sign_code(REQ, r#""@method;x""#, ""),
        ),
        (
            "invalid_component_parameter",
            sign_code(REQ, r#""date;bs;sf""#, ""),
        ),
        (
            "trailers_unsupported",
            sign_code(REQ, r#""expires;tr""#, ""),
        ),
        (
            "component_not_applicable",
            sign_code(REQ, r#""@status""#, ""),
        ),
        (
            "component_not_applicable",
            sign_code(r#""status":200"#, r#""@method""#, ""),
        ),
        (
            "component_not_applicable",
            sign_code(REQ, r#""@path""#, r#","request":{}"#),
        ),
        (
            "component_not_applicable",
            sign_code(r#""status":200"#, r#""@status;req""#, r#","request":{}"#),
        ),
        (
            "request_required",
            sign_code(r#""status":200"#, r#""@method;req""#, ""),
        ),
        ("missing_field", sign_code(REQ, r#""date""#, "")),
        (
            "missing_field",
            sign_code(REQ, r#""date;req""#, &format!(r#","request":{{{REQ}}}"#)),
        ),
        (
            "missing_message_part",
            sign_code(r#""target_uri":"https://e.com/""#, r#""@method""#, ""),
        ),
        (
            "missing_message_part",
            sign_code(r#""method":"GET""#, r#""@authority""#, ""),
        ),
        (
            "missing_message_part",
            sign_code("", r#""@status""#, r#","request":{}"#),
        ),
        (
            "invalid_target_uri",
            sign_code(r#""target_uri":"/a""#, r#""@path""#, ""),
        ),
        (
            "invalid_status",
            sign_code(r#""status":42"#, r#""@status""#, ""),
        ),
        (
            "non_ascii_value",
            sign_code(r#""headers":[["X-A","\u00e9"]]"#, r#""x-a""#, ""),
        ),
        (
            "non_ascii_value",
            sign_code(r#""headers":[["X-A","a\u0001"]]"#, r#""x-a""#, ""),
        ),
        (
            "non_ascii_value",
            sign_code(r#""method":"P\u00d6ST""#, r#""@method""#, ""),
        ),
        (
            "missing_query_param",
            sign_code(REQ, r#""@query-param;name=\"p\"""#, ""),
        ),
        (
            "ambiguous_query_param",
            sign_code(
                r#""target_uri":"https://e.com/?p=1&p=2""#,
                r#""@query-param;name=\"p\"""#,
                "",
            ),
        ),
        (
            "not_a_dictionary",
            sign_code(r#""headers":[["X-A","(a"]]"#, r#""x-a;key=\"a\"""#, ""),
        ),
        (
            "missing_dictionary_key",
            sign_code(r#""headers":[["X-A","b=1"]]"#, r#""x-a;key=\"a\"""#, ""),
        ),
        (
            "sf_parse_failed",
            sign_code(r#""headers":[["X-A","(a"]]"#, r#""x-a;sf""#, ""),
        ),
        (
            "content_digest_without_body",
            sign_code(REQ, "", r#","content_digest":"sha-256""#),
        ),
        (
            "content_digest_invalid",
            sign_code(
                &format!(r#"{BODY},"headers":[["Content-Digest","sha-256=1"]]"#),
                r#""content-digest""#,
                "",
            ),
        ),
        (
            "content_digest_mismatch",
            sign_code(
                &format!(r#"{BODY},"headers":{digest_of_other}"#),
                "",
                r#","content_digest":"sha-512""#,
            ),
        ),
        (
            "content_digest_mismatch",
            sign_code(
                &format!(r#"{BODY},"headers":{digest_of_other}"#),
                r#""content-digest""#,
                "",
            ),
        ),
        (
            "content_digest_mismatch",
            sign_code(
                r#""status":200"#,
                r#""content-digest;req""#,
                &format!(r#","request":{{{BODY},"headers":{digest_of_other}}}"#),
            ),
        ),
    ];

    let request = HttpMessage {
        method: Some("GET".into()),
        target_uri: Some("https://example.com/".into()),
        headers: vec![("Content-Digest".into(), "sha-256=:AAAA:".into())],
        body: Some(b"x".to_vec()),
        ..HttpMessage::default()
    };
    let verify_cases = vec![
        (
            "signature_input_invalid",
            verify_code(&request, "s=(", "s=:AA==:"),
        ),
        (
            "signature_field_invalid",
            verify_code(&request, "s=()", "s=\"x\""),
        ),
        ("label_not_found", verify_code(&request, "s=()", "t=:AA==:")),
        (
            "ambiguous_label",
            verify_code(&request, "s=(), t=()", "s=:AA==:"),
        ),
        (
            "signature_invalid",
            verify_code(&request, "s=()", "s=:AA==:"),
        ),
        (
            "content_digest_mismatch",
            verify_code(&request, r#"s=("content-digest")"#, "s=:AA==:"),
        ),
        (
            "expires_not_after_created",
            verify_code(&request, "s=();created=2;expires=1", "s=:AA==:"),
        ),
    ];

    let mut tested = Vec::new();
    for (expected, got) in cases.into_iter().chain(verify_cases) {
        assert_eq!(got, expected, "case expecting {expected}");
        tested.push(got);
    }
    let all_codes = [
        "invalid_request",
        "bad_body_base64",
        "bad_label",
        "bad_signature_parameter",
        "expires_not_after_created",
        "bad_component",
        "duplicate_component",
        "unknown_derived_component",
        "signature_params_covered",
        "unknown_component_parameter",
        "invalid_component_parameter",
        "trailers_unsupported",
        "component_not_applicable",
        "request_required",
        "missing_field",
        "missing_message_part",
        "invalid_target_uri",
        "invalid_status",
        "non_ascii_value",
        "missing_query_param",
        "ambiguous_query_param",
        "not_a_dictionary",
        "missing_dictionary_key",
        "sf_parse_failed",
        "content_digest_without_body",
        "content_digest_invalid",
        "content_digest_mismatch",
        "signature_input_invalid",
        "signature_field_invalid",
        "label_not_found",
        "ambiguous_label",
        "signature_invalid",
    ];
    for code in all_codes {
        assert!(tested.contains(&code), "no test reaches {code}");
    }
}

#[test]
fn every_error_displays_a_message() {
    let err = HttpSigError::MissingMessagePart {
        component: "\"@method\"".into(),
        part: "method",
    };
    assert_eq!(
        err.to_string(),
        "\"@method\" needs `method`, which the message does not have"
    );
    assert_eq!(err.code(), "missing_message_part");
}
