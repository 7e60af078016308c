//! Architecture rules as tests (rust-analyzer's "tidy" habit): what
//! ARCHITECTURE.md says about where code lives stays true.
//!
//! - SQL appears only in the modules ARCHITECTURE.md lists between its
//!   `sql-modules` markers.
//! - SQLSTATEs and the text of database messages are read in one place, the
//!   store's error classification.
//! - No two top-level modules import each other, directly or through others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/...` paths of every Rust file, with their text (comments dropped).
fn sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&p).unwrap();
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            (rel, code)
        })
        .collect()
}

/// The paths ARCHITECTURE.md allows SQL in.
fn sql_modules() -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let start = doc
        .find("<!-- sql-modules -->")
        .expect("ARCHITECTURE.md lists the SQL modules between <!-- sql-modules --> markers");
    let end = doc.find("<!-- /sql-modules -->").unwrap();
    doc[start..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

const SQL: &[&str] = &[
    "sqlx::query",
    "query_as(",
    "query_scalar(",
    "QueryBuilder",
    "raw_sql(",
    "q_as(",
    "q_scalar(",
];

#[test]
fn sql_lives_only_where_architecture_md_says() {
    let allowed = sql_modules();
    assert!(allowed.iter().any(|a| a == "src/store/"), "{allowed:?}");
    let mut offenders = Vec::new();
    for (path, code) in sources() {
        let ok = allowed.iter().any(|a| {
            if a.ends_with('/') {
                path.starts_with(a.as_str())
            } else {
                path == *a
            }
        });
        if ok {
            continue;
        }
        for pat in SQL {
            if code.contains(pat) {
                offenders.push(format!("{path}: {pat}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "SQL outside the modules ARCHITECTURE.md names:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn sqlstates_are_classified_once_in_the_store() {
    let codes = [
        "\"23505\"",
        "\"23503\"",
        "\"42501\"",
        "\"PH403\"",
        "\"57014\"",
        "row-level security\")",
    ];
    let mut offenders = Vec::new();
    for (path, code) in sources() {
        if path == "src/store/mod.rs" {
            continue;
        }
        for c in codes {
            if code.contains(c) {
                offenders.push(format!("{path}: {c}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "SQLSTATEs read outside store::StoreError:\n{}",
        offenders.join("\n")
    );
}

/// `src/service/mod.rs` -> `service`; `src/error.rs` -> `error`.
fn top_module(path: &str) -> Option<String> {
    let rest = path.strip_prefix("src/")?;
    let first = rest.split('/').next()?;
    let name = first.trim_end_matches(".rs");
    (name != "lib" && name != "main").then(|| name.to_string())
}

#[test]
fn top_level_modules_import_no_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, code) in sources() {
        let Some(from) = top_module(&path) else {
            continue;
        };
        let set = edges.entry(from.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != from {
                set.insert(name);
            }
        }
        // `use crate::{a, b::c}` names several at once.
        for (i, _) in code.match_indices("crate::{") {
            let inner: String = code[i + 8..].chars().take_while(|c| *c != '}').collect();
            for part in inner.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != from {
                    set.insert(name);
                }
            }
        }
    }
    // Depth-first search for a cycle, reporting its path.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(cycle) = visit(n, &edges, &mut Vec::new(), &mut done) {
            panic!(
                "import cycle between top-level modules: {}",
                cycle.join(" -> ")
            );
        }
    }
}
