//! A Dockerfile read the way Docker reads it, as far as tests/images.rs needs:
//! its instructions (continuations joined, comments dropped), `${NAME}`
//! expansion, `K=V` assignments, the `npm install`s and `pip install`s of a
//! RUN, and what counts as pinned.

use std::collections::BTreeMap;

const INSTRUCTIONS: [&str; 18] = [
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
    "MAINTAINER",
];

#[derive(Debug)]
pub struct Step {
    pub keyword: String,
    pub args: String,
    pub line: usize,
}

/// The instructions, continuation lines joined and comments dropped (as
/// Docker drops them, also inside a continuation). Fails on what Docker
/// would refuse or this check cannot read: a line that starts no known
/// instruction, a continuation that runs off the end or over an empty line,
/// a heredoc.
pub fn parse(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() && current.is_some() {
            // Docker warns, and means to refuse: usually a lost instruction.
            return Err(format!(
                "line {number}: an empty line inside a continuation"
            ));
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (start, mut joined) = match current.take() {
            Some(open) => open,
            None => {
                let keyword = trimmed.split_whitespace().next().unwrap_or("");
                if !INSTRUCTIONS.contains(&keyword) {
                    return Err(format!(
                        "line {number}: {keyword:?} is no instruction (or not in capitals)"
                    ));
                }
                (number, String::new())
            }
        };
        if trimmed.contains("<<") && joined.is_empty() {
            let after = trimmed.split_once("<<").unwrap().1;
            if after.starts_with(|c: char| c.is_ascii_uppercase() || c == '-' || c == '"') {
                return Err(format!("line {number}: heredocs are not checked here"));
            }
        }
        match trimmed.strip_suffix('\\') {
            Some(more) => {
                joined.push_str(more.trim_end());
                joined.push(' ');
                current = Some((start, joined));
            }
            None => {
                joined.push_str(trimmed);
                let (keyword, args) = joined
                    .split_once(char::is_whitespace)
                    .unwrap_or((&joined, ""));
                steps.push(Step {
                    keyword: keyword.to_string(),
                    args: args.trim().to_string(),
                    line: start,
                });
            }
        }
    }
    if let Some((start, _)) = current {
        return Err(format!("line {start}: a continuation runs off the end"));
    }
    Ok(steps)
}

