//! The agents' images, checked without an engine (no registry can be reached
//! to build them here).
//!
//! images/agents/agents.txt lists every agent once; sandbox's profiles and
//! `make images` both read it, so they cannot disagree. What is left to check:
//! that the table is complete; that `make images` builds every agent, or the
//! ones named, and goes on past a failed build; and that each base's
//! Dockerfile, built with the arguments `make images` passes an agent, is well
//! formed (a syntax check), pinned (base, and the table's exact version), puts
//! the agent's binary on PATH, ends as a non-root user and needs no writable
//! root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

#[path = "images/dockerfile.rs"]
mod dockerfile;

/// The table, read by the code sandbox reads it with.
#[path = "../src/config/agents/table.rs"]
#[allow(dead_code)]
mod table;

use dockerfile::{
    assignments, expand, from_image, installs, is_pinned, parse, pinned_package, Install, Step,
};
use table::Stanza;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn agents() -> Vec<Stanza> {
    table::parse(table::TEXT).expect("the agent table reads")
}

fn find<'a>(agents: &'a [Stanza], name: &str) -> &'a Stanza {
    agents.iter().find(|a| a.text("name") == name).unwrap()
}

/// The value of a `NAME = value` line of the Makefile.
fn makefile_var(name: &str) -> String {
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let prefix = format!("{name} = ");
    makefile
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("Makefile: no `{name} = ...`"))
        .to_string()
}

/// The local bases `make images BASES=local` builds on: base name → tag.
fn local_bases() -> BTreeMap<String, String> {
    makefile_var("LOCAL_BASES")
        .split_whitespace()
        .map(|pair| {
            let (name, tag) = pair.split_once('=').expect("LOCAL_BASES: NAME=TAG ...");
            (name.to_string(), tag.to_string())
        })
        .collect()
}

/// The default of `ARG name=default` in `text`.
fn arg_default(text: &str, name: &str) -> Option<String> {
    parse(text)
        .unwrap()
        .iter()
        .filter(|s| s.keyword == "ARG")
        .flat_map(|s| assignments(&s.args))
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Variables every image of a base sets, whatever the agent: no update
/// notices from the package manager, no cache in the image.
fn base_env(base: &str) -> &'static [(&'static str, &'static str)] {
    match base {
        "node" => &[
            ("NPM_CONFIG_UPDATE_NOTIFIER", "false"),
            ("NO_UPDATE_NOTIFIER", "1"),
        ],
        "python" => &[
            ("PIP_NO_CACHE_DIR", "1"),
            ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
        ],
        _ => &[],
    }
}

/// The CMD of every image: CMD takes no build argument, so a shell finds the
/// binary by the name ENV keeps.
const CMD: &str = r#"["/bin/sh", "-c", "exec \"$AGENT_BINARY\""]"#;

/// One `docker build` that `make images` ran.
#[derive(Debug, PartialEq)]
struct Build {
    dockerfile: String,
    args: BTreeMap<String, String>,
    tag: String,
    context: String,
}

/// `build -f FILE (--build-arg K=V)* -t TAG CONTEXT`, as the Makefile writes it.
fn read_build(argv: &[String]) -> Build {
    let [build, f, dockerfile, rest @ .., t, tag, context] = argv else {
        panic!("not a docker build: {argv:?}");
    };
    assert_eq!(
        (build.as_str(), f.as_str(), t.as_str()),
        ("build", "-f", "-t")
    );
    let args = rest
        .chunks(2)
        .map(|pair| match pair {
            [flag, arg] if flag == "--build-arg" => {
                let (k, v) = arg.split_once('=').expect("K=V");
                (k.to_string(), v.to_string())
            }
            _ => panic!("not a --build-arg: {pair:?}"),
        })
        .collect();
    Build {
        dockerfile: dockerfile.clone(),
        args,
        tag: tag.clone(),
        context: context.clone(),
    }
}

