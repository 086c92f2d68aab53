//! Pure: the resolved plan becomes the engine's create request, with every
//! piece of hardening spelled out so nothing depends on the daemon's defaults.
//!
//! The seccomp profiles in `profiles/` are compiled into the binary and sent
//! inline (`seccomp=<json>`): the API, unlike the docker CLI, does not read a
//! path, and the daemon's built-in profile differs between versions.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions};

use crate::labels;
use crate::plan::{RunPlan, Transfer, WORKDIR};

/// The built-in profiles, by name.
const PROFILES: [(&str, &str); 3] = [
    ("default", include_str!("../profiles/default.json")),
    ("strict", include_str!("../profiles/strict.json")),
    ("debug", include_str!("../profiles/debug.json")),
];

/// A seccomp profile ready to send.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The built-in name, or the path it was read from.
    pub name: String,
    /// The profile's JSON, compacted.
    pub json: String,
}

/// The profile `spec` names: a built-in name, or a path to a JSON profile.
pub fn profile(spec: &str) -> Result<Profile> {
    if let Some((name, text)) = PROFILES.iter().find(|(name, _)| *name == spec) {
        return Ok(Profile {
            name: name.to_string(),
            json: compact(text).context("built-in profile is invalid")?,
        });
    }
    let looks_like_path = spec.contains('/') || spec.ends_with(".json");
    if !looks_like_path {
        let names: Vec<_> = PROFILES.iter().map(|(n, _)| *n).collect();
        bail!(
            "--seccomp {spec:?}: no such profile — use one of {} or a path to a JSON file",
            names.join(", ")
        );
    }
    let text = std::fs::read_to_string(spec)
        .with_context(|| format!("cannot read the seccomp profile {spec}"))?;
    let json = compact(&text).with_context(|| format!("{spec} is not a valid seccomp profile"))?;
    Ok(Profile {
        name: spec.to_string(),
        json,
    })
}

/// Checks the outline of a profile and compacts it for the `seccomp=` option.
fn compact(text: &str) -> Result<String> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    let action = value.get("defaultAction").and_then(|a| a.as_str());
    if !action.is_some_and(|a| a.starts_with("SCMP_ACT_")) {
        bail!("it needs a \"defaultAction\" such as \"SCMP_ACT_ERRNO\"");
    }
    if let Some(syscalls) = value.get("syscalls") {
        let rules = syscalls.as_array().context("\"syscalls\" must be a list")?;
        for rule in rules {
            let has_names = rule.get("names").and_then(|n| n.as_array()).is_some()
                || rule.get("name").is_some();
            if !has_names || rule.get("action").and_then(|a| a.as_str()).is_none() {
                bail!("every \"syscalls\" rule needs \"names\" and \"action\"");
            }
        }
    }
    Ok(serde_json::to_string(&value)?)
}

/// `profile` as a file for engines that read it from disk, named by its
/// content's hash, in a directory only this user can write (see
/// [`private_runtime_dir`](crate::host_dirs::private_runtime_dir), `dir`):
/// a profile someone else could replace might allow everything.
pub fn profile_file(profile: &Profile, dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let hash = crate::hash::fnv1a(profile.json.as_bytes());
    let name = format!("seccomp-{hash:016x}.json");
    crate::host_dirs::write_private(dir, &name, profile.json.as_bytes())
}

/// The request as Podman's Docker-compatible API takes it: the seccomp
/// profile as a file `path`, and tmpfs ownership as its `U` option (chown to
/// the container's user) rather than `uid=`/`gid=`, which it rejects.
pub fn for_podman(body: &mut ContainerCreateBody, path: &std::path::Path) {
    let Some(host) = body.host_config.as_mut() else {
        return;
    };
    for option in host.security_opt.iter_mut().flatten() {
        if option.starts_with("seccomp=") {
            *option = format!("seccomp={}", path.display());
        }
    }
    for options in host.tmpfs.iter_mut().flat_map(|t| t.values_mut()) {
        let kept: Vec<&str> = options
            .split(',')
            .filter(|o| !o.starts_with("uid=") && !o.starts_with("gid="))
            .collect();
        if kept.len() != options.split(',').count() {
            *options = format!("{},U", kept.join(","));
        }
    }
}

