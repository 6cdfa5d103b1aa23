//! The module structure docs/architecture.md describes, checked on the sources: in core, the
//! server, the FFI facade and the CLI no two modules of a folder import each other, directly or
//! round a longer loop; and in core a module imports only modules of a lower layer (the domains
//! and the sync engine, on one layer, never import each other).
//!
//! An import is any `crate::` or `super::` path outside comments and `#[cfg(test)] mod tests`,
//! followed through the `pub use` re-exports it goes by (`crate::HandbookError` is the
//! `handbook` module's). A module's `use super::*` would hide which sibling it takes a name
//! from, so it is refused outside tests.

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

type ModPath = Vec<String>;

/// What one module's files say: the paths they name, the items they define, and what they
/// re-export (`(from, Some(name))`, or `(from, None)` for a glob).
#[derive(Default)]
struct Module {
    paths: BTreeSet<ModPath>,
    items: BTreeSet<String>,
    reexports: Vec<(ModPath, Option<String>)>,
    globs_super: bool,
}

type Crate = BTreeMap<ModPath, Module>;

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

/// The module a file under `src` defines (`transit/store/mod.rs` is `[transit, store]`, the
/// crate root `[]`); `None` for binaries beside the root.
fn module_of(src: &Path, file: &Path) -> Option<ModPath> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: ModPath = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    if matches!(&parts[..], [one] if one == "lib" || one == "main") {
        return Some(Vec::new());
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

fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The paths of a use tree at the start of `text` below `prefix`: `a::b`, `a::{b, c::{d, e}}`,
/// `a::*` (a glob: the last segment `*`), `a::B as C` (the alias after the path). Stops at the
/// first character that cannot continue the tree.
fn use_tree(prefix: &[String], text: &str, out: &mut Vec<(ModPath, Option<String>)>) -> usize {
    let mut path = prefix.to_vec();
    let mut at = 0;
    loop {
        let rest = &text[at..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut used = 1;
            let mut inner = group;
            loop {
                let skipped = inner.len() - inner.trim_start().len();
                inner = inner.trim_start();
                used += skipped;
                if inner.starts_with('}') {
                    return at + used + 1;
                }
                let n = use_tree(&path, inner, out);
                if n == 0 {
                    return at + used;
                }
                used += n;
                inner = &inner[n..];
                let skipped = inner.len() - inner.trim_start().len();
                inner = inner.trim_start();
                used += skipped;
                if let Some(after) = inner.strip_prefix(',') {
                    inner = after;
                    used += 1;
                }
            }
        }
        if rest.starts_with('*') {
            path.push("*".to_owned());
            out.push((path, None));
            return at + 1;
        }
        let name = ident(rest);
        if name.is_empty() {
            if path.len() > prefix.len() {
                out.push((path, None));
            }
            return at;
        }
        at += name.len();
        if name != "self" {
            path.push(name.to_owned());
        }
        let rest = &text[at..];
        if rest.starts_with("::") {
            at += 2;
            continue;
        }
        let alias = rest
            .strip_prefix(" as ")
            .map(ident)
            .filter(|a| !a.is_empty());
        if let Some(alias) = alias {
            at += 4 + alias.len();
        }
        out.push((path, alias.map(str::to_owned)));
        return at;
    }
}

/// Where a path starting at `text` (just after `crate::` or a run of `super::`) points from
/// `module`: `crate` true for `crate::`.
fn anchored(module: &[String], text: &str, out: &mut Vec<(ModPath, Option<String>)>) {
    let mut base: ModPath = Vec::new();
    let mut rest = text;
    if let Some(r) = rest.strip_prefix("crate::") {
        rest = r;
    } else {
        base = module.to_vec();
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r;
        }
    }
    use_tree(&base, rest, out);
}

