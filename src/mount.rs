//! A host path in the container: the one type the workspace's protections,
//! its git directory and the plan share.

use std::path::PathBuf;

/// Where the workspace appears inside the container, and the working directory.
pub const WORKDIR: &str = "/work";

#[derive(Debug, Clone, PartialEq)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}
