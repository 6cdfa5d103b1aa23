//! `thudo vault ...`

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use thudo_core::vault::{self, Record, Unlock, Vault, VaultOptions};
use zeroize::Zeroizing;

/// Arguments of `thudo vault`.
#[derive(Args)]
pub struct VaultArgs {
    /// The vault directory.
    #[arg(long, short, env = "THUDO_VAULT_DIR", default_value = "thudo-vault")]
    dir: PathBuf,
    #[command(subcommand)]
    command: VaultCommand,
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Create a new vault protected by a passphrase.
    Init,
    /// Store a record; the body comes from --body, --file or standard input.
    Put {
        /// Collection name (a-z, 0-9, '.', '_', '-').
        collection: String,
        /// Record id.
        id: String,
        /// The body as text.
        #[arg(long, conflicts_with = "file")]
        body: Option<String>,
        /// Read the body from this file.
        #[arg(long)]
        file: Option<PathBuf>,
        /// An indexed field, as FIELD=VALUE (repeatable).
        #[arg(long = "index", value_name = "FIELD=VALUE")]
        index: Vec<String>,
    },
    /// Print a record's body to standard output.
    Get {
        /// Collection name.
        collection: String,
        /// Record id.
        id: String,
    },
    /// List a collection: one JSON object per line (id, index, size).
    List {
        /// Collection name.
        collection: String,
    },
    /// List the records whose indexed FIELD equals VALUE (JSON lines).
    Query {
        /// Collection name.
        collection: String,
        /// Indexed field.
        field: String,
        /// Exact value.
        value: String,
    },
    /// Delete a record.
    Delete {
        /// Collection name.
        collection: String,
        /// Record id.
        id: String,
    },
    /// Change the passphrase (new one from THUDO_NEW_PASSPHRASE or a prompt).
    Passwd,
    /// Replace the data key and re-encrypt every record.
    RotateKey,
    /// Write an encrypted backup (passphrase from THUDO_BACKUP_PASSPHRASE or a prompt).
    Export {
        /// The backup file to write.
        file: PathBuf,
    },
    /// Import an encrypted backup into the vault (all records or none).
    Import {
        /// The backup file to read.
        file: PathBuf,
    },
    /// Destroy the vault's keys and files.
    Wipe {
        /// Confirm: without it nothing is destroyed.
        #[arg(long)]
        yes: bool,
        /// Delete the files without the passphrase (for a forgotten passphrase).
        #[arg(long)]
        without_passphrase: bool,
    },
}

fn secret(env: &str, prompt: &str, confirm: bool) -> Result<Zeroizing<String>> {
    if let Ok(value) = std::env::var(env) {
        return Ok(Zeroizing::new(value));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password(prompt)
            .with_context(|| format!("cannot read {prompt}; set {env}"))?,
    );
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("Repeat: ")?);
        if *first != *again {
            bail!("the two entries differ");
        }
    }
    if first.is_empty() {
        bail!("empty passphrase");
    }
    Ok(first)
}

fn options() -> Result<VaultOptions> {
    let mut options = VaultOptions::default();
    // For tests and demos only: fewer PBKDF2 iterations than the 600,000 default.
    if let Ok(value) = std::env::var("THUDO_KDF_ITERATIONS") {
        options.kdf_iterations = value
            .parse()
            .context("THUDO_KDF_ITERATIONS must be a number")?;
    }
    Ok(options)
}

fn open_existing(dir: &Path) -> Result<Vault> {
    if !vault::database_path(dir).exists() {
        bail!(
            "no vault in {}; create one with `thudo vault init`",
            dir.display()
        );
    }
    let passphrase = secret("THUDO_PASSPHRASE", "Vault passphrase: ", false)?;
    Ok(Vault::open(
        dir,
        Unlock::Passphrase(passphrase),
        &options()?,
    )?)
}