/// `1.2.3` (and `1.2.3.4`): numbers only, no ranges, tags or wildcards.
fn is_exact_version(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// `node:22.23.3-bookworm-slim` has a full version; `node:22`, `node:latest`
/// and `node` do not. A digest may follow the tag, never replace it.
pub fn is_pinned(image: &str) -> bool {
    let image = image.split('@').next().unwrap_or("");
    let name_end = image.rfind('/').map_or(0, |i| i + 1);
    let Some((_, tag)) = image[name_end..].rsplit_once(':') else {
        return false;
    };
    is_exact_version(tag.split('-').next().unwrap_or(""))
}

/// The image a FROM names, without `--platform=...` or `AS stage`.
pub fn from_image(args: &str) -> &str {
    args.split_whitespace()
        .find(|w| !w.starts_with("--"))
        .unwrap_or("")
}

/// `$NAME` and `${NAME}` replaced from `vars`; others left as they are.
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match vars.get(name) {
            Some(value) if !name.is_empty() => {
                out.push_str(value);
                rest = &after[len..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `K=V K2="V 2"` (or the old `K V`) as pairs.
pub fn assignments(args: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in args.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    if words.len() >= 2 && !words[0].contains('=') {
        return vec![(words[0].clone(), words[1..].join(" "))];
    }
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (w.to_string(), String::new()),
        })
        .collect()
}

/// One `npm install` or `pip install` in a RUN: the program as typed, the
/// packages named, and the flags.
#[derive(Debug)]
pub struct Install {
    pub program: String,
    pub npm: bool,
    pub packages: Vec<String>,
    pub flags: Vec<String>,
}

/// The installs among a RUN's commands (split on `&&`, `||`, `;` and `|`).
pub fn installs(run: &str) -> Vec<Install> {
    let mut found = Vec::new();
    for command in run.split(['&', '|', ';']) {
        let words: Vec<&str> = command.split_whitespace().collect();
        let Some(&program) = words.first() else {
            continue;
        };
        let base = program.rsplit('/').next().unwrap_or(program);
        let rest: &[&str] = match (base, words.get(1), words.get(2), words.get(3)) {
            ("npm", Some(&("install" | "i" | "add")), _, _) => &words[2..],
            ("pip" | "pip3", Some(&"install"), _, _) => &words[2..],
            (_, Some(&"-m"), Some(&"pip"), Some(&"install")) if base.starts_with("python") => {
                &words[4..]
            }
            _ => continue,
        };
        let (flags, packages): (Vec<&str>, Vec<&str>) =
            rest.iter().partition(|w| w.starts_with('-'));
        found.push(Install {
            program: program.to_string(),
            npm: base == "npm",
            packages: packages.iter().map(|p| p.to_string()).collect(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
        });
    }
    found
}

/// `@scope/name@1.2.3` or `name==1.2.3` (extras allowed) as (name, version).
pub fn pinned_package(spec: &str, npm: bool) -> Option<(&str, &str)> {
    let (name, version) = if npm {
        let at = spec.rfind('@').filter(|&at| at > 0)?;
        (&spec[..at], &spec[at + 1..])
    } else {
        spec.split_once("==")?
    };
    let name = name.split('[').next().unwrap_or(name);
    (!name.is_empty() && is_exact_version(version)).then_some((name, version))
}

mod tests {
    use super::*;

    #[test]
    fn pins_are_checked_for_what_they_are() {
        for pinned in [
            "node:22.23.3-bookworm-slim",
            "python:3.12.16-slim-bookworm",
            "docker.io/library/node:22.23.3-bookworm-slim",
            "localhost:5000/node:22.23.3",
            "node:22.23.3-bookworm-slim@sha256:0123",
        ] {
            assert!(is_pinned(pinned), "{pinned}");
        }
        for loose in [
            "node:22",
            "node:22.23",
            "node:latest",
            "node",
            "node:lts-bookworm-slim",
            "python:3.12-slim",
            "node:22.x.1",
            "localhost:5000/node",
            "node@sha256:0123",
        ] {
            assert!(!is_pinned(loose), "{loose}");
        }
        assert_eq!(
            from_image("--platform=linux/amd64 node:22.23.3 AS build"),
            "node:22.23.3"
        );

        let npm = |s| pinned_package(s, true);
        let pip = |s| pinned_package(s, false);
        assert_eq!(
            npm("@openai/codex@0.169.0"),
            Some(("@openai/codex", "0.169.0"))
        );
        assert_eq!(npm("opencode-ai@1.18.33"), Some(("opencode-ai", "1.18.33")));
        assert_eq!(pip("aider-chat==0.86.2"), Some(("aider-chat", "0.86.2")));
        assert_eq!(
            pip("aider-chat[help]==0.86.2"),
            Some(("aider-chat", "0.86.2"))
        );
        for loose in [
            "@openai/codex",
            "@openai/codex@latest",
            "opencode-ai@^1.18.33",
            "x@1",
        ] {
            assert_eq!(npm(loose), None, "{loose}");
        }
        for loose in [
            "aider-chat",
            "aider-chat>=0.86.2",
            "aider-chat==0.86.*",
            "aider-chat~=0.86.2",
        ] {
            assert_eq!(pip(loose), None, "{loose}");
        }
    }

    #[test]
    fn installs_are_found_in_any_command_of_a_run() {
        let vars = BTreeMap::from([("VERSION".to_string(), "1.2.3".to_string())]);
        let run = expand(
            "mkdir -p /x && npm install -g --omit=dev pkg@${VERSION} left@$VERSION; \
             /opt/v/bin/pip install a==1.0.0 | cat && python3 -m pip install b && npm ci",
            &vars,
        );
        let found = installs(&run);
        let names: Vec<(&str, Vec<&str>)> = found
            .iter()
            .map(|i| {
                (
                    i.program.as_str(),
                    i.packages.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("npm", vec!["pkg@1.2.3", "left@1.2.3"]),
                ("/opt/v/bin/pip", vec!["a==1.0.0"]),
                ("python3", vec!["b"]),
            ]
        );
        assert_eq!(found[0].flags, ["-g", "--omit=dev"]);
        assert_eq!(expand("$UNSET ${UNSET} $", &vars), "$UNSET ${UNSET} $");
    }

    #[test]
    fn the_syntax_check_refuses_what_docker_would() {
        let ok =
            "# syntax comment\nFROM node:22.23.3\n\nRUN a \\\n  # dropped\n  && b\nCMD [\"x\"]\n";
        let steps = parse(ok).unwrap();
        let read: Vec<(&str, &str, usize)> = steps
            .iter()
            .map(|s| (s.keyword.as_str(), s.args.as_str(), s.line))
            .collect();
        assert_eq!(
            read,
            [
                ("FROM", "node:22.23.3", 2),
                ("RUN", "a && b", 4),
                ("CMD", "[\"x\"]", 7)
            ]
        );
        for (bad, why) in [
            ("FROM node:22.23.3\nRUN a &&\n  b\n", "no instruction"),
            ("FROM node:22.23.3\nRUNN a\n", "no instruction"),
            ("from node:22.23.3\n", "no instruction"),
            ("FROM node:22.23.3\nRUN a \\\n", "runs off the end"),
            ("FROM node:22.23.3\nRUN a \\\n\nRUN b\n", "empty line"),
            ("FROM node:22.23.3\nRUN <<EOF\necho\nEOF\n", "heredocs"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
