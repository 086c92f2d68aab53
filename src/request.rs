//! Pure: a resolved plan becomes the engine's create request, in one place,
//! with every piece of hardening spelled out so nothing depends on the
//! daemon's defaults. A plan makes up to four kinds of container, which
//! differ only where their purpose says so; the engine's dialect changes
//! how two options are written.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions};

use crate::cache;
use crate::config::project;
use crate::egress;
use crate::labels;
use crate::plan::{BindMount, RunPlan, Transfer, WORKDIR};

/// What the container is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The command itself.
    Run,
    /// The project's setup steps, before the command: the workspace and the
    /// cache, nothing personal (`run/setup.rs`).
    Setup,
    /// Never started: it fills a read-only copy's named volume, which the
    /// run's own container cannot write (`run/copy.rs`).
    Fill,
    /// Started ahead of time, waiting for the command on stdin (`warm.rs`).
    Warm,
}

/// How the engine reads the request.
#[derive(Debug, Clone, Copy)]
pub enum Dialect<'a> {
    Docker,
    /// Podman's Docker-compatible API reads the seccomp profile from a file
    /// on its own disk, and takes tmpfs ownership as its `U` option (chown
    /// to the container's user) rather than `uid=`/`gid=`, which it rejects.
    Podman {
        seccomp_file: &'a Path,
    },
}

/// The create request for `plan`'s container of `purpose`.
pub fn build(plan: &RunPlan, purpose: Purpose, dialect: Dialect) -> ContainerCreateBody {
    // Only the command's own container reads stdin or has a terminal; a
    // warm one reads the command line on its stdin.
    let (stdin, tty) = match purpose {
        Purpose::Run => (plan.io.stdin, plan.io.tty),
        Purpose::Warm => (true, false),
        Purpose::Setup | Purpose::Fill => (false, false),
    };
    let cmd = match purpose {
        Purpose::Run => Some(plan.task.argv.clone()),
        Purpose::Setup => Some(project::setup_argv(&plan.task.setup)),
        Purpose::Fill => Some(vec!["true".into()]),
        // The waiter, once the image is pinned (`Warm::pinned`).
        Purpose::Warm => None,
    };
    ContainerCreateBody {
        image: Some(plan.task.image.clone()),
        // The command runs as typed: the image's entrypoint would wrap it.
        entrypoint: Some(Vec::new()),
        cmd,
        env: Some(env(plan, purpose)),
        // Set explicitly: runc before 1.1.12 leaked a host directory through an
        // inherited working directory (CVE-2024-21626).
        working_dir: Some(WORKDIR.to_string()),
        user: Some(plan.hardening.user.clone()),
        tty: Some(tty),
        open_stdin: Some(stdin),
        // The container's stdin closes when ours reaches EOF.
        stdin_once: Some(stdin),
        attach_stdin: Some(stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        labels: Some(labels(plan, purpose)),
        host_config: Some(host_config(plan, purpose, dialect)),
        ..Default::default()
    }
}

/// The labels of a network made for `plan` (the allow-list's): whose it
/// is, so that it goes when its sandbox does.
pub fn network_labels(plan: &RunPlan) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (
            labels::WORKSPACE.to_string(),
            plan.workspace().to_string_lossy().into_owned(),
        ),
    ]);
    labels.extend(ownership(plan));
    labels
}

