//! The backend's modules import downwards only (docs/architecture.md, "The backend by
//! concern"): each top-level module of `server/src` has a layer, and a file may name
//! `crate::m` only for a module `m` in a lower layer (or its own).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

/// Top-level modules by layer, lowest first; modules of one layer do not import each other.
const LAYERS: &[&[&str]] = &[
    &["storage"],
    &["http", "payments", "secrets", "schema"],
    &["jwt"],
    &["operators"],
    &["devices"],
    &["sync"],
    &["attendance", "files"],
    &["publishing", "transit"],
    &["gate"],
    &["openapi"],
    &["app"],
    &["lib", "main"],
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module {module} has no layer: add it to LAYERS"))
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_lower_layers() {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut all = Vec::new();
    files(src, &mut all);
    let mut seen = 0;
    let mut wrong = Vec::new();
    for path in all {
        let relative = path.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs").to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for (at, _) in text.match_indices("crate::") {
            let named: String = text[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::Storage` and other re-exports at the root are the root's layer.
            let target = if named.chars().next().is_some_and(char::is_uppercase) {
                "lib".to_owned()
            } else {
                named
            };
            seen += 1;
            if target != module && layer(&target) >= layer(&module) {
                wrong.push(format!("{}: crate::{target}", relative.display()));
            }
        }
    }
    assert!(seen > 50, "imports read: {seen}");
    assert!(
        wrong.is_empty(),
        "imports that point up or sideways: {wrong:#?}"
    );
}
