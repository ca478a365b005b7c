//! The configuration file as written: serde shapes with `Option`s, and the `SIGNET_...`
//! environment overrides applied to the TOML tree before it is deserialised.
//!
//! Nothing here is validated; `super::validate` turns a [`RawConfig`] into a `Config`.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    pub store: RawStore,
    #[serde(default)]
    pub hsm: Vec<RawHsm>,
    #[serde(default)]
    pub key_set: Vec<RawKeySet>,
    #[serde(default)]
    pub client: Vec<RawClient>,
    pub audit: Option<RawAudit>,
    pub approvals: Option<RawApprovals>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub sink: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApprovals {
    #[serde(default)]
    pub require: Vec<String>,
    pub expire: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: String,
    pub issuer: Option<String>,
    pub jwks_max_age: Option<String>,
    pub max_body: Option<usize>,
    pub request_timeout: Option<String>,
    pub key_refresh: Option<String>,
    pub health_interval: Option<String>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub drain: Option<String>,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
    pub client_ca: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub url: String,
    pub grace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHsm {
    pub name: String,
    pub module: String,
    pub token_label: Option<String>,
    pub token_serial: Option<String>,
    pub pin_env: Option<String>,
    pub pin_file: Option<String>,
    pub sessions: Option<usize>,
    pub op_timeout: Option<String>,
    pub max_queue: Option<usize>,
    pub contexts: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeySet {
    pub name: String,
    pub profile: Option<String>,
    pub profiles: Option<Vec<String>>,
    pub alg: String,
    pub hsm: RawHsmNames,
    pub issuer: Option<String>,
    pub fapi: Option<bool>,
    pub rotation_period: String,
    pub min_publish: String,
    pub retain: String,
    pub max_lifetime: Option<String>,
    pub clock_skew: Option<String>,
    pub activation_grace: Option<String>,
    pub destroy_after: Option<String>,
    pub destroy_delay: Option<String>,
    pub rsa_bits: Option<u32>,
    pub audit_signatures: Option<bool>,
    pub allow_exposed_import: Option<bool>,
    pub header_x5c: Option<bool>,
    pub require_certificate: Option<bool>,
}

/// `hsm = "a"` or `hsm = ["a", "b"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawHsmNames {
    One(String),
    Several(Vec<String>),
}

impl RawHsmNames {
    pub fn names(&self) -> Vec<&str> {
        match self {
            Self::One(n) => vec![n.as_str()],
            Self::Several(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub key_sets: Vec<String>,
    pub token_sha256: Option<String>,
    pub cert_subject: Option<String>,
    pub cert_san: Option<String>,
    pub rate: Option<String>,
    pub burst: Option<u32>,
}

/// Applies `SIGNET_<SECTION>__<FIELD>` (for `server` and `store`), `SIGNET_SERVER__TLS__<FIELD>`
/// (for `[server.tls]`) and
/// `SIGNET_<ARRAY>__<NAME>__<FIELD>` (for `hsm`, `key_set`, `client`, entries found by `name`)
/// overrides. Names match case-insensitively with `-` and `_` treated alike. A value that parses as
/// a TOML scalar (number, boolean) is taken as such, anything else as a string. Variables without a
/// double underscore (such as `SIGNET_HSM_PIN`) are not overrides and are left alone.
///
/// Returns the keys that were overridden, for the log.
pub fn apply_env_overrides(
    doc: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Vec<String>, String> {
    let mut applied = Vec::new();
    for (var, value) in vars {
        let Some(rest) = var.strip_prefix("SIGNET_") else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let parts: Vec<String> = rest.split("__").map(normalise).collect();
        let value = scalar(&value);
        match parts.as_slice() {
            [section, field] if ["server", "store", "audit"].contains(&section.as_str()) => {
                let table = doc
                    .entry(section.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let toml::Value::Table(table) = table else {
                    return Err(format!("{var}: `{section}` is not a table"));
                };
                table.insert(field.clone(), value);
                applied.push(format!("{section}.{field}"));
            }
            [section, sub, field] if section == "server" && sub == "tls" => {
                let server = doc
                    .entry("server")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                let tls = server
                    .as_table_mut()
                    .map(|t| {
                        t.entry("tls")
                            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    })
                    .and_then(|t| t.as_table_mut())
                    .ok_or_else(|| format!("{var}: `server.tls` is not a table"))?;
                tls.insert(field.clone(), value);
                applied.push(format!("server.tls.{field}"));
            }
            [array, name, field] if ["hsm", "key_set", "client"].contains(&array.as_str()) => {
                let entry = doc
                    .get_mut(array.as_str())
                    .and_then(|v| v.as_array_mut())
                    .and_then(|entries| {
                        entries.iter_mut().find(|e| {
                            e.get("name")
                                .and_then(|n| n.as_str())
                                .is_some_and(|n| normalise(n) == *name)
                        })
                    })
                    .and_then(|e| e.as_table_mut())
                    .ok_or_else(|| format!("{var}: no [[{array}]] named `{name}`"))?;
                entry.insert(field.clone(), value);
                applied.push(format!("{array}[{name}].{field}"));
            }
            _ => {
                return Err(format!(
                    "{var}: not a known override (see README, \"Configuration\")"
                ));
            }
        }
    }
    Ok(applied)
}

fn normalise(s: &str) -> String {
    s.to_ascii_lowercase().replace('-', "_")
}

fn scalar(value: &str) -> toml::Value {
    if let Ok(b) = value.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(i) = value.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    toml::Value::String(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> toml::Table {
        r#"
[server]
listen = "127.0.0.1:8080"
[store]
url = "sqlite://x.db"
[[hsm]]
name = "primary"
module = "/m.so"
sessions = 4
"#
        .parse()
        .unwrap()
    }

    #[test]
    fn overrides_sections_and_named_entries() {
        let mut d = doc();
        let vars = vec![
            (
                "SIGNET_SERVER__LISTEN".to_string(),
                "127.0.0.1:9".to_string(),
            ),
            ("SIGNET_HSM__PRIMARY__SESSIONS".to_string(), "8".to_string()),
            ("SIGNET_HSM_PIN".to_string(), "1234".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let applied = apply_env_overrides(&mut d, vars.into_iter()).unwrap();
        assert_eq!(applied, vec!["server.listen", "hsm[primary].sessions"]);
        assert_eq!(d["server"]["listen"].as_str(), Some("127.0.0.1:9"));
        assert_eq!(d["hsm"][0]["sessions"].as_integer(), Some(8));
    }

    #[test]
    fn unknown_entry_is_an_error() {
        let mut d = doc();
        let vars = vec![("SIGNET_HSM__BACKUP__SESSIONS".to_string(), "8".to_string())];
        let err = apply_env_overrides(&mut d, vars.into_iter()).unwrap_err();
        assert!(err.contains("no [[hsm]] named `backup`"), "{err}");
    }
}
