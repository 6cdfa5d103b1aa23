//! The engine for a deployment of several instances: PostgreSQL through tokio-postgres, pooled
//! by deadpool.
//!
//! Transactions run at READ COMMITTED with named locks (`pg_advisory_xact_lock`) where the
//! rules need one writer at a time: per account for pushes, per scope for the change log, per
//! validator and per card for taps and fares, one for the deny list. A serialization failure,
//! a deadlock or a unique violation (two instances inserting the same new row) rolls the
//! transaction back and it runs again, up to [`ATTEMPTS`] times.
//!
//! The storage trait is synchronous (the HTTP layer calls it on tokio's blocking pool). The
//! pool and the connections' I/O live on a small runtime of their own; a statement's future is
//! driven on the caller's thread, so a call works from any thread, async or not.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::NoTls;

use super::engine::{dollar_placeholders, Engine, Row, Tx, Val};
use super::locks::{Held, Lock};
use super::{Result, StorageError};

/// The legacy list, frozen: databases made before the concerns kept their own steps are
/// brought to its end; its last step makes the concerns' ledger ([`super::migrations`]), and
/// a new database starts there.
const MIGRATIONS: &[&str] = &[
    include_str!("legacy/postgres/0001_base.sql"),
    include_str!("legacy/postgres/0002_inspections.sql"),
    include_str!("legacy/postgres/0003_journeys.sql"),
    include_str!("legacy/postgres/0004_concern_ledgers.sql"),
];

/// How often a transaction runs before its conflict is reported (the client then retries).
const ATTEMPTS: u32 = 12;

/// Connections per instance unless the URL's `pool_max_size` says otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// PostgreSQL through a pool.
pub struct PostgresEngine {
    pool: Pool,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for PostgresEngine {
    fn drop(&mut self) {
        // Dropping a runtime blocks; from inside another runtime that is not allowed.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Failed(format!("{what}: {e}"))
}

/// What a connection URL says beyond what tokio-postgres reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UrlSettings {
    /// The URL as tokio-postgres takes it.
    url: String,
    /// `pool_max_size=N`.
    pool_size: usize,
    /// TLS: `sslmode=require` (or libpq's `verify-ca`, `verify-full`), with the server's
    /// certificate always verified, against `sslrootcert=FILE` (PEM) when given, else the
    /// Mozilla roots.
    tls: Option<Option<std::path::PathBuf>>,
}

/// Takes `pool_max_size`, `sslmode` and `sslrootcert` out of a connection URL.
fn url_settings(url: &str) -> Result<UrlSettings> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut size = DEFAULT_POOL_SIZE;
    let (mut tls, mut root) = (false, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "pool_max_size" => {
                size = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        StorageError::Failed("pool_max_size must be 1 to 1000".into())
                    })?;
            }
            "sslmode" => match value {
                "disable" | "allow" | "prefer" => tls = false,
                "require" | "verify-ca" | "verify-full" => tls = true,
                other => return Err(StorageError::Failed(format!("unknown sslmode {other}"))),
            },
            "sslrootcert" => root = Some(std::path::PathBuf::from(value)),
            _ => kept.push(pair),
        }
    }
    // tokio-postgres only knows disable, prefer and require; the verification is ours.
    kept.push(if tls {
        "sslmode=require"
    } else {
        "sslmode=disable"
    });
    Ok(UrlSettings {
        url: format!("{base}?{}", kept.join("&")),
        pool_size: size,
        tls: tls.then_some(root),
    })
}

