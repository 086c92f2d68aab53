//! `sandbox ls` and `sandbox prune`: the containers sandbox left around, found
//! by its label, so nobody else's are ever listed or touched.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Result};
use indicatif::HumanBytes;

use crate::cli::{LsArgs, PruneArgs};
use crate::engine::{now, short_id, Engine, Listed};
use crate::exit::Outcome;
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

pub async fn prune(args: &PruneArgs, host: &str, ui: Ui) -> Result<Outcome> {
    let engine = Engine::connect(host).await?;
    // Sizes only when someone will read them: measuring is slow.
    let listed = engine.list(!ui.quiet).await?;
    let now = now();
    let doomed: Vec<&Listed> = listed
        .iter()
        .filter(|c| args.all || c.is_stopped(now) || c.name.starts_with(warm::NAME_PREFIX))
        .collect();
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
    if !ui.quiet {
        let summary = match doomed.len() {
            0 => "nothing to remove\n".to_string(),
            1 => format!("{verb} 1 container, {}\n", HumanBytes(bytes)),
            n => format!("{verb} {n} containers, {}\n", HumanBytes(bytes)),
        };
        ui::print(&summary)?;
    }
    Ok(Outcome::Exited(0))
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
