//! `signet keys csr` and `signet keys certificate`: a CSR for a key (signed inside the HSM) and
//! the chain a CA issued for it, through the admin API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

use super::admin::{Client, Failure, fail};

#[derive(Debug, Args)]
pub(crate) struct CsrArgs {
    set: String,
    /// A kid may begin with `-` (base64url).
    #[arg(allow_hyphen_values = true)]
    kid: String,
    /// RFC 4514 subject, e.g. "CN=signet,O=Example".
    #[arg(long)]
    subject: String,
    /// A DNS subject alternative name (repeatable).
    #[arg(long)]
    dns: Vec<String>,
    /// A URI subject alternative name (repeatable).
    #[arg(long)]
    uri: Vec<String>,
    /// Write the PEM CSR to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CertificateArgs {
    set: String,
    #[arg(allow_hyphen_values = true)]
    kid: String,
    /// PEM file with the chain, leaf first (`-` for standard input).
    #[arg(long)]
    chain: PathBuf,
}

/// `signet keys csr`: prints (or writes) the PEM CSR; `--json` prints the API's answer.
pub(crate) async fn csr(client: &Client, a: CsrArgs, json_out: bool) -> ExitCode {
    let body = json!({ "subject": a.subject, "dns": a.dns, "uri": a.uri });
    let path = format!("/v1/key-sets/{}/keys/{}/csr", a.set, a.kid);
    let v = match client.call(reqwest::Method::POST, &path, Some(body)).await {
        Ok(v) => v,
        Err(f) => return fail(f),
    };
    let pem = v["csr"].as_str().unwrap_or_default();
    match (&a.out, json_out) {
        (_, true) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        (Some(out), false) => {
            if let Err(e) = std::fs::write(out, pem) {
                eprintln!("error: cannot write {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
        }
        (None, false) => print!("{pem}"),
    }
    ExitCode::SUCCESS
}

/// `signet keys certificate`: attaches the chain and prints the key's entry.
pub(crate) async fn certificate(client: &Client, a: CertificateArgs) -> Result<Value, Failure> {
    let chain = if a.chain.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(&a.chain)
    }
    .map_err(|e| {
        Failure(
            0,
            json!({ "detail": format!("{}: {e}", a.chain.display()) }),
        )
    })?;
    let path = format!("/v1/key-sets/{}/keys/{}/certificate", a.set, a.kid);
    let v = client
        .call(reqwest::Method::PUT, &path, Some(json!({ "chain": chain })))
        .await?;
    Ok(json!({ "key_set": a.set, "keys": [v] }))
}
