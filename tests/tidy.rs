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
        if path == "src/store/error.rs" {
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
        "SQLSTATEs read outside store::StoreError (src/store/error.rs):\n{}",
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

/// The dependency rules ARCHITECTURE.md keeps between its
/// `dependency-rules` markers, one a line:
/// "- `module` uses: `a`, `b`" (the only top-level modules its files may
/// name; "nothing" for none), or "- `module` never uses: `x`, `y`" (text
/// its files may not hold, such as `actix_web` or `crate::error`).
fn dependency_rules() -> Vec<(String, bool, Vec<String>)> {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let start = doc.find("<!-- dependency-rules -->").expect(
        "ARCHITECTURE.md keeps its dependency rules between <!-- dependency-rules --> markers",
    );
    let end = doc.find("<!-- /dependency-rules -->").unwrap();
    let ticked = |s: &str| -> Vec<String> {
        s.split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, t)| t.to_string())
            .collect()
    };
    doc[start..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|l| {
            let (head, tail) = l
                .split_once(" uses:")
                .unwrap_or_else(|| panic!("a dependency rule without `uses:`: {l}"));
            let never = head.ends_with(" never");
            let module = ticked(head)
                .into_iter()
                .next()
                .expect("a module in backticks");
            (module, never, ticked(tail))
        })
        .collect()
}

