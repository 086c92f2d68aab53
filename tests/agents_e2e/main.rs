//! End-to-end: the real coding agents, in their real images
//! (`make images BASES=local`), run by sandbox with its defaults (hardening,
//! the allow-list network, the relays), as a user who is not uid 1000, in a
//! linked git worktree, against stand-ins for their model APIs
//! (`common/model_api.py`). Each agent's version, a one-shot prompt (for
//! Claude Code and Codex, a tool call that writes and commits a file), and
//! the interactive screens of Claude Code and OpenCode on a real terminal.
//! A missing image fails the test with the command that builds it.

#[path = "../common/mod.rs"]
mod common;

/// The agent table, read by the code sandbox reads it with.
#[path = "../../src/config/agents/table.rs"]
#[allow(dead_code)]
mod table;

mod prompts;
mod screens;
mod world;