/// The egress container of `plan`'s allow-list (`egress/sidecar.rs`):
/// sandbox's own proxy from `image`, told `spec` (JSON). It runs as nobody,
/// with no capability, a read-only root, the default seccomp profile and
/// small limits; it joins the run's closed network as [`egress::ALIAS`]
/// here and the engine's default bridge before it starts.
pub fn egress(
    plan: &RunPlan,
    network: &str,
    image: &str,
    spec: &str,
    seccomp: &crate::seccomp::Profile,
) -> ContainerCreateBody {
    let mut labels = network_labels(plan);
    labels.insert(
        labels::COMMAND.to_string(),
        "(the allow-list's proxy)".to_string(),
    );
    let security_opt = vec![
        format!("seccomp={}", seccomp.json),
        "no-new-privileges".to_string(),
    ];
    let endpoint = bollard::models::EndpointSettings {
        aliases: Some(vec![egress::ALIAS.to_string()]),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(Vec::new()),
        cmd: Some(vec![egress::BINARY.to_string(), "egress-proxy".to_string()]),
        env: Some(vec![format!("{}={spec}", egress::SPEC_VAR)]),
        working_dir: Some("/".to_string()),
        user: Some("65534:65534".to_string()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        labels: Some(labels),
        host_config: Some(HostConfig {
            memory: Some(EGRESS_MEMORY),
            memory_swap: Some(EGRESS_MEMORY),
            pids_limit: Some(64),
            network_mode: Some(network.to_string()),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(security_opt),
            // Its decisions are read from the attach stream; kept in a log
            // they would grow on the engine's disk for as long as a command
            // asks for names.
            log_config: Some(bollard::models::HostConfigLogConfig {
                typ: Some("none".to_string()),
                config: None,
            }),
            ..Default::default()
        }),
        networking_config: Some(bollard::models::NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network.to_string(), endpoint)])),
        }),
        ..Default::default()
    }
}

/// The proxy holds a few buffers per connection.
const EGRESS_MEMORY: i64 = 256 << 20;

fn env(plan: &RunPlan, purpose: Purpose) -> Vec<String> {
    let entries = match purpose {
        Purpose::Setup => &plan.env.setup,
        _ => &plan.env.passed,
    };
    let mut env: Vec<String> = entries.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // docker-init (tini) passes a signal to its child alone: the setup
    // shell, which acts on it only once the running step has ended. Sent to
    // the process group, a Ctrl-C or the time limit reaches the step itself.
    if purpose == Purpose::Setup && plan.hardening.init {
        env.push("TINI_KILL_PROCESS_GROUP=1".into());
    }
    env
}

fn labels(plan: &RunPlan, purpose: Purpose) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (
            labels::WORKSPACE.to_string(),
            plan.workspace().to_string_lossy().into_owned(),
        ),
    ]);
    // A warm container's is set when it is claimed; everything else about
    // it must match the run's.
    let command = match purpose {
        Purpose::Run => Some(shorten(&plan.task.argv.join(" "), 200)),
        Purpose::Setup => Some(format!("(setup, {})", project::FILE)),
        Purpose::Fill => Some("(copying the workspace in)".to_string()),
        Purpose::Warm => None,
    };
    if let Some(command) = command {
        labels.insert(labels::COMMAND.to_string(), command);
    }
    if let Some(key) = &plan.workspace.protections.key {
        labels.insert(labels::GUARDS.to_string(), key.clone());
    }
    if purpose != Purpose::Warm {
        labels.extend(ownership(plan));
    }
    labels
}

/// Whose container it is, so that it goes when its sandbox does
/// (`reaper/`). A warm container's would name its preparer, and would be
/// part of the settings that name it: it has none.
fn ownership(plan: &RunPlan) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    if let Some(owner) = &plan.lifecycle.owner {
        labels.push((labels::OWNER.to_string(), owner.clone()));
    }
    if plan.lifecycle.keep {
        labels.push((labels::KEEP.to_string(), "true".to_string()));
    }
    if let Some(limit) = plan.limits.timeout {
        labels.push((labels::TIMEOUT.to_string(), limit.as_secs().to_string()));
    }
    labels
}

