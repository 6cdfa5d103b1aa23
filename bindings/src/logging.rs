//! Logs the host can see: the core's log records go to a logger the app installs (Logcat on
//! Android, os_log on iOS; helpers in the shells), at a level settable at run time. Records
//! carry counts, collection names, verdict reasons and durations, never personal data, keys,
//! tokens or passphrases.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// How much to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Failures the app should know of.
    Error,
    /// Something went wrong and was handled (a retry, a refused change).
    Warn,
    /// One line per operation (a sync, an import, a vault opened).
    Info,
    /// Per page, per scan.
    Debug,
    /// Everything.
    Trace,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

fn level_of(l: log::Level) -> LogLevel {
    match l {
        log::Level::Error => LogLevel::Error,
        log::Level::Warn => LogLevel::Warn,
        log::Level::Info => LogLevel::Info,
        log::Level::Debug => LogLevel::Debug,
        log::Level::Trace => LogLevel::Trace,
    }
}

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LogRecord {
    /// Its level.
    pub level: LogLevel,
    /// Where it comes from (`thudo_core::sync::client`): a tag for Logcat, a category for
    /// os_log.
    pub target: String,
    /// What happened.
    pub message: String,
    /// Its facts, by name (`pushed` = `12`).
    pub fields: HashMap<String, String>,
}

/// Receives the library's log records (named apart from `os.Logger`, which iOS apps import). Called on the thread that logs (often a background
/// one); must return quickly, must not throw and must not call back into the library.
#[uniffi::export(with_foreign)]
pub trait LogSink: Send + Sync {
    /// One record.
    fn log(&self, record: LogRecord);
}

struct Forward {
    logger: RwLock<Option<Arc<dyn LogSink>>>,
}

impl log::Log for Forward {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        // The library's own records only: its dependencies (HTTP, TLS) log URLs and headers.
        if !self.enabled(record.metadata()) || !thudo_core::logs::is_own(record) {
            return;
        }
        let Some(logger) = self
            .logger
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return;
        };
        logger.log(LogRecord {
            level: level_of(record.level()),
            target: record.target().to_owned(),
            message: record.args().to_string(),
            fields: thudo_core::logs::fields(record).into_iter().collect(),
        });
    }

    fn flush(&self) {}
}

fn forward() -> &'static Forward {
    static FORWARD: OnceLock<Forward> = OnceLock::new();
    FORWARD.get_or_init(|| Forward {
        logger: RwLock::new(None),
    })
}

/// Sends the library's logs to `sink` (`None`: nowhere) from `level` up. Replaces any sink set
/// before; call it once at start-up (`LogcatSink` on Android, `OSLogSink` on iOS).
#[uniffi::export]
pub fn set_log_sink(sink: Option<Arc<dyn LogSink>>, level: LogLevel) {
    let forward = forward();
    // The first call installs the forwarder; later ones only swap the host's logger (the log
    // facade takes one logger per process).
    let _ = log::set_logger(forward);
    *forward.logger.write().unwrap_or_else(|e| e.into_inner()) = sink;
    log::set_max_level(level.into());
}

/// Changes how much is logged, at any time (a debug screen, a support session).
#[uniffi::export]
pub fn set_log_level(level: LogLevel) {
    log::set_max_level(level.into());
}
