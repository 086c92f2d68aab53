//! The interactive screens of Claude Code and OpenCode on a real
//! pseudo-terminal: each draws its first screen, and quits on its keys; the
//! run ends and leaves no container.
