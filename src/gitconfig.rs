//! Pure: the files in a workspace that the host's git runs or reads as
//! configuration because its configuration names them.
//!
//! Read-only `config` and `hooks/` protect nothing when they point back into
//! the work tree: `include.path = ../.gitconfig`, `core.hooksPath = .husky`
//! (husky's own setup), `filter.lfs.clean = ./bin/clean`. A command could
//! rewrite the file they name, and the host's next `git status` or
//! `git commit` would run it. So those files are protected too
//! (`protect/`). The repository's configuration is read, with what it
//! includes, and so are the user's (`~/.gitconfig`, `$XDG_CONFIG_HOME/git/config`
//! and the system's), whose relative paths resolve in every work tree.

use std::path::{Component, Path, PathBuf};

/// Keys whose value is a file, relative to the work tree's root.
const FILES: [&str; 3] = ["core.hookspath", "core.excludesfile", "core.attributesfile"];

/// Keys whose value is a command; `*` stands for any subsection.
const COMMANDS: [&str; 17] = [
    "core.fsmonitor",
    "core.sshcommand",
    "core.pager",
    "core.editor",
    "core.askpass",
    "sequence.editor",
    "diff.external",
    "gpg.program",
    "gpg.*.program",
    "credential.helper",
    "credential.*.helper",
    "filter.*.clean",
    "filter.*.smudge",
    "filter.*.process",
    "diff.*.textconv",
    "diff.*.command",
    "merge.*.driver",
];

/// How many includes deep git's configuration is followed (git's own limit
/// is 10).
const MAX_DEPTH: usize = 10;

/// Where git's configuration lives, and how to read one of its files.
pub struct Sources<'a> {
    /// The repository's own `config` (and, for a linked worktree, its
    /// `config.worktree`), then the user's and the system's.
    pub files: Vec<PathBuf>,
    /// The work tree's root: the workspace.
    pub worktree: &'a Path,
    /// The user's home, for `~/` in values.
    pub home: Option<&'a Path>,
    /// Reads a file, or `None` (absent, unreadable, too large).
    pub read: &'a dyn Fn(&Path) -> Option<String>,
}

/// A file the configuration names, and whether it is a directory of hooks.
pub type Named = (PathBuf, bool);

/// Every path inside `worktree` that the configuration names, lexically
/// resolved (links are the protections' to refuse), relative to it.
pub fn paths_in_worktree(sources: &Sources) -> Vec<Named> {
    let mut found = Vec::new();
    for file in &sources.files {
        visit(sources, file, 0, &mut found);
    }
    let mut inside: Vec<Named> = found
        .into_iter()
        .filter_map(|(p, is_dir)| Some((normalize(&p)?, is_dir)))
        .filter_map(|(p, is_dir)| {
            Some((p.strip_prefix(sources.worktree).ok()?.to_path_buf(), is_dir))
        })
        .collect();
    inside.sort();
    inside.dedup();
    inside
}

fn visit(sources: &Sources, file: &Path, depth: usize, found: &mut Vec<Named>) {
    let Some(text) = (sources.read)(file) else {
        return;
    };
    let dir = file.parent().unwrap_or(Path::new("/"));
    for (key, value) in entries(&text) {
        if key == "include.path" || (key.starts_with("includeif.") && key.ends_with(".path")) {
            let included = resolve(&value, dir, sources.home);
            let included = normalize(&included).unwrap_or(included);
            found.push((included.clone(), false));
            if depth < MAX_DEPTH {
                visit(sources, &included, depth + 1, found);
            }
        } else if FILES.contains(&key.as_str()) {
            let is_dir = key == "core.hookspath";
            found.push((resolve(&value, sources.worktree, sources.home), is_dir));
        } else if COMMANDS.iter().any(|pattern| matches(pattern, &key)) {
            let command = value.trim_start().trim_start_matches('!');
            let program = command.split_whitespace().next().unwrap_or_default();
            let program = program.trim_matches(|c| c == '"' || c == '\'');
            // Without a `/` the shell looks the program up in PATH.
            if program.contains('/') {
                found.push((resolve(program, sources.worktree, sources.home), false));
            }
        }
    }
}

/// `value` as a path: `~/` is the home, a relative one is under `base`.
fn resolve(value: &str, base: &Path, home: Option<&Path>) -> PathBuf {
    match (value.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => base.join(value),
    }
}

/// `.` and `..` taken out without touching the file system; `None` for a
/// relative path.
fn normalize(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(p) => out.push(p),
            _ => {}
        }
    }
    Some(out)
}

