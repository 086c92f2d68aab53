//! `sandbox config validate`: every problem in a configuration file, each with
//! its line, rather than the first one a parse stops at.
//!
//! Each key is checked on its own by deserialising its section from a mapping
//! that holds only that key, so one bad value cannot hide the next. serde_yaml
//! keeps no positions in a `Value`, so lines are found again in the text.

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::agents::AgentConfig;
use super::types::keyed;
use super::{CacheConfig, ContainerConfig, EngineConfig, EnvConfig, SecurityConfig};

/// One thing wrong with a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// 1-based, when the problem can be placed.
    pub line: Option<usize>,
    pub message: String,
}

/// Every problem in `text`, a configuration file; empty when it is valid.
pub fn problems(text: &str) -> Vec<Problem> {
    let value: Value = match serde_yaml::from_str(text) {
        Ok(value) => value,
        Err(e) => {
            return vec![Problem {
                line: e.location().map(|l| l.line()),
                message: strip_position(&e.to_string()),
            }]
        }
    };
    let top = match value {
        Value::Null => return Vec::new(),
        Value::Mapping(map) => map,
        _ => {
            return vec![Problem {
                line: Some(1),
                message: "the file must be a mapping of sections (images, env, ...)".into(),
            }]
        }
    };
    let mut found = Vec::new();
    for (key, value) in &top {
        let Some(section) = key.as_str() else {
            found.push(Problem {
                line: None,
                message: format!("{key:?}: section names must be text"),
            });
            continue;
        };
        let check = match section {
            "images" => check_images,
            "env" => check_section::<EnvConfig>,
            "container" => check_section::<ContainerConfig>,
            "security" => check_section::<SecurityConfig>,
            "cache" => check_section::<CacheConfig>,
            "engine" => check_section::<EngineConfig>,
            "agents" => check_agents,
            "network" => check_network,
            _ => {
                found.push(Problem {
                    line: locate(text, &[section]),
                    message: format!(
                        "unknown section `{section}`: expected images, env, container, security, \
                         cache, engine, network or agents"
                    ),
                });
                continue;
            }
        };
        found.extend(check(text, section, value));
    }
    if found.is_empty() {
        // Rules across fields (pids_limit >= 1, ...) need the whole file.
        if let Err(e) = super::parse(text) {
            let message = format!("{e:#}");
            let path: Vec<&str> = message
                .split_once(':')
                .map(|(path, _)| path.split('.').collect())
                .unwrap_or_default();
            found.push(Problem {
                line: locate(text, &path),
                message,
            });
        }
    }
    found
}

fn check_images(text: &str, section: &str, value: &Value) -> Vec<Problem> {
    let Value::Mapping(map) = value else {
        return vec![not_a_mapping(text, section)];
    };
    map.iter()
        .filter_map(|(command, image)| {
            let command = command.as_str().unwrap_or("?");
            let ok = image.as_str().is_some_and(|i| !i.trim().is_empty());
            (!ok).then(|| Problem {
                line: locate(text, &[section, command]),
                message: format!("images.{command}: must be an image name, like python:3.12"),
            })
        })
        .collect()
}

fn check_agents(text: &str, section: &str, value: &Value) -> Vec<Problem> {
    let Value::Mapping(map) = value else {
        return vec![not_a_mapping(text, section)];
    };
    map.iter()
        .flat_map(|(name, profile)| {
            let name = name.as_str().unwrap_or("?");
            check_section::<AgentConfig>(text, &format!("{section}.{name}"), profile)
        })
        .collect()
}

/// Checks each key of a struct section alone, so every bad key is reported.
fn check_section<T: DeserializeOwned>(text: &str, section: &str, value: &Value) -> Vec<Problem> {
    let Value::Mapping(map) = value else {
        if value.is_null() {
            return Vec::new();
        }
        return vec![not_a_mapping(text, section)];
    };
    map.iter()
        .filter_map(|(key, value)| {
            let name = key.as_str().unwrap_or("?");
            let alone = Mapping::from_iter([(key.clone(), value.clone())]);
            let error = serde_yaml::from_value::<T>(Value::Mapping(alone)).err()?;
            let key = format!("{section}.{name}");
            let error = strip_position(&error.to_string());
            Some(Problem {
                line: locate(text, &key_path(section, name)),
                // A refused value in the shape flags use; the line is the place.
                message: keyed(&key, &error, None).unwrap_or_else(|| format!("{key}: {error}")),
            })
        })
        .collect()
}

