//! The agents' Dockerfiles, checked without an engine (no registry can be
//! reached to build them here): syntax, pinned bases and versions, a non-root
//! user, and one directory for each agent `make images` builds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const INSTRUCTIONS: [&str; 18] = [
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
    "MAINTAINER",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dockerfiles() -> Vec<(String, PathBuf)> {
    let mut found: Vec<_> = std::fs::read_dir(root().join("images/agents"))
        .expect("images/agents exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                p.join("Dockerfile"),
            )
        })
        .collect();
    found.sort();
    found
}

/// Instructions with their continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        current.push_str(trimmed.trim_end_matches('\\'));
        current.push(' ');
        if !trimmed.ends_with('\\') {
            let (keyword, rest) = current
                .trim()
                .split_once(' ')
                .unwrap_or((current.trim(), ""));
            out.push((keyword.to_string(), rest.trim().to_string()));
            current.clear();
        }
    }
    assert!(current.is_empty(), "a continuation runs off the end");
    out
}

/// `node:22.23.3-bookworm-slim` has a full version; `node:22` does not.
fn is_pinned(image: &str) -> bool {
    let Some((_, tag)) = image.rsplit_once(':') else {
        return false;
    };
    let version = tag.split('-').next().unwrap_or("");
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

#[test]
fn every_dockerfile_is_well_formed_pinned_and_unprivileged() {
    let files = dockerfiles();
    assert_eq!(files.len(), 6, "{files:?}");
    for (agent, path) in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let steps = instructions(&text);
        for (keyword, _) in &steps {
            assert!(
                INSTRUCTIONS.contains(&keyword.as_str()),
                "{agent}: unknown instruction {keyword}"
            );
        }
        let from: Vec<&String> = steps
            .iter()
            .filter(|(k, _)| k == "FROM")
            .map(|(_, v)| v)
            .collect();
        assert!(!from.is_empty(), "{agent}: no FROM");
        for image in from {
            assert!(
                is_pinned(image),
                "{agent}: FROM {image} is not pinned to a full version"
            );
        }
        let version = steps
            .iter()
            .find_map(|(k, v)| (k == "ARG").then(|| v.strip_prefix("VERSION=")).flatten())
            .unwrap_or_else(|| panic!("{agent}: no ARG VERSION=<pinned version>"));
        assert!(
            version.split('.').count() >= 3
                && version.chars().all(|c| c.is_ascii_digit() || c == '.'),
            "{agent}: VERSION={version} is not an exact version"
        );
        let installs = steps
            .iter()
            .filter(|(k, v)| k == "RUN" && (v.contains("npm install") || v.contains("pip install")))
            .count();
        assert_eq!(installs, 1, "{agent}: one install of the agent");
        let install = steps
            .iter()
            .find(|(k, v)| k == "RUN" && (v.contains("npm install") || v.contains("pip install")))
            .map(|(_, v)| v)
            .unwrap();
        assert!(
            install.contains("@${VERSION}") || install.contains("==${VERSION}"),
            "{agent}: the install does not use the pinned VERSION: {install}"
        );
        let user = steps
            .iter()
            .rev()
            .find(|(k, _)| k == "USER")
            .map(|(_, v)| v.as_str());
        assert!(
            user.is_some_and(|u| u.parse::<u32>().is_ok_and(|uid| uid != 0)),
            "{agent}: the last USER must be a non-root uid, not {user:?}"
        );
        let cmd = steps
            .iter()
            .find(|(k, _)| k == "CMD")
            .map(|(_, v)| v.as_str());
        assert_eq!(
            cmd,
            Some(format!("[\"{agent}\"]").as_str()),
            "{agent}: CMD is the agent"
        );
        assert!(
            !steps.iter().any(|(k, _)| k == "ENTRYPOINT"),
            "{agent}: sandbox clears it anyway"
        );
    }
}

#[test]
fn make_images_builds_exactly_these_agents() {
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let line = makefile
        .lines()
        .find(|l| l.starts_with("AGENTS ?="))
        .expect("the Makefile names its agents");
    let listed: BTreeSet<String> = line["AGENTS ?=".len()..]
        .split_whitespace()
        .map(String::from)
        .collect();
    let present: BTreeSet<String> = dockerfiles().into_iter().map(|(a, _)| a).collect();
    assert_eq!(listed, present);
    // The configuration's default images are the ones `make images` tags.
    let example = std::fs::read_to_string(root().join("config.example.yaml")).unwrap();
    for agent in &present {
        assert!(
            example.contains(&format!("image: sandbox-agents/{agent}:1")),
            "{agent}"
        );
    }
}

#[test]
fn pins_are_checked_for_what_they_are() {
    assert!(is_pinned("node:22.23.3-bookworm-slim"));
    assert!(is_pinned("python:3.12.12-slim-bookworm"));
    for loose in [
        "node:22",
        "node:latest",
        "node",
        "python:3.12-slim",
        "node:22.x.1",
    ] {
        assert!(!is_pinned(loose), "{loose}");
    }
}
