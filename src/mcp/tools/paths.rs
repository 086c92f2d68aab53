//! A path a call names, as plain names beneath the workspace.
//!
//! Only the spelling is judged here; what stands at the path is judged
//! when it is opened, beneath the workspace's descriptor without following
//! a link (`sync/beneath.rs`), never by a string check that a link made
//! afterwards could get round.

use std::path::{Component, Path, PathBuf};

use rmcp::model::ErrorData;

/// Where the workspace is inside a run's container: `/work/src/x` names
/// `src/x` here too, as the model sees it in `run`'s output.
const WORKDIR: &str = crate::mount::WORKDIR;

/// `requested` relative to the workspace root (empty for the root itself):
/// relative paths as they are, `/work/...` as the container names them.
/// Refused: other absolute paths, `..`, NUL bytes.
pub fn relative(requested: &str) -> Result<PathBuf, ErrorData> {
    if requested.contains('\0') {
        return Err(refused(requested, "it holds a NUL byte"));
    }
    let path = Path::new(requested);
    let path = match path.strip_prefix(WORKDIR) {
        Ok(inside) => inside,
        Err(_) if path.is_absolute() => {
            return Err(refused(
                requested,
                "an absolute path outside /work; name files relative to the workspace",
            ))
        }
        Err(_) => path,
    };
    let mut rel = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => rel.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(refused(requested, "`..` would leave the workspace"))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(refused(requested, "not a path inside the workspace"))
            }
        }
    }
    Ok(rel)
}

/// `requested`, which must name something below the root.
pub fn below_root(requested: &str) -> Result<PathBuf, ErrorData> {
    let rel = relative(requested)?;
    if rel.as_os_str().is_empty() {
        return Err(refused(
            requested,
            "it names the workspace itself, not a file",
        ));
    }
    Ok(rel)
}

fn refused(requested: &str, why: &str) -> ErrorData {
    ErrorData::invalid_params(
        format!("path {:?} refused: {why}", crate::ui::sanitize(requested)),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_are_plain_names() {
        for (asked, rel) in [
            ("src/main.rs", "src/main.rs"),
            ("./src//main.rs", "src/main.rs"),
            ("/work/src/main.rs", "src/main.rs"),
            ("/work", ""),
            (".", ""),
            ("", ""),
        ] {
            assert_eq!(relative(asked).unwrap(), Path::new(rel), "{asked}");
        }
    }

    #[test]
    fn paths_that_leave_are_refused() {
        for asked in [
            "../x",
            "a/../../x",
            "a/..",
            "/etc/passwd",
            "/workx/a",
            "a\0b",
        ] {
            let err = relative(asked).unwrap_err();
            assert!(err.message.contains("refused"), "{asked}: {}", err.message);
        }
        assert!(below_root("/work").is_err() && below_root(".").is_err());
    }
}
