//! The OpenAPI document: generated from the routes, kept in `server/openapi.json`, listing every
//! refusal code and describing every operation with its credential and the gate's statuses.

#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::Value;

#[test]
fn the_openapi_document_lists_every_error_code() {
    let doc: Value = serde_json::from_str(thudo_server::app::openapi_json()).unwrap();
    assert_eq!(
        doc["components"]["schemas"]["ErrorBody"]["properties"]["error"]["$ref"],
        "#/components/schemas/ServerErrorCode"
    );
    let listed: Vec<&str> = doc["components"]["schemas"]["ServerErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let codes: Vec<&str> = thudo_core::sync::protocol::ServerErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(listed, codes);
}

/// `server/openapi.json` is the generated document, for readers and tools that do not run the
/// server. `THUDO_BLESS=1` writes it.
#[test]
fn the_openapi_file_is_the_generated_document() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let generated = thudo_server::app::openapi_json();
    if std::env::var_os("THUDO_BLESS").is_some() {
        std::fs::write(path, generated).unwrap();
    }
    let written = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        written == generated,
        "server/openapi.json differs from the generated document: run \
         THUDO_BLESS=1 cargo test -p thudo-server --test openapi"
    );
}

/// Every route is documented with its credential and the statuses the gate adds.
#[test]
fn the_openapi_document_describes_every_operation() {
    let doc: Value = serde_json::from_str(thudo_server::app::openapi_json()).unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("200"), "{method} {path}");
            let secured = op.get("security").is_some();
            let anonymous = path.starts_with("/test/")
                || path.starts_with("/v1/payments/")
                || [
                    "/healthz",
                    "/openapi.json",
                    "/v1/identity/nonce",
                    "/v1/validators",
                ]
                .contains(&path.as_str())
                || (path == "/v1/devices" && method == "post");
            assert_eq!(secured, !anonymous, "{method} {path}");
            if secured {
                assert!(responses.contains_key("401"), "{method} {path}");
                assert!(responses.contains_key("429"), "{method} {path}");
            }
            if op.get("requestBody").is_some() {
                assert!(responses.contains_key("413"), "{method} {path}");
            }
        }
    }
    assert_eq!(operations, 62);
}