fn host_config(plan: &RunPlan, purpose: Purpose, dialect: Dialect) -> HostConfig {
    let hardening = &plan.hardening;
    let seccomp = match dialect {
        Dialect::Docker => format!("seccomp={}", hardening.seccomp.json),
        Dialect::Podman { seccomp_file } => format!("seccomp={}", seccomp_file.display()),
    };
    let mut security_opt = vec![seccomp];
    if hardening.no_new_privileges {
        security_opt.push("no-new-privileges".into());
    }
    let memory = i64::try_from(plan.limits.memory.bytes()).unwrap_or(i64::MAX);
    HostConfig {
        memory: Some(memory),
        // Left unset the daemon allows swap of twice the memory.
        memory_swap: Some(memory),
        nano_cpus: plan.limits.cpus.map(|c| (c * 1e9) as i64),
        pids_limit: Some(plan.limits.pids),
        network_mode: Some(hardening.network.clone()),
        readonly_rootfs: Some(hardening.read_only_root),
        cap_drop: hardening
            .drop_all_capabilities
            .then(|| vec!["ALL".to_string()]),
        security_opt: Some(security_opt),
        init: Some(hardening.init),
        runtime: hardening.runtime.clone(),
        mounts: Some(mounts(plan, purpose)),
        tmpfs: Some(tmpfs(plan, dialect)),
        log_config: log_config(plan),
        // MaskedPaths and ReadonlyPaths stay unset: the daemon applies its
        // defaults (/proc/kcore, /proc/sys, ...) only when they are absent.
        ..Default::default()
    }
}

/// No log: sandbox reads the output itself, never the engine's log, and a
/// log the engine makes, writes and deletes costs every run (a few percent
/// of a cold `true`). A kept container keeps the engine's default, for
/// `docker logs`.
fn log_config(plan: &RunPlan) -> Option<bollard::models::HostConfigLogConfig> {
    (!plan.lifecycle.keep).then(|| bollard::models::HostConfigLogConfig {
        typ: Some("none".to_string()),
        config: None,
    })
}

/// The daemon mounts tmpfs noexec by default; tools such as `go test` and
/// pip's build isolation execute from /tmp and HOME, so both allow exec.
/// HOME belongs to the container's user.
fn tmpfs(plan: &RunPlan, dialect: Dialect) -> HashMap<String, String> {
    let size = plan.limits.tmpfs_size;
    let shared = format!("rw,exec,nosuid,nodev,size={size},mode=1777");
    let home = match (plan.numeric_user(), dialect) {
        (None, _) => shared.clone(),
        (Some((uid, gid)), Dialect::Docker) => {
            format!("rw,exec,nosuid,nodev,size={size},mode=0700,uid={uid},gid={gid}")
        }
        (Some(_), Dialect::Podman { .. }) => {
            format!("rw,exec,nosuid,nodev,size={size},mode=0700,U")
        }
    };
    HashMap::from([
        ("/tmp".to_string(), shared),
        (plan.hardening.home.clone(), home),
    ])
}

fn mounts(plan: &RunPlan, purpose: Purpose) -> Vec<Mount> {
    plan.workspace
        .mounts
        .iter()
        .filter(|m| purpose != Purpose::Setup || is_for_setup(m, plan))
        .map(|m| match (&plan.workspace.transfer, m.target == WORKDIR) {
            (Transfer::Copy { volume, .. }, true) => workspace_volume(plan, m, volume, purpose),
            _ => Mount {
                target: Some(m.target.clone()),
                source: Some(m.source.to_string_lossy().into_owned()),
                typ: Some(MountType::BIND),
                read_only: Some(m.read_only),
                ..Default::default()
            },
        })
        .collect()
}

