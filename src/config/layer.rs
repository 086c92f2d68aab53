//! The one layering rule, lowest first: the built-in defaults, the user's
//! file (both in [`load`](super::load)), the project's `.sandbox.yml`
//! (tighten-only, [`Project::apply`](super::project::Project::apply)), the
//! environment (`DOCKER_HOST`), then flags. Whatever reads a setting after
//! this reads the result, never a flag.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};

use super::project::Manifest;
use super::{
    Config, Cpus, Network, PidsLimit, PullPolicy, SeccompSpec, Size, User, WorkspaceTransfer,
    DEFAULT_HOST,
};

/// The flags that stand for a configuration key, already parsed; `None` and
/// `false` leave the key to the layers below.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flags {
    pub host: Option<String>,
    pub memory: Option<Size>,
    pub cpus: Option<Cpus>,
    pub pids_limit: Option<PidsLimit>,
    pub user: Option<User>,
    pub network: Option<Network>,
    /// `--allow-host`: implies `--network allow`.
    pub allow_hosts: Vec<String>,
    /// `--resolve HOST:ADDRESS`.
    pub resolve: Vec<String>,
    pub seccomp: Option<SeccompSpec>,
    pub pull: Option<PullPolicy>,
    pub runtime: Option<String>,
    pub timeout: Option<Duration>,
    /// `--warm` or `--no-warm`.
    pub warm: Option<bool>,
    pub read_only_workspace: bool,
    pub copy_workspace: bool,
}

/// The configuration in force, and what the project file asked for but did
/// not get (to show as warnings).
#[derive(Debug)]
pub struct Layered {
    pub config: Config,
    pub notes: Vec<String>,
}

/// `file` (the defaults with the user's file over them), then the project,
/// the environment and `flags` over it. Afterwards `engine.host` holds the
/// engine chosen.
pub fn layer(
    file: Config,
    project: Option<&Manifest>,
    env: &BTreeMap<String, String>,
    flags: &Flags,
) -> Result<Layered> {
    let mut config = file;
    let notes = match project {
        Some(manifest) => manifest
            .project
            .apply(&mut config)
            .with_context(|| format!("invalid project file {}", manifest.path.display()))?,
        None => Vec::new(),
    };
    let mut host = config.engine.host.take();
    // The environment over the file, as for the docker CLI: it is the more
    // specific choice. A blank value names no engine at any layer.
    for layer in [env.get("DOCKER_HOST"), flags.host.as_ref()] {
        host = layer.filter(|h| !h.trim().is_empty()).cloned().or(host);
    }
    flags.apply(&mut config)?;
    config.engine.host = Some(
        host.filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string()),
    );
    Ok(Layered { config, notes })
}

