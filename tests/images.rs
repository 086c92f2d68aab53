//! The agents' Dockerfiles, checked without an engine (no registry can be
//! reached to build them here): a syntax check, pinned bases and exact agent
//! versions, the agent's binary on PATH, a non-root user, nothing that needs
//! a writable root, and one directory for each agent `make images` builds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every agent: its official package and the binary that package puts on PATH.
const AGENTS: [(&str, Package, &str); 6] = [
    (
        "claude",
        Package::Npm("@anthropic-ai/claude-code"),
        "claude",
    ),
    ("codex", Package::Npm("@openai/codex"), "codex"),
    ("gemini", Package::Npm("@google/gemini-cli"), "gemini"),
    ("opencode", Package::Npm("opencode-ai"), "opencode"),
    ("kilocode", Package::Npm("@kilocode/cli"), "kilocode"),
    ("aider", Package::Pip("aider-chat"), "aider"),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Package {
    Npm(&'static str),
    Pip(&'static str),
}

impl Package {
    fn name(self) -> &'static str {
        match self {
            Package::Npm(name) | Package::Pip(name) => name,
        }
    }

    fn is_npm(self) -> bool {
        matches!(self, Package::Npm(_))
    }
}

/// Variables an agent's image must set, so that it neither updates itself
/// nor writes outside HOME, /tmp and /work at run time.
fn required_env(agent: &str) -> &'static [(&'static str, &'static str)] {
    match agent {
        "claude" => &[
            ("NPM_CONFIG_UPDATE_NOTIFIER", "false"),
            ("DISABLE_AUTOUPDATER", "1"),
        ],
        "opencode" => &[
            ("NPM_CONFIG_UPDATE_NOTIFIER", "false"),
            ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
        ],
        "kilocode" => &[
            ("NPM_CONFIG_UPDATE_NOTIFIER", "false"),
            ("KILO_DISABLE_AUTOUPDATE", "1"),
        ],
        "aider" => &[("PIP_NO_CACHE_DIR", "1"), ("AIDER_CHECK_UPDATE", "false")],
        _ => &[("NPM_CONFIG_UPDATE_NOTIFIER", "false")],
    }
}

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

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// (agent, path) for each images/agents/<agent>/Dockerfile, sorted.
fn dockerfiles() -> Vec<(String, PathBuf)> {
    let mut found: Vec<_> = std::fs::read_dir(root().join("images/agents"))
        .expect("images/agents exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.is_dir())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                p.join("Dockerfile"),
            )
        })
        .collect();
    found.sort();
    found
}

#[derive(Debug)]
struct Step {
    keyword: String,
    args: String,
    line: usize,
}

