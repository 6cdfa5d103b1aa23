//! The module structure docs/architecture.md describes, checked on the sources: in core, the
//! server and the FFI facade no two modules of a folder import each other, directly or round a
//! longer loop; and in core a module imports only modules of a lower layer (the domains and the
//! sync engine, on one layer, never import each other).
//!
//! An import is any `crate::` or `super::` path outside comments and `#[cfg(test)] mod tests`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// core's top-level modules by layer: a module may import only modules of a lower layer.
const CORE_LAYERS: &[(&str, u8)] = &[
    ("crypto", 0),
    ("logs", 0),
    ("background", 0),
    ("schema", 0),
    ("hex", 1),
    ("vault", 2),
    ("changes", 3),
    ("net", 3),
    ("attachments", 4),
    ("handbook", 5),
    ("health", 5),
    ("transit", 5),
    ("sync", 5),
    ("reminders", 6),
    ("collections", 6),
];

/// Module path (below the crate root) to the module paths its files import.
type Imports = BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file under `src` defines (`transit/store/mod.rs` is `[transit, store]`); `None`
/// for the crate root and binaries.
fn module_of(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") || matches!(&parts[..], [one] if one == "lib") {
        return None;
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    Some(parts)
}

/// A file's code without its comments and its unit tests.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Each path `code` names after `crate::` or `super::` (groups `{a, b::c}` opened), resolved to
/// a module path below the crate root.
fn imports_of(module: &[String], code: &str) -> BTreeSet<Vec<String>> {
    let mut found = BTreeSet::new();
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        if start > 0 && code[..start].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `thudo_core::`, or the second `super::` of `super::super::`
        }
        let mut base: Vec<String> = Vec::new();
        let mut rest = &code[start..];
        if let Some(r) = rest.strip_prefix("crate::") {
            rest = r;
        } else {
            base = module.to_vec();
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
        }
        // One path, or a group of them: `crate::{a, b::c}`, `super::x::{y, z}`.
        let mut prefix = base;
        loop {
            let name = ident(rest);
            if name.is_empty() {
                break;
            }
            prefix.push(name.clone());
            rest = &rest[name.len()..];
            match rest.strip_prefix("::") {
                Some(r) => rest = r,
                None => break,
            }
        }
        if rest.starts_with('{') {
            let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
            for item in group.split(',') {
                let mut path = prefix.clone();
                path.extend(
                    item.trim()
                        .split("::")
                        .map(ident)
                        .take_while(|name| !name.is_empty() && name != "self"),
                );
                found.insert(path);
            }
        }
        found.insert(prefix);
    }
    found
}

fn crate_imports(src: &str) -> Imports {
    let src = root().join(src);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut imports = Imports::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let found = imports_of(&module, &code(&text));
        imports.entry(module).or_default().extend(found);
    }
    imports
}

/// For each folder (module with children), the imports between its children: child ->
/// children it imports.
fn sibling_graphs(imports: &Imports) -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for module in imports.keys() {
        for depth in 0..module.len() {
            let (parent, child) = (&module[..depth], &module[depth]);
            graphs
                .entry(parent.to_vec())
                .or_default()
                .entry(child.clone())
                .or_default();
        }
    }
    for (module, targets) in imports {
        for target in targets {
            // The deepest folder both sit in: there the importer's child imports the target's.
            let shared = module
                .iter()
                .zip(target)
                .take_while(|(a, b)| a == b)
                .count();
            if shared >= module.len() || shared >= target.len() {
                continue; // a module importing itself, its own child, or an ancestor's item
            }
            let graph = graphs.entry(module[..shared].to_vec()).or_default();
            if graph.contains_key(&target[shared]) {
                graph
                    .get_mut(&module[shared])
                    .unwrap()
                    .insert(target[shared].clone());
            }
        }
    }
    graphs
}

/// A loop in `graph`, as the modules round it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn cycles(src: &str) -> Vec<String> {
    sibling_graphs(&crate_imports(src))
        .iter()
        .filter_map(|(folder, graph)| {
            let cycle = find_cycle(graph)?;
            Some(format!(
                "{src}/{}: {}",
                folder.join("/"),
                cycle.join(" -> ")
            ))
        })
        .collect()
}

#[test]
fn no_import_cycles_in_core_the_server_or_the_ffi() {
    for src in ["core/src", "server/src", "bindings/src", "cli/src"] {
        assert_eq!(cycles(src), Vec::<String>::new(), "import cycles");
    }
}

#[test]
fn core_imports_only_downwards() {
    let layers: BTreeMap<&str, u8> = CORE_LAYERS.iter().copied().collect();
    let graphs = sibling_graphs(&crate_imports("core/src"));
    let top = graphs.get(&Vec::new()).unwrap();
    let mut wrong = Vec::new();
    for (module, targets) in top {
        let layer = *layers
            .get(module.as_str())
            .unwrap_or_else(|| panic!("core's module {module} has no layer in CORE_LAYERS"));
        for target in targets {
            let below = layers.get(target.as_str()).copied().unwrap_or(u8::MAX);
            if below >= layer {
                wrong.push(format!(
                    "{module} (layer {layer}) imports {target} (layer {below})"
                ));
            }
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
}

/// The checker finds what it is for: a loop between siblings, a loop through `super::`, an
/// import up the layers, and not an import of a child or of `thudo_core::`.
#[test]
fn the_checker_sees_loops_and_upward_imports() {
    let module = |p: &str| p.split('/').map(str::to_owned).collect::<Vec<_>>();
    let mut imports = Imports::new();
    let code_a = "use super::b::Thing;\nuse thudo_core::c::X;\n// crate::c::in_a_comment\n";
    imports.insert(module("x/a"), imports_of(&module("x/a"), code_a));
    let code_b = "use crate::{x::a::Other, y};\nfn f() { super::super::y::g(); }\n";
    imports.insert(module("x/b"), imports_of(&module("x/b"), code_b));
    imports.insert(module("x/c"), BTreeSet::new());
    imports.insert(module("y"), imports_of(&module("y"), "use self::z::W;\n"));
    let graphs = sibling_graphs(&imports);
    let x = graphs.get(&module("x")).unwrap();
    assert_eq!(x["a"], BTreeSet::from(["b".to_owned()]));
    assert_eq!(x["b"], BTreeSet::from(["a".to_owned()]));
    assert!(
        x["c"].is_empty(),
        "neither a comment nor another crate counts"
    );
    assert_eq!(
        find_cycle(x),
        Some(vec!["a".to_owned(), "b".to_owned(), "a".to_owned()])
    );
    let top = graphs.get(&Vec::new()).unwrap();
    assert_eq!(top["x"], BTreeSet::from(["y".to_owned()]));
    assert_eq!(find_cycle(top), None);
    // Real sources: the checker reads every crate's modules.
    assert!(crate_imports("core/src").contains_key(&module("transit/validator")));
    assert!(crate_imports("server/src").len() > 20);
}