/// The engine's create request for `plan`.
pub fn create_body(plan: &RunPlan) -> ContainerCreateBody {
    let attach_stdin = plan.stdin;
    let mut security_opt = vec![format!("seccomp={}", plan.seccomp.json)];
    if plan.no_new_privileges {
        security_opt.push("no-new-privileges".into());
    }
    let size = plan.tmpfs_size;
    // The daemon mounts tmpfs noexec by default; tools such as `go test` and
    // pip's build isolation execute from /tmp and HOME, so both allow exec.
    let mut home = format!("rw,exec,nosuid,nodev,size={size},mode=0700");
    match plan.numeric_user() {
        Some((uid, gid)) => home.push_str(&format!(",uid={uid},gid={gid}")),
        None => home = format!("rw,exec,nosuid,nodev,size={size},mode=1777"),
    }
    let tmpfs = HashMap::from([
        (
            "/tmp".to_string(),
            format!("rw,exec,nosuid,nodev,size={size},mode=1777"),
        ),
        (plan.home.clone(), home),
    ]);
    let mounts = plan
        .mounts
        .iter()
        .map(|m| match (&plan.transfer, m.target == WORKDIR) {
            // The engine cannot see the workspace: /work is a volume the
            // workspace is copied into. Only a named one can be read-only.
            (Transfer::Copy { volume, .. }, true) => Mount {
                target: Some(m.target.clone()),
                source: volume.clone(),
                typ: Some(MountType::VOLUME),
                read_only: Some(m.read_only && volume.is_some()),
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
            },
            _ => Mount {
                target: Some(m.target.clone()),
                source: Some(m.source.to_string_lossy().into_owned()),
                typ: Some(MountType::BIND),
                read_only: Some(m.read_only),
                ..Default::default()
            },
        })
        .collect();
    let memory = i64::try_from(plan.memory.bytes()).unwrap_or(i64::MAX);
    let host_config = HostConfig {
        memory: Some(memory),
        // Left unset the daemon allows swap of twice the memory.
        memory_swap: Some(memory),
        nano_cpus: plan.cpus.map(|c| (c * 1e9) as i64),
        pids_limit: Some(plan.pids_limit),
        network_mode: Some(plan.network.clone()),
        readonly_rootfs: Some(plan.read_only_root),
        cap_drop: plan.drop_all_capabilities.then(|| vec!["ALL".to_string()]),
        security_opt: Some(security_opt),
        init: Some(plan.init),
        runtime: plan.runtime.clone(),
        mounts: Some(mounts),
        tmpfs: Some(tmpfs),
        // MaskedPaths and ReadonlyPaths stay unset: the daemon applies its
        // defaults (/proc/kcore, /proc/sys, ...) only when they are absent.
        ..Default::default()
    };
    let mut labels = HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (
            labels::WORKSPACE.to_string(),
            plan.workspace().to_string_lossy().into_owned(),
        ),
        (
            labels::COMMAND.to_string(),
            shorten(&plan.command.join(" "), 200),
        ),
    ]);
    if let Some(key) = &plan.protections.key {
        labels.insert(labels::GUARDS.to_string(), key.clone());
    }
    ContainerCreateBody {
        image: Some(plan.image.clone()),
        // The command runs as typed: the image's entrypoint would wrap it.
        entrypoint: Some(Vec::new()),
        cmd: Some(plan.argv()),
        env: Some(plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        // Set explicitly: runc before 1.1.12 leaked a host directory through an
        // inherited working directory (CVE-2024-21626).
        working_dir: Some(WORKDIR.to_string()),
        user: Some(plan.user.clone()),
        tty: Some(plan.tty),
        open_stdin: Some(attach_stdin),
        // The container's stdin closes when ours reaches EOF.
        stdin_once: Some(attach_stdin),
        attach_stdin: Some(attach_stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    }
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
    use crate::cli::{Cli, Command};
    use crate::config::Config;
    use crate::plan::Host;
    use clap::Parser;
    use std::collections::BTreeMap;

    fn plan(argv: &[&str]) -> RunPlan {
        let mut full = vec!["sandbox", "run"];
        full.extend_from_slice(argv);
        let Command::Run(args) = Cli::parse_from(full).command else {
            panic!("not a run")
        };
        // A workspace of its own: /tmp itself holds sandbox's private directory.
        let cwd = std::env::temp_dir().join(format!("sandbox-security-{}", std::process::id()));
        std::fs::create_dir_all(&cwd).unwrap();
        let env = BTreeMap::from([("LANG".to_string(), "C.UTF-8".to_string())]);
        let host = Host {
            env: &env,
            cwd: &cwd,
            uid: 1000,
            gid: 1001,
            stdin_is_terminal: false,
            stdout_is_terminal: false,
        };
        let config = crate::config::layer(Config::default(), None, &env, &args.flags()).unwrap();
        RunPlan::resolve(&args, &config.config, &[], &host).unwrap()
    }

    #[test]
    fn hardening_is_spelled_out() {
        let body = create_body(&plan(&[
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
    fn the_command_runs_as_typed_in_work() {
        let body = create_body(&plan(&["python", "-c", "print(1)"]));
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
    fn hardening_can_be_turned_off_in_config_only() {
        let mut p = plan(&["sh"]);
        p.drop_all_capabilities = false;
        p.no_new_privileges = false;
        let hc = create_body(&p).host_config.unwrap();
        assert_eq!(hc.cap_drop, None);
        assert!(!hc
            .security_opt
            .unwrap()
            .contains(&"no-new-privileges".to_string()));
    }

    #[test]
    fn every_builtin_profile_is_an_allow_list() {
        for (name, _) in PROFILES {
            let p = profile(name).unwrap();
            let value: serde_json::Value = serde_json::from_str(&p.json).unwrap();
            assert_eq!(value["defaultAction"], "SCMP_ACT_ERRNO", "{name}");
        }
    }

    /// Names a profile allows without conditions on the arguments.
    fn unconditionally_allowed(name: &str) -> Vec<String> {
        let value: serde_json::Value = serde_json::from_str(&profile(name).unwrap().json).unwrap();
        let rules = value["syscalls"].as_array().unwrap();
        rules
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
            .flat_map(|r| r["names"].as_array().unwrap())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    // The engine tests prove these from inside a container; this catches an
    // edit to profiles/ before anything runs.
    #[test]
    fn dangerous_calls_stay_out_of_every_profile() {
        let never = [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "chroot",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "io_uring_setup",
            "userfaultfd",
            "fsopen",
            "open_tree",
            "move_mount",
            "open_by_handle_at",
            "init_module",
            "finit_module",
            "kexec_load",
            "reboot",
            "swapon",
            "sethostname",
            "settimeofday",
            "clone3",
            "clone",
            "socket",
            "personality",
        ];
        for name in ["default", "strict", "debug"] {
            let allowed = unconditionally_allowed(name);
            for call in never {
                assert!(!allowed.iter().any(|a| a == call), "{name} allows {call}");
            }
        }
        for call in ["ptrace", "process_vm_readv", "process_vm_writev"] {
            assert!(!unconditionally_allowed("default").iter().any(|a| a == call));
            assert!(!unconditionally_allowed("strict").iter().any(|a| a == call));
            assert!(unconditionally_allowed("debug").iter().any(|a| a == call));
        }
    }

    /// The calls that set a file's mode, by the index of the mode argument.
    const MODE_ARGUMENT: [(&str, u64); 12] = [
        ("chmod", 1),
        ("creat", 1),
        ("fchmod", 1),
        ("mkdir", 1),
        ("mknod", 1),
        ("fchmodat", 2),
        ("fchmodat2", 2),
        ("mkdirat", 2),
        ("mknodat", 2),
        ("open", 2),
        ("openat", 3),
        ("openat2", 0),
    ];

    // A file made setuid or setgid in the bind-mounted workspace stays so on
    // the host: every call that sets a mode is allowed only without those
    // bits, and openat2, whose mode seccomp cannot read, answers ENOSYS.
    #[test]
    fn no_profile_lets_a_mode_carry_the_setuid_or_setgid_bit() {
        let expected_arg = serde_json::json!({
            "op": "SCMP_CMP_MASKED_EQ",
            "value": 0o6000,
            "valueTwo": 0,
        });
        for name in ["default", "strict", "debug"] {
            let value: serde_json::Value =
                serde_json::from_str(&profile(name).unwrap().json).unwrap();
            let rules = value["syscalls"].as_array().unwrap();
            for (call, index) in MODE_ARGUMENT {
                let naming: Vec<_> = rules
                    .iter()
                    .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == call))
                    .collect();
                assert_eq!(naming.len(), 1, "{name}: one rule for {call}");
                let rule = naming[0];
                if call == "openat2" {
                    assert_eq!(rule["action"], "SCMP_ACT_ERRNO", "{name}: {call}");
                    assert_eq!(rule["errnoRet"], 38, "{name}: {call}");
                    continue;
                }
                assert_eq!(rule["action"], "SCMP_ACT_ALLOW", "{name}: {call}");
                let args = rule["args"].as_array().expect("an argument filter");
                assert_eq!(args.len(), 1, "{name}: {call}");
                let mut arg = args[0].clone();
                assert_eq!(arg["index"], index, "{name}: {call}'s mode");
                arg.as_object_mut().unwrap().remove("index");
                assert_eq!(arg, expected_arg, "{name}: {call}");
            }
        }
    }

    #[test]
    fn user_profiles_are_validated() {
        let dir = std::env::temp_dir().join(format!("sandbox-seccomp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json");
        std::fs::write(&good, "{\n \"defaultAction\": \"SCMP_ACT_ALLOW\"\n}\n").unwrap();
        assert_eq!(
            profile(good.to_str().unwrap()).unwrap().json,
            r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#
        );
        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"{"syscalls": []}"#).unwrap();
        assert!(profile(bad.to_str().unwrap()).is_err());
        std::fs::write(&bad, "not json").unwrap();
        assert!(profile(bad.to_str().unwrap()).is_err());
        assert!(profile("/no/such/profile.json").is_err());
        assert!(profile("nonsense").is_err());
    }

    #[test]
    fn long_commands_are_shortened_for_the_label() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }
}
