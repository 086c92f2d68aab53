//! What becomes of a container whose sandbox has gone: removed, or only
//! stopped when it was made with `--keep`. A container whose owner runs, or
//! may run (another machine, another pid namespace, no owner named), is
//! left alone: it is someone's live run.

use anyhow::Result;

use super::owner::{liveness, Liveness, Owner};
use super::seal::Seal;
use crate::engine::{now, short_id, Engine, Listed};

/// What to do with a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Leave,
    /// Kept: its command is stopped, the container stays for `prune`.
    Stop,
    Remove,
}

/// Whether the sandbox that made `c` still runs. `gone` names an owner
/// known to have ended whatever `/proc` shows yet: the watcher's own, once
/// its pipe has closed (a killed process is not reaped at once). An owner
/// label whose seal does not hold is anybody's: unknown.
pub fn owner_of(c: &Listed, gone: Option<&str>, seal: Option<&Seal>) -> Liveness {
    owner_of_label(&c.owner, gone, seal)
}

/// [`owner_of`] for an owner label alone (a network's).
pub fn owner_of_label(label: &str, gone: Option<&str>, seal: Option<&Seal>) -> Liveness {
    let Some(owner) = seal.and_then(|seal| seal.open(label)) else {
        return Liveness::Unknown;
    };
    if gone == Some(owner) {
        return Liveness::Gone;
    }
    Owner::current().map_or(Liveness::Unknown, |here| liveness(owner, here))
}

/// What becomes of `c`, whose owner is `owner`, at `now`.
pub fn verdict(c: &Listed, owner: Liveness, now: i64) -> Verdict {
    match owner {
        Liveness::Gone if !c.kept => Verdict::Remove,
        Liveness::Gone if !c.is_stopped(now) => Verdict::Stop,
        _ => Verdict::Leave,
    }
}

/// Removes (or stops, if kept) every container of sandbox's whose owner is
/// gone. Returns one line per container, for the log. A container of
/// `gone`'s that cannot be removed is an error (the watcher tries again);
/// another's is a line, left for a later run: one container the engine is
/// stuck on must not keep the rest.
pub async fn sweep(
    engine: &Engine,
    gone: Option<&str>,
    seal: Option<&Seal>,
) -> Result<Vec<String>> {
    let now = now();
    let mut lines = Vec::new();
    for c in engine.list(false).await? {
        let verdict = verdict(&c, owner_of(&c, gone, seal), now);
        let own = gone.is_some() && seal.and_then(|seal| seal.open(&c.owner)) == gone;
        let (done, what) = match verdict {
            Verdict::Leave => continue,
            Verdict::Stop => (engine.kill(&c.id, "SIGKILL").await, "stopped (kept)"),
            Verdict::Remove => (engine.remove(&c.id).await, "removed"),
        };
        let line = match done {
            Ok(()) => format!("{what} {}", short_id(&c.id)),
            Err(e) if !own => format!("{e:#}"),
            Err(e) => return Err(e),
        };
        lines.push(format!("{line} of {}: its sandbox is gone", c.workspace));
    }
    // The allow-list's networks, once their containers are gone: one a
    // container still holds (a kept run's) stays.
    for network in engine.list_networks().await? {
        if network.kept || owner_of_label(&network.owner, gone, seal) != Liveness::Gone {
            continue;
        }
        let line = match engine.remove_network(&network.name).await {
            Ok(()) => format!("removed the network {}", network.name),
            Err(e) => format!("{e:#}"),
        };
        lines.push(format!("{line}: its sandbox is gone"));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(state: &str, owner: &str, kept: bool) -> Listed {
        Listed {
            owner: owner.into(),
            kept,
            ..Listed::example(state, 100)
        }
    }

    #[test]
    fn only_a_gone_owners_containers_go_and_kept_ones_only_stop() {
        let now = 1000;
        let dead = owned("running", "b/1/2/3", false);
        assert_eq!(verdict(&dead, Liveness::Gone, now), Verdict::Remove);
        let kept = owned("running", "b/1/2/3", true);
        assert_eq!(verdict(&kept, Liveness::Gone, now), Verdict::Stop);
        let kept_stopped = owned("exited", "b/1/2/3", true);
        assert_eq!(verdict(&kept_stopped, Liveness::Gone, now), Verdict::Leave);
        for owner in [Liveness::Alive, Liveness::Unknown] {
            for state in ["running", "exited", "created"] {
                let c = owned(state, "b/1/2/3", false);
                assert_eq!(verdict(&c, owner, now), Verdict::Leave, "{state} {owner:?}");
            }
        }
    }

    fn seal() -> Seal {
        let dir = std::env::temp_dir().join(format!("sandbox-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Seal::load(&dir).unwrap()
    }

    #[test]
    fn an_unnamed_owner_is_unknown_and_a_closed_pipe_means_gone() {
        let seal = seal();
        assert_eq!(
            owner_of(&owned("running", "", false), None, Some(&seal)),
            Liveness::Unknown
        );
        let here = Owner::current().unwrap().label();
        let mine = owned("running", &seal.sign(&here), false);
        assert_eq!(owner_of(&mine, None, Some(&seal)), Liveness::Alive);
        assert_eq!(owner_of(&mine, Some(&here), Some(&seal)), Liveness::Gone);
        assert_eq!(
            owner_of(&mine, Some(&here), None),
            Liveness::Unknown,
            "no key, no judgement"
        );
    }

    /// The attack: a label an image or a compose file carries, naming a
    /// sandbox long gone. Unsealed, it is anybody's container.
    #[test]
    fn a_label_without_this_users_seal_is_never_judged_gone() {
        let seal = seal();
        // This boot and pid namespace, a pid nobody has: a sandbox gone.
        let here = Owner::current().unwrap();
        let label = here.label();
        let machine = label.rsplitn(3, '/').nth(2).unwrap();
        let dead = Owner::parse(&format!("{machine}/999999/1")).unwrap();
        let forged = owned("running", &dead.label(), false);
        assert_eq!(owner_of(&forged, None, Some(&seal)), Liveness::Unknown);
        assert_eq!(verdict(&forged, Liveness::Unknown, 1000), Verdict::Leave);
        // The control: the same owner, sealed by sandbox, is judged gone.
        let sealed = owned("running", &seal.sign(&dead.label()), false);
        assert_eq!(owner_of(&sealed, None, Some(&seal)), Liveness::Gone);
    }
}
