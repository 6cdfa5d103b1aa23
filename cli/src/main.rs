//! `thudo`: the command-line face of thudo-core, for support staff and Linux validators.

mod console;
mod day_cmd;
mod demo_cmd;
mod handbook_cmd;
mod health_cmd;
mod transit_cmd;
mod vault_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// thudo: Hanoi's offline-first citizen-app core, from a terminal.
#[derive(Parser)]
#[command(name = "thudo", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with an encrypted vault (passphrase from THUDO_PASSPHRASE or a prompt).
    Vault(vault_cmd::VaultArgs),
    /// The party-member handbook: document search, party fees.
    Handbook(handbook_cmd::HandbookArgs),
    /// The health book: verify SMART Health Cards.
    Health(health_cmd::HealthArgs),
    /// Transit tickets: issuer keys, credentials, the phone's QR.
    Transit(transit_cmd::TransitArgs),
    /// The whole story on this machine: backend, phone and bus validator, synced and validated.
    Demo(demo_cmd::DemoArgs),
    /// A scripted day of the city's transit, checked end to end: a parent and a child on one
    /// phone through metro gates and two buses, inspected, up to the daily cap.
    Day(day_cmd::DayArgs),
    /// Validate scanned QR texts from stdin, one JSON verdict per line (a bus validator).
    Validate(transit_cmd::ValidateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log_to_stderr(std::env::var("THUDO_LOG").ok().as_deref());
    let result = match cli.command {
        Command::Vault(args) => vault_cmd::run(args),
        Command::Handbook(args) => handbook_cmd::run(args),
        Command::Health(args) => health_cmd::run(args),
        Command::Transit(args) => transit_cmd::run(args),
        Command::Validate(args) => transit_cmd::validate(args),
        Command::Demo(args) => demo_cmd::run(args),
        Command::Day(args) => day_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// The library's log records on stderr, one per line (`thudo[LEVEL target] message k=v`),
/// from the level `THUDO_LOG` names (`error` ... `trace`); nothing without it.
fn log_to_stderr(level: Option<&str>) {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
            metadata.level() <= log::max_level()
        }
        fn log(&self, record: &log::Record<'_>) {
            // thudo's own records only: the HTTP and TLS crates log URLs and headers.
            if !thudo_core::logs::is_own(record) {
                return;
            }
            let fields: String = thudo_core::logs::fields(record)
                .iter()
                .map(|(key, value)| format!(" {key}={value}"))
                .collect();
            eprintln!(
                "thudo[{} {}] {}{}",
                record.level(),
                record.target(),
                record.args(),
                fields
            );
        }
        fn flush(&self) {}
    }
    let Some(filter) = level.and_then(|l| l.parse::<log::LevelFilter>().ok()) else {
        return;
    };
    static STDERR: Stderr = Stderr;
    if log::set_logger(&STDERR).is_ok() {
        log::set_max_level(filter);
    }
}

/// Exit codes scripts can rely on: 3 wrong key, 4 not found, 5 newer schema, 1 anything else.
fn exit_code(err: &anyhow::Error) -> u8 {
    use thudo_core::vault::VaultError;
    match err.downcast_ref::<VaultError>() {
        Some(VaultError::WrongKey { .. }) => 3,
        Some(VaultError::NotFound { .. }) => 4,
        Some(VaultError::NewerSchema { .. }) => 5,
        _ => 1,
    }
}
