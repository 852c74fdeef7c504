//! Keeps the crates' top-level modules free of dependency cycles.
//!
//! Why: a cycle (`a` uses `b`, `b` uses `a`) means neither module can be read, tested or
//! replaced without the other; in practice it is how a "god object" grows, one reach-back
//! at a time. This test reads a crate's source, draws an edge X→Y whenever a file of top-level
//! module X names `crate::Y` (also inside grouped imports such as `use crate::{a, b::c}`),
//! or a `super::` path that climbs to the crate root and continues with `Y` (`super::Y` in
//! `src/X.rs`, `super::super::Y` in `src/X/Z.rs`), and fails listing every cycle it finds.
//!
//! It is a text scan, not a compiler pass: enough for a codebase that writes its paths out
//! (`crate::store::Tables`), and simple enough to trust. Comment lines are skipped, so a
//! doc comment that *mentions* a module does not count as using it. Edges from a module
//! to itself are ignored.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Module name -> the modules it refers to.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`, recursively, in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The source without comment lines (`//`, `///`, `//!`) and without the trailing
/// comment of a code line (a `//` outside a string literal, roughly: good enough here).
fn strip_comments(src: &str) -> String {
    src.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| match l.find("// ") {
            // Only a `// ` after code, never inside `"http://..."`-like literals, which
            // have no space after the slashes.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier starting at `s` (after leading whitespace).
fn ident(s: &str) -> &str {
    let s = s.trim_start();
    let end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
    &s[..end]
}

/// The contents of the brace group `s` starts with (`{...}` with nesting), without
/// the outer braces.
fn brace_group(s: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &s[1..i];
                }
            }
            _ => {}
        }
    }
    &s[1.min(s.len())..]
}

