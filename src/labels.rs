//! Label keys on every container sandbox creates: how it finds its own, and
//! only its own, later.

/// Present (value `true`) on every container sandbox creates.
pub const MANAGED: &str = "dev.sandbox.managed";
/// The host workspace mounted at /work.
pub const WORKSPACE: &str = "dev.sandbox.workspace";
/// The command as typed, shortened for display.
pub const COMMAND: &str = "dev.sandbox.command";
/// On a warm container: the hash of the settings it was prepared for.
pub const WARM: &str = "dev.sandbox.warm";
/// The set of protections a container was made with, when it follows the
/// repository's submodules (`protect/`).
pub const GUARDS: &str = "dev.sandbox.guards";
/// On a warm container, which is created from an image ID: the image as the
/// run named it.
pub const IMAGE: &str = "dev.sandbox.image";
/// The sandbox process that made the container (`reaper/owner.rs`): when it
/// is gone, so is the container. Not on a warm container, which outlives
/// its preparer and serves a run that did not exist yet.
pub const OWNER: &str = "dev.sandbox.owner";
/// Present (value `true`) on a container made with `--keep`: stopped with
/// its owner, never removed but by `sandbox prune`.
pub const KEEP: &str = "dev.sandbox.keep";
/// The run's time limit in seconds, for whoever finds the container later.
pub const TIMEOUT: &str = "dev.sandbox.timeout";
