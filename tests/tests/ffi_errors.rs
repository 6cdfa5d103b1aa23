//! The FFI's error codes: each error type's stable codes and retry rules, the published list
//! they must match (`bindings/error-codes.txt`), the vault's faults as one type in every
//! domain, and docs/errors.md generated from the code.

#![allow(clippy::unwrap_used)] // tests fail by panicking

use thudo_ffi::*;

#[test]
fn error_codes_and_retry_rules() {
    let lost = VaultError::KeyLost {
        reason: "no key".into(),
    };
    assert_eq!(lost.code(), "vault.key_lost");
    assert!(!lost.is_retryable());
    let locked = VaultError::KeyUnavailable {
        reason: "locked".into(),
    };
    assert_eq!(locked.code(), "vault.key_unavailable");
    assert!(locked.is_retryable());
    assert_eq!(SyncError::NotRegistered.code(), "sync.not_registered");
    assert!(!SyncError::NotRegistered.is_retryable());
    assert!(SyncError::Cancelled.is_retryable());
    let expired = TransitError::CredentialExpired { not_after: 1 };
    assert_eq!(expired.code(), "transit.credential_expired");
    assert!(!expired.is_retryable());
    let card = HealthCardError::DerSignature;
    assert_eq!(card.code(), "health_card.der_signature");
    assert!(!card.is_retryable());
    // The message is the sentence, never a dump of the fields.
    assert_eq!(lost.to_string(), "the vault's key is gone: no key");
}

/// Every error type the FFI exports, with its table.
type CodeTable = fn() -> Vec<(String, String, bool)>;
const ERROR_TYPES: [(&str, CodeTable); 11] = [
    ("AttachmentError", thudo_ffi::AttachmentError::codes),
    ("HandbookError", HandbookError::codes),
    ("HealthCardError", HealthCardError::codes),
    ("ScheduleError", ScheduleError::codes),
    ("HealthBookError", HealthBookError::codes),
    ("SyncError", SyncError::codes),
    ("TransitError", TransitError::codes),
    ("SignerError", SignerError::codes),
    ("VaultError", VaultError::codes),
    ("HttpError", HttpError::codes),
    ("KeyProviderError", KeyProviderError::codes),
];

/// The FFI's sources, where the variants' docs are.
const SOURCES: [&str; 10] = [
    include_str!("../../bindings/src/attachments.rs"),
    include_str!("../../bindings/src/handbook.rs"),
    include_str!("../../bindings/src/health.rs"),
    include_str!("../../bindings/src/health_book.rs"),
    include_str!("../../bindings/src/sync.rs"),
    include_str!("../../bindings/src/transit/mod.rs"),
    include_str!("../../bindings/src/transit/showing.rs"),
    include_str!("../../bindings/src/vault.rs"),
    include_str!("../../bindings/src/http.rs"),
    include_str!("../../bindings/src/lib.rs"),
];

/// The doc comment of each variant of `pub enum {name}` in the sources, joined into one line.
fn variant_docs(name: &str) -> std::collections::HashMap<String, String> {
    let head = format!("pub enum {name} {{");
    let source = SOURCES
        .iter()
        .find(|s| s.contains(&head))
        .unwrap_or_else(|| panic!("no source declares {name}"));
    let body = source.split(&head).nth(1).unwrap_or_default();
    let mut docs = std::collections::HashMap::new();
    let mut doc: Vec<&str> = Vec::new();
    for line in body.lines().take_while(|l| *l != "}") {
        if let Some(text) = line.strip_prefix("    /// ") {
            doc.push(text.trim());
        } else if line == "    ///" {
            doc.push("");
        } else if line.starts_with("    #[") {
            // An attribute between a variant's doc and its name.
        } else if let Some(rest) = line.strip_prefix("    ") {
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                docs.insert(ident, doc.join(" ").trim().to_owned());
            }
            doc.clear();
        }
    }
    docs
}

