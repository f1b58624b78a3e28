//! The layers of the code, checked: every file under `src/` (the tools in `src/bin` aside)
//! is parsed, each reference to another top-level module (`crate::x::…`, `super::…`,
//! `use` trees, paths inside macros such as `tracing::info!`) becomes an edge of a graph
//! between top-level modules, and the test fails on any cycle in that graph and on any
//! edge that points up the layers described in docs/architecture.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// The node for items defined in `lib.rs` itself.
const LIB: &str = "lib";
/// The node for the binary crate (`main.rs` and the modules it declares).
const MAIN: &str = "main";

/// Where one edge was seen first, for the failure message.
#[derive(Clone, Debug)]
struct Site {
    file: String,
    line: usize,
    path: String,
}

type Graph = BTreeMap<String, BTreeMap<String, Site>>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "bin") && path.parent() == Some(&src_dir()) {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path a file declares: `src/repl/mod.rs` is `repl`, `src/repl/raft.rs` is
/// `repl::raft`, `src/lib.rs` is the crate root.
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_dir()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The modules `lib.rs` declares: the top-level modules of the library.
fn lib_modules() -> BTreeSet<String> {
    let text = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let file = syn::parse_file(&text).unwrap();
    file.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(m) if m.content.is_none() => Some(m.ident.to_string()),
            _ => None,
        })
        .collect()
}

/// Collects every path a file names, resolved to an absolute module path in its crate.
struct Collector<'a> {
    /// The module the visitor is in (the file's module plus inline `mod` blocks).
    module: Vec<String>,
    /// True in the binary crate, where the library is `ferrod::`.
    in_bin: bool,
    lib_modules: &'a BTreeSet<String>,
    /// (resolved path, line, as written)
    found: Vec<(Vec<String>, usize, String)>,
}

