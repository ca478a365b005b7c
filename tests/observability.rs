//! `config/observability/` against the real service: `promtool check rules` passes on the alert
//! rules, and every metric the rules and the Grafana dashboard name is served by `GET /metrics` of
//! a `signet serve` (real SoftHSM, SQLite) that has signed, has a key with a CA-issued
//! certificate and streams its audit trail to a file sink.
//!
//! The metric names are read from the rules' `expr` (YAML, serde_yaml_ng) and the dashboard's
//! `expr` fields (JSON) as the PromQL identifiers that start with `signet_`; the served names are
//! the sample names of the Prometheus text format.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

const RULES: &str = "config/observability/signet-alerts.yml";
const DASHBOARD: &str = "config/observability/grafana-dashboard.json";

/// The identifiers starting with `signet_` in a PromQL expression (label values are quoted and
/// never start with it; label names do not either).
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    for word in expr.split(|c: char| !ident(c)) {
        if word.starts_with("signet_") {
            into.insert(word.to_string());
        }
    }
}

/// Every `expr` of the alert rules.
fn rule_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(RULES)).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("the rules are YAML");
    let mut exprs = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let expr = rule["expr"].as_str().expect("every rule has an expr");
            exprs.push(expr.to_string());
        }
    }
    exprs
}

/// Every `expr` anywhere in the dashboard (panel targets, template variables).
fn dashboard_exprs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(expr)) => into.push(expr.clone()),
                    _ => dashboard_exprs(v, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, into)),
        _ => {}
    }
}

/// The sample names of a Prometheus text exposition.
fn served_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Signs once, and gives the active key of `id` a CA-issued certificate.
async fn exercise(signet: &Signet, dir: &Path) {
    let body = json!({"claims": claims_for("id_token", now())});
    let (status, out) = signet
        .post("/v1/key-sets/id/sign/jwt", Some(SIGNER_TOKEN), &body)
        .await;
    assert_eq!(status, 200, "{out}");
    let jwks = signet.get_json("/v1/key-sets/id/jwks").await;
    let (header, _) = verify_jwt(out["jwt"].as_str().expect("a JWT"), &jwks);
    let kid = header["kid"].as_str().expect("kid").to_string();

    let path = format!("/v1/key-sets/id/keys/{kid}/csr");
    let (status, out) = signet
        .post(&path, Some(ADMIN_TOKEN), &json!({"subject": "CN=signet"}))
        .await;
    assert_eq!(status, 200, "{out}");
    openssl_ca(dir);
    let leaf = openssl_issue(dir, out["csr"].as_str().unwrap(), "20");
    let chain = leaf + &std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    let r = signet
        .http
        .put(signet.url(&format!("/v1/key-sets/id/keys/{kid}/certificate")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"chain": chain}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
}

#[test]
fn promtool_check_rules_passes() {
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(repo().join(RULES))
        .output()
        .expect("promtool (Debian's prometheus package; scripts/setup installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool check rules failed:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_named_by_the_rules_and_the_dashboard_is_served() {
    let mut named = BTreeSet::new();
    let rules = rule_exprs();
    assert!(rules.len() >= 10, "{rules:?}");
    rules.iter().for_each(|e| metric_names(e, &mut named));
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join(DASHBOARD)).unwrap())
            .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    exprs.iter().for_each(|e| metric_names(e, &mut named));
    // The alerts the issue asks for, by the metrics they stand on.
    for wanted in [
        "signet_key_set_next_key_published",
        "signet_key_set_active_key_age_seconds",
        "signet_hsm_up",
        "signet_certificate_expiry_seconds",
        "signet_signatures_total",
        "signet_audit_sink_up",
    ] {
        assert!(named.contains(wanted), "{wanted} not named: {named:?}");
    }

    let token = Token::new("observability");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sink = dir.path().join("audit.jsonl");
    let sets = [set("id", "id_token", "ES256")];
    let config = format!(
        "{}\n[audit]\nsink = \"file:{}\"\n",
        config(&token, dir.path(), port, &sets),
        sink.display()
    );
    let signet = Signet::start(&token, dir.path(), port, &config).await;
    exercise(&signet, dir.path()).await;

    let text = signet.metrics().await;
    let served = served_names(&text);
    let missing: Vec<&String> = named.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "named by {RULES} or {DASHBOARD} but not served: {missing:?}\n/metrics:\n{text}"
    );
    assert!(
        std::fs::read_to_string(&sink)
            .unwrap_or_default()
            .lines()
            .count()
            > 0,
        "the audit sink got nothing"
    );
}
