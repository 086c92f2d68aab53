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
//! and the system's, or what `GIT_CONFIG_GLOBAL`/`SYSTEM` name, and
//! `GIT_CONFIG_KEY_n`), whose relative paths resolve in every work tree.

use std::path::{Component, Path, PathBuf};

/// Keys whose whole value is a file, relative to the work tree's root.
const FILES: [&str; 3] = ["core.hookspath", "core.excludesfile", "core.attributesfile"];

/// Keys whose value git runs as a command (`*` stands for a subsection; a
/// pattern ending in `.*` for any key of that section).
const EXECUTED: [&str; 27] = [
    "core.fsmonitor",
    "core.sshcommand",
    "core.pager",
    "core.editor",
    "core.askpass",
    "core.gitproxy",
    "sequence.editor",
    "diff.external",
    "gpg.program",
    "gpg.*.program",
    "gpg.ssh.defaultkeycommand",
    "credential.helper",
    "credential.*.helper",
    "filter.*.clean",
    "filter.*.smudge",
    "filter.*.process",
    "diff.*.textconv",
    "diff.*.command",
    "merge.*.driver",
    "mergetool.*.cmd",
    "difftool.*.cmd",
    "interactive.difffilter",
    "submodule.*.update",
    "remote.*.uploadpack",
    "remote.*.receivepack",
    "pager.*",
    "alias.*",
];

/// How many includes deep git's configuration is followed (git's own limit
/// is 10).
const MAX_DEPTH: usize = 10;

/// Where git's configuration lives, and how to read one of its files.
pub struct Sources<'a> {
    /// The repository's own `config` (and, for a linked worktree, its
    /// `config.worktree`), then the user's and the system's.
    pub files: Vec<PathBuf>,
    /// Entries given in the environment (`GIT_CONFIG_KEY_n`/`VALUE_n`).
    pub extra: Vec<(String, String)>,
    /// The work tree's root: the workspace, canonical.
    pub worktree: &'a Path,
    /// The user's home, for `~/` in values.
    pub home: Option<&'a Path>,
    /// Reads a file, following links (these files are the user's), or
    /// `None` (absent, unreadable, too large).
    pub read: &'a dyn Fn(&Path) -> Option<String>,
    /// Where a path really is: links outside the work tree resolved.
    pub real: &'a dyn Fn(&Path) -> PathBuf,
}

/// A file the configuration names, and whether it is a directory of hooks.
pub type Named = (PathBuf, bool);

/// Every path inside `worktree` that the configuration names, relative to
/// it: the configuration files themselves when they are there, what they
/// include, the files their path keys name, and every word of every value
/// that is a path in the work tree (a program a command runs, or what it
/// passes it: `sh tools/clean.sh`, `FOO=1 ./x`, `!./helper`). Over-reaching
/// is cheap (a file kept read-only); missing one is not.
pub fn paths_in_worktree(sources: &Sources) -> Vec<Named> {
    let mut found = Vec::new();
    for file in &sources.files {
        found.push(((sources.real)(file), false));
        visit(sources, file, 0, &mut found);
    }
    for (key, value) in &sources.extra {
        named_by(sources, key, value, &mut found);
    }
    let mut inside: Vec<Named> = found
        .into_iter()
        .filter_map(|(p, is_dir)| {
            let p = normalize(&p)?;
            let p = match p.starts_with(sources.worktree) {
                true => p,
                false => normalize(&(sources.real)(&p))?,
            };
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
            found.push(((sources.real)(&included), false));
            if depth < MAX_DEPTH {
                visit(sources, &included, depth + 1, found);
            }
        } else {
            named_by(sources, &key, &value, found);
        }
    }
}