#[test]
fn modules_keep_the_dependency_rules_of_architecture_md() {
    let rules = dependency_rules();
    assert!(rules.len() >= 5, "{rules:?}");
    let mut offenders = Vec::new();
    for (path, code) in sources() {
        let Some(module) = top_module(&path) else {
            continue;
        };
        let code = without_tests(&code);
        for (m, never, list) in &rules {
            if *m != module {
                continue;
            }
            if *never {
                for banned in list {
                    if code.contains(banned.as_str()) {
                        offenders.push(format!("{path}: uses `{banned}`"));
                    }
                }
            } else {
                for used in crate_modules(code) {
                    if used != module && !list.contains(&used) {
                        offenders.push(format!("{path}: uses `{used}`"));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "against ARCHITECTURE.md's dependency rules:\n{}",
        offenders.join("\n")
    );
}

/// The top-level modules a file's code names through `crate::`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + 7..];
        if let Some(inner) = rest.strip_prefix('{') {
            for part in inner.split('}').next().unwrap_or("").split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// A file's code up to its unit tests (by habit, the last thing in it).
fn without_tests(code: &str) -> &str {
    code.find("#[cfg(test)]\nmod tests {")
        .map_or(code, |i| &code[..i])
}

#[test]
fn every_file_says_what_it_is_for() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let missing: Vec<String> = files
        .iter()
        .filter(|p| {
            !std::fs::read_to_string(p)
                .unwrap()
                .trim_start()
                .starts_with("//!")
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a `//!` doc: {missing:?}");
}

/// `allow(dead_code)` only where ARCHITECTURE.md lists it.
#[test]
fn dead_code_is_allowed_only_where_listed() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let start = doc
        .find("<!-- dead-code -->")
        .expect("<!-- dead-code --> markers");
    let end = doc.find("<!-- /dead-code -->").unwrap();
    let allowed: Vec<String> = doc[start..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    let offenders: Vec<String> = sources()
        .into_iter()
        .filter(|(path, code)| code.contains("allow(dead_code)") && !allowed.contains(path))
        .map(|(path, _)| path)
        .collect();
    assert!(
        offenders.is_empty(),
        "allow(dead_code) outside ARCHITECTURE.md's list: {offenders:?}"
    );
}

/// The module a `src/` file defines: `src/a/b.rs` and `src/a/b/mod.rs` ->
/// `a::b`, `src/lib.rs` -> `` (the crate).
fn module_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("src/")?.strip_suffix(".rs")?;
    if rest == "main" {
        return None;
    }
    let rest = rest.strip_suffix("/mod").unwrap_or(rest);
    Some(if rest == "lib" {
        String::new()
    } else {
        rest.replace('/', "::")
    })
}

/// Every path a file's code names: `crate::a::b`, `super::x`, `self::x`,
/// a child module it declares (`x::y`), with `{..}` groups opened one
/// level; as absolute module paths ("a::b::Item").
fn named_paths(module: &str, is_dir: bool, code: &str) -> Vec<String> {
    let parent = |m: &str| {
        m.rsplit_once("::")
            .map_or(String::new(), |(p, _)| p.to_string())
    };
    // In `a/b.rs` and `a/b/mod.rs` alike, `super` is `a`; `self` is `a::b`.
    let sup = parent(module);
    let join = |base: &str, rest: &str| {
        if base.is_empty() {
            rest.to_string()
        } else if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}::{rest}")
        }
    };
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let chain = |s: &str| -> String {
        let mut out = String::new();
        let mut rest = s;
        loop {
            let id: String = rest.chars().take_while(|c| ident(*c)).collect();
            if id.is_empty() {
                break;
            }
            out = if out.is_empty() {
                id.clone()
            } else {
                format!("{out}::{id}")
            };
            rest = &rest[id.len()..];
            match rest.strip_prefix("::") {
                Some(r) if r.starts_with(|c: char| ident(c)) => rest = r,
                _ => break,
            }
        }
        out
    };
    let mut children: Vec<String> = Vec::new();
    if is_dir || module.is_empty() {
        for line in code.lines() {
            let l = line.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
            if let Some(name) = l.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                children.push(name.trim().to_string());
            }
        }
    }
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for (prefix, base) in [
        ("crate::", String::new()),
        ("super::", sup),
        ("self::", module.to_string()),
    ] {
        for (i, _) in code.match_indices(prefix) {
            if i > 0 && (ident(bytes[i - 1] as char) || bytes[i - 1] == b':') {
                continue;
            }
            let rest = &code[i + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                for part in group.split('}').next().unwrap_or("").split(',') {
                    let p = chain(part.trim());
                    if !p.is_empty() {
                        out.push(join(&base, &p));
                    }
                }
            } else {
                let p = chain(rest);
                if !p.is_empty() {
                    out.push(join(&base, &p));
                }
            }
        }
    }
    for child in &children {
        let pat = format!("{child}::");
        for (i, _) in code.match_indices(&pat) {
            if i > 0 && (ident(bytes[i - 1] as char) || bytes[i - 1] == b':') {
                continue;
            }
            out.push(join(module, &chain(&code[i..])));
        }
    }
    out
}

#[test]
fn files_import_no_cycle() {
    let files: Vec<(String, String, bool)> = sources()
        .into_iter()
        .filter_map(|(path, code)| {
            let m = module_of(&path)?;
            let is_dir = path.ends_with("/mod.rs");
            Some((m, without_tests(&code).to_string(), is_dir))
        })
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|(m, _, _)| m.clone()).collect();
    // A path's file: the longest prefix of it that is a module.
    let file_of = |p: &str| -> Option<String> {
        let parts: Vec<&str> = p.split("::").collect();
        (0..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| modules.contains(m))
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, code, is_dir) in &files {
        let set = edges.entry(m.clone()).or_default();
        for p in named_paths(m, *is_dir, code) {
            if let Some(f) = file_of(&p)
                && f != *m
                && !f.is_empty()
            {
                set.insert(f);
            }
        }
    }
    let mut cycles = Vec::new();
    for start in edges.keys() {
        // Is `start` reachable from itself? Report one path if so.
        let mut seen = BTreeSet::new();
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((n, path)) = stack.pop() {
            for next in edges.get(&n).into_iter().flatten() {
                if next == start {
                    let mut c = path.clone();
                    c.push(start.clone());
                    cycles.push(c.join(" -> "));
                    stack.clear();
                    break;
                }
                if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    assert!(
        cycles.is_empty(),
        "files that import each other, directly or through others:\n{}",
        cycles.join("\n")
    );
}