/// A TLS connector that verifies the server's certificate against `root` (PEM), or the
/// Mozilla roots.
fn tls_connector(
    root: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match root {
        Some(path) => {
            for cert in rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| failed("sslrootcert", e))?
            {
                roots
                    .add(cert.map_err(|e| failed("sslrootcert", e))?)
                    .map_err(|e| failed("sslrootcert", e))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| failed("tls", e))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PostgresEngine {
    /// Connects to `url` (`postgres://user@host:port/db`, optionally `?pool_max_size=N`) and
    /// brings the schema up to date. Refuses a database migrated by a newer build.
    pub fn open(url: &str) -> Result<PostgresEngine> {
        let settings = url_settings(url)?;
        let mut config: tokio_postgres::Config = settings
            .url
            .parse()
            .map_err(|e| failed("database URL", e))?;
        // Nothing waits on a lock or holds a transaction open for ever: a stuck instance
        // cannot stop the others.
        let options = format!(
            "{} -c lock_timeout=30s -c idle_in_transaction_session_timeout=60s",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("thudo-postgres")
            .enable_all()
            .build()
            .map_err(|e| failed("runtime", e))?;
        let recycling = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &settings.tls {
            None => Manager::from_config(config, NoTls, recycling),
            Some(root) => Manager::from_config(config, tls_connector(root.as_deref())?, recycling),
        };
        let pool = {
            let _in_runtime = runtime.enter();
            Pool::builder(manager)
                .max_size(settings.pool_size)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(10)))
                .create_timeout(Some(Duration::from_secs(10)))
                .build()
                .map_err(|e| failed("pool", e))?
        };
        let engine = PostgresEngine {
            pool,
            runtime: Some(runtime),
        };
        engine.migrate()?;
        Ok(engine)
    }

    /// Runs a future on the engine's runtime and waits for it on this thread.
    fn on_runtime<F>(&self, fut: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| StorageError::Failed("the engine is closed".into()))?;
        run(rt.spawn(fut)).map_err(|e| failed("database task", e))
    }

    fn connection(&self) -> Result<Object> {
        let pool = self.pool.clone();
        self.on_runtime(async move { pool.get().await })?
            .map_err(|e| failed("database connection", e))
    }

    fn migrate(&self) -> Result<()> {
        let latest = MIGRATIONS.len() as i64;
        self.write(&mut |tx| {
            // Vietnamese text in another encoding would be refused (or mangled) value by value:
            // a deployment's fault, told once at start-up rather than as each request's.
            let encoding = tx
                .row("SELECT current_setting('server_encoding')", &[])?
                .map(|r| r.text(0))
                .transpose()?
                .unwrap_or_default();
            if encoding != "UTF8" {
                return Err(StorageError::Failed(format!(
                    "the database's encoding is {encoding}, not UTF8: create it with ENCODING 'UTF8'"
                )));
            }
            tx.lock(Lock::Migrations)?;
            tx.exec(
                "CREATE TABLE IF NOT EXISTS schema_migrations(version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
                &[],
            )?;
            let found = tx
                .row(
                    "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_migrations",
                    &[],
                )?
                .map_or(Ok(0), |r| r.int(0))?;
            if found > latest {
                return Err(StorageError::Failed(format!(
                    "the thudo backend database is at schema version {found}, newer than this build's {latest}"
                )));
            }
            let tables = tx.row(
                "SELECT 1 FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_name = 'accounts'",
                &[],
            )?;
            if found == 0 && tables.is_none() {
                // A new database skips the legacy list: the concerns' steps make its tables.
                for version in 1..latest {
                    tx.exec(
                        "INSERT INTO schema_migrations(version, applied_at) VALUES (?1, ?2)",
                        &[Val::Int(version), Val::Int(chrono::Utc::now().timestamp())],
                    )?;
                }
            }
            Ok(())
        })?;
        // Each step in its own transaction with its version row, under the lock.
        for (i, step) in MIGRATIONS.iter().enumerate() {
            let version = i as i64 + 1;
            let client = self.connection()?;
            run(client.batch_execute("BEGIN")).map_err(|e| failed("migration", e))?;
            let outcome = (|| {
                run(client.query(
                    "SELECT pg_advisory_xact_lock($1)",
                    &[&Lock::Migrations.key()],
                ))?;
                let done = run(client.query(
                    "SELECT 1 FROM schema_migrations WHERE version = $1",
                    &[&version],
                ))?;
                if done.is_empty() {
                    run(client.batch_execute(step))?;
                    run(client.execute(
                        "INSERT INTO schema_migrations(version, applied_at) VALUES ($1, $2)",
                        &[&version, &chrono::Utc::now().timestamp()],
                    ))?;
                }
                run(client.batch_execute("COMMIT"))
            })();
            if outcome.is_err() {
                let _ = run(client.batch_execute("ROLLBACK"));
            }
            outcome.map_err(|e| failed(&format!("migration {version}"), e))?;
        }
        Ok(())
    }
}

