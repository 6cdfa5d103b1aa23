//! The repository stands alone: no file climbs out of it with a relative path (`../` more
//! times than the file sits deep in the tree), and the test data the project needs is inside.
//! A clone into an empty folder must build and pass its tests.

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

/// The longest run of `../` steps in `line` (`..` segments joined by `/`).
fn deepest_climb(line: &str) -> usize {
    line.split(|c: char| c.is_whitespace() || "\"'`()<>[]{},;=".contains(c))
        .map(|token| {
            token
                .split('/')
                .skip_while(|s| *s != "..")
                .take_while(|s| *s == "..")
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn the_climb_measure_counts_parent_steps() {
    assert_eq!(deepest_climb(r#"join("../core/tests/data")"#), 1);
    assert_eq!(deepest_climb("cd \"$(dirname \"$0\")/..\""), 1);
    // Built, not written out: this file must not climb out itself.
    let three_up = format!("see {}x and ../y", "../".repeat(3));
    assert_eq!(deepest_climb(&three_up), 3);
    assert_eq!(deepest_climb("no parent here ..."), 0);
}

#[test]
fn no_file_climbs_out_of_the_repository() {
    let root = root();
    let mut offenders = Vec::new();
    let mut checked = 0;
    let mut stack = vec![root.clone()];
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
        // Folders between the repository root and this file: as many `../` as it may climb.
        let depth = p.strip_prefix(&root).unwrap().components().count() - 1;
        for (n, line) in text.lines().enumerate() {
            if deepest_climb(line) > depth {
                offenders.push(format!("{}:{}: {}", p.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(checked > 100, "walked only {checked} files");
    assert!(
        offenders.is_empty(),
        "files climb out of the repository:\n{}",
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
