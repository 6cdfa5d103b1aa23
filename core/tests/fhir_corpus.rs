//! Real bundles written by others (tests/data/fhir: the IPS guide's published examples, 2.0 and
//! 1.1, and Synthea patient records): each is imported, exported and compared with its input
//! field for field. Ids and references may change only as docs/health.md says: an entry without
//! an id gets one, references point at `urn:uuid:` entries of the export.
//!
//! `cargo test -p thudo-core --test fhir_corpus -- --nocapture` prints the per-bundle table.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use common::vault;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use thudo_core::health::fhir;
use thudo_core::health::records::{EntryStatus, HealthBook, ImportSummary};

const TIMESTAMP: &str = "2026-11-27T10:00:00+07:00";

fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fhir");
    let mut files = Vec::new();
    for dir in ["ips-2.0", "ips-1.1", "synthea"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

/// Replaces every reference that `names` knows by the `Type/id` it names.
fn normalise(value: &mut Value, names: &HashMap<String, String>) {
    fhir::rewrite_references(value, &|r| names.get(r).cloned());
}

/// What the comparison of one bundle found.
#[derive(Default)]
struct Row {
    name: String,
    entries: usize,
    stored: usize,
    markers: usize,
    exported: usize,
    unreachable: usize,
    changed: Vec<String>,
}

fn exported_resources(ips: &Value) -> (HashMap<String, Value>, HashMap<String, String>) {
    let entries = ips["entry"].as_array().unwrap();
    let urls: HashMap<String, String> = entries
        .iter()
        .map(|e| {
            (
                e["fullUrl"].as_str().unwrap().to_owned(),
                fhir::key_of(&e["resource"]).unwrap(),
            )
        })
        .collect();
    let resources = entries
        .iter()
        .map(|e| {
            let mut r = e["resource"].clone();
            normalise(&mut r, &urls);
            (fhir::key_of(&r).unwrap(), r)
        })
        .collect();
    (resources, urls)
}

fn reachable(ips: &Value) -> HashSet<String> {
    let (resources, _) = exported_resources(ips);
    let composition = fhir::key_of(&ips["entry"][0]["resource"]).unwrap();
    let mut reached = HashSet::new();
    let mut frontier = vec![resources[&composition].clone()];
    while let Some(r) = frontier.pop() {
        let mut refs = Vec::new();
        fhir::all_references(&r, &mut refs);
        for key in refs {
            if let Some(next) = resources.get(&key) {
                if reached.insert(key) {
                    frontier.push(next.clone());
                }
            }
        }
    }
    reached
}

fn check(path: &Path) -> Row {
    let text = std::fs::read_to_string(path).unwrap();
    let input: Value = serde_json::from_str(&text).unwrap();
    let (_dir, v) = vault();
    let book = HealthBook::new(&v);
    let summary: ImportSummary = book.import_bundle(&text, None, 1).unwrap();
    let in_entries = input["entry"].as_array().unwrap();
    let mut row = Row {
        name: path
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fhir"))
            .unwrap()
            .display()
            .to_string(),
        entries: in_entries.len(),
        stored: summary.stored,
        markers: summary.skipped,
        ..Row::default()
    };
    // Every entry is accounted for, once, in order.
    let indexes: Vec<usize> = summary.entries.iter().map(|e| e.index).collect();
    assert_eq!(
        indexes,
        (0..in_entries.len()).collect::<Vec<_>>(),
        "{}",
        row.name
    );
    for e in &summary.entries {
        assert_ne!(e.status, EntryStatus::Refused, "{}: {e:?}", row.name);
    }
    // Where each input entry went: its fullUrl (and its own Type/id) name the stored key.
    let mut names: HashMap<String, String> = HashMap::new();
    for (entry, report) in in_entries.iter().zip(&summary.entries) {
        if let Some(url) = entry["fullUrl"].as_str() {
            names.insert(url.to_owned(), report.key.clone());
        }
    }
    // Export every person the bundle was about, as one set of resources.
    let mut exported: HashMap<String, Value> = HashMap::new();
    let mut compositions = Vec::new();
    for person in &summary.people {
        let ips = book.export_ips(person, TIMESTAMP).unwrap();
        let reached = reachable(&ips);
        let (resources, _) = exported_resources(&ips);
        row.unreachable += resources
            .keys()
            .filter(|k| !k.starts_with("Composition/") && !reached.contains(*k))
            .count();
        compositions.extend(
            resources
                .iter()
                .filter(|(k, _)| k.starts_with("Composition/"))
                .map(|(_, r)| r.clone()),
        );
        exported.extend(resources);
        // A round trip through a second book gives the same document.
        let (_d2, v2) = vault();
        let again = HealthBook::new(&v2);
        again.import_bundle(&ips.to_string(), None, 2).unwrap();
        assert_eq!(
            again.export_ips(person, TIMESTAMP).unwrap(),
            ips,
            "{}: the round trip changed the export",
            row.name
        );
    }
    for (entry, report) in in_entries.iter().zip(&summary.entries) {
        if report.status == EntryStatus::Skipped {
            continue;
        }
        let mut expected = entry["resource"].clone();
        normalise(&mut expected, &names);
        let id = report.key.split_once('/').unwrap().1;
        expected["id"] = Value::String(id.to_owned());
        if expected["resourceType"] == "Composition" {
            check_composition(&expected, &compositions, &summary, &mut row);
            row.exported += 1;
            continue;
        }
        match exported.get(&report.key) {
            None => row.changed.push(format!("{} not exported", report.key)),
            Some(got) if *got != expected => {
                row.exported += 1;
                row.changed.push(format!("{} differs", report.key));
            }
            Some(_) => row.exported += 1,
        }
    }
    row
}

/// The imported document's sections, authors, attesters and custodian are in the export
/// (`exported`: the exported Compositions, references as `Type/id`).
fn check_composition(expected: &Value, exported: &[Value], summary: &ImportSummary, row: &mut Row) {
    let skipped: HashSet<&str> = summary
        .entries
        .iter()
        .filter(|e| e.status == EntryStatus::Skipped)
        .map(|e| e.key.as_str())
        .collect();
    let code_of = |s: &Value| {
        s["code"]["coding"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let export_sections: Vec<&Value> = exported
        .iter()
        .flat_map(|c| c["section"].as_array().into_iter().flatten())
        .collect();
    for section in expected["section"].as_array().into_iter().flatten() {
        let code = code_of(section);
        let Some(theirs) = export_sections.iter().find(|s| code_of(s) == code) else {
            row.changed.push(format!("section {code} not exported"));
            continue;
        };
        let mut wanted = Vec::new();
        if let Some(entries) = section.get("entry") {
            fhir::all_references(entries, &mut wanted);
        }
        wanted.retain(|r| !skipped.contains(r.as_str()));
        if wanted.is_empty() {
            // A section that only said something is carried as it was.
            if theirs.get("emptyReason") != section.get("emptyReason")
                || theirs.get("text") != section.get("text")
            {
                row.changed
                    .push(format!("section {code} narrative changed"));
            }
            continue;
        }
        let mut listed = Vec::new();
        fhir::all_references(&theirs["entry"], &mut listed);
        for r in wanted {
            if !listed.contains(&r) {
                row.changed.push(format!("section {code} lost {r}"));
            }
        }
    }
    for field in ["author", "attester", "custodian"] {
        let mut wanted = Vec::new();
        if let Some(v) = expected.get(field) {
            fhir::all_references(v, &mut wanted);
        }
        let mut have = Vec::new();
        for c in exported {
            if let Some(v) = c.get(field) {
                fhir::all_references(v, &mut have);
            }
        }
        for r in wanted {
            if !have.contains(&r) {
                row.changed.push(format!("composition {field} {r} dropped"));
            }
        }
    }
}

#[test]
fn every_real_bundle_comes_back_field_for_field() {
    let mut rows = Vec::new();
    for path in corpus() {
        rows.push(check(&path));
    }
    assert!(rows.len() >= 9, "the corpus is in the repository");
    println!("| bundle | entries | stored | no-info markers | exported | unreachable | changed |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.entries,
            r.stored,
            r.markers,
            r.exported,
            r.unreachable,
            r.changed.len()
        );
    }
    for r in &rows {
        assert!(r.changed.is_empty(), "{}: {:?}", r.name, r.changed);
        assert_eq!(r.unreachable, 0, "{}", r.name);
        assert_eq!(r.stored + r.markers, r.entries, "{}", r.name);
    }
}
