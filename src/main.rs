//! The `signet` binary: only wiring; see `signet::cli`.

fn main() -> std::process::ExitCode {
    signet::cli::main()
}