/// Creates an empty database `name` on the server `admin_url` points at (a maintenance
/// database such as `postgres`) and returns the new database's URL: for tests, load tests and
/// first set-up. `name` is letters, digits and `_` only.
pub fn create_database(admin_url: &str, name: &str) -> Result<String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StorageError::Failed(
            "a database name is letters, digits and _".into(),
        ));
    }
    let settings = url_settings(admin_url)?;
    let config: tokio_postgres::Config = settings
        .url
        .parse()
        .map_err(|e| failed("database URL", e))?;
    let connector = settings
        .tls
        .as_ref()
        .map(|root| tls_connector(root.as_deref()))
        .transpose()?;
    let sql = format!("CREATE DATABASE {name}");
    // A thread of its own: a runtime cannot start inside the caller's.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| failed("runtime", e))?;
                rt.block_on(async {
                    let (client, driver) = match connector {
                        None => {
                            let (client, connection) = config
                                .connect(NoTls)
                                .await
                                .map_err(|e| failed("connect", e))?;
                            (
                                client,
                                tokio::spawn(async move { connection.await.map(|_| ()) }),
                            )
                        }
                        Some(tls) => {
                            let (client, connection) = config
                                .connect(tls)
                                .await
                                .map_err(|e| failed("connect", e))?;
                            (
                                client,
                                tokio::spawn(async move { connection.await.map(|_| ()) }),
                            )
                        }
                    };
                    let created = client.batch_execute(&sql).await;
                    drop(client);
                    let _ = driver.await;
                    created.map_err(|e| failed("create database", e))
                })
            })
            .join()
            .map_err(|_| StorageError::Failed("create database: the thread failed".into()))?
    })?;
    // The same server, credentials and settings, the new database.
    let (base, query) = admin_url.split_once('?').unwrap_or((admin_url, ""));
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    let url = match base.rsplit_once('/') {
        Some((server, db)) if !server.ends_with('/') && !db.contains('@') => {
            format!("{server}/{name}{query}")
        }
        _ => format!("{base}/{name}{query}"),
    };
    Ok(url)
}

/// Drives one statement's future on this thread (the connection's I/O runs on the engine's
/// runtime; the client side of a statement needs no runtime). Outside tokio's cooperative
/// budget: called from inside a task (a test's body, a start-up step), the task's budget would
/// run out after some statements, and each poll would then wake itself at once, spinning a
/// core for ever, since this loop never yields to the scheduler that refills it.
fn run<F: Future>(fut: F) -> F::Output {
    futures_executor::block_on(tokio::task::unconstrained(fut))
}

impl ToSql for Val<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Val::Text(v) => v.as_ref().to_sql(ty, out),
            Val::Bytes(v) => v.as_ref().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// One transaction (or, for reads, a series of single statements) on a pooled connection.
struct PgTx<'c> {
    client: &'c Object,
    /// The last error was a conflict that a new attempt may not meet.
    conflict: bool,
    /// The locks taken.
    held: Held,
}

impl PgTx<'_> {
    fn fail(&mut self, e: tokio_postgres::Error) -> StorageError {
        if let Some(code) = e.code() {
            self.conflict = [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::UNIQUE_VIOLATION,
            ]
            .contains(code);
        }
        let detail = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned());
        let detail = format!("postgres: {detail}");
        // Text PostgreSQL cannot hold (a NUL; a character outside the database's encoding,
        // which start-up makes UTF8) comes from a request's values: any other data exception
        // is the server's own fault (a bound value of the wrong type, a sum's overflow).
        match e.code() {
            Some(code)
                if [
                    SqlState::CHARACTER_NOT_IN_REPERTOIRE,
                    SqlState::UNTRANSLATABLE_CHARACTER,
                ]
                .contains(code) =>
            {
                StorageError::ValueRefused(detail)
            }
            _ => StorageError::Failed(detail),
        }
    }

    fn statement(&mut self, sql: &str) -> Result<tokio_postgres::Statement> {
        let sql = dollar_placeholders(sql);
        run(self.client.prepare_cached(&sql)).map_err(|e| self.fail(e))
    }
}

fn bind<'a>(params: &'a [Val<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn value(row: &tokio_postgres::Row, i: usize) -> std::result::Result<Val<'static>, String> {
    let err = |e: tokio_postgres::Error| e.to_string();
    let ty = row.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(err)?.map(Val::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(err)?
            .map(|v| Val::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(err)?
            .map(|v| Val::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(err)?
            .map(|v| Val::Int(v.into())),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => row
            .try_get::<_, Option<String>>(i)
            .map_err(err)?
            .map(|v| Val::Text(Cow::Owned(v))),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(err)?
            .map(|v| Val::Bytes(Cow::Owned(v))),
        Type::VOID => None,
        other => return Err(format!("column {i} has type {other}, not read here")),
    }
    .unwrap_or(Val::Null))
}

impl Tx for PgTx<'_> {
    fn exec(&mut self, sql: &str, params: &[Val<'_>]) -> Result<u64> {
        let stmt = self.statement(sql)?;
        run(self.client.execute(&stmt, &bind(params))).map_err(|e| self.fail(e))
    }

    fn rows(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Vec<Row>> {
        let stmt = self.statement(sql)?;
        let rows = run(self.client.query(&stmt, &bind(params))).map_err(|e| self.fail(e))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| value(r, i))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map(Row)
                    .map_err(StorageError::Failed)
            })
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        run(self.client.batch_execute(sql)).map_err(|e| self.fail(e))
    }

    fn acquire(&mut self, keys: &[i64]) -> Result<()> {
        // One round trip: the keys (numbers computed here, so nothing from outside reaches
        // the SQL text) in ascending order.
        for chunk in keys.chunks(1000) {
            let values = chunk
                .iter()
                .map(|k| format!("({k})"))
                .collect::<Vec<_>>()
                .join(",");
            let sql = format!(
                "SELECT pg_advisory_xact_lock(k) FROM (SELECT k FROM (VALUES {values}) v(k) ORDER BY k) ordered"
            );
            run(self.client.query(&sql, &[])).map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    fn held(&mut self) -> &mut Held {
        &mut self.held
    }
}

/// Ends a transaction that its code left open (a panic unwinding through it): the connection
/// goes back to the pool with no transaction and no lock held.
struct OpenTransaction<'c> {
    client: &'c Object,
    open: bool,
}

