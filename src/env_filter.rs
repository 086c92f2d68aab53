//! Pure: which host environment variables reach the container.
//!
//! Only names matching an allow glob pass; a block glob wins over allow; a
//! variable named with `-e` passes whatever the lists say. A bare name in an
//! env file (which may come with the repository) is held to the lists like
//! the host's variables: see [`Filter::env_file`]. Names match
//! case-insensitively, so `github_token` is blocked like `GITHUB_TOKEN`.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use globset::{GlobSet, GlobSetBuilder};

/// What the filter decided, in name order.
#[derive(Debug, Default, PartialEq)]
pub struct Decision {
    /// Variables that pass, with their values.
    pub passed: Vec<(String, String)>,
    /// Host variables that do not pass, with the reason (never the value).
    pub withheld: Vec<(String, Reason)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// A block glob matched.
    Blocked(String),
    /// No allow glob matched.
    NotAllowed,
}

/// Compiled allow and block lists.
pub struct Filter {
    allow_set: GlobSet,
    block: Vec<String>,
    block_set: GlobSet,
}

impl Filter {
    pub fn new(allow: &[String], block: &[String]) -> Result<Filter> {
        Ok(Filter {
            allow_set: compile(allow).context("env.allow")?,
            block_set: compile(block).context("env.block")?,
            block: block.to_vec(),
        })
    }

    /// Applies the lists to `host`, then the explicit `-e` entries over them.
    pub fn apply(&self, host: &BTreeMap<String, String>, explicit: &[String]) -> Result<Decision> {
        let mut passed = BTreeMap::new();
        let mut withheld = Vec::new();
        for (name, value) in host {
            match self.holds(name) {
                Some(reason) => withheld.push((name.clone(), reason)),
                None => {
                    passed.insert(name.clone(), value.clone());
                }
            }
        }
        for entry in explicit {
            let (name, value) = match entry.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (entry.as_str(), None),
            };
            check_name(name).context("-e")?;
            // `-e KEY` with KEY unset on the host passes nothing, as docker run does.
            let Some(value) = value.or_else(|| host.get(name).map(String::as_str)) else {
                continue;
            };
            withheld.retain(|(n, _)| n != name);
            passed.insert(name.to_string(), value.to_string());
        }
        Ok(Decision {
            passed: passed.into_iter().collect(),
            withheld,
        })
    }

    /// Why the lists hold back a host variable called `name`; `None` when
    /// it passes.
    pub fn holds(&self, name: &str) -> Option<Reason> {
        if let Some(i) = self.block_set.matches(name).first() {
            Some(Reason::Blocked(self.block[*i].clone()))
        } else if self.allow_set.is_match(name) {
            None
        } else {
            Some(Reason::NotAllowed)
        }
    }

    /// An env file's entries as they may be passed on: `NAME=value` as
    /// written, a bare `NAME` (the host's value) only when the lists would
    /// let it through anyway. The file may come with the repository, which
    /// must not be able to ask for the host's `GITHUB_TOKEN` by name; a
    /// person who wants it types `-e GITHUB_TOKEN`.
    pub fn env_file(&self, entries: Vec<String>) -> Vec<String> {
        entries
            .into_iter()
            .filter(|entry| entry.contains('=') || self.holds(entry.trim_end()).is_none())
            .collect()
    }
}

/// The entries of an env file, docker's format: `KEY=VALUE` (the value is
/// everything after the first `=`, unquoted) or `KEY` for the host's value
/// (which [`Filter::env_file`] then holds to the lists);
/// blank lines and lines starting with `#` are skipped. Entries read like
/// `-e` arguments; errors name the line.
pub fn parse_env_file(text: &str) -> Result<Vec<String>> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line.split_once('=').map_or(line, |(name, _)| name);
        check_name(name.trim_end()).with_context(|| format!("line {}", i + 1))?;
        entries.push(line.to_string());
    }
    Ok(entries)
}

fn compile(globs: &[String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        let glob = globset::GlobBuilder::new(glob)
            .case_insensitive(true)
            .literal_separator(false)
            .build()
            .with_context(|| format!("{glob:?} is not a valid glob"))?;
        set.add(glob);
    }
    set.build().context("cannot compile the globs")
}

fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        bail!("{name:?} is not a variable name — use KEY=VALUE or KEY");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_read_as_docker_reads_them() {
        let text = "# comment\n\nA=1\nB= spaced = value \n  C\nD=\n";
        assert_eq!(
            parse_env_file(text).unwrap(),
            ["A=1", "B= spaced = value ", "C", "D="]
        );
        let err = parse_env_file("A=1\nnot a name=2\n").unwrap_err();
        assert_eq!(format!("{err:#}").split(':').next(), Some("line 2"));
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn host() -> BTreeMap<String, String> {
        [
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C"),
            ("HOME", "/root"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("OPENAI_API_KEY", "sk-1"),
            ("github_token", "ghp"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn filter() -> Filter {
        Filter::new(
            &strings(&["LANG", "LC_*", "*_API_KEY"]),
            &strings(&["AWS_*", "*_API_KEY", "GITHUB_TOKEN"]),
        )
        .unwrap()
    }

    #[test]
    fn only_allowed_names_pass() {
        let d = filter().apply(&host(), &[]).unwrap();
        let names: Vec<_> = d.passed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["LANG", "LC_ALL"]);
        assert!(d.withheld.contains(&("HOME".into(), Reason::NotAllowed)));
    }

    #[test]
    fn block_wins_over_allow_and_ignores_case() {
        let d = filter().apply(&host(), &[]).unwrap();
        assert!(d
            .withheld
            .contains(&("OPENAI_API_KEY".into(), Reason::Blocked("*_API_KEY".into()))));
        assert!(d.withheld.contains(&(
            "github_token".into(),
            Reason::Blocked("GITHUB_TOKEN".into())
        )));
        assert!(d.withheld.contains(&(
            "AWS_SECRET_ACCESS_KEY".into(),
            Reason::Blocked("AWS_*".into())
        )));
    }

    #[test]
    fn explicit_entries_win_over_both() {
        let explicit = strings(&["OPENAI_API_KEY", "HOME=/home/x", "NEW=1", "UNSET_ON_HOST"]);
        let d = filter().apply(&host(), &explicit).unwrap();
        let passed: BTreeMap<_, _> = d.passed.into_iter().collect();
        assert_eq!(passed["OPENAI_API_KEY"], "sk-1");
        assert_eq!(passed["HOME"], "/home/x");
        assert_eq!(passed["NEW"], "1");
        assert!(!passed.contains_key("UNSET_ON_HOST"));
        assert!(!d.withheld.iter().any(|(n, _)| n == "OPENAI_API_KEY"));
    }

    #[test]
    fn bare_names_in_env_files_obey_the_lists() {
        let entries = strings(&[
            "GITHUB_TOKEN",
            "LANG",
            "HOME",
            "OPENAI_API_KEY=sk-typed",
            "A=1",
        ]);
        let kept = filter().env_file(entries);
        assert_eq!(kept, ["LANG", "OPENAI_API_KEY=sk-typed", "A=1"]);
        let d = filter().apply(&host(), &kept).unwrap();
        let passed: BTreeMap<_, _> = d.passed.into_iter().collect();
        assert!(!passed.contains_key("github_token"));
        assert!(!passed.contains_key("GITHUB_TOKEN"));
        assert_eq!(passed["OPENAI_API_KEY"], "sk-typed", "written values pass");
        assert!(d.withheld.contains(&(
            "github_token".into(),
            Reason::Blocked("GITHUB_TOKEN".into())
        )));
        // Typed with -e, the same bare name passes.
        let d = filter()
            .apply(&host(), &strings(&["github_token"]))
            .unwrap();
        assert!(d
            .passed
            .iter()
            .any(|(k, v)| k == "github_token" && v == "ghp"));
    }

    #[test]
    fn values_may_contain_equals() {
        let d = filter()
            .apply(&BTreeMap::new(), &strings(&["A=b=c"]))
            .unwrap();
        assert_eq!(d.passed, [("A".to_string(), "b=c".to_string())]);
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["=x", "1A=2", "A-B=1", ""] {
            assert!(
                filter().apply(&BTreeMap::new(), &strings(&[bad])).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_globs_are_refused() {
        assert!(Filter::new(&strings(&["[unclosed"]), &[]).is_err());
    }
}