/// What one entry names in the work tree.
fn named_by(sources: &Sources, key: &str, value: &str, found: &mut Vec<Named>) {
    let root = sources.worktree;
    if key == "core.hookspath" {
        // A hook may run its neighbours (husky's `.husky/_/h` runs
        // `.husky/pre-commit`): the whole top-level directory is kept.
        let hooks = resolve(value, root, sources.home);
        let top = normalize(&hooks)
            .and_then(|h| Some(root.join(h.strip_prefix(root).ok()?.components().next()?)));
        found.push((top.unwrap_or(hooks), true));
        return;
    }
    if FILES.contains(&key) {
        found.push((resolve(value, root, sources.home), false));
        return;
    }
    let executed = EXECUTED.iter().any(|pattern| matches(pattern, key));
    let exists = |rel: &str| {
        Path::new(rel)
            .components()
            .next()
            .is_some_and(|c| root.join(c).symlink_metadata().is_ok())
    };
    let mut words = words(value.trim_start().trim_start_matches('!'));
    // What `sh -c '...'` runs is a command of its own.
    let scripts: Vec<usize> = (1..words.len()).filter(|&i| words[i - 1] == "-c").collect();
    let inner: Vec<String> = scripts
        .iter()
        .flat_map(|&i| self::words(&words[i]))
        .collect();
    words.extend(inner);
    for (i, word) in words.iter().enumerate() {
        let word = word.as_str();
        if word.contains("://") || scripts.contains(&i) {
            continue;
        }
        let explicit = ["/", "./", "../", "~/"].iter().any(|p| word.starts_with(p));
        // A first word without `/` is a program the shell finds in PATH; a
        // later one is an argument: a script, or a directory of one.
        let named = explicit
            || (word.contains('/') && (executed || exists(word)))
            || (i > 0 && !word.contains('/') && root.join(word).exists());
        if named {
            found.push((resolve(word, root, sources.home), false));
        }
        // A path built with an expansion (`$PWD/tools/x`,
        // `"$(git rev-parse --show-toplevel)"/tools/x`) is the part after
        // it, which git runs at the top of the work tree.
        if executed {
            for (at, _) in word.match_indices('/') {
                let rest = &word[at + 1..];
                if !rest.is_empty() && exists(rest) {
                    found.push((root.join(rest), false));
                }
            }
        }
    }
}

/// Whether `key` (`section.sub.name`, section and name lower-case) matches
/// `pattern`, whose `*` stands for the subsection, or, at its end, for any
/// key of the section.
fn matches(pattern: &str, key: &str) -> bool {
    if let Some(section) = pattern.strip_suffix(".*") {
        return key
            .strip_prefix(section)
            .is_some_and(|rest| rest.starts_with('.'));
    }
    match pattern.split_once(".*.") {
        Some((section, name)) => key
            .strip_prefix(section)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| rest.rsplit_once('.'))
            .is_some_and(|(sub, n)| !sub.is_empty() && n == name),
        None => key == pattern,
    }
}

/// The words of a command as `sh` splits them, quotes removed, with the
/// values of `NAME=value` and `--option=value` words standing for them.
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = command.chars();
    let mut push = |word: &mut String| {
        if !word.is_empty() {
            let taken = std::mem::take(word);
            let value = match taken.split_once('=') {
                Some((name, value)) if name.starts_with("--") || is_name(name) => value,
                _ => taken.as_str(),
            };
            if !value.is_empty() {
                words.push(value.to_string());
            }
        }
    };
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => word.extend(chars.next()),
            // An expansion's name is no part of a path: `$PWD/x` is `/x`.
            (None | Some('"'), '$') => {
                push(&mut word);
                let mut ahead = chars.clone();
                match ahead.next() {
                    Some('{') => {
                        chars.by_ref().take_while(|&c| c != '}').for_each(drop);
                    }
                    Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                        while ahead
                            .clone()
                            .next()
                            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                        {
                            ahead.next();
                        }
                        chars = ahead;
                    }
                    _ => {}
                }
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, '\\') => word.extend(chars.next()),
            (None, c) if c.is_whitespace() || ";|&()<>`".contains(c) => push(&mut word),
            (None, c) => word.push(c),
        }
    }
    push(&mut word);
    words
}

fn is_name(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
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

/// The `section[.subsection].key = value` entries of a git config file, the
/// section and key lower-cased as git compares them. A value continues on
/// the next line only after a backslash outside a comment, as in git.
pub fn entries(text: &str) -> Vec<(String, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut section = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let mut rest = line.trim();
        if rest.starts_with('[') {
            let Some((inside, after)) = rest[1..].split_once(']') else {
                continue;
            };
            section = section_name(inside);
            rest = after.trim();
        }
        if rest.is_empty() || rest.starts_with('#') || rest.starts_with(';') {
            continue;
        }
        let (name, value) = match rest.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (rest, None),
        };
        let value = match value {
            Some(value) => read_value(value, &mut lines),
            None => "true".to_string(),
        };
        out.push((
            format!("{section}.{}", name.trim().to_ascii_lowercase()),
            value,
        ));
    }
    out
}