fn read_module(module: &[String], children: &BTreeSet<String>, code: &str, into: &mut Module) {
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let before = &code[..start];
        if before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue; // `thudo_core::`, or the second `super::` of `super::super::`
        }
        let mut found = Vec::new();
        anchored(module, &code[start..], &mut found);
        into.paths.extend(found.into_iter().map(|(p, _)| p));
    }
    let mut offset = 0;
    for line in code.lines() {
        let line_start = offset;
        offset += line.len() + 1;
        if line.starts_with("use super::*;") {
            into.globs_super = true;
        }
        let indent = line.len() - line.trim_start().len();
        // The tree from the line on: a group may run over several lines.
        let Some(tree) = ["pub use ", "pub(crate) use "].iter().find_map(|p| {
            line.trim_start()
                .starts_with(p)
                .then(|| &code[line_start + indent + p.len()..])
        }) else {
            let words: Vec<&str> = line.split_whitespace().collect();
            let is_pub = words.first().is_some_and(|w| w.starts_with("pub"));
            let kinds = [
                "struct", "enum", "fn", "trait", "type", "const", "static", "mod",
            ];
            // The last kind word names the item (`pub const fn f`, `pub unsafe fn g`).
            let kind_at = words.iter().rposition(|w| kinds.contains(w));
            if let (true, Some(at)) = (is_pub, kind_at) {
                if let Some(name) = words.get(at + 1) {
                    into.items.insert(ident(name).to_owned());
                }
            }
            continue;
        };
        let mut found = Vec::new();
        if tree.starts_with("crate::") || tree.starts_with("super::") {
            anchored(module, tree, &mut found);
        } else if children.contains(ident(tree)) {
            use_tree(module, tree, &mut found);
        }
        for (path, alias) in found {
            match path.split_last() {
                Some((last, from)) if last == "*" => into.reexports.push((from.to_vec(), None)),
                Some((last, _)) => {
                    let name = alias.unwrap_or_else(|| last.clone());
                    into.items.insert(name.clone());
                    into.reexports.push((path.clone(), Some(name)));
                }
                None => {}
            }
        }
    }
}

fn read_crate(src: &str) -> Crate {
    let src = root().join(src);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: Vec<(ModPath, PathBuf)> = files
        .into_iter()
        .filter_map(|f| Some((module_of(&src, &f)?, f)))
        .collect();
    let mut krate = Crate::new();
    for (module, file) in &modules {
        let children: BTreeSet<String> = modules
            .iter()
            .filter(|(m, _)| m.len() == module.len() + 1 && m.starts_with(module))
            .map(|(m, _)| m[module.len()].clone())
            .collect();
        let text = std::fs::read_to_string(file).unwrap();
        read_module(
            module,
            &children,
            &code(&text),
            krate.entry(module.clone()).or_default(),
        );
    }
    krate
}

/// The module `path` names, followed through re-exports: `[handbook, HandbookError]` is
/// `[handbook]`, `[HandbookError]` (at the root, `pub use handbook::*`) too.
fn resolve(krate: &Crate, path: &[String], depth: usize) -> ModPath {
    let mut at: ModPath = Vec::new();
    for segment in path {
        let mut next = at.clone();
        next.push(segment.clone());
        if krate.contains_key(&next) {
            at = next;
            continue;
        }
        if depth < 8 {
            if let Some(from) = reexport_source(krate, &at, segment, depth) {
                return from;
            }
        }
        break;
    }
    at
}

/// The module an item `name` of `module` comes from when `module` re-exports it.
fn reexport_source(krate: &Crate, module: &ModPath, name: &str, depth: usize) -> Option<ModPath> {
    let m = krate.get(module)?;
    for (from, item) in &m.reexports {
        match item {
            Some(item) if item == name => return Some(resolve(krate, from, depth + 1)),
            None => {
                let source = resolve(krate, from, depth + 1);
                let defines = krate.get(&source).is_some_and(|s| s.items.contains(name));
                if defines && source != *module {
                    return Some(resolve(
                        krate,
                        &[source.clone(), vec![name.to_owned()]].concat(),
                        depth + 1,
                    ));
                }
            }
            _ => {}
        }
    }
    None
}

/// For each folder (module with children), the imports between its children: child ->
/// children it imports.
type Graphs = BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>>;

