//! The import graph of src/'s top-level modules has no cycle (ARCHITECTURE.md: lower floors
//! never import higher ones).
//!
//! Every file of the library is parsed with `syn`; each `crate::<module>` path — in a `use`, a
//! type, an expression, or the tokens of a macro call — is an edge from the file's top-level
//! module to `<module>`. Test code (`#[cfg(test)]` items) is left out: tests may reach anywhere.
//! A cycle is reported with the files and lines of its imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Where one top-level module imports another.
#[derive(Clone, Debug)]
struct Site {
    file: PathBuf,
    line: usize,
}

type Graph = BTreeMap<String, BTreeMap<String, Site>>;

struct Imports<'a> {
    from: &'a str,
    file: &'a Path,
    edges: &'a mut Graph,
}

impl Imports<'_> {
    fn edge(&mut self, to: &str, line: usize) {
        if to == self.from || to == "self" || to == "super" {
            return;
        }
        self.edges
            .entry(self.from.to_string())
            .or_default()
            .entry(to.to_string())
            .or_insert_with(|| Site { file: self.file.to_path_buf(), line });
    }
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("cfg") && a.meta.require_list().is_ok_and(|l| l.tokens.to_string().contains("test")))
}

fn use_tree(v: &mut Imports<'_>, t: &syn::UseTree, at_crate: bool) {
    match t {
        syn::UseTree::Path(p) if p.ident == "crate" => use_tree(v, &p.tree, true),
        syn::UseTree::Path(p) if at_crate => v.edge(&p.ident.to_string(), p.ident.span().start().line),
        syn::UseTree::Name(n) if at_crate => v.edge(&n.ident.to_string(), n.ident.span().start().line),
        syn::UseTree::Rename(r) if at_crate => v.edge(&r.ident.to_string(), r.ident.span().start().line),
        syn::UseTree::Group(g) => g.items.iter().for_each(|i| use_tree(v, i, at_crate)),
        _ => {}
    }
}

impl<'ast> Visit<'ast> for Imports<'_> {
    fn visit_item(&mut self, i: &'ast syn::Item) {
        let attrs = match i {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(x) => &x.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Struct(s) => &s.attrs,
            _ => return syn::visit::visit_item(self, i),
        };
        if !is_test(attrs) {
            syn::visit::visit_item(self, i);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        use_tree(self, &u.tree, false);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let mut s = p.segments.iter();
        if let (Some(first), Some(second)) = (s.next(), s.next()) {
            if first.ident == "crate" {
                self.edge(&second.ident.to_string(), second.ident.span().start().line);
            }
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // Macro arguments are tokens, not syntax: look for `crate :: name` in them.
        let toks: Vec<proc_macro2::TokenTree> = flatten(m.tokens.clone());
        for w in toks.windows(4) {
            if let (
                proc_macro2::TokenTree::Ident(c),
                proc_macro2::TokenTree::Punct(a),
                proc_macro2::TokenTree::Punct(b),
                proc_macro2::TokenTree::Ident(name),
            ) = (&w[0], &w[1], &w[2], &w[3])
            {
                if c == "crate" && a.as_char() == ':' && b.as_char() == ':' {
                    self.edge(&name.to_string(), name.span().start().line);
                }
            }
        }
        syn::visit::visit_macro(self, m);
    }
}

fn flatten(ts: proc_macro2::TokenStream) -> Vec<proc_macro2::TokenTree> {
    let mut out = Vec::new();
    for t in ts {
        match t {
            proc_macro2::TokenTree::Group(g) => out.extend(flatten(g.stream())),
            t => out.push(t),
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The library's top-level modules and the import graph between them.
fn graph() -> (BTreeSet<String>, Graph) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut modules = BTreeSet::new();
    let mut edges = Graph::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let top = first.strip_suffix(".rs").unwrap_or(&first).to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        modules.insert(top.clone());
        let text = std::fs::read_to_string(f).unwrap();
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        // A whole file that is a test module (`#[cfg(test)] mod tests;` in its parent).
        if rel.file_stem().is_some_and(|s| s == "tests") {
            continue;
        }
        let mut v = Imports { from: &top, file: rel, edges: &mut edges };
        v.visit_file(&ast);
    }
    (modules, edges)
}

/// A path from `from` to `to` along the edges, if there is one.
fn path(edges: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut prev: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from.to_string()]);
    let mut seen = BTreeSet::from([from.to_string()]);
    while let Some(n) = queue.pop_front() {
        if n == to {
            let mut p = vec![n.clone()];
            let mut cur = n;
            while let Some(q) = prev.get(&cur) {
                p.push(q.clone());
                cur = q.clone();
            }
            p.reverse();
            return Some(p);
        }
        for next in edges.get(&n).into_iter().flat_map(|m| m.keys()) {
            if seen.insert(next.clone()) {
                prev.insert(next.clone(), n.clone());
                queue.push_back(next.clone());
            }
        }
    }
    None
}

#[test]
fn no_top_level_module_imports_one_that_imports_it_back() {
    let (modules, edges) = graph();
    assert!(modules.len() > 10, "found too few modules: {modules:?}");
    let mut cycles = Vec::new();
    for (from, tos) in &edges {
        for (to, site) in tos {
            if let Some(back) = path(&edges, to, from) {
                let mut steps = vec![format!("{from} -> {to} ({}:{})", site.file.display(), site.line)];
                for w in back.windows(2) {
                    let s = &edges[&w[0]][&w[1]];
                    steps.push(format!("{} -> {} ({}:{})", w[0], w[1], s.file.display(), s.line));
                }
                cycles.push(steps.join(", "));
            }
        }
    }
    // The graph as it is, for the reader of a failure (and of `--nocapture`).
    for (from, tos) in &edges {
        println!("{from} -> {}", tos.keys().cloned().collect::<Vec<_>>().join(" "));
    }
    assert!(cycles.is_empty(), "import cycles between top-level modules:\n{}", cycles.join("\n"));
}

/// The test itself finds a cycle: two modules of a small tree that import each other.
#[test]
fn a_cycle_is_found() {
    let mut g = Graph::new();
    let site = Site { file: PathBuf::from("x.rs"), line: 1 };
    g.entry("a".into()).or_default().insert("b".into(), site.clone());
    g.entry("b".into()).or_default().insert("c".into(), site.clone());
    assert_eq!(path(&g, "b", "a"), None);
    g.entry("c".into()).or_default().insert("a".into(), site);
    assert_eq!(path(&g, "b", "a"), Some(vec!["b".into(), "c".into(), "a".into()]));
    // And a file's imports are read from its syntax, test code left out.
    let ast = syn::parse_file(
        "use crate::{x::Y, z};\nfn f() { crate::w::g(); format!(\"{}\", crate::v::N); }\n#[cfg(test)]\nmod tests { use crate::t; }",
    )
    .unwrap();
    let mut edges = Graph::new();
    Imports { from: "m", file: Path::new("m.rs"), edges: &mut edges }.visit_file(&ast);
    let got: Vec<&String> = edges["m"].keys().collect();
    assert_eq!(got, ["v", "w", "x", "z"]);
}
