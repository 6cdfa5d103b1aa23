//! Operators: who may call the operator routes (facilities, the party, the transit operator).
//! Today one operator token, compared in constant time; every operator route asks here.

use axum::http::HeaderMap;

use crate::http::{bearer, ApiError};
use crate::storage::sha256;

/// The operators' credentials.
#[derive(Clone)]
pub struct Operators {
    admin_token_hash: [u8; 32],
}

impl Operators {
    /// Operators holding `admin_token` (kept only as its hash).
    pub fn new(admin_token: &str) -> Operators {
        Operators {
            admin_token_hash: sha256(admin_token.as_bytes()),
        }
    }

    /// Whether the request carries an operator's credential (401 otherwise).
    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let token = bearer(headers).unwrap_or("");
        if thudo_core::crypto::constant_time_eq(&sha256(token.as_bytes()), &self.admin_token_hash) {
            Ok(())
        } else {
            Err(ApiError::unauthorized("admin token required"))
        }
    }
}
