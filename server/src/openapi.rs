//! The OpenAPI document, generated from the handlers' declarations and their messages' types
//! (utoipa): the router is built from the same declarations (the app module, which passes
//! every concern's part here), so every route served is documented, and what the gate answers
//! before any handler (401, 413, 429, …) is added from the gate's own rules
//! ([`crate::gate::document`]). `server/openapi.json` is this document written out, for readers
//! and tools; a test fails when it differs.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::OpenApi as _;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "thudo reference backend",
        version = "1",
        description = "Sync, health and handbook publishing, transit issuance and tap \
                       reconciliation for thudo devices. See docs/protocol/sync.md. Every \
                       response carries x-thudo-server-time (unix ms); every 4xx and 5xx has \
                       the ErrorBody shape."
    ),
    components(schemas(
        thudo_core::sync::protocol::ErrorBody,
        crate::schema::PullableCollection,
        crate::schema::CellCollection,
        crate::schema::ReducedCategory,
        crate::schema::DayTotal
    )),
    modifiers(&Credentials)
)]
struct Base;

/// The three kinds of bearer credential.
struct Credentials;

impl utoipa::Modify for Credentials {
    fn modify(&self, doc: &mut OpenApi) {
        let bearer = |description: &str, format: Option<&str>| {
            let mut http = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description));
            if let Some(format) = format {
                http = http.bearer_format(format);
            }
            SecurityScheme::Http(http.build())
        };
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "device",
            bearer("A registered device's token (POST /v1/devices)", None),
        );
        components.add_security_scheme(
            "validator",
            bearer(
                "An enrolled validator's token (POST /v1/validators), renewed before it \
                 expires (POST /v1/transit/validators/token)",
                None,
            ),
        );
        let roles: Vec<&str> = crate::operators::Role::ALL
            .iter()
            .map(|r| r.code())
            .collect();
        components.add_security_scheme(
            "operator",
            bearer(
                &format!(
                    "An operator's access token from the staff identity provider: claims sub, \
                     thudo_role ({}) and thudo_org, valid for at most an hour. A role outside \
                     the route's answers 403 forbidden.",
                    roles.join(", ")
                ),
                Some("JWT"),
            ),
        );
    }
}

/// The whole document from every concern's `parts`, then what the gate answers; as served at
/// `/openapi.json` (pretty, as `server/openapi.json` holds it).
pub fn render(parts: impl IntoIterator<Item = OpenApi>) -> String {
    let mut doc = Base::openapi();
    for part in parts {
        doc.merge(part);
    }
    crate::gate::document(&mut doc);
    let text = serde_json::to_value(doc).and_then(|mut doc| {
        integer_bounds(&mut doc);
        plain_descriptions(&mut doc);
        serde_json::to_string_pretty(&doc)
    });
    // Cannot fail for this document's types; if it ever did, say so in a JSON object.
    text.unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string()) + "\n"
}

/// The descriptions are the types' rustdoc: its links (`` [`Type`] ``) read as plain code.
fn plain_descriptions(node: &mut serde_json::Value) {
    use serde_json::Value;
    match node {
        Value::Object(fields) => {
            if let Some(Value::String(text)) = fields.get_mut("description") {
                *text = text.replace("[`", "`").replace("`]", "`");
            }
            fields.values_mut().for_each(plain_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(plain_descriptions),
        _ => {}
    }
}

/// Gives every integer the bounds of its Rust type: utoipa names a `u16` field `u-int16`
/// (`non_strict_integers`), which JSON Schema tools do not read, so each such format becomes
/// `minimum`/`maximum` (within any narrower bounds the field declares) and a standard format
/// (`uint64` for a `u64`, which `int64` cannot hold).
fn integer_bounds(node: &mut serde_json::Value) {
    use serde_json::Value;
    let number = |v: &Value| {
        v.as_i64()
            .map(i128::from)
            .or_else(|| v.as_u64().map(i128::from))
    };
    let value = |n: i128| match u64::try_from(n) {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(n as i64),
    };
    match node {
        Value::Object(fields) => {
            let bounds: Option<(i128, i128, &str)> =
                match fields.get("format").and_then(Value::as_str) {
                    Some("int8") => Some((i8::MIN.into(), i8::MAX.into(), "int32")),
                    Some("int16") => Some((i16::MIN.into(), i16::MAX.into(), "int32")),
                    Some("int32") => Some((i32::MIN.into(), i32::MAX.into(), "int32")),
                    Some("u-int8") => Some((0, u8::MAX.into(), "int32")),
                    Some("u-int16") => Some((0, u16::MAX.into(), "int32")),
                    Some("u-int32") => Some((0, u32::MAX.into(), "int64")),
                    Some("u-int64") => Some((0, u64::MAX.into(), "uint64")),
                    _ => None,
                };
            if let Some((min, max, format)) = bounds {
                let declared = |key: &str| fields.get(key).and_then(number);
                let min = declared("minimum").map_or(min, |d| d.max(min));
                let max = declared("maximum").map_or(max, |d| d.min(max));
                fields.insert("minimum".into(), value(min));
                fields.insert("maximum".into(), value(max));
                fields.insert("format".into(), format.into());
            }
            fields.values_mut().for_each(integer_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(integer_bounds),
        _ => {}
    }
}
