//! The tools the server offers: `run` (a command in a fresh container) and
//! the file tools over the workspace. Each answers an error in one line,
//! with a code of its own from JSON-RPC's server range.

pub mod files;
mod output;
mod paths;
pub mod run;

use rmcp::model::ErrorCode;

/// The tool could not do what was asked: sandbox could not run the command
/// (engine, image, configuration), or a file could not be read or written.
pub const FAILED: ErrorCode = ErrorCode(-32000);
/// The command reached its time limit and was stopped.
pub const TIMED_OUT: ErrorCode = ErrorCode(-32001);
/// The call was stopped: cancelled by the client, or the server is ending.
pub const STOPPED: ErrorCode = ErrorCode(-32003);