impl OpenTransaction<'_> {
    fn finish(&mut self, sql: &str) -> std::result::Result<(), tokio_postgres::Error> {
        self.open = false;
        run(self.client.batch_execute(sql))
    }
}

impl Drop for OpenTransaction<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = run(self.client.batch_execute("ROLLBACK"));
        }
    }
}

impl Engine for PostgresEngine {
    fn write<T>(&self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let client = self.connection()?;
            let mut tx = PgTx {
                client: &client,
                conflict: false,
                held: Held::default(),
            };
            run(client.batch_execute("BEGIN")).map_err(|e| tx.fail(e))?;
            let mut open = OpenTransaction {
                client: &client,
                open: true,
            };
            let outcome = match work(&mut tx) {
                Ok(v) => open.finish("COMMIT").map(|()| v).map_err(|e| tx.fail(e)),
                Err(e) => {
                    // A failed statement leaves the transaction aborted: end it before the
                    // connection goes back to the pool.
                    let _ = open.finish("ROLLBACK");
                    Err(e)
                }
            };
            match outcome {
                Err(_) if tx.conflict && attempt < ATTEMPTS => {
                    // Both sides of a conflict retrying at once would meet again: back off a
                    // little, more each time.
                    let mut jitter = [0u8; 1];
                    let _ = thudo_core::crypto::fill_random(&mut jitter);
                    let ms = (1u64 << attempt.min(6)) + u64::from(jitter[0] % 8);
                    std::thread::sleep(Duration::from_millis(ms));
                }
                other => return other,
            }
        }
    }

    fn read<T>(&self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let client = self.connection()?;
        work(&mut PgTx {
            client: &client,
            conflict: false,
            held: Held::default(),
        })
    }

    fn snapshot<T>(&self, work: &mut dyn FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let client = self.connection()?;
        let mut tx = PgTx {
            client: &client,
            conflict: false,
            held: Held::default(),
        };
        run(client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            .map_err(|e| tx.fail(e))?;
        let mut open = OpenTransaction {
            client: &client,
            open: true,
        };
        let out = work(&mut tx);
        // Nothing was written: ending it either way is the same.
        let _ = open.finish("ROLLBACK");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_size_and_tls_are_taken_out_of_the_url() {
        let plain = url_settings("postgres://u@h/db").unwrap();
        assert_eq!(plain.url, "postgres://u@h/db?sslmode=disable");
        assert_eq!((plain.pool_size, plain.tls), (DEFAULT_POOL_SIZE, None));
        let s = url_settings("postgres://u@h/db?pool_max_size=4&application_name=x").unwrap();
        assert_eq!(
            s.url,
            "postgres://u@h/db?application_name=x&sslmode=disable"
        );
        assert_eq!(s.pool_size, 4);
        let s =
            url_settings("postgres://u@h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem").unwrap();
        assert_eq!(s.url, "postgres://u@h/db?sslmode=require");
        assert_eq!(s.tls, Some(Some("/etc/ca.pem".into())));
        assert_eq!(
            url_settings("postgres://u@h/db?sslmode=require")
                .unwrap()
                .tls,
            Some(None)
        );
        assert!(url_settings("postgres://u@h/db?pool_max_size=0").is_err());
        assert!(url_settings("postgres://u@h/db?sslmode=maybe").is_err());
    }

    #[test]
    fn database_names_are_plain() {
        assert!(create_database("postgres://u@h/postgres", "x; DROP TABLE y").is_err());
        assert!(create_database("postgres://u@h/postgres", "").is_err());
    }
}