/// The instructions, continuation lines joined and comments dropped (as
/// Docker drops them, also inside a continuation). Fails on what Docker
/// would refuse or this check cannot read: a line that starts no known
/// instruction, a continuation that runs off the end or over an empty line,
/// a heredoc.
fn parse(text: &str) -> Result<Vec<Step>, String> {
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
fn is_pinned(image: &str) -> bool {
    let image = image.split('@').next().unwrap_or("");
    let name_end = image.rfind('/').map_or(0, |i| i + 1);
    let Some((_, tag)) = image[name_end..].rsplit_once(':') else {
        return false;
    };
    is_exact_version(tag.split('-').next().unwrap_or(""))
}

/// The image a FROM names, without `--platform=...` or `AS stage`.
fn from_image(args: &str) -> &str {
    args.split_whitespace()
        .find(|w| !w.starts_with("--"))
        .unwrap_or("")
}

/// `$NAME` and `${NAME}` replaced from `vars`; others left as they are.
fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
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
fn assignments(args: &str) -> Vec<(String, String)> {
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
struct Install {
    program: String,
    npm: bool,
    packages: Vec<String>,
    flags: Vec<String>,
}

/// The installs among a RUN's commands (split on `&&`, `||`, `;` and `|`).
fn installs(run: &str) -> Vec<Install> {
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
fn pinned_package(spec: &str, npm: bool) -> Option<(&str, &str)> {
    let (name, version) = if npm {
        let at = spec.rfind('@').filter(|&at| at > 0)?;
        (&spec[..at], &spec[at + 1..])
    } else {
        spec.split_once("==")?
    };
    let name = name.split('[').next().unwrap_or(name);
    (!name.is_empty() && is_exact_version(version)).then_some((name, version))
}

/// What is wrong with the install of the agent's own package.
fn agent_install(
    step: &Step,
    install: &Install,
    package: Package,
    binary: &str,
    env: &BTreeMap<String, String>,
) -> Vec<String> {
    let line = step.line;
    let mut wrong = Vec::new();
    let has = |flag: &str| install.flags.iter().any(|f| f == flag);
    match package {
        Package::Npm(p) => {
            // npm's global bin directory is on the node images' PATH.
            if !has("-g") && !has("--global") {
                wrong.push(format!(
                    "line {line}: {p} is not installed --global, so `{binary}` is not on PATH"
                ));
            }
            if !has("--omit=dev") {
                wrong.push(format!("line {line}: npm install without --omit=dev"));
            }
            if !step.args.contains("npm cache clean --force") {
                wrong.push(format!("line {line}: the npm cache stays in the image"));
            }
        }
        Package::Pip(p) => {
            // A venv's pip puts `binary` in that venv's bin/, made in the same RUN.
            let bin = install.program.rsplit_once('/').map(|(dir, _)| dir);
            let on_path = bin.is_some_and(|bin| {
                let path = env.get("PATH").map_or("", String::as_str);
                bin.starts_with('/')
                    && path.split(':').any(|d| d == bin)
                    && step
                        .args
                        .contains(&format!("-m venv {}", bin.trim_end_matches("/bin")))
            });
            if !on_path {
                wrong.push(format!(
                    "line {line}: {p} is not installed by a venv's pip whose bin/ is on \
                     PATH (ENV PATH before it), so `{binary}` may not be"
                ));
            }
        }
    }
    wrong
}

/// What one Dockerfile gets wrong, as readable lines; empty when it is right.
fn problems(agent: &str, text: &str) -> Vec<String> {
    let steps = match parse(text) {
        Ok(steps) => steps,
        Err(e) => return vec![e],
    };
    let mut wrong = Vec::new();
    let Some(&(_, package, binary)) = AGENTS.iter().find(|(a, _, _)| *a == agent) else {
        return vec![format!("no such agent in tests/images.rs: {agent}")];
    };
    let of = |keyword: &'static str| steps.iter().filter(move |s| s.keyword == keyword);

    // Pinned bases.
    if of("FROM").next().is_none() {
        wrong.push("no FROM".into());
    }
    for step in of("FROM") {
        let image = from_image(&step.args);
        if !is_pinned(image) {
            wrong.push(format!(
                "line {}: FROM {image} is not pinned to a full version",
                step.line
            ));
        }
    }

    // Every install pins an exact version, the agent's among them.
    let mut vars = BTreeMap::new();
    let mut env = BTreeMap::new();
    let mut agent_installed = false;
    for step in &steps {
        match step.keyword.as_str() {
            "ARG" => {
                for (k, v) in assignments(&step.args) {
                    vars.insert(k, v);
                }
            }
            "ENV" => {
                for (k, v) in assignments(&step.args) {
                    let v = expand(&v, &vars);
                    env.insert(k.clone(), v.clone());
                    vars.insert(k, v);
                }
            }
            "RUN" => {
                for install in installs(&expand(&step.args, &vars)) {
                    if install.packages.is_empty() {
                        wrong.push(format!(
                            "line {}: {} installs no named package",
                            step.line, install.program
                        ));
                    }
                    for spec in &install.packages {
                        let Some((name, _)) = pinned_package(spec, install.npm) else {
                            wrong.push(format!(
                                "line {}: {spec} is not pinned to an exact version",
                                step.line
                            ));
                            continue;
                        };
                        if package.name() == name && package.is_npm() == install.npm {
                            agent_installed = true;
                            wrong.extend(agent_install(step, &install, package, binary, &env));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if !agent_installed {
        wrong.push(format!("{package:?} is never installed"));
    }
    match vars.get("VERSION") {
        Some(v) if is_exact_version(v) => {}
        other => wrong.push(format!(
            "ARG VERSION must default to an exact version, not {other:?}"
        )),
    }
    for (key, value) in required_env(agent) {
        if env.get(*key).map(String::as_str) != Some(*value) {
            wrong.push(format!("ENV {key}={value} is missing"));
        }
    }
    for (key, value) in &env {
        if value.contains("/home/") {
            wrong.push(format!(
                "ENV {key}={value}: HOME is sandbox's to choose at run time"
            ));
        }
    }

    // git, ripgrep and certificates, without recommends and without lists.
    let apt = of("RUN").find(|s| s.args.contains("apt-get install"));
    match apt {
        None => wrong.push("no apt-get install of git, ripgrep, ca-certificates".into()),
        Some(step) => {
            let words: Vec<&str> = step.args.split_whitespace().collect();
            for needed in [
                "ca-certificates",
                "git",
                "ripgrep",
                "--no-install-recommends",
            ] {
                if !words.contains(&needed) {
                    wrong.push(format!(
                        "line {}: apt-get install lacks {needed}",
                        step.line
                    ));
                }
            }
            if !step.args.contains("rm -rf /var/lib/apt/lists/*") {
                wrong.push(format!(
                    "line {}: the apt lists stay in the image",
                    step.line
                ));
            }
        }
    }

    // A non-root user named agent, uid 1000, and it is the last USER.
    let users = of("RUN").any(|s| {
        (s.args.contains("useradd") && s.args.contains("--uid 1000"))
            || s.args.contains("usermod --login agent")
    });
    if !users || !of("RUN").any(|s| s.args.split_whitespace().any(|w| w == "agent")) {
        wrong.push("no user `agent` with uid 1000 (useradd, or the base's renamed)".into());
    }
    let user = of("USER").next_back().map(|s| s.args.as_str());
    let uid = user.map(|u| u.split(':').next().unwrap_or(""));
    if !uid.is_some_and(|u| u.parse::<u32>().is_ok_and(|uid| uid != 0)) {
        wrong.push(format!(
            "the last USER must be a non-root numeric uid, not {user:?}"
        ));
    }
    if user.is_some_and(|u| u != "1000") {
        wrong.push(format!("the last USER is {user:?}, not 1000"));
    }

    // Where and what it runs.
    let workdir = of("WORKDIR").next_back().map(|s| s.args.as_str());
    if workdir != Some("/work") {
        wrong.push(format!("the last WORKDIR is {workdir:?}, not /work"));
    }
    let cmd: Vec<&str> = of("CMD").map(|s| s.args.as_str()).collect();
    let expected = format!("[\"{binary}\"]");
    if cmd != [expected.as_str()] {
        wrong.push(format!("CMD must be {expected} once, not {cmd:?}"));
    }
    for forbidden in ["ENTRYPOINT", "VOLUME"] {
        if let Some(step) = of(forbidden).next() {
            wrong.push(format!(
                "line {}: no {forbidden} (sandbox clears the one, and the other would \
                 be writable outside HOME, /tmp and /work)",
                step.line
            ));
        }
    }
    wrong
}

#[test]
fn every_agent_image_is_well_formed_pinned_and_unprivileged() {
    let files = dockerfiles();
    assert!(!files.is_empty());
    let mut report = Vec::new();
    for (agent, path) in files {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for problem in problems(&agent, &text) {
            report.push(format!("images/agents/{agent}/Dockerfile: {problem}"));
        }
    }
    assert!(report.is_empty(), "\n{}", report.join("\n"));
}

/// The words of a Makefile variable's `?=` line.
fn makefile_list(makefile: &str, variable: &str) -> BTreeSet<String> {
    let prefix = format!("{variable} ?=");
    let line = makefile
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("the Makefile sets {prefix}"));
    line[prefix.len()..]
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn make_images_builds_exactly_these_agents_under_the_default_names() {
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let listed = makefile_list(&makefile, "AGENTS");
    let present: BTreeSet<String> = dockerfiles().into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        listed, present,
        "AGENTS in the Makefile, and images/agents/*/"
    );
    let known: BTreeSet<String> = AGENTS.iter().map(|(a, _, _)| a.to_string()).collect();
    assert_eq!(
        known, present,
        "tests/images.rs's AGENTS, and images/agents/*/"
    );

    let phony = makefile
        .lines()
        .find(|l| l.starts_with(".PHONY:"))
        .expect(".PHONY");
    assert!(phony.split_whitespace().any(|t| t == "images"), "{phony}");
    assert!(makefile.lines().any(|l| l.starts_with("images:")));
    assert!(makefile.contains("docker build -t sandbox-agents/$$a:1 images/agents/$$a"));
    assert!(
        makefile.contains("@echo \"make images"),
        "a `make help` line"
    );

    // The configuration's default images are the ones `make images` tags.
    let example = std::fs::read_to_string(root().join("config.example.yaml")).unwrap();
    for agent in &present {
        assert!(
            example.contains(&format!("image: sandbox-agents/{agent}:1")),
            "config.example.yaml: {agent}"
        );
    }
}

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
    let ok = "# syntax comment\nFROM node:22.23.3\n\nRUN a \\\n  # dropped\n  && b\nCMD [\"x\"]\n";
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

#[test]
fn a_careless_dockerfile_is_caught() {
    let careless = "FROM node:22\n\
        RUN apt-get update && apt-get install -y git\n\
        RUN npm install -g @anthropic-ai/claude-code\n\
        ENV CLAUDE_CONFIG_DIR=/home/sandbox/.claude\n\
        USER node\n\
        ENTRYPOINT [\"claude\"]\n";
    let found = problems("claude", careless).join("\n");
    for expected in [
        "FROM node:22 is not pinned",
        "@anthropic-ai/claude-code is not pinned",
        "ARG VERSION",
        "ENV NPM_CONFIG_UPDATE_NOTIFIER=false is missing",
        "ENV DISABLE_AUTOUPDATER=1 is missing",
        "HOME is sandbox's",
        "lacks ripgrep",
        "lacks --no-install-recommends",
        "apt lists stay",
        "no user `agent`",
        "non-root numeric uid",
        "WORKDIR",
        "CMD must be",
        "no ENTRYPOINT",
    ] {
        assert!(found.contains(expected), "{expected:?} not in:\n{found}");
    }
}
