//! Seccomp profiles: the built-in ones compiled into the binary from
//! `profiles/`, a user's own read from a file, and the file form engines that
//! read a profile from disk (Podman) need.
//!
//! Docker gets the profile inline (`seccomp=<json>`): the API, unlike the
//! docker CLI, does not read a path, and the daemon's built-in profile
//! differs between versions.

use anyhow::{bail, Context, Result};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