/// Whether `key` (`section.sub.name`, section and name lower-case) matches
/// `pattern`, whose `*` stands for the subsection.
fn matches(pattern: &str, key: &str) -> bool {
    match pattern.split_once(".*.") {
        Some((section, name)) => key
            .strip_prefix(section)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| rest.rsplit_once('.'))
            .is_some_and(|(sub, n)| !sub.is_empty() && n == name),
        None => key == pattern,
    }
}

/// The `section[.subsection].key = value` entries of a git config file, the
/// section and key lower-cased as git compares them. Lenient: what it cannot
/// read it skips, and git would refuse such a file anyway.
fn entries(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let mut line = line.trim_start().to_string();
        // A value continues on the next line after a trailing backslash.
        while line.ends_with('\\') && !line.ends_with("\\\\") {
            line.pop();
            line.push_str(lines.next().unwrap_or_default());
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let rest = match line.strip_prefix('[') {
            Some(header) => {
                let Some((inside, rest)) = header.split_once(']') else {
                    continue;
                };
                section = section_name(inside);
                rest.trim()
            }
            None => line,
        };
        if rest.is_empty() || rest.starts_with('#') || rest.starts_with(';') {
            continue;
        }
        let (name, value) = rest.split_once('=').unwrap_or((rest, "true"));
        out.push((
            format!("{section}.{}", name.trim().to_ascii_lowercase()),
            unquote(value.trim()),
        ));
    }
    out
}

/// `core`, `filter "lfs"` or the old `filter.lfs`, as `core` or `filter.lfs`.
fn section_name(header: &str) -> String {
    match header.split_once('"') {
        Some((name, sub)) => format!(
            "{}.{}",
            name.trim().to_ascii_lowercase(),
            sub.trim_end_matches('"')
        ),
        None => match header.trim().split_once('.') {
            Some((name, sub)) => format!("{}.{sub}", name.to_ascii_lowercase()),
            None => header.trim().to_ascii_lowercase(),
        },
    }
}

/// A value with its quotes and escapes resolved and a trailing comment cut.
fn unquote(value: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            },
            '#' | ';' if !quoted => break,
            c => out.push(c),
        }
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn found(files: &[(&str, &str)]) -> Vec<Named> {
        let contents: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        let read = |p: &Path| contents.get(p).cloned();
        let sources = Sources {
            files: vec![
                PathBuf::from("/ws/.git/config"),
                PathBuf::from("/home/me/.gitconfig"),
            ],
            worktree: Path::new("/ws"),
            home: Some(Path::new("/home/me")),
            read: &read,
        };
        paths_in_worktree(&sources)
    }

    #[test]
    fn what_the_configuration_names_in_the_work_tree_is_found() {
        let paths = found(&[
            (
                "/ws/.git/config",
                "[core]\n\thooksPath = .husky\n\tfsmonitor = \"./tools/fsmon --fast\"\n\
                 [include]\n\tpath = ../.gitconfig\n\
                 [filter \"lfs\"]\n\tclean = git-lfs clean -- %f\n\tsmudge = bin/smudge %f\n\
                 [diff \"pdf\"]\n\ttextconv = /ws/scripts/pdf2txt ; comment\n",
            ),
            (
                "/ws/.gitconfig",
                "[includeIf \"gitdir:/ws/\"]\n\tpath = conf/more\n",
            ),
            (
                "/ws/conf/more",
                "[credential]\n\thelper = !./helper.sh get\n",
            ),
            (
                "/home/me/.gitconfig",
                "[core]\n\texcludesFile = ~/.gitignore_global\n\tattributesFile = .attrs\n\
                 [sequence]\n\teditor = vim\n",
            ),
        ]);
        let shown: Vec<_> = paths
            .iter()
            .map(|(p, is_dir)| (p.to_str().unwrap(), *is_dir))
            .collect();
        assert_eq!(
            shown,
            [
                (".attrs", false),
                (".gitconfig", false),
                (".husky", true),
                ("bin/smudge", false),
                ("conf/more", false),
                ("helper.sh", false),
                ("scripts/pdf2txt", false),
                ("tools/fsmon", false),
            ]
        );
    }

    #[test]
    fn a_configuration_that_names_nothing_here_finds_nothing() {
        let paths = found(&[(
            "/ws/.git/config",
            "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\
             [remote \"origin\"]\n\turl = git@example.com:me/x.git\n",
        )]);
        assert!(paths.is_empty(), "{paths:?}");
    }

    #[test]
    fn keys_match_with_any_subsection() {
        assert!(matches("filter.*.clean", "filter.lfs.clean"));
        assert!(matches("filter.*.clean", "filter.a.b.clean"));
        assert!(!matches("filter.*.clean", "filter.clean"));
        assert!(!matches("filter.*.clean", "filter.lfs.smudge"));
        assert_eq!(section_name("Filter \"LFS\""), "filter.LFS");
        assert_eq!(section_name("core"), "core");
    }
}
