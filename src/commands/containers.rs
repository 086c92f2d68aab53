//! `sandbox ls` and `sandbox prune`: the containers sandbox left around, found
//! by its label, so nobody else's are ever listed or touched. `prune` never
//! takes a container from a run whose sandbox is alive, unless named.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Result};
use indicatif::HumanBytes;

use crate::cli::{LsArgs, PruneArgs};
use crate::engine::{now, short_id, Engine, Listed};
use crate::exit::Outcome;
use crate::reaper::{owner_of, Liveness, Seal};
use crate::ui::{self, Ui};
use crate::warm;

pub async fn ls(args: &LsArgs, host: &str) -> Result<Outcome> {
    let engine = Engine::connect(host).await?;
    let listed = engine.list(false).await?;
    let now = now();
    let text = if args.json {
        to_json(&listed, now)?
    } else {
        table(&listed, now)
    };
    ui::print(&text)?;
    Ok(Outcome::Exited(0))
}

/// `private_dir` holds the key that tells sandbox's own owner labels from
/// ones an image or a compose file wrote (`reaper/seal.rs`): without it,
/// no running container is judged left behind.
pub async fn prune(
    args: &PruneArgs,
    host: &str,
    private_dir: Option<&std::path::Path>,
    ui: Ui,
) -> Result<Outcome> {
    let seal = private_dir.and_then(|dir| Seal::load(dir).ok());
    let engine = Engine::connect(host).await?;
    // Sizes only when someone will read them: measuring is slow.
    let listed = engine.list(!ui.quiet).await?;
    let (doomed, spared) = match args.containers.as_slice() {
        [] => choose(&listed, args.all, now(), |c| {
            owner_of(c, None, seal.as_ref())
        }),
        named => (pick(&listed, named)?, Vec::new()),
    };
    let bytes: u64 = doomed.iter().filter_map(|c| c.size).sum();
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut failed = 0;
    for c in &doomed {
        if !args.dry_run {
            if let Err(e) = engine.remove(&c.id).await {
                ui.warn(&format!("{e:#}"));
                failed += 1;
                continue;
            }
        }
        if !ui.quiet {
            ui::print(&format!(
                "{verb} {} ({}) {}\n",
                short_id(&c.id),
                c.state,
                ui::sanitize(&c.command)
            ))?;
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} containers could not be removed",
            doomed.len()
        );
    }
    // After the containers: their volumes are unused only once they are gone.
    for volume in engine.unused_volumes().await? {
        if !args.dry_run {
            engine.remove_volume(&volume).await?;
        }
        if !ui.quiet {
            ui::print(&format!("{verb} volume {volume}\n"))?;
        }
    }
    // The allow-list's networks whose run has ended (a kept one's, or one
    // a dead watcher left); one that still holds a container stays.
    for network in engine.list_networks().await? {
        let owner = crate::reaper::owner_of_label(&network.owner, None, seal.as_ref());
        if owner == crate::reaper::Liveness::Alive {
            continue;
        }
        if !args.dry_run && engine.remove_network(&network.name).await.is_err() {
            continue;
        }
        if !ui.quiet {
            ui::print(&format!("{verb} network {}\n", network.name))?;
        }
    }
    if !ui.quiet {
        for c in &spared {
            ui::print(&format!(
                "left {} ({}) {}: its sandbox is still running — name it to remove it \
                 (`sandbox prune {}`)\n",
                short_id(&c.id),
                c.state,
                ui::sanitize(&c.command),
                short_id(&c.id)
            ))?;
        }
        let summary = match doomed.len() {
            0 => "nothing to remove\n".to_string(),
            1 => format!("{verb} 1 container, {}\n", HumanBytes(bytes)),
            n => format!("{verb} {n} containers, {}\n", HumanBytes(bytes)),
        };
        ui::print(&summary)?;
    }
    Ok(Outcome::Exited(0))
}

/// What `prune` takes, and the live runs' containers it leaves that it
/// would otherwise take. It takes what is left around: stopped containers,
/// warm ones waiting, and those whose sandbox has gone; with `all`, running
/// ones too. It leaves every container of a sandbox that is alive, or may
/// be: one on another machine, which sandbox cannot ask, keeps its running
/// containers (its stopped ones go, as kept containers must).
fn choose(
    listed: &[Listed],
    all: bool,
    now: i64,
    owner: impl Fn(&Listed) -> Liveness,
) -> (Vec<&Listed>, Vec<&Listed>) {
    let mut doomed = Vec::new();
    let mut spared = Vec::new();
    for c in listed {
        let owner = owner(c);
        let stopped = c.is_stopped(now);
        let left_around =
            stopped || c.name.starts_with(warm::NAME_PREFIX) || owner == Liveness::Gone;
        if !(left_around || all) {
            continue;
        }
        let live = match owner {
            Liveness::Alive => true,
            Liveness::Unknown => !c.owner.is_empty() && !stopped,
            Liveness::Gone => false,
        };
        match live {
            true => spared.push(c),
            false => doomed.push(c),
        }
    }
    (doomed, spared)
}

