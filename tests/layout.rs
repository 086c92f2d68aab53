//! Rules of the source's shape that the compiler does not check.
//!
//! The process environment is read once, in `src/main.rs`; everything below
//! gets the map main built, so the pure parts can be tested with any
//! environment. Test code may read it as it likes.

use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, in a stable order.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            found.push(path);
        }
    }
    found
}

/// Whether `line` reads the process environment: `std::env::var(`,
/// `env::var_os(`, `env::vars()`, or such a function imported by name.
fn reads_env(line: &str) -> bool {
    line.contains("env::var") || (line.contains("std::env::{") && line.contains("var"))
}

/// `name:line: text` for each line of `text` that reads the environment,
/// outside comments and outside `#[cfg(test)]` items (a test module, or one
/// function or import of its own).
fn offenders(name: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            // Skip the item: up to its `;`, or to where its braces close.
            let mut depth = 0i64;
            let mut opened = false;
            for (_, item) in lines.by_ref() {
                depth += item.matches('{').count() as i64 - item.matches('}').count() as i64;
                opened |= item.contains('{');
                if (opened && depth <= 0) || (!opened && item.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        if !code.starts_with("//") && reads_env(code) {
            found.push(format!("{name}:{}: {}", i + 1, line.trim()));
        }
    }
    found
}

#[test]
fn only_main_reads_the_environment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let main = root.join("src/main.rs");
    let mut found = Vec::new();
    for path in sources(&root.join("src")) {
        if path == main {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(root).unwrap().display().to_string();
        found.extend(offenders(&name, &text));
    }
    assert!(
        found.is_empty(),
        "the environment is read in src/main.rs only; pass its map instead:\n{}",
        found.join("\n")
    );
}

/// The scanner itself: it finds what it looks for, where it looks.
#[test]
fn the_scanner_flags_environment_reads_outside_tests() {
    let sample = "\
fn home() -> Option<String> {
    std::env::var(\"HOME\").ok()
}
// std::env::var(\"IN_A_COMMENT\")
fn all() { let _ = env::vars_os(); }
use std::env::{current_dir, var_os};
fn fine(env: &Map) { env.get(\"HOME\"); std::env::current_exe(); }
#[cfg(test)]
fn helper() {
    std::env::var(\"TEST_ONLY\").unwrap();
}
#[cfg(test)]
use std::env::var;
#[cfg(test)]
mod tests {
    fn t() {
        if true { std::env::var_os(\"X\"); }
    }
}
fn after() { std::env::var_os(\"AFTER\"); }
";
    assert_eq!(
        offenders("sample.rs", sample),
        [
            "sample.rs:2: std::env::var(\"HOME\").ok()",
            "sample.rs:5: fn all() { let _ = env::vars_os(); }",
            "sample.rs:6: use std::env::{current_dir, var_os};",
            "sample.rs:20: fn after() { std::env::var_os(\"AFTER\"); }",
        ]
    );
}
