//! docker run's habits on sandbox's command line. Most of docker's flags mean
//! the same here (`cli.rs`); the one that would silently do something else is
//! `-v HOST:CONTAINER`: `-v` is `--verbose` here, so the mount spec would
//! become the command. That, and `--volume`/`--mount`, are refused in one
//! line naming what sandbox offers instead: the workspace at /work.

use std::ffi::OsString;

use anyhow::{anyhow, Error};

use crate::cli::{Cli, Command};

/// Why the command line, as typed, is a docker habit sandbox will not guess
/// at; `None` when it is not one. `raw` is the process's arguments, which
/// show what clap's parse does not: the word just before the command.
pub fn refusal(raw: &[OsString], cli: &Cli) -> Option<Error> {
    let Command::Run(args) = &cli.command else {
        return None;
    };
    if let Some(spec) = args.volume.first() {
        return Some(mounts_nothing(&format!("--volume {spec}"), String::new()));
    }
    // The command is the last words of the line (trailing, verbatim): the
    // word before it is the last flag, unless it is `--`.
    let first = args.command.first()?;
    let before = raw.len().checked_sub(args.command.len() + 1)?;
    let flag = raw.get(before)?.to_str()?;
    let is_verbose = flag == "-v" || flag == "--verbose";
    (is_verbose && first.contains(':')).then(|| {
        let aside =
            format!(", and {flag} is --verbose here ({first} would have run as the command)");
        mounts_nothing(&format!("{flag} {first}"), aside)
    })
}

fn mounts_nothing(typed: &str, aside: String) -> Error {
    anyhow!(
        "{typed}: sandbox mounts no volumes{aside} — the workspace is mounted at /work: \
         run from the directory to share, or pass --workspace DIR \
         (with --read-only-workspace for :ro)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn refused(args: &[&str]) -> Option<String> {
        let raw: Vec<OsString> = args.iter().map(OsString::from).collect();
        let cli = Cli::try_parse_from(&raw).expect("arguments parse");
        refusal(&raw, &cli).map(|e| crate::ui::error_line(&e))
    }

    #[test]
    fn a_volume_is_refused_naming_the_workspace() {
        let line = refused(&["sandbox", "run", "-v", "/data:/data", "ls"]).expect("refused");
        assert!(
            line.starts_with("sandbox: -v /data:/data: sandbox mounts no volumes"),
            "{line}"
        );
        assert!(line.contains("--workspace DIR"), "{line}");
        let line = refused(&["sandbox", "run", "--mount", "type=bind,src=a,dst=b", "ls"]);
        assert!(line.is_some_and(|l| l.contains("/work")));
        assert!(refused(&["sandbox", "run", "--volume", "a:b", "ls"]).is_some());
    }

    #[test]
    fn verbose_and_colons_elsewhere_are_left_alone() {
        // The control: the same words where they mean what they say.
        assert_eq!(refused(&["sandbox", "run", "-v", "ls", "a:b"]), None);
        assert_eq!(refused(&["sandbox", "-v", "run", "ls"]), None);
        assert_eq!(refused(&["sandbox", "run", "-v", "--", "a:b"]), None);
        assert_eq!(refused(&["sandbox", "run", "sh", "-v", "a:b"]), None);
        assert_eq!(refused(&["sandbox", "ls"]), None);
    }
}