impl Flags {
    fn apply(&self, config: &mut Config) -> Result<()> {
        let container = &mut config.container;
        container.memory = self.memory.unwrap_or(container.memory);
        container.cpus = self.cpus.or(container.cpus);
        container.pids_limit = self.pids_limit.unwrap_or(container.pids_limit);
        if let Some(user) = &self.user {
            container.user = Some(user.clone());
        }
        let network = match (&self.network, self.allow_hosts.is_empty()) {
            (Some(network), true) => Some(network),
            (None | Some(Network::Allow), false) => Some(&Network::Allow),
            (Some(other), false) => anyhow::bail!(
                "--allow-host goes with the allow-list (--network allow), not --network {other} — \
                 drop one of them"
            ),
            (None, true) => None,
        };
        config
            .network
            .flags
            .extend(self.allow_hosts.iter().cloned());
        config.network.resolve.extend(self.resolve.iter().cloned());
        let container = &mut config.container;
        if let Some(network) = network {
            container.network = network.clone();
            // A flag names the network of whatever runs, a coding agent too;
            // without one an agent keeps its own (`plan.rs`).
            for agent in config.agents.values_mut() {
                agent.network = Some(network.to_string());
            }
        }
        container.pull = self.pull.unwrap_or(container.pull);
        if let Some(timeout) = self.timeout {
            // `--timeout 0`, as `timeout: 0` in a file: no limit.
            container.timeout = Some(timeout).filter(|t| !t.is_zero());
        }
        if let Some(warm) = self.warm {
            container.warm = warm;
        }

        let security = &mut config.security;
        if let Some(seccomp) = &self.seccomp {
            security.seccomp = seccomp.clone();
        }
        if let Some(runtime) = &self.runtime {
            security.runtime = Some(runtime.clone());
        }
        security.read_only_workspace |= self.read_only_workspace;
        if self.copy_workspace {
            config.engine.workspace = WorkspaceTransfer::Copy;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, project};
    use std::path::PathBuf;

    fn manifest(text: &str) -> Manifest {
        Manifest {
            path: PathBuf::from("/ws/.sandbox.yml"),
            project: project::parse(text).unwrap(),
        }
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_layer_beats_the_one_below() {
        let memory = |file: &str, project: Option<&str>, flag: Option<&str>| {
            let project = project.map(manifest);
            let flags = Flags {
                memory: flag.map(|f| f.parse().unwrap()),
                ..Flags::default()
            };
            let layered = layer(parse(file).unwrap(), project.as_ref(), &env(&[]), &flags);
            layered.unwrap().config.container.memory.to_string()
        };
        let file = "container:\n  memory: 2g\n";
        let project = "container:\n  memory: 1g\n";
        assert_eq!(memory("", None, None), "4g", "the default");
        assert_eq!(memory(file, None, None), "2g", "the file over the default");
        assert_eq!(memory(file, Some(project), None), "1g", "the project");
        assert_eq!(memory(file, Some(project), Some("8g")), "8g", "the flag");
    }

    #[test]
    fn the_host_is_chosen_once_flag_environment_file_default() {
        let host = |file: &str, env_host: Option<&str>, flag: Option<&str>| {
            let env = env(&env_host
                .map(|h| ("DOCKER_HOST", h))
                .into_iter()
                .collect::<Vec<_>>());
            let flags = Flags {
                host: flag.map(String::from),
                ..Flags::default()
            };
            let config = layer(parse(file).unwrap(), None, &env, &flags)
                .unwrap()
                .config;
            assert_eq!(config.engine.host(), config.engine.host.as_deref().unwrap());
            config.engine.host.unwrap()
        };
        let file = "engine:\n  host: tcp://file:1\n";
        assert_eq!(host("", None, None), DEFAULT_HOST);
        assert_eq!(host(file, None, None), "tcp://file:1");
        assert_eq!(host(file, Some("tcp://env:2375"), None), "tcp://env:2375");
        assert_eq!(
            host(file, Some("tcp://env:2375"), Some("ssh://flag")),
            "ssh://flag"
        );
        assert_eq!(
            host(file, Some(" "), Some("")),
            "tcp://file:1",
            "blank names none"
        );
        assert_eq!(host("engine:\n  host: ''\n", None, None), DEFAULT_HOST);
        assert!(crate::engine::is_local(DEFAULT_HOST));
    }

    #[test]
    fn the_project_only_tightens_but_flags_may_loosen() {
        let project = manifest(
            "container:\n  memory: 64g\n  pids_limit: 64\n  network: none\n\
             security:\n  seccomp: strict\n",
        );
        let layered = layer(
            Config::default(),
            Some(&project),
            &env(&[]),
            &Flags::default(),
        )
        .unwrap();
        assert_eq!(layered.notes.len(), 1, "{:?}", layered.notes);
        assert!(layered.notes[0].contains("container.memory 64g"));
        let c = &layered.config.container;
        assert_eq!((c.memory, c.pids_limit.get()), (Size(4 << 30), 64));
        assert_eq!(c.network, Network::None);

        let flags = Flags {
            memory: Some("64g".parse().unwrap()),
            pids_limit: Some("1000".parse().unwrap()),
            network: Some(Network::Host),
            seccomp: Some(SeccompSpec::Debug),
            ..Flags::default()
        };
        let config = layer(Config::default(), Some(&project), &env(&[]), &flags)
            .unwrap()
            .config;
        assert_eq!(config.container.memory, Size(64 << 30));
        assert_eq!(config.container.pids_limit, 1000);
        assert_eq!(config.container.network, Network::Host);
        assert_eq!(config.security.seccomp, SeccompSpec::Debug);
        assert_eq!(
            config.agent("claude").unwrap().network,
            "host",
            "the flag names an agent's network too"
        );

        let err = layer(
            Config::default(),
            Some(&manifest("container:\n  network: host\n")),
            &env(&[]),
            &Flags::default(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").starts_with("invalid project file /ws/.sandbox.yml: "));
    }

    #[test]
    fn flags_set_what_they_name_and_leave_the_rest() {
        let file =
            parse("container:\n  user: app\n  timeout: 5m\nsecurity:\n  runtime: runsc\n").unwrap();
        let config = layer(file.clone(), None, &env(&[]), &Flags::default())
            .unwrap()
            .config;
        assert_eq!(config.container, file.container, "no flag, no change");
        assert_eq!(config.security, file.security);

        let flags = Flags {
            cpus: Some("1.5".parse().unwrap()),
            user: Some("1:2".parse().unwrap()),
            pull: Some(PullPolicy::Never),
            runtime: Some("runc".into()),
            timeout: Some(Duration::ZERO),
            warm: Some(true),
            read_only_workspace: true,
            copy_workspace: true,
            ..Flags::default()
        };
        let config = layer(file, None, &env(&[]), &flags).unwrap().config;
        let c = &config.container;
        assert_eq!(c.cpus.map(Cpus::get), Some(1.5));
        assert_eq!(c.user.as_ref().and_then(User::numeric), Some((1, 2)));
        assert_eq!(c.pull, PullPolicy::Never);
        assert_eq!(c.timeout, None, "--timeout 0 is no limit");
        assert!(c.warm && config.security.read_only_workspace);
        assert_eq!(config.security.runtime.as_deref(), Some("runc"));
        assert_eq!(config.engine.workspace, WorkspaceTransfer::Copy);
    }
}