/// Opens the vault in `dir` with the passphrase, creating it if missing (phones, validators).
pub fn open_or_create(dir: &Path) -> Result<Vault> {
    let passphrase = secret("THUDO_PASSPHRASE", "Vault passphrase: ", false)?;
    Ok(Vault::open(
        dir,
        Unlock::Passphrase(passphrase),
        &options()?,
    )?)
}

fn parse_index(pairs: &[String]) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((field, value)) => Ok((field.to_owned(), value.to_owned())),
            None => bail!("--index takes FIELD=VALUE, got {pair:?}"),
        })
        .collect()
}

fn print_records(records: &[Record]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for r in records {
        let index: serde_json::Map<_, _> =
            r.index.iter().map(|(f, v)| (f.clone(), json!(v))).collect();
        writeln!(
            out,
            "{}",
            json!({ "id": r.id, "index": index, "size": r.body.len() })
        )?;
    }
    Ok(())
}

/// Runs `thudo vault ...`.
pub fn run(args: VaultArgs) -> Result<()> {
    let dir = args.dir;
    match args.command {
        VaultCommand::Init => {
            if vault::database_path(&dir).exists() {
                bail!("a vault already exists in {}", dir.display());
            }
            let passphrase = secret("THUDO_PASSPHRASE", "New vault passphrase: ", true)?;
            Vault::open(&dir, Unlock::Passphrase(passphrase), &options()?)?.close();
            eprintln!("created vault in {}", dir.display());
        }
        VaultCommand::Put {
            collection,
            id,
            body,
            file,
            index,
        } => {
            let index = parse_index(&index)?;
            let body = match (body, file) {
                (Some(text), _) => text.into_bytes(),
                (None, Some(path)) => {
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
                }
                (None, None) => {
                    let mut buf = Vec::new();
                    std::io::stdin().read_to_end(&mut buf)?;
                    buf
                }
            };
            open_existing(&dir)?.put(&collection, &id, &index, &body)?;
        }
        VaultCommand::Get { collection, id } => {
            let record = open_existing(&dir)?.get(&collection, &id)?;
            std::io::stdout().write_all(&record.body)?;
        }
        VaultCommand::List { collection } => {
            print_records(&open_existing(&dir)?.list(&collection)?)?
        }
        VaultCommand::Query {
            collection,
            field,
            value,
        } => print_records(&open_existing(&dir)?.query(&collection, &field, &value)?)?,
        VaultCommand::Delete { collection, id } => {
            if !open_existing(&dir)?.delete(&collection, &id)? {
                return Err(vault::VaultError::NotFound { collection }.into());
            }
        }
        VaultCommand::Passwd => {
            let vault = open_existing(&dir)?;
            let old = secret("THUDO_PASSPHRASE", "Current passphrase: ", false)?;
            let new = secret("THUDO_NEW_PASSPHRASE", "New passphrase: ", true)?;
            vault.change_passphrase(&old, &new)?;
            eprintln!("passphrase changed");
        }
        VaultCommand::RotateKey => {
            let count = open_existing(&dir)?.rotate_data_key()?;
            eprintln!("data key rotated; {count} records re-encrypted");
        }
        VaultCommand::Export { file } => {
            let vault = open_existing(&dir)?;
            let passphrase = secret("THUDO_BACKUP_PASSPHRASE", "Backup passphrase: ", true)?;
            let count = vault.export_backup(&file, &passphrase)?;
            eprintln!("exported {count} records to {}", file.display());
        }
        VaultCommand::Import { file } => {
            let vault = open_existing(&dir)?;
            let passphrase = secret("THUDO_BACKUP_PASSPHRASE", "Backup passphrase: ", false)?;
            let count = vault.import_backup(&file, &passphrase)?;
            eprintln!("imported {count} records from {}", file.display());
        }
        VaultCommand::Wipe {
            yes,
            without_passphrase,
        } => {
            if !yes {
                bail!("wipe destroys every record for good; add --yes to confirm");
            }
            if without_passphrase {
                vault::destroy(&dir)?;
            } else {
                open_existing(&dir)?.wipe()?;
            }
            eprintln!("vault in {} destroyed", dir.display());
        }
    }
    Ok(())
}
