//! Operator commands (`signet keys ...`, `signet audit ...`): a thin client of the admin API.
//! The bearer token comes from `SIGNET_TOKEN`; output is a table, or the API's JSON with `--json`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// Base URL of the Signet admin API.
    #[arg(
        long,
        env = "SIGNET_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub(super) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// List the keys of one key set, or of every key set.
    List { set: Option<String> },
    /// Activate the next key now (or at --at); --force skips the min_publish check.
    Rotate {
        set: String,
        /// RFC 3339 time of the activation (default now).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        force: bool,
    },
    /// Revoke a key (compromise): the next key takes over at once if it was the active one.
    Revoke {
        set: String,
        /// A kid may begin with `-` (base64url).
        #[arg(allow_hyphen_values = true)]
        kid: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        force: bool,
    },
    /// Adopt a key pair already in the token (by CKA_ID in hex or by CKA_LABEL) as the next key.
    Import {
        set: String,
        #[arg(long, conflicts_with = "label", required_unless_present = "label")]
        id: Option<String>,
        #[arg(long)]
        label: Option<String>,
        /// Accept a key whose private bytes were once outside the HSM (the key set must set
        /// `allow_exposed_import = true` too).
        #[arg(long)]
        accept_exposed_material: bool,
    },
    /// A PKCS#10 CSR for a key, signed inside the HSM (PEM on standard output, or --out).
    Csr(super::certs::CsrArgs),
    /// Attach the certificate chain a CA issued for a key (PEM file, leaf first).
    Certificate(super::certs::CertificateArgs),
    /// Destroy the private object of an expired or revoked key (its public JWK is kept): after
    /// the key set's destroy_delay (shown as pending destruction), or at once when it is 0s.
    Destroy {
        set: String,
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Cancel a key's pending destruction.
    CancelDestruction {
        set: String,
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the hash chain through the API, or a JSON-lines export of it (`--file`, offline, the
    /// `[audit] sink`'s file); fails naming the first bad row (and line).
    Verify {
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
    /// Print events after a sequence number.
    List {
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

pub(super) struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

/// An API answer that is not a success: status and problem body.
pub(super) struct Failure(pub(super) u16, pub(super) Value);

impl Client {
    fn new(args: &ClientArgs) -> Result<Client, String> {
        let token = std::env::var("SIGNET_TOKEN")
            .map_err(|_| "set SIGNET_TOKEN to an admin (or auditor) bearer token".to_string())?;
        Ok(Client {
            http: reqwest::Client::new(),
            url: args.url.trim_end_matches('/').to_string(),
            token,
        })
    }

    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure(0, json!({ "detail": e.to_string() })))?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(Failure(status, body))
        }
    }
}

pub(super) fn fail(f: Failure) -> ExitCode {
    let Failure(status, body) = f;
    if status == 0 {
        eprintln!(
            "error: cannot reach Signet: {}",
            body["detail"].as_str().unwrap_or_default()
        );
    } else {
        eprintln!(
            "error: {status} {}: {}",
            body["code"].as_str().unwrap_or("error"),
            body["detail"].as_str().unwrap_or_default()
        );
    }
    ExitCode::FAILURE
}

/// The API client and a runtime for one command; the exit code to return when either is missing.
pub(super) fn prepare(args: &ClientArgs) -> Result<(Client, tokio::runtime::Runtime), ExitCode> {
    let client = Client::new(args).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })?;
    Ok((client, runtime))
}