/// A value with its quotes and escapes resolved, a comment cut, and lines
/// joined where one ends in a backslash.
fn read_value<'a>(first: &'a str, lines: &mut impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut line = first;
    'lines: loop {
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => quoted = !quoted,
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => match lines.next() {
                        Some(next) => {
                            line = next;
                            continue 'lines;
                        }
                        None => break 'lines,
                    },
                },
                '#' | ';' if !quoted => break 'lines,
                c => out.push(c),
            }
        }
        break;
    }
    out.trim().to_string()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn found(files: &[(&str, &str)], exists: &[&str]) -> Vec<Named> {
        let real = |p: &Path| p.to_path_buf();
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        for name in exists {
            let path = ws.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        std::fs::create_dir_all(&ws).unwrap();
        let with_ws = |p: &str| PathBuf::from(p.replace("/ws", ws.to_str().unwrap()));
        let contents: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (with_ws(p), t.replace("/ws", ws.to_str().unwrap())))
            .collect();
        let read = |p: &Path| contents.get(p).cloned();
        let sources = Sources {
            files: vec![
                with_ws("/ws/.git/config"),
                PathBuf::from("/home/me/.gitconfig"),
            ],
            extra: vec![("diff.external".into(), "./ext".into())],
            worktree: &ws,
            home: Some(Path::new("/home/me")),
            read: &read,
            real: &real,
        };
        paths_in_worktree(&sources)
    }

    #[test]
    fn what_the_configuration_names_in_the_work_tree_is_found() {
        let paths = found(
            &[
                (
                    "/ws/.git/config",
                    "\u{feff}[core]\n\thooksPath = .husky\n\tfsmonitor = \"./tools/fsmon --fast\"\n\
                     [include]\n\tpath = ../.gitconfig\n\
                     [filter \"lfs\"]\n\tclean = git-lfs clean -- %f\n\tsmudge = sh bin/smudge %f\n\
                     [diff \"pdf\"]\n\ttextconv = FOO=1 /ws/scripts/pdf2txt ; comment \\\n\
                     [alias]\n\tst = !'my dir/st' --x=conv.py\n\
                     [remote \"origin\"]\n\turl = https://example.com/a/b.git\n\
                     \tfetch = +refs/heads/*:refs/remotes/origin/*\n",
                ),
                ("/ws/.gitconfig", "[includeIf \"gitdir:/ws/\"]\n\tpath = conf/more\n"),
                ("/ws/conf/more", "[credential]\n\thelper = !./helper.sh get\n"),
                (
                    "/home/me/.gitconfig",
                    "[core]\n\texcludesFile = ~/.gitignore_global\n\tattributesFile = .attrs\n\
                     [sequence]\n\teditor = vim\n\
                     [diff \"a\"]\n\ttextconv = \"$(git rev-parse --show-toplevel)\"/t/a\n\
                     [diff \"b\"]\n\ttextconv = $PWD/t/b\n\
                     [diff \"c\"]\n\ttextconv = sh -c './t/c \\\"$1\\\"' -\n\
                     [filter \"f\"]\n\tclean = sh s/fmt.sh\n\tsmudge = node tool\n",
                ),
            ],
            &["conv.py", "bin/smudge", "my dir/st", "t/a", "t/b", "t/c", "tool/index.js"],
        );
        let shown: Vec<_> = paths
            .iter()
            .map(|(p, is_dir)| (p.to_str().unwrap(), *is_dir))
            .collect();
        assert_eq!(
            shown,
            [
                (".attrs", false),
                (".git/config", false),
                (".gitconfig", false),
                (".husky", true),
                ("bin/smudge", false),
                ("conf/more", false),
                ("conv.py", false),
                ("ext", false),
                ("helper.sh", false),
                ("my dir/st", false),
                ("s/fmt.sh", false),
                ("scripts/pdf2txt", false),
                ("t/a", false),
                ("t/b", false),
                ("t/c", false),
                ("tool", false),
                ("tools/fsmon", false),
            ]
        );
    }

    #[test]
    fn a_comment_ending_in_a_backslash_ends_its_line() {
        let read = entries("[user]\n\tname = me ; note \\\n[core]\n\thooksPath = hooks\n");
        assert!(
            read.contains(&("core.hookspath".into(), "hooks".into())),
            "{read:?}"
        );
        let joined = entries("[a]\n\tb = one \\\n two\n");
        assert_eq!(joined, [("a.b".to_string(), "one  two".to_string())]);
    }

    #[test]
    fn words_split_as_the_shell_splits_them() {
        assert_eq!(
            words("FOO=1 ./x 'a b' --o=c \"d\\\"e\""),
            ["1", "./x", "a b", "c", "d\"e"]
        );
        assert_eq!(words("sh -c ./x;y|z"), ["sh", "-c", "./x", "y", "z"]);
    }

    #[test]
    fn keys_name_sections_as_git_compares_them() {
        assert_eq!(section_name("Filter \"LFS\""), "filter.LFS");
        assert_eq!(section_name("core"), "core");
        assert_eq!(section_name("remote.origin"), "remote.origin");
    }
}