impl Collector<'_> {
    fn add(&mut self, segments: Vec<String>, line: usize) {
        let written = segments.join("::");
        if let Some(resolved) = self.resolve(&segments) {
            self.found.push((resolved, line, written));
        }
    }

    /// `crate::a::b`, `super::b`, `self::b`, and (at the crate root) `a::b`, as an
    /// absolute path in the library; `None` for other crates and local names. A path into
    /// the library from the binary crate starts with `ferrod`.
    fn resolve(&self, segments: &[String]) -> Option<Vec<String>> {
        let first = segments.first()?.as_str();
        let mut abs: Vec<String>;
        let rest: &[String];
        match first {
            "crate" => {
                abs = Vec::new();
                rest = &segments[1..];
            }
            "super" | "self" => {
                abs = self.module.clone();
                let mut n = 0;
                while let Some(s) = segments.get(n) {
                    match s.as_str() {
                        "super" => {
                            abs.pop();
                        }
                        "self" => {}
                        _ => break,
                    }
                    n += 1;
                }
                rest = &segments[n..];
            }
            "ferrod" if self.in_bin => {
                let mut v = vec!["ferrod".to_string()];
                v.extend(segments[1..].iter().cloned());
                return Some(v);
            }
            _ if self.module.is_empty() && !self.in_bin && self.lib_modules.contains(first) => {
                abs = Vec::new();
                rest = segments;
            }
            _ => return None,
        }
        abs.extend(rest.iter().cloned());
        if self.in_bin {
            // `crate::` in the binary crate stays in the binary crate.
            abs.insert(0, MAIN.to_string());
        }
        Some(abs)
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut v = prefix.clone();
                if n.ident != "self" {
                    v.push(n.ident.to_string());
                }
                self.add(v, n.ident.span().start().line);
            }
            syn::UseTree::Rename(r) => {
                let mut v = prefix.clone();
                if r.ident != "self" {
                    v.push(r.ident.to_string());
                }
                self.add(v, r.ident.span().start().line);
            }
            syn::UseTree::Glob(g) => {
                self.add(prefix.clone(), g.star_token.spans[0].start().line);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    /// Paths inside a macro's tokens (`tracing::info!(… crate::x::y …)`, `doc! {…}`):
    /// every run of `ident :: ident …` that starts at `crate`, `super`, `self` or
    /// `ferrod`, or at a top-level module name at the crate root.
    fn tokens(&mut self, stream: proc_macro2::TokenStream) {
        use proc_macro2::{Spacing, TokenTree};
        let tokens: Vec<TokenTree> = stream.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => {
                    self.tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(ident) => {
                    // A `$crate` or an ident preceded by `::` is the middle of a path.
                    let after_colons = i >= 1
                        && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == ':');
                    let mut segments = vec![ident.to_string()];
                    let line = ident.span().start().line;
                    let mut j = i + 1;
                    while j + 2 < tokens.len() + 1 {
                        let colons = matches!(&tokens[j], TokenTree::Punct(p) if p.as_char() == ':' && p.spacing() == Spacing::Joint)
                            && matches!(tokens.get(j + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':');
                        match (colons, tokens.get(j + 2)) {
                            (true, Some(TokenTree::Ident(next))) => {
                                segments.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    if !after_colons && segments.len() > 1 {
                        self.add(segments, line);
                    }
                    i = j;
                }
                _ => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.module.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.module.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut prefix = Vec::new();
        self.use_tree(&mut prefix, &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        // A bare `crate` / `self` / `super` (as in `pub(crate)`) names no item.
        if segments.len() > 1 {
            let line = p
                .segments
                .first()
                .map_or(0, |s| s.ident.span().start().line);
            self.add(segments, line);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

/// The node a resolved path belongs to.
fn node_of(path: &[String], lib_modules: &BTreeSet<String>) -> Option<String> {
    match path.first().map(String::as_str) {
        Some("ferrod") => Some(match path.get(1) {
            Some(m) if lib_modules.contains(m) => m.clone(),
            _ => LIB.to_string(),
        }),
        Some(MAIN) => Some(MAIN.to_string()),
        Some(m) if lib_modules.contains(m) => Some(m.to_string()),
        // `crate::ITEM` with an item of lib.rs, or `super::*` up to the root.
        _ => Some(LIB.to_string()),
    }
}

fn build_graph() -> Graph {
    let lib_modules = lib_modules();
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files.sort();
    let mut graph = Graph::new();
    for file in files {
        let module = module_path(&file);
        let rel = file.strip_prefix(src_dir()).unwrap().display().to_string();
        // lib.rs and the modules it declares are the library; the rest (main.rs and the
        // modules main.rs declares) is the binary.
        let in_bin = module.first().is_none_or(|m| !lib_modules.contains(m)) && rel != "lib.rs";
        let from = if in_bin {
            MAIN.to_string()
        } else {
            module.first().cloned().unwrap_or_else(|| LIB.to_string())
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let mut c = Collector {
            module: if in_bin { Vec::new() } else { module.clone() },
            in_bin,
            lib_modules: &lib_modules,
            found: Vec::new(),
        };
        c.visit_file(&ast);
        let edges = graph.entry(from.clone()).or_default();
        for (path, line, written) in c.found {
            let Some(to) = node_of(&path, &lib_modules) else {
                continue;
            };
            if to != from {
                edges.entry(to).or_insert(Site {
                    file: format!("src/{rel}"),
                    line,
                    path: written,
                });
            }
        }
    }
    graph
}

/// Strongly connected components with more than one node (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct T<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn strong<'g>(t: &mut T<'g>, v: &'g str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on_stack.insert(v);
        let graph = t.graph;
        for w in graph.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                strong(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on_stack.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut component = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                t.out.push(component);
            }
        }
    }
    let mut t = T {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            strong(&mut t, v);
        }
    }
    t.out
}

fn describe(graph: &Graph, from: &str, to: &str) -> String {
    let site = &graph[from][to];
    format!(
        "{from} -> {to} ({}:{}: {})",
        site.file, site.line, site.path
    )
}

#[test]
fn top_level_modules_have_no_cycle() {
    let graph = build_graph();
    let mut report = Vec::new();
    for component in cycles(&graph) {
        report.push(format!("cycle between {}:", component.join(", ")));
        for from in &component {
            for to in graph[from].keys().filter(|to| component.contains(to)) {
                report.push(format!("  {}", describe(&graph, from, to)));
            }
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

/// Who may see whom. The request goes from `wire` (bytes, imported by `server`) through
/// `server` to `commands`, which call the domain modules, which stand on the leaves.
#[test]
fn dependencies_point_down_the_layers() {
    let graph = build_graph();
    let roots = [LIB, MAIN];
    // (module, the modules that may import it besides the roots)
    let rules: &[(&str, &[&str])] = &[
        ("server", &[]),
        ("state", &["server", "commands"]),
        ("commands", &["server"]),
    ];
    let domain = ["auth", "repl", "pool", "ops", "storage"];
    let leaves = ["catalog", "clock", "error", "query", "wire"];
    let mut report = Vec::new();
    for (from, edges) in &graph {
        for to in edges.keys() {
            let from = from.as_str();
            let to = to.as_str();
            if roots.contains(&from) {
                continue;
            }
            let upward = match rules.iter().find(|(m, _)| *m == to) {
                Some((_, allowed)) => !allowed.contains(&from),
                // A domain module is seen by server, commands and other domain modules,
                // never by a leaf.
                None => domain.contains(&to) && leaves.contains(&from),
            };
            if to == MAIN || (to == LIB && from != MAIN) {
                report.push(format!(
                    "{} (the roots are seen by no one)",
                    describe(&graph, from, to)
                ));
            } else if upward {
                report.push(describe(&graph, from, to));
            }
        }
    }
    assert!(
        report.is_empty(),
        "edges pointing up the layers:\n{}",
        report.join("\n")
    );
}

/// The parser itself: it must see the kinds of reference the rules depend on, or the
/// tests above would pass on a graph with no edges.
#[test]
fn the_parser_sees_every_kind_of_reference() {
    let lib_modules: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    let text = r#"
        use crate::a::{X, y::Z};
        use super::super::b::W;
        fn f() { crate::b::g(); tracing::info!(x = %crate::a::h()); }
        mod tests { use super::*; }
    "#;
    let ast = syn::parse_file(text).unwrap();
    let mut c = Collector {
        module: vec!["b".into(), "c".into()],
        in_bin: false,
        lib_modules: &lib_modules,
        found: Vec::new(),
    };
    c.visit_file(&ast);
    let nodes: BTreeSet<String> = c
        .found
        .iter()
        .filter_map(|(p, _, _)| node_of(p, &lib_modules))
        .collect();
    let paths: BTreeSet<String> = c.found.iter().map(|(p, _, _)| p.join("::")).collect();
    assert!(nodes.contains("a") && nodes.contains("b"), "{nodes:?}");
    for expected in ["a::X", "a::y::Z", "b::W", "b::g", "a::h", "b::c"] {
        assert!(
            paths.contains(expected),
            "{expected} missing from {paths:?}"
        );
    }
}
