//! Pure: which image a command runs in, and the image reference's parts.

use std::collections::BTreeMap;

/// The image for `command`: `--image` if given, else the configured image for
/// the command's basename, else the configured `default`.
pub fn resolve<'a>(
    command: &str,
    images: &'a BTreeMap<String, String>,
    flag: Option<&'a str>,
) -> Option<&'a str> {
    if let Some(image) = flag {
        return Some(image);
    }
    let name = command.rsplit('/').next().unwrap_or(command);
    images
        .get(name)
        .or_else(|| images.get("default"))
        .map(String::as_str)
}

/// The reference to pull. The engine pulls *every* tag of a repository when
/// asked for one without a tag, so an untagged name gets `:latest`, as
/// `docker pull` does.
pub fn pull_reference(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> BTreeMap<String, String> {
        [("python", "py:1"), ("default", "base:1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_flag_wins() {
        assert_eq!(resolve("python", &images(), Some("mine:2")), Some("mine:2"));
    }

    #[test]
    fn the_basename_selects() {
        assert_eq!(resolve("python", &images(), None), Some("py:1"));
        assert_eq!(resolve("/usr/bin/python", &images(), None), Some("py:1"));
    }

    #[test]
    fn unknown_commands_fall_back_to_default() {
        assert_eq!(resolve("ls", &images(), None), Some("base:1"));
        assert_eq!(resolve("ls", &BTreeMap::new(), None), None);
    }

    #[test]
    fn untagged_references_pull_latest_only() {
        assert_eq!(pull_reference("alpine"), "alpine:latest");
        assert_eq!(pull_reference("alpine:3.20"), "alpine:3.20");
        assert_eq!(
            pull_reference("localhost:5000/tools"),
            "localhost:5000/tools:latest"
        );
        assert_eq!(
            pull_reference("localhost:5000/tools:1"),
            "localhost:5000/tools:1"
        );
        assert_eq!(pull_reference("alpine@sha256:abc"), "alpine@sha256:abc");
    }
}