pub(crate) fn keys(args: &ClientArgs, cmd: KeysCommand) -> ExitCode {
    let (client, rt) = match prepare(args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    rt.block_on(async {
        use reqwest::Method;
        let result = match cmd {
            KeysCommand::List { set } => list(&client, set.as_deref()).await,
            KeysCommand::Rotate { set, at, force } => {
                let body = json!({ "activate_at": at, "force": force });
                client
                    .call(
                        Method::POST,
                        &format!("/v1/key-sets/{set}/rotate"),
                        Some(body),
                    )
                    .await
            }
            KeysCommand::Revoke {
                set,
                kid,
                reason,
                force,
            } => {
                let body = json!({ "reason": reason, "force": force });
                client
                    .call(
                        Method::POST,
                        &format!("/v1/key-sets/{set}/keys/{kid}/revoke"),
                        Some(body),
                    )
                    .await
            }
            KeysCommand::Import {
                set,
                id,
                label,
                accept_exposed_material,
            } => {
                let body = import_body(id, label, accept_exposed_material);
                client
                    .call(
                        Method::POST,
                        &format!("/v1/key-sets/{set}/keys/import"),
                        Some(body),
                    )
                    .await
            }
            KeysCommand::Csr(a) => return super::certs::csr(&client, a, args.json).await,
            KeysCommand::Certificate(a) => super::certs::certificate(&client, a).await,
            KeysCommand::Destroy { set, kid } => {
                client
                    .call(
                        Method::DELETE,
                        &format!("/v1/key-sets/{set}/keys/{kid}"),
                        None,
                    )
                    .await
            }
            KeysCommand::CancelDestruction { set, kid } => {
                client
                    .call(
                        Method::POST,
                        &format!("/v1/key-sets/{set}/keys/{kid}/cancel-destruction"),
                        None,
                    )
                    .await
            }
        };
        print_keys(result, args.json)
    })
}

/// The body of an import request: the token object by `id`, or else by `label`.
fn import_body(id: Option<String>, label: Option<String>, accept_exposed_material: bool) -> Value {
    let mut body = match (id, label) {
        (Some(id), _) => json!({ "id": id }),
        (None, label) => json!({ "label": label }),
    };
    if accept_exposed_material {
        body["accept_exposed_material"] = json!(true);
    }
    body
}

/// Prints what a `keys` command answered (JSON with `--json`, else a table), or the failure.
fn print_keys(result: Result<Value, Failure>, json: bool) -> ExitCode {
    match result {
        Ok(v) if json => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(v) => {
            super::table::print_keys(&v);
            ExitCode::SUCCESS
        }
        Err(f) => fail(f),
    }
}

/// One key set's keys, or every key set's keys (as `{"key_sets": [{"key_set", "keys"}]}`).
async fn list(client: &Client, set: Option<&str>) -> Result<Value, Failure> {
    if let Some(set) = set {
        return client
            .call(
                reqwest::Method::GET,
                &format!("/v1/key-sets/{set}/keys"),
                None,
            )
            .await;
    }
    let sets = client
        .call(reqwest::Method::GET, "/v1/key-sets", None)
        .await?;
    let mut all = Vec::new();
    for s in sets["key_sets"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default();
        all.push(
            client
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/key-sets/{name}/keys"),
                    None,
                )
                .await?,
        );
    }
    Ok(json!({ "key_sets": all }))
}

pub(crate) fn audit(args: &ClientArgs, cmd: AuditCommand) -> ExitCode {
    if let AuditCommand::Verify { file: Some(path) } = &cmd {
        return super::audit_file::verify(path, args.json);
    }
    let (client, rt) = match prepare(args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    rt.block_on(async {
        match cmd {
            AuditCommand::Verify { .. } => match client
                .call(reqwest::Method::GET, "/v1/audit/verify", None)
                .await
            {
                Ok(v) => {
                    if args.json {
                        println!("{v}");
                    } else {
                        println!("audit chain ok: {} events", v["events"]);
                    }
                    ExitCode::SUCCESS
                }
                Err(Failure(409, body)) => {
                    if args.json {
                        println!("{body}");
                    }
                    eprintln!(
                        "audit chain BROKEN at row {}: {}",
                        body["first_bad_seq"],
                        body["reason"].as_str().unwrap_or_default()
                    );
                    ExitCode::FAILURE
                }
                Err(f) => fail(f),
            },
            AuditCommand::List { after, limit } => {
                let path = format!("/v1/audit?after={after}&limit={limit}");
                match client.call(reqwest::Method::GET, &path, None).await {
                    Ok(v) if args.json => {
                        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                        ExitCode::SUCCESS
                    }
                    Ok(v) => {
                        for e in v["events"].as_array().into_iter().flatten() {
                            println!(
                                "{:>6}  {}  {:<10} {:<14} {} {} {}",
                                e["seq"],
                                e["at"].as_str().unwrap_or_default(),
                                e["actor"].as_str().unwrap_or_default(),
                                e["action"].as_str().unwrap_or_default(),
                                e["key_set"].as_str().unwrap_or("-"),
                                e["kid"].as_str().unwrap_or("-"),
                                e["detail"]
                            );
                        }
                        ExitCode::SUCCESS
                    }
                    Err(f) => fail(f),
                }
            }
        }
    })
}