fn sibling_graphs(krate: &Crate) -> Graphs {
    let mut graphs = Graphs::new();
    for module in krate.keys() {
        for depth in 0..module.len() {
            graphs
                .entry(module[..depth].to_vec())
                .or_default()
                .entry(module[depth].clone())
                .or_default();
        }
    }
    for (module, m) in krate {
        for path in &m.paths {
            let target = resolve(krate, path, 0);
            // The deepest folder both sit in: there the importer's child imports the target's.
            let shared = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if shared >= module.len() || shared >= target.len() {
                continue; // a module's own child, or an ancestor's own item
            }
            if let Some(graph) = graphs.get_mut(&module[..shared]) {
                if let Some(edges) = graph.get_mut(&module[shared]) {
                    edges.insert(target[shared].clone());
                }
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

const CRATES: [&str; 4] = ["core/src", "server/src", "bindings/src", "cli/src"];

#[test]
fn no_import_cycles_in_core_the_server_the_ffi_or_the_cli() {
    for src in CRATES {
        let cycles: Vec<String> = sibling_graphs(&read_crate(src))
            .iter()
            .filter_map(|(folder, graph)| {
                let cycle = find_cycle(graph)?;
                Some(format!(
                    "{src}/{}: {}",
                    folder.join("/"),
                    cycle.join(" -> ")
                ))
            })
            .collect();
        assert_eq!(cycles, Vec::<String>::new(), "import cycles");
    }
}

#[test]
fn no_module_takes_its_parents_every_name() {
    for src in CRATES {
        let globbing: Vec<String> = read_crate(src)
            .into_iter()
            .filter(|(_, m)| m.globs_super)
            .map(|(module, _)| format!("{src}/{}", module.join("/")))
            .collect();
        assert_eq!(globbing, Vec::<String>::new(), "use super::* outside tests");
    }
}

#[test]
fn core_imports_only_downwards() {
    let layers: BTreeMap<&str, u8> = CORE_LAYERS.iter().copied().collect();
    let graphs = sibling_graphs(&read_crate("core/src"));
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

/// The checker finds what it is for: loops between siblings through `super::`, `crate::`,
/// nested groups and re-exports (named and glob), an import up the layers; and not an import
/// of a child, of another crate or in a comment.
#[test]
fn the_checker_sees_loops_and_upward_imports() {
    let module = |p: &str| -> ModPath {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let sources = [
        ("", "pub use x::a::Thing;\npub use y::*;\n"),
        ("x", "pub use a::{\n    Other,\n};\n"),
        (
            "x/a",
            "use super::b::Near;\nuse thudo_core::c::X;\n// crate::x::c::Z\npub struct Other;\npub struct Thing;\n",
        ),
        ("x/b", "use crate::{y::{Far, Fars}, x::{c::Q, a::Other}};\nfn f() { super::super::y::g(); }\n"),
        ("x/c", "fn f() -> crate::Thing { todo!() }\n"),
        ("y", "pub struct Far;\n"),
        ("z", "use crate::x::Other;\nfn f() -> crate::Far { todo!() }\nuse super::*;\n"),
    ];
    let mut krate = Crate::new();
    for (path, _) in sources {
        krate.insert(module(path), Module::default());
    }
    for (path, text) in sources {
        let m = module(path);
        let children: BTreeSet<String> = krate
            .keys()
            .filter(|k| k.len() == m.len() + 1 && k.starts_with(&m))
            .map(|k| k[m.len()].clone())
            .collect();
        let mut read = Module::default();
        read_module(&m, &children, &code(text), &mut read);
        krate.insert(m, read);
    }
    let graphs = sibling_graphs(&krate);
    let x = graphs.get(&module("x")).unwrap();
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        x["a"],
        set(&["b"]),
        "a comment and another crate do not count"
    );
    assert_eq!(x["b"], set(&["a", "c"]), "nested groups");
    assert_eq!(x["c"], set(&["a"]), "through the root's named re-export");
    assert_eq!(
        find_cycle(x),
        Some(vec!["a".to_owned(), "b".to_owned(), "a".to_owned()])
    );
    let top = graphs.get(&Vec::new()).unwrap();
    assert_eq!(top["x"], set(&["y"]));
    assert_eq!(
        top["z"],
        set(&["x", "y"]),
        "through re-exports in x and a glob at the root"
    );
    assert!(krate[&module("z")].globs_super);
    // Real sources: the checker reads every crate's modules and follows the FFI's re-exports.
    let ffi = read_crate("bindings/src");
    assert_eq!(
        resolve(&ffi, &module("HandbookError"), 0),
        module("handbook")
    );
    assert!(read_crate("core/src").contains_key(&module("transit/validator")));
}
