//! `thudo-server`: the reference backend on one SQLite file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use thudo_server::fares::FarePolicy;
use thudo_server::storage::SqliteStorage;
use thudo_server::{AppState, ServerConfig};

/// thudo's reference backend.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// The SQLite database (created if missing).
    #[arg(long, default_value = "thudo-server.db")]
    db: PathBuf,
    /// Bearer token of the admin API.
    #[arg(long, env = "THUDO_ADMIN_TOKEN")]
    admin_token: String,
    /// Publish demo content (handbook documents, a meeting, health records) for this citizen
    /// ID and party cell, then serve.
    #[arg(long)]
    seed_citizen: Option<String>,
    /// Create this many single-use validator enrolment codes for route 32 (valid one hour) and
    /// print each as `enrolment-code CODE` (test and demo servers).
    #[arg(long, default_value_t = 0)]
    seed_enrolments: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.admin_token.len() < 16 {
        anyhow::bail!("the admin token must have at least 16 characters");
    }
    let storage = Arc::new(SqliteStorage::open(&args.db)?);
    let state = AppState::new(ServerConfig {
        storage,
        admin_token: args.admin_token,
        fares: FarePolicy::default(),
    })?;
    if let Some(citizen) = &args.seed_citizen {
        thudo_server::seed::publish_demo(&state, citizen)?;
    }
    for _ in 0..args.seed_enrolments {
        let (code, _) = thudo_server::transit::create_enrolment(
            state.storage().as_ref(),
            "test validator, route 32",
            Some(32),
            None,
            3600,
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        println!("enrolment-code {code}");
    }
    let running = thudo_server::start(state, args.listen).await?;
    println!("listening on http://{}", running.addr);
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
