//! The project manifest, `.sandbox.yml` in the workspace root: setup steps
//! and per-project settings layered over the user's configuration.
//!
//! The file comes with the code, so it is as untrusted as the code: it may
//! tighten what the user's configuration allows, never loosen it. It cannot
//! let host variables in (only set constants), raise a limit, turn the
//! network on or pick a weaker seccomp profile, and its `env.set` cannot
//! name credentials, endpoints or loader variables ([`refused_name`]). It
//! sits on the default protected paths, so a sandboxed command cannot rewrite
//! it for the next run.
//!
//! It is read as an untrusted file too: only a regular file of its own
//! (never through a link, never a pipe or device), at most [`MAX_SIZE`], and
//! its contents never appear in an error beyond a key and a line number.
//! Its setup steps run in a container of their own that holds no secret
//! (`run/setup.rs`); [`setup_argv`] is the script that container runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

use super::types::duration_text;
use super::{Config, Cpus, Network, PidsLimit, SeccompSpec, Size};

mod file;
mod refused;

use file::{read_untrusted, redacted, shown_key};
use refused::refused_name;
pub use refused::steers_an_agent;

pub const FILE: &str = ".sandbox.yml";
/// The largest project file sandbox reads: a real one is a few hundred bytes.
pub const MAX_SIZE: u64 = 1 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// The image for every command in this project.
    image: Option<String>,
    /// Command basename → image, over `image`.
    #[serde(default)]
    images: BTreeMap<String, String>,
    /// Shell commands run, in order, in a container of their own before the
    /// command's.
    #[serde(default)]
    pub setup: Vec<String>,
    #[serde(default)]
    env: ProjectEnv,
    #[serde(default)]
    container: ProjectContainer,
    #[serde(default)]
    security: ProjectSecurity,
    #[serde(default)]
    network: ProjectNetwork,
}

