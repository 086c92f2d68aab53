//! The MCP server's handler: the tools, their descriptions and schemas (as
//! an agent reads them, with no manual), and the turns calls take.
//!
//! Calls run concurrently, at most `--max-concurrent` at once; the others
//! wait for a turn. A call holds its turn until its container is gone, so
//! the server knows, when it stops, that no turn held means no container
//! left. Once stopping, it takes no new call.

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ErrorData};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, RoleServer, ServerHandler};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::tools::files::{self, ListParams, ReadParams, SearchParams, WriteParams};
use super::tools::run::{self, RunParams};
use super::tools::STOPPED;
use super::workspace::Workspace;

/// How long the server waits, when it stops, for its calls to end: a run
/// gets SIGTERM, and SIGKILL 30 seconds later.
const STOP_WAIT: Duration = Duration::from_secs(40);

/// What a stopping server could not wait for.
#[derive(Debug, Default)]
pub struct Left {
    /// Calls still running (their watchers remove their containers).
    pub calls: u32,
    /// Containers of stopped calls the engine has not removed, or a line
    /// saying why they could not be looked for.
    pub containers: Vec<String>,
}

#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

struct Shared {
    workspace: Workspace,
    max_output: usize,
    turns: Semaphore,
    max_turns: u32,
    stopping: CancellationToken,
}

impl Server {
    pub fn new(workspace: Workspace, max_concurrent: usize, max_output: usize) -> Server {
        let max_turns = u32::try_from(max_concurrent).unwrap_or(u32::MAX);
        Server {
            shared: Arc::new(Shared {
                workspace,
                max_output,
                turns: Semaphore::new(max_turns as usize),
                max_turns,
                stopping: CancellationToken::new(),
            }),
        }
    }

    /// Stops every call and waits until they have ended and their
    /// containers are gone (`leftovers.rs`); no call starts after this.
    /// Says what is still there when it gave up waiting.
    pub async fn stop_calls(&self) -> Left {
        let shared = &self.shared;
        let busy = shared.turns.available_permits() < shared.max_turns as usize;
        shared.stopping.cancel();
        let all = shared.turns.acquire_many(shared.max_turns);
        let calls = match tokio::time::timeout(STOP_WAIT, all).await {
            Ok(_) => 0,
            Err(_) => shared.max_turns - shared.turns.available_permits() as u32,
        };
        let containers = match busy {
            true => shared.workspace.remove_leftovers().await,
            false => Vec::new(),
        };
        Left { calls, containers }
    }

    /// A turn to run: at once if fewer than `--max-concurrent` calls run,
    /// else when one ends. Refused once the server stops, or when the
    /// client cancels the call while it waits.
    async fn turn(&self, cancelled: &CancellationToken) -> Result<SemaphorePermit<'_>, ErrorData> {
        let stopping = &self.shared.stopping;
        let permit = tokio::select! {
            permit = self.shared.turns.acquire() => permit.ok(),
            _ = stopping.cancelled() => None,
            _ = cancelled.cancelled() => {
                return Err(ErrorData::new(STOPPED, "the call was cancelled before it started", None));
            }
        };
        match permit {
            Some(permit) if !stopping.is_cancelled() => Ok(permit),
            _ => Err(ErrorData::new(
                STOPPED,
                "the server is shutting down and takes no more calls",
                None,
            )),
        }
    }

    /// `work` on the blocking pool (file I/O), in a turn.
    async fn blocking(
        &self,
        cancelled: &CancellationToken,
        work: impl FnOnce(&Workspace) -> Result<String, ErrorData> + Send + 'static,
    ) -> Result<CallToolResult, ErrorData> {
        let done = async {
            let _turn = self.turn(cancelled).await?;
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || work(&shared.workspace))
                .await
                .map_err(|e| ErrorData::internal_error(format!("the tool failed: {e}"), None))?
        };
        Ok(match done.await {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(error) => failed(error),
        })
    }
}

/// A tool's answer. What went wrong in a call (bad arguments, a refused
/// path, the engine down, a time limit) is a tool error, `isError` with its
/// one-line message, as MCP asks: clients show those to the model so it can
/// correct itself, where a protocol error may never reach it. Protocol
/// errors are left for what is not a call of a tool (an unknown tool, a
/// malformed request), which rmcp answers.
fn answer(result: Result<CallToolResult, ErrorData>) -> CallToolResult {
    result.unwrap_or_else(failed)
}

