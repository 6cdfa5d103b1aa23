//! The repository stands alone: no tracked file reaches for a folder beside or above it (test
//! data, notes, tools). A clone into an empty folder must build and pass its tests.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Build output and caches, not the project's files.
const SKIP: &[&str] = &[
    ".git",
    "target",
    "build",
    ".build",
    ".gradle",
    "corpus",
    "artifacts",
];

#[test]
fn no_file_refers_outside_the_repository() {
    // Spelled in pieces so this file does not match itself.
    let outside = [
        format!("{}/{}", "shared", "fixtures"),
        format!("{}/{}", "shared", "notes"),
        format!("{}/{}", "../shared", ""),
        format!("{}{}", "/work", "/main"),
    ];
    let mut offenders = Vec::new();
    let mut checked = 0;
    let mut stack = vec![root()];
    while let Some(p) = stack.pop() {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if SKIP.contains(&name) {
                continue;
            }
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue; // binary
        };
        checked += 1;
        for (n, line) in text.lines().enumerate() {
            if outside.iter().any(|o| line.contains(o.as_str())) {
                offenders.push(format!("{}:{}: {}", p.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(checked > 100, "walked only {checked} files");
    assert!(
        offenders.is_empty(),
        "files refer outside the repository:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn health_card_fixtures_are_in_the_repository() {
    let dir = root().join("core/tests/data/shc");
    for f in [
        "README.md",
        "issuer/jwks.json",
        "example-00-f-qr-code-numeric-value-0.txt",
        "example-02-f-qr-code-numeric-value-2.txt",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("Licence") && readme.contains("CC BY 4.0"));
}