/// What the fake docker and mmdebstrap of [`make`] were asked, and how make
/// ended.
struct Run {
    ok: bool,
    stderr: String,
    /// Each call, the program's name first (`docker` or `mmdebstrap`).
    calls: Vec<Vec<String>>,
}

impl Run {
    /// The `docker build`s of images/agents/, in order.
    fn builds(&self) -> Vec<Build> {
        self.builds_of("images/agents/")
    }

    /// The `docker build`s of Dockerfiles under `dir`, in order.
    fn builds_of(&self, dir: &str) -> Vec<Build> {
        self.calls
            .iter()
            .filter(|call| call[0] == "docker" && call.get(1).is_some_and(|c| c == "build"))
            .map(|call| read_build(&call[1..]))
            .filter(|build| build.dockerfile.starts_with(dir))
            .collect()
    }

    /// The calls, each as one line, for assertions on their order.
    fn lines(&self) -> Vec<String> {
        self.calls.iter().map(|call| call.join(" ")).collect()
    }
}

/// `make TARGET` with `make_args`, docker and mmdebstrap being scripts that
/// record their arguments. docker fails every call that names an image of
/// `failing`, and finds no image of `absent` (`docker image inspect`); every
/// other image is there.
fn make(target: &str, make_args: &[&str], failing: &[&str], absent: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls");
    // An argument a line, `--` after each call: no value holds a line break
    // (the table is read line by line) and none is `--`.
    let record = |program: &str| {
        format!(
            "#!/bin/sh\nprintf '%s\\n' {program} \"$@\" -- >> '{}'\n",
            log.display()
        )
    };
    let words = |images: &[&str]| {
        images
            .iter()
            .map(|i| format!("'{i}'"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let docker = dir.path().join("docker");
    let mut script = record("docker");
    script += &format!(
        "if [ \"$1 $2\" = 'image inspect' ]; then\n  \
           for absent in {}; do [ \"$3\" = \"$absent\" ] && exit 1; done\n  \
           exit 0\n\
         fi\n\
         for arg; do for failing in {}; do [ \"$arg\" = \"$failing\" ] && exit 1; done; done\n\
         exit 0\n",
        words(absent),
        words(failing)
    );
    let mmdebstrap = dir.path().join("mmdebstrap");
    use std::os::unix::fs::PermissionsExt;
    for (path, text) in [(&docker, script), (&mmdebstrap, record("mmdebstrap"))] {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = Command::new("make")
        .current_dir(root())
        .args(["-s", "--no-print-directory", target])
        .arg(format!("DOCKER={}", docker.display()))
        .arg(format!("MMDEBSTRAP={}", mmdebstrap.display()))
        .args(make_args)
        .env_remove("AGENTS")
        .env_remove("BASES")
        .env_remove("FORCE")
        .env_remove("MAKEFLAGS")
        .env_remove("MAKELEVEL")
        .output()
        .expect("make runs (it is what builds the images)");
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<String> = calls.lines().map(String::from).collect();
    let calls = lines
        .split(|l| l == "--")
        .filter(|call| !call.is_empty())
        .map(<[String]>::to_vec)
        .collect();
    Run {
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        calls,
    }
}

/// `make images` with `make_args`, the build of the image tagged `failing`
/// (none if empty) failing: whether make succeeded, its stderr, and each
/// agent's build, in order.
fn make_images(make_args: &[&str], failing: &str) -> (bool, String, Vec<Build>) {
    let failing: &[&str] = if failing.is_empty() { &[] } else { &[failing] };
    let run = make("images", make_args, failing, &[]);
    let builds = run.builds();
    (run.ok, run.stderr, builds)
}

/// What is wrong with the install of the agent's own package.
fn agent_install(
    step: &Step,
    install: &Install,
    agent: &Stanza,
    env: &BTreeMap<String, String>,
) -> Vec<String> {
    let (line, package, binary) = (step.line, agent.text("package"), agent.text("binary"));
    let mut wrong = Vec::new();
    let has = |flag: &str| install.flags.iter().any(|f| f == flag);
    if install.npm {
        // npm's global bin directory is on the node images' PATH.
        if !has("-g") && !has("--global") {
            wrong.push(format!(
                "line {line}: {package} is not installed --global, so `{binary}` is not on PATH"
            ));
        }
        if !has("--omit=dev") {
            wrong.push(format!("line {line}: npm install without --omit=dev"));
        }
        if !step.args.contains("npm cache clean --force") {
            wrong.push(format!("line {line}: the npm cache stays in the image"));
        }
    } else {
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
                "line {line}: {package} is not installed by a venv's pip whose bin/ is on \
                 PATH (ENV PATH before it), so `{binary}` may not be"
            ));
        }
    }
    // Without the table's arguments npm would install `PACKAGE@`, the latest:
    // the RUN stops first. With them, it fails if the binary is not on PATH.
    for name in ["PACKAGE", "VERSION", "BINARY"] {
        if !step.args.contains(&format!("\"${{{name}:?}}\"")) {
            wrong.push(format!(
                "line {line}: the install goes on without --build-arg {name} (\"${{{name}:?}}\")"
            ));
        }
    }
    if !step.args.contains("command -v \"$BINARY\"") {
        wrong.push(format!(
            "line {line}: the build does not check that `{binary}` is on PATH"
        ));
    }
    wrong
}

/// What a base's Dockerfile gets wrong when built for `agent` with `args`, as
/// readable lines; empty when it is right.
fn problems(text: &str, agent: &Stanza, args: &BTreeMap<String, String>) -> Vec<String> {
    let steps = match parse(text) {
        Ok(steps) => steps,
        Err(e) => return vec![e],
    };
    let mut wrong = Vec::new();
    let of = |keyword: &'static str| steps.iter().filter(move |s| s.keyword == keyword);

    if of("FROM").next().is_none() {
        wrong.push("no FROM".into());
    }

    // A pinned base, the one it is given if any; every install pins an
    // exact version, the agent's the table's.
    let mut declared = BTreeSet::new();
    let mut vars = BTreeMap::new();
    let mut before_from = BTreeMap::new();
    let mut env = BTreeMap::new();
    let mut agent_installed = false;
    for step in &steps {
        match step.keyword.as_str() {
            "FROM" => {
                let image = expand(from_image(&step.args), &vars);
                if !is_pinned(&image) {
                    wrong.push(format!(
                        "line {}: FROM {image} is not pinned to a full version",
                        step.line
                    ));
                }
                if let Some(base) = args.get("BASE").filter(|base| **base != image) {
                    wrong.push(format!(
                        "line {}: FROM {image}, not the base it is given ({base})",
                        step.line
                    ));
                }
                // ARGs before a FROM serve FROMs only: a stage starts with
                // none, and its `ARG NAME` takes one back.
                before_from = std::mem::take(&mut vars);
            }
            "ARG" => {
                for (k, default) in assignments(&step.args) {
                    match args.get(&k) {
                        Some(given) => vars.insert(k.clone(), given.clone()),
                        None if !default.is_empty() => vars.insert(k.clone(), default),
                        None => before_from
                            .get(&k)
                            .and_then(|v| vars.insert(k.clone(), v.clone())),
                    };
                    declared.insert(k);
                }
            }
            "ENV" => {
                // ENV expands names too: the agent's own come from ARGs.
                for (k, v) in assignments(&step.args) {
                    let (k, v) = (expand(&k, &vars), expand(&v, &vars));
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
                        let Some((name, version)) = pinned_package(spec, install.npm) else {
                            wrong.push(format!(
                                "line {}: {spec} is not pinned to an exact version",
                                step.line
                            ));
                            continue;
                        };
                        if name == agent.text("package")
                            && install.npm == (agent.text("base") == "node")
                        {
                            agent_installed = true;
                            if version != agent.text("version") {
                                wrong.push(format!(
                                    "line {}: {spec}, not the table's version",
                                    step.line
                                ));
                            }
                            wrong.extend(agent_install(step, &install, agent, &env));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if !agent_installed {
        wrong.push(format!("{} is never installed", agent.text("package")));
    }
    for name in args.keys().filter(|name| !declared.contains(*name)) {
        wrong.push(format!(
            "--build-arg {name} is not declared (docker would ignore it)"
        ));
    }

    // No self-updates: the base's switches, the agent's own, or its file.
    let wanted = base_env(agent.text("base"))
        .iter()
        .copied()
        .chain(agent.pairs("image_env"))
        .chain([("AGENT_BINARY", agent.text("binary"))]);
    for (key, value) in wanted {
        if env.get(key).map(String::as_str) != Some(value) {
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
    let file = agent.text("image_file");
    if !file.is_empty() {
        let text = agent.text("image_file_text");
        let given = (vars.get("IMAGE_FILE"), vars.get("IMAGE_FILE_TEXT"));
        let writes = r#"printf '%b\n' "$IMAGE_FILE_TEXT" > "$IMAGE_FILE""#;
        if given != (Some(&file.to_string()), Some(&text.to_string()))
            || !of("RUN").any(|s| s.args.contains(writes))
        {
            wrong.push(format!("no RUN writes image_file {file}"));
        }
        if !file.starts_with('/') || file.starts_with("/home/") || file.starts_with("/tmp/") {
            wrong.push(format!(
                "image_file {file}: HOME and /tmp are sandbox's at run time"
            ));
        }
    }

    // git, ps, ripgrep and certificates, without recommends and without lists.
    match of("RUN").find(|s| s.args.contains("apt-get install")) {
        None => wrong.push("no apt-get install of git, procps, ripgrep, ca-certificates".into()),
        Some(step) => {
            let words: Vec<&str> = step.args.split_whitespace().collect();
            for needed in [
                "ca-certificates",
                "git",
                "procps",
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
    if cmd != [CMD] {
        wrong.push(format!("CMD must be {CMD} once, not {cmd:?}"));
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
    let agents = agents();
    let local = local_bases();
    let mut report = Vec::new();
    // On the published bases, and on the ones made here.
    for bases in ["published", "local"] {
        let run = make("images", &[&format!("BASES={bases}")], &[], &[]);
        assert!(run.ok, "BASES={bases}: {}", run.stderr);
        let builds = run.builds();
        assert_eq!(
            builds.len(),
            agents.len(),
            "BASES={bases}: one build per agent: {builds:#?}"
        );
        for (agent, build) in agents.iter().zip(&builds) {
            let (name, base) = (agent.text("name"), agent.text("base"));
            let path = format!("images/agents/{base}.Dockerfile");
            assert_eq!(build.dockerfile, path, "{name}");
            assert_eq!(build.tag, agent.text("image"), "{name}");
            assert_eq!(build.context, "images/agents", "{name}");
            let given = build.args.get("BASE");
            match bases {
                "local" => assert_eq!(given, local.get(base), "{name}: BASE"),
                _ => assert_eq!(given, None, "{name}: the Dockerfile's own base"),
            }
            let text = std::fs::read_to_string(root().join(&path))
                .unwrap_or_else(|e| panic!("{path}, the base of {name}: {e}"));
            for problem in problems(&text, agent, &build.args) {
                report.push(format!("{path} for {name}, BASES={bases}: {problem}"));
            }
        }
    }
    assert!(report.is_empty(), "\n{}", report.join("\n"));
}

#[test]
fn the_table_is_complete() {
    let agents = agents();
    let mut report = Vec::new();
    for agent in &agents {
        let name = agent.text("name");
        // Every agent updates itself unless told not to, by a variable or a file.
        let file = agent.text("image_file");
        if agent.pairs("image_env").is_empty() && file.is_empty() {
            report.push(format!(
                "{name}: nothing turns its updates off (image_env, image_file)"
            ));
        }
        if file.is_empty() != agent.text("image_file_text").is_empty() {
            report.push(format!(
                "{name}: image_file and image_file_text go together"
            ));
        }
    }
    assert!(report.is_empty(), "{}:\n{}", table::PATH, report.join("\n"));

    // One Dockerfile per base, each of them used.
    let bases: BTreeSet<String> = agents
        .iter()
        .map(|a| format!("{}.Dockerfile", a.text("base")))
        .collect();
    let files: BTreeSet<String> = std::fs::read_dir(root().join("images/agents"))
        .expect("images/agents")
        .map(|e| {
            e.expect("readable")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|f| f.ends_with(".Dockerfile"))
        .collect();
    assert_eq!(
        bases, files,
        "the bases in agents.txt, and images/agents/*.Dockerfile"
    );
}

#[test]
fn make_images_builds_the_agents_named_and_goes_on_past_a_failure() {
    let agents = agents();
    let tags = |builds: &[Build]| builds.iter().map(|b| b.tag.clone()).collect::<Vec<_>>();
    let all: Vec<String> = agents.iter().map(|a| a.text("image").to_string()).collect();
    let (first, last) = (&agents[0], &agents[agents.len() - 1]);

    // The first fails: the others are still built, then make fails naming it.
    let (ok, stderr, builds) = make_images(&[], first.text("image"));
    assert!(!ok, "a failed build fails make images");
    assert_eq!(tags(&builds), all, "every agent, in the table's order");
    let failed = format!("make images: failed: {} ", first.text("name"));
    assert!(stderr.contains(&failed), "{stderr}");

    // Some, by name, in the order asked.
    let named = format!("AGENTS={} {}", last.text("name"), first.text("name"));
    let (ok, stderr, builds) = make_images(&[&named], "");
    assert!(ok, "{stderr}");
    assert_eq!(tags(&builds), [last.text("image"), first.text("image")]);

    // A name the table lacks fails, and says so; the others are built.
    let named = format!("AGENTS=nosuch {}", last.text("name"));
    let (ok, stderr, builds) = make_images(&[&named], "");
    assert!(!ok);
    assert!(
        stderr.contains("no agent `nosuch`") && stderr.contains("failed: nosuch "),
        "{stderr}"
    );
    assert_eq!(tags(&builds), [last.text("image")]);
}

#[test]
fn make_images_is_listed_and_the_example_names_every_agent_image() {
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let phony = makefile
        .lines()
        .find(|l| l.starts_with(".PHONY:"))
        .expect(".PHONY");
    for target in ["images", "bases"] {
        assert!(phony.split_whitespace().any(|t| t == target), "{phony}");
        assert!(makefile
            .lines()
            .any(|l| l.starts_with(&format!("{target}:"))));
        assert!(
            makefile.contains(&format!("@echo \"make {target}")),
            "a `make help` line for {target}"
        );
    }

    // CI has no registry: it makes the local bases, with the mmdebstrap
    // `make engine` installs.
    let packages = makefile_var("ENGINE_PACKAGES");
    assert!(
        packages.split_whitespace().any(|p| p == "mmdebstrap"),
        "{packages}"
    );
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let (engine, images, waited, test) = (
        ci.find("\nmake engine\n"),
        ci.find("\nmake images BASES=local "),
        ci.find("wait \"$images\""),
        ci.find("\nmake test\n"),
    );
    assert!(
        [engine, images, waited, test].iter().all(Option::is_some)
            && engine < images
            && images < waited
            && waited < test,
        ".ci/run: `make images BASES=local` after `make engine`, waited for before `make test`"
    );

    // The example spells out every agent's profile; src/config/mod.rs checks
    // that what it says is the built-in one.
    let example = std::fs::read_to_string(root().join("config.example.yaml")).unwrap();
    for agent in agents() {
        let (name, image) = (agent.text("name"), agent.text("image"));
        assert!(
            example.contains(&format!("\n  {name}:\n    image: {image}\n")),
            "config.example.yaml: agents.{name}.image: {image}"
        );
    }
}

#[test]
fn make_images_makes_the_local_bases_it_lacks_once_and_goes_on_past_one() {
    let agents = agents();
    let local = local_bases();
    let debian = makefile_var("DEBIAN_BASE");
    let (node, python) = (&local["node"], &local["python"]);
    let all = [debian.as_str(), node, python];

    // Nothing there: one Debian root, bootstrapped and imported, then each
    // base when the first agent on it comes, each agent on its own base.
    let run = make("images", &["BASES=local"], &[], &all);
    assert!(run.ok, "{}", run.stderr);
    let lines = run.lines();
    let made: Vec<&String> = lines
        .iter()
        .filter(|l| {
            l.starts_with("mmdebstrap") || l.contains(" import ") || l.contains("images/bases/")
        })
        .collect();
    assert_eq!(made.len(), 4, "{lines:#?}");
    assert!(
        made[0].starts_with("mmdebstrap --variant=minbase"),
        "{}",
        made[0]
    );
    assert!(made[1].ends_with(&format!(".tar {debian}")), "{}", made[1]);
    let bases = run.builds_of("images/bases/");
    let order: Vec<(&str, &str)> = bases
        .iter()
        .map(|b| (b.dockerfile.as_str(), b.tag.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("images/bases/node.Dockerfile", node.as_str()),
            ("images/bases/python.Dockerfile", python.as_str())
        ]
    );
    for base in &bases {
        assert_eq!(base.args.get("DEBIAN"), Some(&debian));
        assert_eq!(base.context, "images/bases");
    }
    let position = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
    for agent in &agents {
        let tag = &local[agent.text("base")];
        assert!(
            position(&format!("-t {tag} ")) < position(&format!("-t {} ", agent.text("image"))),
            "{}'s base is built before it: {lines:#?}",
            agent.text("name")
        );
    }

    // The mirror and the host's certificate authorities are the Makefile's.
    let mmdebstrap = &run.calls.iter().find(|c| c[0] == "mmdebstrap").unwrap()[1..];
    for source in [
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    ] {
        assert!(mmdebstrap.iter().any(|a| a == source), "{mmdebstrap:#?}");
    }
    assert!(
        mmdebstrap
            .iter()
            .any(|a| a.contains("host-cas.awk")
                && a.ends_with("'/etc/ssl/certs/ca-certificates.crt'")),
        "{mmdebstrap:#?}"
    );

    // All there: nothing is made, unless FORCE=1.
    let run = make("images", &["BASES=local"], &[], &[]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.builds_of("images/bases/").len(), 0);
    assert!(!run.lines().iter().any(|l| l.starts_with("mmdebstrap")));
    let run = make("bases", &["FORCE=1"], &[], &[]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.builds_of("images/bases/").len(), 2);
    assert_eq!(run.builds_of("images/agents/").len(), 0);
    assert_eq!(
        run.lines()
            .iter()
            .filter(|l| l.starts_with("mmdebstrap"))
            .count(),
        1
    );

    // The node base fails: its agents are not built, aider is, and make fails
    // naming them; the Debian root is bootstrapped once.
    let run = make("images", &["BASES=local"], &[node], &all);
    assert!(!run.ok);
    let on_node: Vec<&str> = agents
        .iter()
        .filter(|a| a.text("base") == "node")
        .map(|a| a.text("name"))
        .collect();
    let failed = format!("make images: failed: {} (see above)", on_node.join(" "));
    assert!(run.stderr.contains(&failed), "{}", run.stderr);
    assert!(
        run.stderr.contains("its base, node, was not"),
        "{}",
        run.stderr
    );
    let built: Vec<String> = run.builds().iter().map(|b| b.tag.clone()).collect();
    assert_eq!(built, [find(&agents, "aider").text("image")]);
    assert_eq!(run.builds_of("images/bases/").len(), 2, "python's too");

    // No mmdebstrap: one line that says what to do, and nothing built.
    let run = make(
        "images",
        &["BASES=local", "MMDEBSTRAP=/nonexistent/mmdebstrap"],
        &[],
        &all,
    );
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("/nonexistent/mmdebstrap is not installed (make engine installs it"),
        "{}",
        run.stderr
    );
    assert!(run.builds_of("").is_empty(), "{:#?}", run.lines());

    // BASES is one of two words.
    let run = make("images", &["BASES=remote"], &[], &[]);
    assert!(!run.ok);
    assert_eq!(
        run.stderr.lines().next(),
        Some("make images: BASES=remote: published (the default) or local")
    );
    assert!(run.calls.is_empty());
}

#[test]
fn the_local_bases_are_what_the_agent_dockerfiles_take_of_the_published_ones() {
    let local = local_bases();
    let debian = makefile_var("DEBIAN_BASE");
    let read = |path: &str| std::fs::read_to_string(root().join(path)).unwrap();
    let names: BTreeSet<String> = agents()
        .iter()
        .map(|a| a.text("base").to_string())
        .collect();
    assert_eq!(
        names,
        local.keys().cloned().collect(),
        "a local base for each base"
    );
    for (name, tag) in &local {
        let path = format!("images/bases/{name}.Dockerfile");
        let text = read(&path);
        let steps = parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(is_pinned(tag), "LOCAL_BASES: {tag}");
        assert_eq!(arg_default(&text, "DEBIAN"), Some(debian.clone()), "{path}");
        for from in steps.iter().filter(|s| s.keyword == "FROM") {
            assert_eq!(
                from_image(&from.args),
                "${DEBIAN}",
                "{path}:{}: on the Debian root",
                from.line
            );
        }
        // What it downloads, apt's downloader checks against a sha512.
        let defaults: BTreeMap<String, String> = steps
            .iter()
            .filter(|s| s.keyword == "ARG")
            .flat_map(|s| assignments(&s.args))
            .collect();
        for run in steps.iter().filter(|s| s.keyword == "RUN") {
            for word in ["curl", "wget"] {
                assert!(
                    !run.args.split_whitespace().any(|w| w == word),
                    "{path}:{}: {word}, whose download nothing checks",
                    run.line
                );
            }
            let run_args = expand(&run.args, &defaults);
            for fetch in run_args.split("&&").filter(|c| c.contains("download-file")) {
                let hash = fetch.split_whitespace().last().unwrap().trim_matches('"');
                let sha512 = hash.strip_prefix("SHA512:").unwrap_or("");
                assert!(
                    sha512.len() == 128 && sha512.chars().all(|c| c.is_ascii_hexdigit()),
                    "{path}:{}: a download not checked against a sha512: {fetch}",
                    run.line
                );
            }
        }
    }

    // Node: the published base's version, which the tag says, and its user.
    let published = arg_default(&read("images/agents/node.Dockerfile"), "BASE").unwrap();
    let version = published
        .split_once(':')
        .unwrap()
        .1
        .split('-')
        .next()
        .unwrap();
    let text = read("images/bases/node.Dockerfile");
    assert_eq!(arg_default(&text, "NODE_VERSION").as_deref(), Some(version));
    assert_eq!(
        local["node"],
        format!("sandbox-agents/base-node:{version}-bookworm")
    );
    assert!(
        text.contains("groupadd --gid 1000 node")
            && text.contains("useradd --uid 1000 --gid node --shell /bin/bash --create-home node"),
        "images/bases/node.Dockerfile: the user `node` node.Dockerfile renames"
    );
    for program in ["npm", "npx"] {
        assert!(
            text.contains(&format!("/usr/local/bin/{program}")),
            "images/bases/node.Dockerfile: {program} on PATH"
        );
    }

    // Python: `python` and venv, at the version the tag says.
    let text = read("images/bases/python.Dockerfile");
    let version = arg_default(&text, "PYTHON_VERSION").unwrap();
    assert_eq!(
        local["python"],
        format!("sandbox-agents/base-python:{version}-bookworm")
    );
    for package in ["python3", "python3-venv", "python-is-python3"] {
        assert!(
            text.split_whitespace().any(|w| w == package),
            "images/bases/python.Dockerfile: {package}"
        );
    }
}

/// A table value as the Dockerfiles' `printf '%b\n'` writes it.
fn printf_b(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out + "\n"
}

#[test]
fn codex_neither_updates_nor_sandboxes_itself_in_its_container() {
    let agents = agents();
    let codex = find(&agents, "codex");
    assert_eq!(codex.text("image_file"), "/etc/codex/config.toml");
    let file = printf_b(codex.text("image_file_text"));
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(
        lines,
        [
            "check_for_update_on_startup = false",
            "sandbox_mode = \"danger-full-access\""
        ]
    );
    assert_eq!(printf_b(r"a\\n\nb"), "a\\n\nb\n");
}

/// The arguments `make images` passes `agent`, for the checks below.
fn build_args(agent: &Stanza) -> BTreeMap<String, String> {
    let (_, _, builds) = make_images(&[&format!("AGENTS={}", agent.text("name"))], "");
    builds.into_iter().next().expect("one build").args
}

#[test]
fn a_careless_dockerfile_is_caught() {
    let careless = "FROM node:22\n\
        RUN apt-get update && apt-get install -y git\n\
        RUN npm install -g @anthropic-ai/claude-code\n\
        ENV CLAUDE_CONFIG_DIR=/home/sandbox/.claude\n\
        USER node\n\
        ENTRYPOINT [\"claude\"]\n";
    let agents = agents();
    let claude = find(&agents, "claude");
    let found = problems(careless, claude, &build_args(claude)).join("\n");
    for expected in [
        "FROM node:22 is not pinned",
        "@anthropic-ai/claude-code is not pinned",
        "--build-arg VERSION is not declared",
        "ENV NPM_CONFIG_UPDATE_NOTIFIER=false is missing",
        "ENV DISABLE_AUTOUPDATER=1 is missing",
        "ENV AGENT_BINARY=claude is missing",
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

    // Pinned, but to another version; it would go on without the table's
    // arguments and never checks the binary; the file is never written.
    let unguarded = "FROM node:22.23.3\nARG PACKAGE\nARG VERSION\nARG BINARY\n\
        RUN npm install -g --omit=dev ${PACKAGE}@1.0.0 && npm cache clean --force\n";
    let codex = find(&agents, "codex");
    let found = problems(unguarded, codex, &build_args(codex)).join("\n");
    for expected in [
        "@openai/codex@1.0.0, not the table's version",
        "goes on without --build-arg PACKAGE",
        "goes on without --build-arg VERSION",
        "does not check that `codex` is on PATH",
        "--build-arg IMAGE_FILE is not declared",
        "no RUN writes image_file /etc/codex/config.toml",
    ] {
        assert!(found.contains(expected), "{expected:?} not in:\n{found}");
    }
    assert!(!found.contains("not pinned"), "{found}");

    // A base it is given and does not build on.
    let fixed = "ARG BASE=node:22.23.3-bookworm-slim\nFROM node:22.23.3-bookworm-slim\n";
    let mut args = build_args(claude);
    args.insert("BASE".into(), local_bases()["node"].clone());
    let found = problems(fixed, claude, &args).join("\n");
    let expected = format!(
        "FROM node:22.23.3-bookworm-slim, not the base it is given ({})",
        args["BASE"]
    );
    assert!(found.contains(&expected), "{expected:?} not in:\n{found}");
}