/// The first path segment of each top-level item of a grouped import's contents:
/// `a, b::c, d::{e, f}` gives `a`, `b`, `d`.
fn group_heads(inner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = true;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => start = true,
            c if start && depth == 0 && !c.is_whitespace() => {
                start = false;
                let name = ident(&inner[i..]);
                if !name.is_empty() {
                    out.push(name.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// What a path continues with after its prefix: the first segment, or every head of a
/// grouped import (`{a, b::c}`).
fn heads(after: &str) -> Vec<String> {
    let t = after.trim_start();
    if t.starts_with('{') {
        return group_heads(brace_group(t));
    }
    let name = ident(t);
    if name.is_empty() {
        Vec::new()
    } else {
        vec![name.to_string()]
    }
}

/// Top-level modules named by `crate::` paths in `src`.
fn crate_paths(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in src.match_indices("crate::") {
        // `crate::` must start a path, not end an identifier or a longer path
        // (`my_crate::x`, `other::crate::x`).
        if !src[..i]
            .chars()
            .next_back()
            .is_some_and(|c| is_ident(c) || c == ':')
        {
            out.extend(heads(&src[i + "crate::".len()..]));
        }
    }
    out
}

/// Top-level modules named by `super::` paths that climb to the crate root. A file
/// `depth` levels below `src/` (`src/x.rs` is 1, `src/x/y.rs` is 2) reaches the root with
/// `depth` leading `super::`; shorter chains stay inside its own top-level module.
/// (A `super::` inside an inline `mod tests {}` is read as if it were the file's own,
/// which can only add an edge, never hide one.)
fn super_paths(src: &str, depth: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in src.match_indices("super::") {
        let before = src[..i].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            // The second or later `super::` of a chain, or part of a longer name.
            continue;
        }
        let mut rest = &src[i..];
        let mut k = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            k += 1;
            rest = r;
        }
        if k == depth {
            out.extend(heads(rest));
        }
    }
    out
}

/// The top-level module a file belongs to: `src/x.rs` and `src/x/**` are module `x`.
/// `lib.rs`, `main.rs` and `bin/` are the crate's roots, not modules.
fn module_of(src_dir: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src_dir).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    match name {
        "lib" | "main" | "bin" => None,
        _ => Some(name.to_string()),
    }
}

/// The module graph of the crate whose sources are in `src_dir`.
fn graph(src_dir: &Path) -> Graph {
    let files = rust_files(src_dir);
    let mut g = Graph::new();
    for f in &files {
        if let Some(m) = module_of(src_dir, f) {
            g.entry(m).or_default();
        }
    }
    for f in &files {
        let Some(m) = module_of(src_dir, f) else {
            continue;
        };
        let src = strip_comments(&fs::read_to_string(f).unwrap());
        let mut names = crate_paths(&src);
        let rel = f.strip_prefix(src_dir).unwrap();
        // `src/x/mod.rs` is module `x` itself, one level up from its path.
        let mut depth = rel.components().count();
        if rel.file_name().is_some_and(|n| n == "mod.rs") {
            depth -= 1;
        }
        names.extend(super_paths(&src, depth));
        for n in names {
            if n != m && g.contains_key(&n) {
                g.entry(m.clone()).or_default().insert(n);
            }
        }
    }
    g
}

/// Tarjan's strongly connected components; returns those with more than one module.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        g: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

fn render(g: &Graph) -> String {
    g.iter()
        .map(|(m, to)| {
            format!(
                "  {m} -> {}",
                to.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails listing every cycle of the crate at `src_dir`, with the whole graph for context.
fn assert_acyclic(src_dir: &Path) {
    let g = graph(src_dir);
    let found = cycles(&g);
    // A strongly connected component is a set of modules each of which reaches every
    // other one; the edges below show the paths.
    let listed: Vec<String> = found
        .iter()
        .map(|c| format!("{{{}}} reach each other", c.join(", ")))
        .collect();
    assert!(
        found.is_empty(),
        "module cycles in {}:\n  {}\nedges:\n{}",
        src_dir.display(),
        listed.join("\n  "),
        render(&g)
    );
    // Visible with `--nocapture`, to review the layering by eye.
    println!("{}:\n{}", src_dir.display(), render(&g));
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

#[test]
fn the_coordinator_has_no_module_cycles() {
    assert_acyclic(&crate_src("dfs-coord"));
}

#[test]
fn the_node_has_no_module_cycles() {
    assert_acyclic(&crate_src("dfs-node"));
}

#[test]
fn the_checker_finds_a_planted_cycle() {
    // A synthetic crate: a -> b (grouped import) -> c (via `super::` from b/inner.rs)
    // -> a (plain path inside a function), plus d -> a outside the cycle, a comment that must not count,
    // and a self edge that must be ignored.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    fs::create_dir_all(src.join("b")).unwrap();
    fs::write(
        src.join("lib.rs"),
        "mod a; mod b; mod c; mod d;\nuse crate::a::x;\n",
    )
    .unwrap();
    fs::write(
        src.join("a.rs"),
        "use crate::{b::{Thing, other}, a::me};\n/// See crate::d for more.\n",
    )
    .unwrap();
    fs::write(src.join("b.rs"), "mod inner;\n").unwrap();
    // `super::c` here is `b::c`, inside b; `super::super::c` is the top-level c.
    fs::write(
        src.join("b/inner.rs"),
        "use super::super::c;\nuse super::d::f;\n",
    )
    .unwrap();
    fs::write(src.join("c.rs"), "fn g() { crate::a::x(); }\n").unwrap();
    fs::write(
        src.join("d.rs"),
        "use crate::a;\n// crate::c is only mentioned\n",
    )
    .unwrap();
    let g = graph(src);
    let edges = |m: &str| g[m].iter().cloned().collect::<Vec<_>>();
    assert_eq!(edges("a"), ["b"]);
    assert_eq!(edges("b"), ["c"]);
    assert_eq!(edges("c"), ["a"]);
    assert_eq!(edges("d"), ["a"]);
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
    let caught = std::panic::catch_unwind(|| assert_acyclic(src));
    assert!(caught.is_err(), "a crate with a cycle must fail the check");
}

#[test]
fn grouped_imports_name_every_head() {
    assert_eq!(
        group_heads(" a, b::c, d::{e, f}, self "),
        ["a", "b", "d", "self"]
    );
    assert_eq!(crate_paths("x::crate::y; crate::z"), ["z"]);
    assert_eq!(super_paths("use super::{a, b};", 1), ["a", "b"]);
    assert_eq!(super_paths("use super::super::{a, b::c};", 2), ["a", "b"]);
    assert!(super_paths("use super::a;", 2).is_empty());
}
