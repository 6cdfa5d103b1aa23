//! # thudo-server
//!
//! The reference backend for thudo devices (docs/protocol/sync.md): device registration and
//! tokens; push and pull sync with idempotency keys, cursors and per-collection conflict
//! policies; health records published by facilities per citizen; handbook content per party
//! cell; transit credential issuance, the validator feed and tap upload with pay-as-you-go fares
//! under daily and monthly caps.
//!
//! Every bad request gets a 4xx with a JSON [`ErrorBody`](thudo_core::sync::protocol::ErrorBody); nothing a client sends can panic a
//! handler.
//!
//! The crate is one module per concern, each with its routes, its rules and its store trait:
//! [`devices`] (identity, accounts, device tokens), [`sync`] (the change log), [`publishing`]
//! (health records and handbook content), [`transit`], and [`operators`] (who may call the
//! operator routes). Below them, [`http`] (the error shape and extractors) and [`storage`]
//! (the engines, locks and settings); above them, [`app`](mod@app), which builds the state and the
//! router. Imports point down or sideways, never up (docs/architecture.md).

pub mod app;
pub mod attendance;
pub mod devices;
pub mod files;
pub mod gate;
pub mod http;
pub mod jwt;
pub mod openapi;
pub mod operators;
pub mod payments;
pub mod publishing;
pub mod schema;
pub mod secrets;
pub mod storage;
pub mod sync;
pub mod transit;

pub use app::{app, open_storage, start, AppState, Running, ServerConfig, Storage, SCHEMA};
pub use http::ApiError;

/// Every store trait, for callers that hold a [`Storage`]: `use thudo_server::prelude::*;`.
pub mod prelude {
    pub use crate::attendance::store::AttendanceStore;
    pub use crate::devices::store::DeviceStore;
    pub use crate::files::store::FileStore;
    pub use crate::operators::audit::AuditStore;
    pub use crate::storage::settings::SettingsStore;
    pub use crate::sync::store::SyncStore;
    pub use crate::transit::store::{
        CredentialStore, JourneyStore, RiderStore, SalesStore, TapStore, TransitStore,
        ValidatorStore,
    };
    pub use crate::Storage;
}
