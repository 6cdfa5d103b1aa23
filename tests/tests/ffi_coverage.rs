//! Every function the FFI exports is called from the Kotlin tests and from the Swift tests (or
//! from the shells' helpers those tests use: `observe` behind `changes()`): the public API is
//! exercised in both host languages, not only from Rust. Reads the facade's sources (`pub fn`
//! and `pub async fn` in `bindings/src`, UniFFI's exported surface, less `#[doc(hidden)]` ones
//! the Rust tests read) and looks for each name, in
//! the host's spelling, in each language's tests and helpers. Primary constructors (`new`) are
//! called by their type's name and are not counted.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn read_all(dir: &Path, ext: &str, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_all(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
            out.push('\n');
        }
    }
}

/// `open_with_passphrase` as Kotlin and Swift spell it: `openWithPassphrase`.
fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The names of the facade's exported functions and methods.
fn exported() -> Vec<String> {
    let mut code = String::new();
    read_all(&root().join("bindings/src"), "rs", &mut code);
    // Test modules are not exported.
    let mut names: Vec<String> = code
        .split("\n#[cfg(test)]")
        .enumerate()
        .flat_map(|(i, part)| {
            let part = if i == 0 {
                part
            } else {
                part.split_once("\n}\n").map_or("", |(_, rest)| rest)
            };
            // A `#[doc(hidden)]` function is Rust's only (the tests' tables), not UniFFI's.
            let mut hidden = false;
            part.lines()
                .filter_map(|line| {
                    let line = line.trim_start();
                    let after_hidden = std::mem::replace(&mut hidden, line == "#[doc(hidden)]");
                    let rest = line
                        .strip_prefix("pub async fn ")
                        .or_else(|| line.strip_prefix("pub fn "))?;
                    (!after_hidden).then(|| rest.split(['(', '<']).next().map(str::to_owned))?
                })
                .collect::<Vec<_>>()
        })
        .collect();
    names.retain(|n| n != "new");
    names.sort();
    names.dedup();
    names
}

#[test]
fn every_exported_function_is_called_from_kotlin_and_swift() {
    let names = exported();
    assert!(
        names.len() > 100,
        "exported functions read: {}",
        names.len()
    );
    let mut kotlin = String::new();
    read_all(&root().join("android/src/test"), "kt", &mut kotlin);
    read_all(&root().join("android/src/main"), "kt", &mut kotlin);
    let mut swift = String::new();
    read_all(&root().join("ios/Tests"), "swift", &mut swift);
    read_all(
        &root().join("ios/Sources/Thudo/Helpers"),
        "swift",
        &mut swift,
    );
    let called = |tests: &str, name: &str| {
        let host = camel(name);
        [
            format!("{host}("),
            format!(".{host} "),
            format!(".{host}\n"),
            format!(".{host})"),
        ]
        .iter()
        .any(|form| tests.contains(form.as_str()))
    };
    let missing = |tests: &str| -> Vec<String> {
        names
            .iter()
            .filter(|n| !called(tests, n))
            .map(|n| camel(n))
            .collect()
    };
    let (in_kotlin, in_swift) = (missing(&kotlin), missing(&swift));
    assert!(
        in_kotlin.is_empty() && in_swift.is_empty(),
        "exported but never called from Kotlin: {in_kotlin:?}; from Swift: {in_swift:?}"
    );
}