/// The allow-list's section: its shape, then each entry as the run reads it.
fn check_network(text: &str, section: &str, value: &Value) -> Vec<Problem> {
    let mut found = check_section::<super::NetworkConfig>(text, section, value);
    if !found.is_empty() {
        return found;
    }
    let Ok(network) = serde_yaml::from_value::<super::NetworkConfig>(value.clone()) else {
        return found;
    };
    let problem = |key: &str, error: anyhow::Error| Problem {
        line: locate(text, &key_path(section, key)),
        message: format!("{section}.{key}: {error:#}"),
    };
    for entry in &network.allow {
        if let Err(e) = crate::egress::policy::expand(std::slice::from_ref(entry)) {
            found.push(problem("allow", e));
        }
    }
    for entry in &network.resolve {
        if let Err(e) = crate::egress::policy::parse_resolve(entry) {
            found.push(problem("resolve", e));
        }
    }
    found
}

fn not_a_mapping(text: &str, section: &str) -> Problem {
    Problem {
        line: locate(text, &key_path(section, "")),
        message: format!("{section}: must be a mapping of keys to values"),
    }
}

/// `agents.claude` and `image` as the keys to look for, one per level.
fn key_path<'a>(section: &'a str, key: &'a str) -> Vec<&'a str> {
    section
        .split('.')
        .chain([key])
        .filter(|k| !k.is_empty())
        .collect()
}

/// The line of a block-style key path such as `container` → `memory`: each
/// key is looked for below the previous one, indented deeper. Falls back to
/// the deepest key found.
fn locate(text: &str, path: &[&str]) -> Option<usize> {
    let mut found = None;
    let mut start = 0;
    let mut parent_indent: Option<usize> = None;
    let lines: Vec<&str> = text.lines().collect();
    for key in path {
        let mut hit = None;
        for (i, line) in lines.iter().enumerate().skip(start) {
            let body = line.trim_start();
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            let indent = line.len() - body.len();
            if parent_indent.is_some_and(|p| indent <= p) {
                break;
            }
            let body = body.trim_start_matches("- ");
            let name = body
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(['"', '\'']);
            if name == *key && body.contains(':') {
                hit = Some((i, indent));
                break;
            }
        }
        let Some((i, indent)) = hit else { break };
        found = Some(i + 1);
        start = i + 1;
        parent_indent = Some(indent);
    }
    found
}

/// serde_yaml appends " at line N column M"; we print the line ourselves.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(Option<usize>, String)> {
        problems(text)
            .into_iter()
            .map(|p| (p.line, p.message))
            .collect()
    }

    #[test]
    fn a_valid_file_has_no_problems() {
        assert!(problems(include_str!("../../config.example.yaml")).is_empty());
        assert!(problems("").is_empty());
        assert!(problems("# only comments\n").is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "\
images:
  python: ''
container:
  memory: lots
  pids_limit: 5
  timeout: soon
imagez: {}
security:
  seccompp: strict
";
        let found = lines(text);
        let at: Vec<_> = found.iter().map(|(l, _)| *l).collect();
        assert_eq!(
            at,
            [Some(2), Some(4), Some(6), Some(7), Some(9)],
            "{found:#?}"
        );
        assert!(found[1].1.contains("container.memory") && found[1].1.contains("lots"));
        assert!(found[3].1.contains("imagez"));
        assert!(found[4].1.contains("seccompp"));
    }

    #[test]
    fn syntax_errors_stop_at_the_first() {
        let found = lines("images:\n  python: [unclosed\n");
        assert_eq!(found.len(), 1);
        assert!(found[0].0.is_some());
    }

    #[test]
    fn rules_across_fields_are_placed_too() {
        let found = lines("container:\n  memory: 1g\n  pids_limit: 0\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, Some(3));
        assert!(found[0].1.contains("pids_limit"));
    }

    #[test]
    fn keys_are_found_under_their_own_section() {
        let text = "env:\n  allow: [A]\ncontainer:\n  memory: 1g\nsecurity:\n  init: true\n";
        assert_eq!(locate(text, &["container", "memory"]), Some(4));
        assert_eq!(
            locate(text, &["security", "memory"]),
            Some(5),
            "the section, then"
        );
        assert_eq!(locate(text, &["cache"]), None);
        assert_eq!(locate(text, &["security"]), Some(5));
    }
}