/// The containers `names` name, by ID (or its start) or name; only
/// sandbox's own can be named.
fn pick<'a>(listed: &'a [Listed], names: &[String]) -> Result<Vec<&'a Listed>> {
    let mut picked: Vec<&Listed> = Vec::new();
    for name in names {
        let matches: Vec<&Listed> = listed
            .iter()
            .filter(|c| c.name == *name || (!name.is_empty() && c.id.starts_with(name.as_str())))
            .collect();
        match matches.as_slice() {
            [one] => {
                if !picked.iter().any(|p| p.id == one.id) {
                    picked.push(one);
                }
            }
            [] => bail!(
                "no container of sandbox's is {} — `sandbox ls` lists them",
                ui::sanitize(name)
            ),
            _ => bail!(
                "{} names more than one container — give more of its ID",
                ui::sanitize(name)
            ),
        }
    }
    Ok(picked)
}

fn table(listed: &[Listed], now: i64) -> String {
    let header = [
        "CONTAINER ID",
        "COMMAND",
        "IMAGE",
        "WORKSPACE",
        "STATUS",
        "CREATED",
    ];
    let rows: Vec<[String; 6]> = listed
        .iter()
        .map(|c| {
            [
                short_id(&c.id).to_string(),
                shorten(&ui::sanitize(&c.command), 40),
                ui::sanitize(&c.image),
                ui::sanitize(&c.workspace),
                ui::sanitize(&c.status),
                format!("{} ago", age(now - c.created)),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(String::from);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:w$}   ");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

fn to_json(listed: &[Listed], now: i64) -> Result<String> {
    let items: Vec<serde_json::Value> = listed
        .iter()
        .map(|c| {
            let created = UNIX_EPOCH + Duration::from_secs(c.created.max(0) as u64);
            serde_json::json!({
                "id": c.id,
                "command": c.command,
                "image": c.image,
                "workspace": c.workspace,
                "state": c.state,
                "status": c.status,
                "created": humantime::format_rfc3339_seconds(created).to_string(),
                "age_seconds": now - c.created,
            })
        })
        .collect();
    Ok(serde_json::to_string_pretty(&items)? + "\n")
}

/// "45s", "12m", "3h", "2d": the largest whole unit, as `docker ps` rounds.
fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max - 1).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_by(id: &str, state: &str, owner: &str) -> Listed {
        Listed {
            id: id.into(),
            name: format!("name-{id}"),
            owner: owner.into(),
            ..Listed::example(state, 0)
        }
    }

    #[test]
    fn prune_never_takes_a_live_runs_container_unless_named() {
        let listed = [
            run_by("a1", "running", "live"),
            run_by("b2", "exited", "live"),
            run_by("c3", "running", "dead"),
            run_by("d4", "exited", "dead"),
            run_by("e5", "running", "elsewhere"),
            run_by("f6", "exited", "elsewhere"),
            run_by("g7", "running", ""),
            run_by("h8", "exited", ""),
        ];
        let owner = |c: &Listed| match c.owner.as_str() {
            "live" => Liveness::Alive,
            "dead" => Liveness::Gone,
            _ => Liveness::Unknown,
        };
        let ids = |found: Vec<&Listed>| found.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        let (doomed, spared) = choose(&listed, false, 1000, owner);
        assert_eq!(ids(doomed), ["c3", "d4", "f6", "h8"]);
        assert_eq!(ids(spared), ["b2"], "a live run's stopped container stays");
        let (doomed, spared) = choose(&listed, true, 1000, owner);
        assert_eq!(ids(doomed), ["c3", "d4", "f6", "g7", "h8"]);
        assert_eq!(ids(spared), ["a1", "b2", "e5"], "live, or maybe live");

        assert_eq!(ids(pick(&listed, &["a1".into()]).unwrap()), ["a1"]);
        assert_eq!(
            ids(pick(&listed, &["name-e5".into(), "e".into()]).unwrap()),
            ["e5"]
        );
        let unknown = pick(&listed, &["zz".into()]).unwrap_err().to_string();
        assert!(
            unknown.starts_with("no container of sandbox's is zz — "),
            "{unknown}"
        );
        let mut twins = listed.to_vec();
        twins.push(run_by("a1ff", "exited", ""));
        let ambiguous = pick(&twins, &["a1".into()]).unwrap_err().to_string();
        assert!(ambiguous.contains("more than one"), "{ambiguous}");
        assert!(pick(&listed, &[String::new()]).is_err());
    }

    #[test]
    fn ages_round_down_to_the_largest_unit() {
        assert_eq!(age(59), "59s");
        assert_eq!(age(61), "1m");
        assert_eq!(age(7200), "2h");
        assert_eq!(age(200_000), "2d");
        assert_eq!(age(-3), "0s", "a clock that moved back");
    }

    #[test]
    fn the_table_lines_up_and_json_has_every_field() {
        let rows = [Listed::example("exited", 100)];
        let text = table(&rows, 160);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("CONTAINER ID   COMMAND"), "{text}");
        assert!(
            lines[1].starts_with("0123456789ab   python app.py"),
            "{text}"
        );
        assert!(lines[1].ends_with("1m ago"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&to_json(&rows, 160).unwrap()).unwrap();
        assert_eq!(json[0]["id"], "0123456789abcdef");
        assert_eq!(json[0]["workspace"], "/home/me/app");
        assert_eq!(json[0]["age_seconds"], 60);
        assert_eq!(json[0]["created"], "1970-01-01T00:01:40Z");
    }
}