/// The engine cannot see the workspace: /work is a volume the workspace is
/// copied into. Only a named one can be read-only, and it is filled through
/// a container of its own; setup gets an anonymous one, gone with it.
fn workspace_volume(
    plan: &RunPlan,
    mount: &BindMount,
    volume: &Option<String>,
    purpose: Purpose,
) -> Mount {
    let (source, read_only) = match purpose {
        Purpose::Setup => (None, false),
        Purpose::Fill => (volume.clone(), false),
        Purpose::Run | Purpose::Warm => (volume.clone(), mount.read_only && volume.is_some()),
    };
    Mount {
        target: Some(mount.target.clone()),
        source,
        typ: Some(MountType::VOLUME),
        read_only: Some(read_only),
        // Labelled like the container, so its volume is findable too.
        volume_options: Some(MountVolumeOptions {
            labels: Some(HashMap::from([
                (labels::MANAGED.to_string(), "true".to_string()),
                (
                    labels::WORKSPACE.to_string(),
                    plan.workspace().to_string_lossy().into_owned(),
                ),
            ])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether setup gets `mount`: the workspace (with every mount that
/// protects it, its git directory included) and the package cache.
/// Everything else, the agent's state and the SSH agent's socket among it,
/// stays out; so does a state directory, wherever it is mounted.
fn is_for_setup(mount: &BindMount, plan: &RunPlan) -> bool {
    let target = mount.target.as_str();
    let under = |dir: &str| {
        target == dir
            || target
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    // A linked worktree's git directory is mounted beside /work.
    let in_work = under(WORKDIR) || under(crate::gitdir::LINKED_TARGET);
    let is_state = plan.workspace.state_dirs.contains(&mount.source);
    (in_work || target == cache::TARGET) && !is_state
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::for_test as plan_in;

    fn plan(argv: &[&str]) -> RunPlan {
        plan_in(argv, &[("LANG", "C.UTF-8")], "request")
    }

    fn run(plan: &RunPlan) -> ContainerCreateBody {
        build(plan, Purpose::Run, Dialect::Docker)
    }

    #[test]
    fn hardening_is_spelled_out() {
        let body = run(&plan(&[
            "--memory",
            "512m",
            "--pids-limit",
            "99",
            "--cpus",
            "1.5",
            "sh",
        ]));
        let hc = body.host_config.unwrap();
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.init, Some(true));
        assert_eq!(hc.memory, Some(512 << 20));
        assert_eq!(
            hc.memory_swap, hc.memory,
            "swap is capped at the memory limit"
        );
        assert_eq!(hc.pids_limit, Some(99));
        assert_eq!(hc.nano_cpus, Some(1_500_000_000));
        assert_eq!(
            hc.masked_paths, None,
            "never an empty list: it would unmask /proc"
        );
        assert_eq!(hc.readonly_paths, None);
        assert_eq!(hc.privileged, None);
        let opts = hc.security_opt.unwrap();
        assert!(opts.contains(&"no-new-privileges".to_string()));
        let seccomp = opts
            .iter()
            .find_map(|o| o.strip_prefix("seccomp="))
            .expect("a seccomp option");
        let profile: serde_json::Value =
            serde_json::from_str(seccomp).expect("inline JSON, not a path");
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(!seccomp.contains('\n'), "compacted");
        let tmpfs = hc.tmpfs.unwrap();
        assert!(tmpfs["/tmp"].contains("size=1g"));
        assert!(tmpfs["/home/sandbox"].contains("uid=1000,gid=1001"));
        let work = &hc.mounts.unwrap()[0];
        assert_eq!(work.target.as_deref(), Some("/work"));
        assert_eq!(work.read_only, Some(false));
    }

    #[test]
    fn podman_reads_the_profile_from_a_file_and_chowns_home_itself() {
        let plan = plan(&["sh"]);
        let file = Path::new("/run/user/1000/sandbox/seccomp-1.json");
        let podman = build(&plan, Purpose::Run, Dialect::Podman { seccomp_file: file });
        let hc = podman.host_config.clone().unwrap();
        let opts = hc.security_opt.unwrap();
        assert!(opts.contains(&format!("seccomp={}", file.display())));
        let home = &hc.tmpfs.unwrap()["/home/sandbox"];
        assert!(home.ends_with(",mode=0700,U"), "{home}");
        assert!(!home.contains("uid="), "{home}");
        // Nothing else differs.
        let mut docker = run(&plan).host_config.unwrap();
        let mut podman = podman.host_config.unwrap();
        (docker.security_opt, docker.tmpfs) = (None, None);
        (podman.security_opt, podman.tmpfs) = (None, None);
        assert_eq!(docker, podman);
    }

    #[test]
    fn the_command_runs_as_typed_in_work() {
        let body = run(&plan(&["python", "-c", "print(1)"]));
        assert_eq!(
            body.cmd,
            Some(vec!["python".into(), "-c".into(), "print(1)".into()])
        );
        assert_eq!(body.entrypoint, Some(vec![]));
        assert_eq!(body.working_dir.as_deref(), Some("/work"));
        assert_eq!(body.user.as_deref(), Some("1000:1001"));
        assert_eq!(body.open_stdin, Some(true));
        assert_eq!(body.stdin_once, Some(true));
        let env = body.env.unwrap();
        assert!(env.contains(&"LANG=C.UTF-8".to_string()));
        assert!(env.contains(&"HOME=/home/sandbox".to_string()));
        let labels = body.labels.unwrap();
        assert_eq!(labels[labels::MANAGED], "true");
        assert_eq!(labels[labels::COMMAND], "python -c print(1)");
    }

    #[test]
    fn every_container_but_a_warm_one_names_its_owner() {
        let mut plan = plan(&["--timeout", "90s", "--keep", "true"]);
        let here = crate::reaper::Owner::current().unwrap().label();
        let seal = crate::reaper::Seal::load(&plan.workspace.private_dir).unwrap();
        for purpose in [Purpose::Run, Purpose::Setup, Purpose::Fill] {
            let labels = build(&plan, purpose, Dialect::Docker).labels.unwrap();
            assert_eq!(
                seal.open(&labels[labels::OWNER]),
                Some(here.as_str()),
                "{purpose:?}"
            );
            assert_eq!(labels[labels::TIMEOUT], "90", "{purpose:?}");
            assert_eq!(labels[labels::KEEP], "true", "{purpose:?}");
        }
        let log = |plan: &RunPlan| run(plan).host_config.unwrap().log_config;
        assert_eq!(log(&plan), None, "a kept container has the engine's log");
        plan.lifecycle.keep = false;
        let log = log(&plan).unwrap();
        assert_eq!(log.typ.as_deref(), Some("none"), "the output is attached");
        plan.limits.timeout = None;
        let labels = run(&plan).labels.unwrap();
        assert!(!labels.contains_key(labels::KEEP));
        assert!(!labels.contains_key(labels::TIMEOUT));
    }

    #[test]
    fn hardening_can_be_turned_off_in_config_only() {
        let mut p = plan(&["sh"]);
        p.hardening.drop_all_capabilities = false;
        p.hardening.no_new_privileges = false;
        let hc = run(&p).host_config.unwrap();
        assert_eq!(hc.cap_drop, None);
        assert!(!hc
            .security_opt
            .unwrap()
            .contains(&"no-new-privileges".to_string()));
    }

    #[test]
    fn a_warm_container_is_the_run_waiting_for_its_command() {
        let plan = plan(&["-T", "ls"]);
        let (run, warm) = (run(&plan), build(&plan, Purpose::Warm, Dialect::Docker));
        assert_eq!(warm.cmd, None);
        assert_eq!(
            (warm.tty, warm.open_stdin, warm.stdin_once),
            (Some(false), Some(true), Some(true))
        );
        assert!(!warm.labels.clone().unwrap().contains_key(labels::COMMAND));
        assert!(
            !warm.labels.clone().unwrap().contains_key(labels::OWNER),
            "a warm container outlives its preparer"
        );
        assert_eq!((&warm.host_config, &warm.env), (&run.host_config, &run.env));
    }

    #[test]
    fn a_read_only_copy_is_filled_through_a_writable_mount() {
        let plan = plan(&["--copy-workspace", "--read-only-workspace", "true"]);
        let work = |purpose| {
            let body = build(&plan, purpose, Dialect::Docker);
            body.host_config.unwrap().mounts.unwrap()[0].clone()
        };
        let (run, fill) = (work(Purpose::Run), work(Purpose::Fill));
        assert_eq!(run.typ, Some(MountType::VOLUME));
        assert!(run.source.as_deref().unwrap().starts_with("sandbox-work-"));
        assert_eq!((run.read_only, fill.read_only), (Some(true), Some(false)));
        assert_eq!(run.source, fill.source, "the same volume");
        let fill = build(&plan, Purpose::Fill, Dialect::Docker);
        assert_eq!(fill.cmd, Some(vec!["true".to_string()]));
        assert_eq!(fill.open_stdin, Some(false));
    }

    const HOST: [(&str, &str); 5] = [
        ("ANTHROPIC_API_KEY", "sk-secret-123"),
        ("SSH_AUTH_SOCK", "/run/user/1000/ssh.sock"),
        ("XDG_DATA_HOME", "/data"),
        ("XDG_CACHE_HOME", "/c"),
        ("LANG", "C.UTF-8"),
    ];

    #[test]
    fn setup_runs_with_the_workspace_and_cache_and_nothing_personal() {
        let plan = plan_in(
            &["--ssh-agent", "-e", "SECRET=typed", "claude"],
            &HOST,
            "setup",
        );
        let run = run(&plan);
        let setup = build(&plan, Purpose::Setup, Dialect::Docker);

        assert_eq!(setup.cmd, Some(project::setup_argv(&plan.task.setup)));
        assert_eq!(run.cmd, Some(vec!["claude".to_string()]));
        let env = setup.env.clone().unwrap().join("\n");
        for personal in [
            "sk-secret-123",
            "SECRET",
            "SSH_AUTH_SOCK",
            "CLAUDE_CONFIG_DIR",
        ] {
            assert!(!env.contains(personal), "{personal}: {env}");
        }
        assert!(
            !env.contains("XDG_CACHE_HOME"),
            "an agent's run has no cache: {env}"
        );
        assert!(env.contains("LANG=C.UTF-8"), "{env}");
        // The agent's key stays on the host, behind the allow-list's relay.
        let run_env = run.env.as_deref().unwrap_or_default();
        assert!(
            !run_env.iter().any(|e| e.contains("sk-secret-123")),
            "{run_env:?}"
        );
        assert!(run_env
            .iter()
            .any(|e| e == "ANTHROPIC_BASE_URL=http://egress:8081"));

        let targets = |body: &ContainerCreateBody| -> Vec<String> {
            let mounts = body.host_config.as_ref().unwrap().mounts.clone().unwrap();
            mounts.into_iter().filter_map(|m| m.target).collect()
        };
        // Everything that protects the workspace, nothing that is personal.
        let expected: Vec<String> = targets(&run)
            .into_iter()
            .filter(|t| t.starts_with("/work") || t == "/cache")
            .collect();
        assert!(expected.contains(&"/work/.git".to_string()));
        assert_eq!(targets(&setup), expected, "the run has {:?}", targets(&run));
        assert!(targets(&run).contains(&"/home/sandbox/.claude".to_string()));
        assert!(targets(&run).iter().any(|t| t.starts_with("/run/sandbox")));

        assert_eq!(setup.open_stdin, Some(false));
        assert_eq!(setup.attach_stdin, Some(false));
        assert_eq!(setup.tty, Some(false));
        // The same hardening, field by field.
        let mut same = setup.host_config.clone().unwrap();
        same.mounts = None;
        let mut theirs = run.host_config.clone().unwrap();
        theirs.mounts = None;
        assert_eq!(same, theirs);
        assert_eq!((setup.user, setup.image), (run.user, run.image));
        let labels = setup.labels.unwrap();
        assert_eq!(labels[labels::MANAGED], "true", "prune and ls find it");
        assert!(labels[labels::COMMAND].contains("setup"));
    }

    #[test]
    fn setup_is_told_to_signal_its_steps_and_keeps_home() {
        let env = build(
            &plan_in(&["true"], &HOST, "setup-env"),
            Purpose::Setup,
            Dialect::Docker,
        )
        .env
        .unwrap()
        .join("\n");
        assert!(env.contains("TINI_KILL_PROCESS_GROUP=1"), "{env}");
        assert!(env.contains("HOME=/home/sandbox"), "{env}");
    }

    #[test]
    fn a_copied_workspace_gets_a_volume_of_its_own_for_setup() {
        let plan = plan_in(
            &["--copy-workspace", "--read-only-workspace", "true"],
            &HOST,
            "setup-copy",
        );
        let mounts = build(&plan, Purpose::Setup, Dialect::Docker)
            .host_config
            .unwrap()
            .mounts
            .unwrap();
        assert_eq!(mounts.len(), 1, "{mounts:?}");
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
        assert_eq!(mounts[0].source, None);
        assert_eq!(mounts[0].read_only, Some(false));
    }

    #[test]
    fn long_commands_are_shortened_for_the_label() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }
}
