//! README.md, docs/android.md and docs/ios.md show only code that the Kotlin and Swift test
//! suites compile (and mostly run): every line of every `kotlin` / `swift` block must appear in the sources
//! the JVM build or `swift test` compiles. A block right after an HTML comment
//! `<!-- not compiled: why -->` is exempt and says why.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn source_lines(dirs: &[&str], ext: &str) -> HashSet<String> {
    let mut lines = HashSet::new();
    let mut stack: Vec<PathBuf> = dirs.iter().map(|d| root().join(d)).collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if p.extension().is_some_and(|e| e == ext) {
            for l in std::fs::read_to_string(&p).unwrap().lines() {
                lines.insert(l.trim().to_owned());
            }
        }
    }
    lines
}

/// (block's first line number, lines) of each checked block of `lang`.
fn blocks(doc: &str, lang: &str) -> Vec<(usize, Vec<String>)> {
    let text = std::fs::read_to_string(root().join(doc)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == format!("```{lang}") {
            let exempt = i > 0 && lines[i - 1].trim_start().starts_with("<!-- not compiled");
            let start = i + 1;
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && lines[i].trim() != "```" {
                body.push(lines[i].trim().to_owned());
                i += 1;
            }
            if !exempt {
                out.push((start + 1, body));
            }
        }
        i += 1;
    }
    out
}

fn check(doc: &str, lang: &str, dirs: &[&str], ext: &str) {
    let known = source_lines(dirs, ext);
    let found = blocks(doc, lang);
    assert!(!found.is_empty(), "{doc} has no {lang} sample");
    for (line_no, body) in found {
        for line in body.iter().filter(|l| !l.is_empty()) {
            assert!(
                known.contains(line),
                "{doc}:{line_no}: this {lang} line is not in compiled code: {line}"
            );
        }
    }
}

#[test]
fn android_doc_samples_are_compiled_code() {
    check(
        "docs/android.md",
        "kotlin",
        &[
            "android/src/main",
            "android/src/android",
            "android/src/test",
        ],
        "kt",
    );
}

#[test]
fn ios_doc_samples_are_compiled_code() {
    check(
        "docs/ios.md",
        "swift",
        &["ios/Sources/Thudo/Helpers", "ios/Tests"],
        "swift",
    );
}

/// docs/errors.md's samples are run by ErrorsTest.kt and ErrorsTests.swift.
#[test]
fn errors_doc_samples_are_compiled_code() {
    check(
        "docs/errors.md",
        "kotlin",
        &["android/src/main", "android/src/test"],
        "kt",
    );
    check(
        "docs/errors.md",
        "swift",
        &["ios/Sources/Thudo/Helpers", "ios/Tests"],
        "swift",
    );
}

/// README's samples are compiled too: android/src/test/kotlin/.../ReadmeSamples.kt and
/// ios/Tests/ThudoTests/ReadmeSamples.swift hold them (compiled by the Kotlin and Swift test
/// builds, never run).
#[test]
fn readme_samples_are_compiled_code() {
    check(
        "README.md",
        "kotlin",
        &["android/src/main", "android/src/test", "android/src/sample"],
        "kt",
    );
    check(
        "README.md",
        "swift",
        &["ios/Sources/Thudo/Helpers", "ios/Tests", "ios/Samples"],
        "swift",
    );
}