/// `NonceUsed` as Kotlin (`NONCE_USED`) and Swift (`nonceUsed`) name an enum case.
fn host_names(variant: &str) -> (String, String) {
    let mut words: Vec<String> = Vec::new();
    for c in variant.chars() {
        if c.is_ascii_uppercase() || words.is_empty() {
            words.push(String::new());
        }
        if let Some(w) = words.last_mut() {
            w.push(c);
        }
    }
    let kotlin = words
        .iter()
        .map(|w| w.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join("_");
    let mut swift = words.concat();
    if let Some(first) = swift.get_mut(0..1) {
        first.make_ascii_lowercase();
    }
    (kotlin, swift)
}

/// The tables of docs/errors.md, each after its `### ` heading, from the code.
fn generated_tables() -> Vec<(String, Vec<String>)> {
    let cell = |text: &str| text.replace('|', "\\|");
    let mut tables = Vec::new();
    for (name, codes) in ERROR_TYPES {
        let docs = variant_docs(name);
        let faults = variant_docs("VaultFault");
        let mut rows = vec![
            "| code | retry helps | meaning |".to_owned(),
            "|---|---|---|".to_owned(),
        ];
        for (variant, code, retryable) in codes() {
            let doc = match variant.strip_prefix("Vault.") {
                Some(fault) => faults.get(fault),
                None => docs.get(&variant),
            }
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| panic!("{name}::{variant} has no doc comment"));
            let retry = if retryable { "yes" } else { "no" };
            rows.push(format!("| `{code}` | {retry} | {} |", cell(doc)));
        }
        tables.push((format!("### {name}"), rows));
    }
    let mut rows = vec![
        "| on the wire | Kotlin | Swift | meaning |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];
    for (variant, code, meaning) in thudo_ffi::SERVER_ERROR_CODES {
        let (kotlin, swift) = host_names(variant);
        rows.push(format!(
            "| `{code}` | `{kotlin}` | `.{swift}` | {} |",
            cell(meaning)
        ));
    }
    tables.push(("### The backend's codes".to_owned(), rows));
    tables
}

/// docs/errors.md with each generated table in place of the one after its heading.
fn errors_doc_from_code(doc: &str) -> String {
    let mut lines: Vec<String> = doc.lines().map(str::to_owned).collect();
    for (heading, rows) in generated_tables() {
        let at = lines
            .iter()
            .position(|l| *l == heading)
            .unwrap_or_else(|| panic!("docs/errors.md has no heading {heading}"));
        let start = at
            + lines[at..]
                .iter()
                .position(|l| l.starts_with('|'))
                .unwrap_or_else(|| panic!("no table after {heading}"));
        let end = start
            + lines[start..]
                .iter()
                .take_while(|l| l.starts_with('|'))
                .count();
        lines.splice(start..end, rows);
    }
    lines.join("\n") + "\n"
}

/// docs/errors.md's tables are generated from the code: the variants' docs, the codes and
/// retry rules of their tables, and the backend's codes. `THUDO_BLESS=1 cargo test -p
/// thudo-scenarios --test ffi_errors` writes them after a change.
#[test]
fn errors_doc_is_generated_from_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/errors.md");
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let want = errors_doc_from_code(&doc);
    if std::env::var_os("THUDO_BLESS").is_some() {
        std::fs::write(path, &want).unwrap_or_else(|e| panic!("{path}: {e}"));
        return;
    }
    assert!(
        doc == want,
        "docs/errors.md differs from the code: run THUDO_BLESS=1 cargo test -p thudo-scenarios --test ffi_errors"
    );
}

#[test]
fn error_codes_are_the_published_list() {
    let mut codes: Vec<String> = ERROR_TYPES
        .iter()
        .flat_map(|(_, codes)| codes().into_iter().map(|(_, code, _)| code))
        .collect();
    codes.sort_unstable();
    let listed = include_str!("../../bindings/error-codes.txt");
    let published: Vec<String> = listed
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('-'))
        .map(str::to_owned)
        .collect();
    let retired: Vec<&str> = listed.lines().filter_map(|l| l.strip_prefix('-')).collect();
    assert!(!retired.is_empty(), "the retired codes are read");
    for code in &codes {
        assert!(
            !retired.contains(&code.as_str()),
            "{code} was retired: never reuse it"
        );
    }
    assert_eq!(
        codes, published,
        "a published code changed, vanished or was added unlisted"
    );
    let mut unique = codes.clone();
    unique.dedup();
    assert_eq!(unique.len(), codes.len(), "a code is used twice");
}

#[test]
fn the_vaults_faults_are_one_type_with_a_code_in_every_domain() {
    use thudo_core::vault::VaultError as V;
    let faults = || {
        vec![
            V::KeyLost { reason: "k".into() },
            V::CorruptStore { reason: "c".into() },
            V::NewerSchema {
                found: 9,
                supported: 3,
            },
            V::Io { reason: "i".into() },
            V::Closed,
            V::KeyUnavailable { reason: "l".into() },
            V::InvalidArgument { reason: "s".into() },
        ]
    };
    let want = [
        ("key_lost", false),
        ("corrupt_store", false),
        ("newer_schema", false),
        ("io", true),
        ("closed", false),
        ("locked", true),
        ("storage", false),
    ];
    // Each domain's error from a vault error: (its code, its retry rule, the fault it holds).
    type Seen = (String, bool, Option<VaultFault>);
    type Convert = fn(V) -> Seen;
    macro_rules! seen {
        ($error:ident, $e:expr) => {{
            let e: $error = $e;
            let fault = match &e {
                $error::Vault { fault } => Some(fault.clone()),
                _ => None,
            };
            (e.code(), e.is_retryable(), fault)
        }};
    }
    use thudo_ffi::AttachmentError;
    let domains: [(&str, Convert); 5] = [
        ("health_book", |v| seen!(HealthBookError, v.into())),
        ("sync", |v| seen!(SyncError, v.into())),
        ("transit", |v| seen!(TransitError, v.into())),
        ("handbook", |v| seen!(HandbookError, v.into())),
        ("attachment", |v| {
            seen!(
                AttachmentError,
                thudo_core::attachments::AttachmentError::Vault(v).into()
            )
        }),
    ];
    for (domain, convert) in domains {
        for (v, (kind, retryable)) in faults().into_iter().zip(want) {
            let fault = VaultFault::from(v.clone());
            let (code, retry, held) = convert(v);
            assert_eq!(code, format!("{domain}.{kind}"));
            assert_eq!(retry, retryable, "{code}");
            assert_eq!(held, Some(fault), "{code}");
        }
    }
    // The message is the fault's sentence.
    let e = SyncError::from(V::Closed);
    assert_eq!(e.to_string(), "the vault is closed");
}
