//! The command line: `serve`, `check-config`, `hsm info`. Wires config, store, backends and the
//! HTTP layer together; holds no logic of its own.

mod admin;
mod approvals;
mod audit_file;
mod bench;
mod certs;
mod serve;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "signet",
    version,
    about = "JWS signing with keys that never leave a PKCS#11 HSM"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(
        short,
        long,
        global = true,
        env = "SIGNET_CONFIG",
        default_value = "config/signet.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service.
    Serve,
    /// Validate the configuration and exit.
    CheckConfig,
    /// HSM diagnostics.
    Hsm {
        #[command(subcommand)]
        command: HsmCommand,
    },
    /// Key operations through the admin API (token in SIGNET_TOKEN).
    Keys {
        #[command(flatten)]
        client: admin::ClientArgs,
        #[command(subcommand)]
        command: admin::KeysCommand,
    },
    /// The audit trail through the admin API (token in SIGNET_TOKEN).
    Audit {
        #[command(flatten)]
        client: admin::ClientArgs,
        #[command(subcommand)]
        command: admin::AuditCommand,
    },
    /// The two-person rule through the admin API: requests held for a second admin.
    Approvals {
        #[command(flatten)]
        client: admin::ClientArgs,
        #[command(subcommand)]
        command: approvals::ApprovalsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum HsmCommand {
    /// Show the tokens of each configured module, and whether the mechanisms the key sets need are
    /// there.
    Info,
    /// Raw signing speed of the token through the PKCS#11 layer (the baseline of scripts/bench).
    Bench {
        /// JOSE or RFC 9421 algorithm name.
        #[arg(long, default_value = "ES256")]
        alg: String,
        /// The [[hsm]] to measure (default: the first).
        #[arg(long)]
        hsm: Option<String>,
        /// Signing threads (default: the backend's `sessions` x `contexts`, spread over the contexts).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Also verify each signature with the public key, as the service does.
        #[arg(long)]
        self_check: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `check_tls`: also read and parse the TLS files, as serving will.
    let load = |check_tls: bool| {
        let config = Config::load(&cli.config).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })?;
        if check_tls
            && let Some(files) = &config.server.tls
            && let Err(e) = crate::http::tls::Tls::load(files)
        {
            eprintln!("error: {}: {e}", cli.config.display());
            return Err(ExitCode::from(2));
        }
        Ok(config)
    };
    let result = match cli.command {
        // The operator commands talk to a running service and need no configuration file.
        Command::Keys { client, command } => Ok(admin::keys(&client, command)),
        Command::Audit { client, command } => Ok(admin::audit(&client, command)),
        Command::Approvals { client, command } => Ok(approvals::approvals(&client, command)),
        Command::CheckConfig => load(true).map(|config| {
            println!(
                "{}: ok ({} hsm, {} key sets, {} clients)",
                cli.config.display(),
                config.hsms.len(),
                config.key_sets.len(),
                config.clients.len()
            );
            ExitCode::SUCCESS
        }),
        Command::Serve => load(true).map(serve::run),
        Command::Hsm {
            command: HsmCommand::Info,
        } => load(false).map(|c| hsm_info(&c)),
        Command::Hsm {
            command:
                HsmCommand::Bench {
                    alg,
                    hsm,
                    threads,
                    seconds,
                    self_check,
                },
        } => {
            load(false).map(|c| bench::run(&c, hsm.as_deref(), &alg, threads, seconds, self_check))
        }
    };
    result.unwrap_or_else(|code| code)
}

fn hsm_info(config: &Config) -> ExitCode {
    use crate::service::{BackendSlot, BackendState, hsm_signer, resolve_pin};
    let mut ok = true;
    for h in &config.hsms {
        println!("hsm `{}`: module {}", h.name, h.module.display());
        match crate::hsm::list_tokens(&h.module) {
            Ok(tokens) if tokens.is_empty() => println!("  no token present"),
            Ok(tokens) => {
                for (slot, label, serial) in tokens {
                    println!("  slot {slot}: token `{label}` serial {serial}");
                }
            }
            Err(e) => {
                println!("  cannot load: {e}");
                ok = false;
                continue;
            }
        }
        let pin = match resolve_pin(h) {
            Ok(p) => p,
            Err(e) => {
                println!("  cannot log in: {e}");
                ok = false;
                continue;
            }
        };
        let slot = std::sync::Arc::new(BackendSlot::new(h.clone(), pin));
        slot.open_if_down();
        let backend = match slot.state() {
            BackendState::Up(b) => b,
            BackendState::Down(reason) => {
                println!("  cannot open: {reason}");
                ok = false;
                continue;
            }
        };
        let d = backend.description();
        println!(
            "  using slot {} token `{}` ({} {}), {}; logged in",
            d.slot, d.label, d.manufacturer, d.model, d.library
        );
        for set in config
            .key_sets
            .iter()
            .filter(|s| s.hsms.iter().any(|&i| config.hsms[i].name == h.name))
        {
            let spec = hsm_signer::key_spec(set.alg, set.rsa_bits);
            match backend.check_support(spec, hsm_signer::scheme(set.alg)) {
                Ok(()) => println!("  key set `{}` ({}): mechanisms ok", set.name, set.alg),
                Err(e) => {
                    println!("  key set `{}` ({}): {e}", set.name, set.alg);
                    ok = false;
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kid_may_begin_with_a_hyphen() {
        for args in [
            ["signet", "keys", "destroy", "id", "-qAbC"].as_slice(),
            &["signet", "keys", "revoke", "id", "-qAbC", "--reason", "r"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Keys { command, .. } = cli.command else {
                panic!("{args:?}")
            };
            let kid = match command {
                admin::KeysCommand::Destroy { kid, .. }
                | admin::KeysCommand::Revoke { kid, .. } => kid,
                other => panic!("{other:?}"),
            };
            assert_eq!(kid, "-qAbC");
        }
    }
}
