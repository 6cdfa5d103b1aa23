//! The operators' side of the demos: each operator signs in at the staff identity provider (a
//! local one here) and calls the backend's operator routes with its role's token, as an
//! operator's console would. Nothing here reaches into the backend's storage.

use anyhow::{anyhow, Result};
use serde_json::Value;
use thudo_server::devices::identity::LocalIdentityProvider;
use thudo_server::operators::Role;

/// One operator, signed in.
pub struct Console {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Console {
    /// `role` acting for `organisation` at the backend at `base` (`http://127.0.0.1:…`).
    pub fn sign_in(
        base: &str,
        idp: &LocalIdentityProvider,
        role: Role,
        organisation: &str,
    ) -> Result<Console> {
        let tls = thudo_core::sync::client::tls_config(&[], &[]).map_err(|e| anyhow!(e))?;
        Ok(Console {
            http: reqwest::Client::builder()
                .tls_backend_preconfigured(tls)
                .build()?,
            base: base.to_owned(),
            token: idp.operator_token(role, organisation)?,
        })
    }

    /// `POST path` with a JSON body; the answer, or the refusal as an error.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(path, request).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.send(path, self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn send(&self, path: &str, request: reqwest::RequestBuilder) -> Result<Value> {
        let response = request.bearer_auth(&self.token).send().await?;
        let status = response.status();
        let body: Value = serde_json::from_slice(&response.bytes().await?)?;
        if !status.is_success() {
            return Err(anyhow!("{path}: {status}: {}", body["message"]));
        }
        Ok(body)
    }
}