/// A project's allow-list: within the user's, never wider (checked when
/// the run is planned). No `resolve`: where a name leads is the user's to say.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectNetwork {
    allow: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectEnv {
    /// Constants set in the container; never a host value, never a name
    /// [`refused_name`] refuses.
    #[serde(default)]
    set: BTreeMap<String, String>,
    /// More globs to hold back.
    #[serde(default)]
    block: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectContainer {
    memory: Option<Size>,
    cpus: Option<Cpus>,
    pids_limit: Option<PidsLimit>,
    tmpfs_size: Option<Size>,
    #[serde(default, with = "duration_text")]
    timeout: Option<Duration>,
    network: Option<Network>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectSecurity {
    seccomp: Option<SeccompSpec>,
    read_only_workspace: Option<bool>,
    #[serde(default)]
    protected_paths: Vec<String>,
}

/// A loaded manifest and where it came from.
#[derive(Debug)]
pub struct Manifest {
    pub path: PathBuf,
    pub project: Project,
}

/// The manifest in `workspace`, if there is one.
pub fn load(workspace: &Path) -> Result<Option<Manifest>> {
    let path = workspace.join(FILE);
    // A run's stand-in for a missing file (`protect/`) is no project file.
    if std::fs::symlink_metadata(&path).is_ok_and(|m| crate::protect::is_placeholder(&m)) {
        return Ok(None);
    }
    let Some(text) = read_untrusted(&path)? else {
        return Ok(None);
    };
    let project =
        parse(&text).with_context(|| format!("invalid project file {}", path.display()))?;
    Ok(Some(Manifest { path, project }))
}

pub fn parse(text: &str) -> Result<Project> {
    if text.trim().is_empty() {
        return Ok(Project::default());
    }
    let project: Project = serde_yaml::from_str(text).map_err(|e| anyhow!(redacted(&e)))?;
    if let Some(i) = project.setup.iter().position(|s| s.trim().is_empty()) {
        bail!("setup[{i}]: the command is empty");
    }
    if project
        .image
        .as_deref()
        .is_some_and(|i| i.trim().is_empty())
    {
        bail!("image: the image name is empty");
    }
    if let Some((command, _)) = project.images.iter().find(|(_, i)| i.trim().is_empty()) {
        bail!("images.{}: the image name is empty", shown_key(command));
    }
    Ok(project)
}

impl Project {
    /// `config` with this project over it. Returns the notes a person should
    /// see: requests the project made that the user's configuration does not
    /// allow, and which were therefore not granted.
    pub fn apply(&self, config: &mut Config) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        if let Some(image) = &self.image {
            config.images = BTreeMap::from([("default".to_string(), image.clone())]);
        }
        config.images.extend(self.images.clone());
        for name in self.env.set.keys() {
            if let Some(rule) = refused_name(name, config) {
                bail!(
                    "env.set.{}: a project file may not set credentials, endpoints or loader \
                     variables ({rule}) — set it in your own configuration or with -e",
                    shown_key(name)
                );
            }
        }
        config.env.set.extend(self.env.set.clone());
        super::extend_unique(&mut config.env.block, self.env.block.clone());
        super::extend_unique(
            &mut config.security.protected_paths,
            self.security.protected_paths.clone(),
        );

        let c = &self.container;
        let mine = &mut config.container;
        lower(&mut mine.memory, c.memory, "container.memory", &mut notes);
        lower(
            &mut mine.tmpfs_size,
            c.tmpfs_size,
            "container.tmpfs_size",
            &mut notes,
        );
        lower(
            &mut mine.pids_limit,
            c.pids_limit,
            "container.pids_limit",
            &mut notes,
        );
        lower_optional(&mut mine.cpus, c.cpus, "container.cpus", &mut notes);
        lower_optional(
            &mut mine.timeout,
            c.timeout,
            "container.timeout",
            &mut notes,
        );
        match &c.network {
            None => {}
            Some(Network::None) => mine.network = Network::None,
            // The allow-list is narrower than any network but none.
            Some(Network::Allow) if mine.network != Network::None => {
                mine.network = Network::Allow;
                for agent in config.agents.values_mut() {
                    if agent.network.as_deref() != Some("none") {
                        agent.network = Some(Network::Allow.to_string());
                    }
                }
            }
            Some(Network::Allow) => {}
            Some(_) => bail!(
                "container.network: a project file may only turn the network off (none) or \
                 down to the allow-list (allow) — set other networks in your own configuration \
                 or with --network"
            ),
        }
        if let Some(allow) = &self.network.allow {
            crate::egress::policy::expand(allow).context("network.allow")?;
            config.network.project = Some(allow.clone());
        }

        let s = &self.security;
        match &s.seccomp {
            None => {}
            Some(spec) if *spec == config.security.seccomp => {}
            Some(SeccompSpec::Strict) => config.security.seccomp = SeccompSpec::Strict,
            Some(_) => bail!(
                "security.seccomp: a project file may only choose the stricter built-in profile \
                 (strict) — choose others with --seccomp"
            ),
        }
        if s.read_only_workspace == Some(true) {
            config.security.read_only_workspace = true;
        }
        config.validate()?;
        Ok(notes)
    }
}

/// A limit as a person writes it in the configuration.
trait Limit: PartialOrd + Copy {
    fn show(&self) -> String;
}

impl Limit for Size {
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Limit for PidsLimit {
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Limit for Cpus {
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Limit for Duration {
    fn show(&self) -> String {
        humantime::format_duration(*self).to_string()
    }
}

/// Takes the project's value when it is lower than ours.
fn lower<T: Limit>(mine: &mut T, theirs: Option<T>, key: &str, notes: &mut Vec<String>) {
    let Some(theirs) = theirs else { return };
    if theirs <= *mine {
        *mine = theirs;
    } else {
        notes.push(raise_refused(key, &theirs.show(), &mine.show()));
    }
}

/// As `lower`, where `None` means no limit.
fn lower_optional<T: Limit>(
    mine: &mut Option<T>,
    theirs: Option<T>,
    key: &str,
    notes: &mut Vec<String>,
) {
    let Some(theirs) = theirs else { return };
    match mine {
        Some(current) => lower(current, Some(theirs), key, notes),
        None => *mine = Some(theirs),
    }
}

fn raise_refused(key: &str, theirs: &str, mine: &str) -> String {
    format!(
        "{FILE} asks for {key} {theirs}, above your {mine}; your limit stays — raise {key} in \
         your configuration to allow it"
    )
}

/// The command line of the setup container: each step in a subshell of its
/// own, as a Makefile line runs, so an `exit` in one is that step's status;
/// with no stdin and its output on stderr, so the command's stdout stays its
/// own. The first failing step ends it with that step's status and a line
/// naming the step.
pub fn setup_argv(setup: &[String]) -> Vec<String> {
    let mut script = String::new();
    for (i, step) in setup.iter().enumerate() {
        script.push_str(&format!(
            "( {step}\n) </dev/null 1>&2 || {{ s=$?; echo \"sandbox: {FILE} setup step {} \
             failed with status $s: \"{} >&2; exit $s; }}\n",
            i + 1,
            crate::shell::quote(step)
        ));
    }
    script.push_str("exit 0\n");
    vec![
        "/bin/sh".into(),
        "-c".into(),
        script,
        "sandbox-setup".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(text: &str, config: &mut Config) -> Result<Vec<String>> {
        parse(text)?.apply(config)
    }

    #[test]
    fn a_project_tightens() {
        let mut c = Config::default();
        let notes = applied(
            "container:\n  memory: 1g\n  pids_limit: 64\n  network: none\n  timeout: 5m\n\
             security:\n  seccomp: strict\n  read_only_workspace: true\n",
            &mut c,
        )
        .unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(c.container.memory, Size(1 << 30));
        assert_eq!(c.container.pids_limit, 64);
        assert_eq!(c.container.network, Network::None);
        assert_eq!(c.container.timeout, Some(Duration::from_secs(300)));
        assert_eq!(c.security.seccomp, SeccompSpec::Strict);
        assert!(c.security.read_only_workspace);
    }

    #[test]
    fn a_project_never_loosens() {
        let mut c = Config::default();
        let notes = applied("container:\n  memory: 64g\n  pids_limit: 100000\n", &mut c).unwrap();
        assert_eq!(c.container.memory, Config::default().container.memory);
        assert_eq!(c.container.pids_limit, 512);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("container.memory"), "{notes:?}");

        for refused in [
            "container:\n  network: host\n",
            "security:\n  seccomp: debug\n",
            "security:\n  seccomp: /tmp/allow-all.json\n",
            "env:\n  allow: [DATABASE_URL]\n",
        ] {
            assert!(
                applied(refused, &mut Config::default()).is_err(),
                "{refused}"
            );
        }
        let mut c = Config::default();
        applied("security:\n  read_only_workspace: false\n", &mut c).unwrap();
        assert!(!c.security.read_only_workspace);
        let before = c.env.block.clone();
        applied("env:\n  block: [MY_*]\n", &mut c).unwrap();
        assert!(before.iter().all(|b| c.env.block.contains(b)));
    }

    #[test]
    fn the_project_image_wins_over_the_users_map() {
        let mut c = Config::default();
        applied("image: my/dev:1\nimages:\n  node: my/node:1\n", &mut c).unwrap();
        assert_eq!(c.images["default"], "my/dev:1");
        assert_eq!(c.images["node"], "my/node:1");
        assert!(!c.images.contains_key("python"));
    }

    #[test]
    fn mistakes_name_the_key() {
        let err = parse("setup:\n  - make\n  - ''\n").unwrap_err().to_string();
        assert!(err.contains("setup[1]"), "{err}");
        let err = parse("stup:\n  - make\n").unwrap_err().to_string();
        assert!(err.contains("stup"), "{err}");
        let err = parse("container:\n  memroy: 1g\n").unwrap_err().to_string();
        assert!(err.contains("memroy") && err.contains("line 2"), "{err}");
        assert!(err.contains("`memory`"), "the schema's keys stay: {err}");
        let err = parse("container:\n  memory: lots\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("container.memory") && err.contains("line 2"),
            "{err}"
        );
        assert!(err.contains("not a size"), "{err}");
    }

    #[test]
    fn values_never_reach_an_error() {
        let secret = "sk-ant-secret-value";
        for text in [
            format!("container:\n  memory: {secret}\n"),
            format!("container:\n  timeout: {secret}\n"),
            format!("container:\n  pids_limit: {secret}\n"),
            format!("container:\n  cpus: \"{secret}\"\n"),
            format!("setup: {secret}\n"),
            format!("setup:\n  - [{secret}]\n"),
            format!("image: [{secret}]\n"),
            format!("security:\n  read_only_workspace: {secret}\n"),
            format!("env:\n  set:\n    A: [{secret}]\n"),
            format!("{secret}\n"),
            format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{secret}\n"),
            format!("image: a\nimage: {secret}\n"),
            format!("image: \"{secret}\n"),
            format!("container:\n  pids_limit: \"a\\\" {secret} \\\"\"\n"),
        ] {
            let err = parse(&text).expect_err(&text);
            let line = format!("{err:#}");
            assert!(!line.contains(secret), "{line}");
            assert!(!line.contains("sk-ant"), "{line}");
        }
        let err = parse("container:\n  timeout: [1]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("container.timeout") && err.contains("line 2"),
            "{err}"
        );
        let err = parse("container:\n  cpus: many\n").unwrap_err().to_string();
        assert!(
            err.contains("container.cpus") && err.contains("expected"),
            "{err}"
        );
    }

    #[test]
    fn a_refused_name_is_one_line_naming_key_and_rule() {
        let err = applied(
            "env:\n  set:\n    PYTHONDONTWRITEBYTECODE: '1'\n    ANTHROPIC_BASE_URL: http://evil.example\n",
            &mut Config::default(),
        )
        .unwrap_err();
        let line = format!("{err:#}");
        assert!(line.contains("env.set.ANTHROPIC_BASE_URL"), "{line}");
        assert!(line.contains("*_BASE_URL"), "{line}");
        assert!(!line.contains("evil"), "{line}");
        assert!(!line.contains('\n'), "{line}");
        let mut c = Config::default();
        applied("env:\n  set:\n    PYTHONDONTWRITEBYTECODE: '1'\n", &mut c).unwrap();
        assert_eq!(c.env.set["PYTHONDONTWRITEBYTECODE"], "1");
    }

    #[test]
    fn setup_steps_run_in_order_each_in_a_subshell() {
        let argv = setup_argv(&["pip install -r requirements.txt".into(), "echo 'hi'".into()]);
        assert_eq!(argv[..2], ["/bin/sh", "-c"]);
        assert_eq!(argv[3..], ["sandbox-setup"]);
        let script = &argv[2];
        let first = script.find("pip install").unwrap();
        assert!(first < script.find("echo 'hi'").unwrap());
        assert!(script.contains("</dev/null 1>&2"), "{script}");
        assert!(script.ends_with("exit 0\n"), "{script}");
        assert!(script.contains(r"'echo '\''hi'\'''"), "{script}");
    }

    #[test]
    fn setup_stops_at_the_first_failing_step_with_its_status() {
        let argv = setup_argv(&[
            "cd /".into(),
            "test \"$PWD\" != / && echo out; exit 4".into(),
            "echo never".into(),
        ]);
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4));
        assert!(out.stdout.is_empty(), "steps write to stderr");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("out\n"), "a step's cd stays in it: {err}");
        assert!(!err.contains("never"), "{err}");
        assert!(
            err.contains("sandbox: .sandbox.yml setup step 2 failed with status 4: test"),
            "{err}"
        );
    }
}
