//! The plan as `--dry-run` prints it.

use std::fmt::Write as _;

use super::{RunPlan, WORKDIR};
use crate::env_filter::Reason;
use crate::ui;

/// The plan as `--dry-run` prints it: what would be sent, names but never values.
pub fn render(plan: &RunPlan) -> String {
    let mut out = String::new();
    let on_off = |on: bool, yes: &'static str, no: &'static str| if on { yes } else { no };
    let _ = writeln!(
        out,
        "image:       {} (pull: {:?})",
        plan.task.image, plan.lifecycle.pull
    );
    if let Some(agent) = &plan.task.agent {
        let _ = writeln!(out, "agent:       {agent}");
    }
    let _ = writeln!(out, "command:     {}", crate::shell::join(&plan.task.argv));
    for (i, step) in plan.task.setup.iter().enumerate() {
        let _ = writeln!(out, "setup {}:     {}", i + 1, ui::sanitize(step));
    }
    if !plan.task.setup.is_empty() {
        // Its own container: the workspace and cache, none of the agent's
        // state, keys or the values passed with -e and --env-file.
        let names: Vec<_> = plan.env.setup.iter().map(|(k, _)| k.as_str()).collect();
        let _ = writeln!(out, "setup env:   {}", names.join(" "));
    }
    for mount in &plan.workspace.mounts {
        let mode = on_off(mount.read_only, "ro", "rw");
        let _ = writeln!(
            out,
            "mount:       {} -> {} ({mode})",
            mount.source.display(),
            mount.target
        );
    }
    let _ = writeln!(out, "workdir:     {}", WORKDIR);
    if plan.workspace.cache.is_none() {
        let _ = writeln!(out, "cache:       off");
    }
    let _ = writeln!(
        out,
        "user:        {} (HOME={})",
        plan.hardening.user, plan.hardening.home
    );
    let names: Vec<_> = plan.env.passed.iter().map(|(k, _)| k.as_str()).collect();
    let _ = writeln!(
        out,
        "env passed:  {}",
        if names.is_empty() {
            "-".into()
        } else {
            names.join(" ")
        }
    );
    for (name, reason) in &plan.env.withheld {
        let why = match reason {
            Reason::Blocked(glob) => format!("blocked by {glob}"),
            Reason::NotAllowed => "not in the allow list".to_string(),
        };
        let _ = writeln!(out, "env held:    {name} ({why})");
    }
    let cpus = plan
        .limits
        .cpus
        .map_or("no limit".to_string(), |c| c.to_string());
    let timeout = plan.limits.timeout.map_or("none".to_string(), |t| {
        humantime::format_duration(t).to_string()
    });
    let _ = writeln!(
        out,
        "memory:      {} (swap {})",
        plan.limits.memory, plan.limits.memory
    );
    let _ = writeln!(out, "cpus:        {cpus}");
    let _ = writeln!(out, "pids limit:  {}", plan.limits.pids);
    let _ = writeln!(out, "timeout:     {timeout}");
    match &plan.egress {
        None => {
            let _ = writeln!(out, "network:     {}", plan.hardening.network);
        }
        Some(egress) => render_egress(&mut out, egress),
    }
    let _ = writeln!(
        out,
        "tmpfs:       /tmp and {} ({} each)",
        plan.hardening.home, plan.limits.tmpfs_size
    );
    let _ = writeln!(
        out,
        "root fs:     {}",
        on_off(plan.hardening.read_only_root, "read-only", "writable")
    );
    let _ = writeln!(
        out,
        "capabilities: {}",
        on_off(
            plan.hardening.drop_all_capabilities,
            "all dropped",
            "the engine's defaults"
        )
    );
    let _ = writeln!(
        out,
        "no-new-privileges: {}",
        on_off(plan.hardening.no_new_privileges, "yes", "no")
    );
    let _ = writeln!(
        out,
        "seccomp:     {} ({} bytes, sent inline)",
        plan.hardening.seccomp.name,
        plan.hardening.seccomp.json.len()
    );
    let _ = writeln!(
        out,
        "init:        {}",
        on_off(plan.hardening.init, "yes", "no")
    );
    let _ = writeln!(out, "tty:         {}", on_off(plan.io.tty, "yes", "no"));
    let _ = writeln!(
        out,
        "stdin:       {}",
        on_off(plan.io.stdin, "forwarded", "not forwarded")
    );
    let _ = writeln!(
        out,
        "keep:        {}",
        on_off(plan.lifecycle.keep, "yes", "no (removed after the run)")
    );
    out
}

/// The allow-list: what gets through, what is resolved by hand, which keys
/// stay on the host.
fn render_egress(out: &mut String, egress: &crate::plan::Egress) {
    let _ = writeln!(
        out,
        "network:     allow-list, through sandbox's proxy (network {})",
        egress.network
    );
    match egress.allow.is_empty() {
        true => {
            let _ = writeln!(out, "allow:       nothing (every request is refused)");
        }
        false => {
            let _ = writeln!(out, "allow:       {}", egress.allow.join(" "));
        }
    }
    for (entry, patterns) in egress.allow.iter().filter_map(|e| {
        let expanded = crate::egress::policy::expand(std::slice::from_ref(e)).ok()?;
        e.starts_with('@').then_some((e, expanded))
    }) {
        let hosts: Vec<String> = patterns.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "  {entry}:    {}", hosts.join(" "));
    }
    for (host, address) in &egress.resolve {
        let _ = writeln!(out, "resolve:     {host} -> {address}");
    }
    for relay in &egress.relays {
        let _ = writeln!(
            out,
            "relay:       {} stays on the host; {}={} forwards to {}",
            relay.key, relay.base_url, relay.url, relay.spec.host
        );
    }
}
