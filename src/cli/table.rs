//! The `signet keys` table: one row per key, with its state and provenance.

use serde_json::{Value, json};

pub(super) fn print_keys(v: &Value) {
    if let Some(a) = v.get("approval") {
        // Held by the two-person rule.
        super::approvals::print_approvals(std::slice::from_ref(a));
        let id = a["id"].as_str().unwrap_or_default();
        println!("held for a second admin: signet approvals approve {id}");
        return;
    }
    let sets: Vec<&Value> = match v.get("key_sets").and_then(Value::as_array) {
        Some(all) => all.iter().collect(),
        None if v.get("keys").is_some() => vec![v],
        None => {
            // A single key (import, destroy, cancel-destruction).
            let one = json!({ "key_set": "", "keys": [v] });
            return print_keys(&one);
        }
    };
    let mut rows = vec![
        [
            "KEY SET",
            "KID",
            "STATE",
            "ALG",
            "ACTIVATE AT",
            "REVOKED/DESTROYED",
            "PROVENANCE",
        ]
        .map(String::from),
    ];
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    for set in sets {
        for k in set["keys"].as_array().into_iter().flatten() {
            let mut gone = match (k["revoked_at"].as_str(), k["destroyed_at"].as_str()) {
                (Some(r), Some(d)) => format!("revoked {r}, destroyed {d}"),
                (Some(r), None) => format!("revoked {r}"),
                (None, Some(d)) => format!("destroyed {d}"),
                (None, None) => "-".into(),
            };
            if let Some(p) = k["pending_destruction"].as_str() {
                gone = format!("{gone}, destruction pending at {p}");
            }
            rows.push([
                text(&set["key_set"]),
                text(&k["kid"]),
                text(&k["state"]),
                text(&k["alg"]),
                text(&k["activate_at"]),
                gone,
                provenance(&k["provenance"]),
            ]);
        }
    }
    print_table(&rows);
    for (label, key) in [
        ("rotated to", "rotated_to"),
        ("revoked", "revoked"),
        ("promoted", "promoted"),
    ] {
        if let Some(x) = v.get(key).and_then(Value::as_str) {
            println!("{label}: {x}");
        }
    }
}

/// A key's provenance in a word: `hsm-generated` (all three attributes), `hsm-only` (never
/// exposed, not generated there), `EXPOSED` (its bytes were once outside the HSM), `unknown`.
fn provenance(p: &Value) -> String {
    let flag = |k: &str| p[k].as_bool();
    match (
        flag("local"),
        flag("always_sensitive"),
        flag("never_extractable"),
    ) {
        (Some(true), Some(true), Some(true)) => "hsm-generated",
        (Some(_), Some(true), Some(true)) => "hsm-only",
        (Some(_), Some(_), Some(_)) => "EXPOSED",
        _ => "unknown",
    }
    .to_string()
}

fn print_table(rows: &[[String; 7]]) {
    let mut widths = [0usize; 7];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
