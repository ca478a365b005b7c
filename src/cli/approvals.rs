//! `signet approvals list|approve <id>|reject <id>`: the two-person rule from the command line.
//! A held `signet keys destroy|import|rotate --force` prints the approval's id; a different
//! admin (another SIGNET_TOKEN) approves it, and sees the result of the request carried out.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::admin::{ClientArgs, fail, prepare};

#[derive(Debug, Subcommand)]
pub(crate) enum ApprovalsCommand {
    /// Requests waiting for a second admin.
    List,
    /// Approve (and so carry out) another admin's request.
    Approve { id: String },
    /// Reject a request (the requester may withdraw their own).
    Reject { id: String },
}

pub(crate) fn approvals(args: &ClientArgs, cmd: ApprovalsCommand) -> ExitCode {
    let (client, rt) = match prepare(args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    rt.block_on(async {
        let result = match &cmd {
            ApprovalsCommand::List => client.call(Method::GET, "/v1/approvals", None).await,
            ApprovalsCommand::Approve { id } => {
                let path = format!("/v1/approvals/{id}/approve");
                client.call(Method::POST, &path, None).await
            }
            ApprovalsCommand::Reject { id } => {
                let path = format!("/v1/approvals/{id}/reject");
                client.call(Method::POST, &path, None).await
            }
        };
        match (result, &cmd) {
            (Ok(v), _) if args.json => {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                ExitCode::SUCCESS
            }
            (Ok(v), ApprovalsCommand::List) => {
                let all = v["approvals"].as_array().cloned().unwrap_or_default();
                print_approvals(&all);
                ExitCode::SUCCESS
            }
            (Ok(v), ApprovalsCommand::Approve { .. }) => {
                super::table::print_keys(&v);
                ExitCode::SUCCESS
            }
            (Ok(v), ApprovalsCommand::Reject { .. }) => {
                print_approvals(std::slice::from_ref(&v["approval"]));
                ExitCode::SUCCESS
            }
            (Err(f), _) => fail(f),
        }
    })
}

/// One line per approval: id, status, action, key set, kid, requester, expiry.
pub(super) fn print_approvals(all: &[Value]) {
    if all.is_empty() {
        println!("no pending approvals");
        return;
    }
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    for a in all {
        println!(
            "{}  {:<8} {:<7} {} {} requested by {} at {}, expires {}",
            text(&a["id"]),
            text(&a["status"]),
            text(&a["action"]),
            text(&a["key_set"]),
            text(&a["kid"]),
            text(&a["requested_by"]),
            text(&a["requested_at"]),
            text(&a["expires_at"]),
        );
    }
}