/// `error` as a tool error: its message as the text, with the output so
/// far after it when there is some; and in the structured content its code
/// and message (`error`) beside what it carried (`exit_code`, `stdout`...).
fn failed(error: ErrorData) -> CallToolResult {
    let mut text = error.message.to_string();
    let mut structured = serde_json::Map::new();
    if let Some(serde_json::Value::Object(data)) = error.data {
        for stream in ["stdout", "stderr"] {
            if let Some(output) = data.get(stream).and_then(|o| o.as_str()) {
                if !output.is_empty() {
                    text.push_str(&format!("\n\n[{stream}]\n{output}"));
                }
            }
        }
        structured = data;
    }
    structured.insert(
        "error".into(),
        serde_json::json!({"code": error.code.0, "message": error.message}),
    );
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.structured_content = Some(serde_json::Value::Object(structured));
    result
}

#[tool_router]
impl Server {
    /// Runs a command in a fresh container and returns its exit status,
    /// stdout, stderr (each capped: its start and end are kept, with a
    /// marker saying how many bytes in all) and the time taken. A non-zero
    /// exit status is a result, not an error. The container has the
    /// workspace at /work (the working directory), the configured image for
    /// the command, no network beyond the configured policy, and is removed
    /// after the call. Errors: the engine or image is unavailable, the time
    /// limit passed, or the call was cancelled. Long calls report progress.
    #[tool(annotations(
        title = "Run a command in a sandbox",
        destructive_hint = true,
        open_world_hint = true
    ))]
    async fn run(
        &self,
        Parameters(params): Parameters<RunParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let shared = &self.shared;
        let ran = async {
            let _turn = self.turn(&context.ct).await?;
            run::run(
                &shared.workspace,
                shared.max_output,
                params,
                context,
                &shared.stopping,
            )
            .await
        };
        Ok(answer(ran.await))
    }

    /// Reads a text file of the workspace (256 KiB at most per call; the
    /// answer says how to read on). Paths are relative to the workspace
    /// root, or /work/... as a run sees them. Symbolic links are never
    /// followed.
    #[tool(annotations(title = "Read a workspace file", read_only_hint = true))]
    async fn read_file(
        &self,
        Parameters(params): Parameters<ReadParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        self.blocking(&context.ct, move |w| files::read(w, &params))
            .await
    }

    /// Writes a whole text file of the workspace, creating missing
    /// directories; the old content is replaced in one step. Refused for
    /// protected paths (.git, .sandbox.yml, editor and agent settings),
    /// through symbolic links, and when the workspace is read-only.
    #[tool(annotations(
        title = "Write a workspace file",
        destructive_hint = true,
        idempotent_hint = true
    ))]
    async fn write_file(
        &self,
        Parameters(params): Parameters<WriteParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        self.blocking(&context.ct, move |w| files::write(w, &params))
            .await
    }

    /// Lists a directory of the workspace: one entry per line, directories
    /// with a trailing /, files with their size, links with their target
    /// (not followed).
    #[tool(annotations(title = "List a workspace directory", read_only_hint = true))]
    async fn list_dir(
        &self,
        Parameters(params): Parameters<ListParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        self.blocking(&context.ct, move |w| files::list(w, &params))
            .await
    }

    /// Searches the workspace's text files for a regular expression, line
    /// by line: `path:line: text` per match, in name order. Skips .git,
    /// symbolic links, binary files and files over 1 MiB; stops at
    /// max_results matches.
    #[tool(annotations(title = "Search the workspace", read_only_hint = true))]
    async fn search(
        &self,
        Parameters(params): Parameters<SearchParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        self.blocking(&context.ct, move |w| files::search(w, &params))
            .await
    }
}

// What a client may show the model about the server as a whole.
#[tool_handler(
    name = "sandbox",
    instructions = "Runs commands in throwaway, hardened containers (no capabilities, \
read-only root, seccomp, memory and process limits, none of the user's secrets), one fresh \
container per `run` call, with this server's workspace mounted at /work as the working \
directory. Files written under /work persist; anything else is gone after the call. The file \
tools read, write, list and search the same workspace directly; they never follow symbolic \
links and refuse paths outside it. Protected paths (.git, .sandbox.yml, editor and agent \
settings) are read-only to both."
)]
impl ServerHandler for Server {}
