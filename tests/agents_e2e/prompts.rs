//! Each agent's version, and a one-shot prompt answered by the stub model
//! API. Claude Code and Codex reach it the way a user's run reaches the real
//! API: their key stays on the host behind sandbox's relay, which speaks TLS
//! to the API's own name (led to the stub by `--resolve`, trusted through
//! `SSL_CERT_FILE`); the stub has them run a shell command that writes
//! hello.txt and commits it, which must land on the host as the user's.
//! Gemini CLI talks to its API's own name through the proxy. OpenCode, Kilo
//! Code and Aider are given an OpenAI-compatible base URL of the tests' own
//! (`models.test`), reached through the proxy once allowed.

use std::os::unix::fs::MetadataExt;

use crate::common::{model_api, Output, STUB_REPLY};
use crate::world::{key, resolve, World, GIT_EMAIL, GIT_NAME, UID};

fn version(agent: &str, flag: &str) {
    let world = World::new(agent);
    let out = world.run(&[], &[agent, flag]);
    assert_eq!(out.status, 0, "{agent} {flag}: {out:?}");
    assert!(
        out.stdout.chars().any(|c| c.is_ascii_digit()),
        "{agent} {flag} printed no version: {out:?}"
    );
}

#[test]
fn claude_reports_its_version() {
    version("claude", "--version");
}

#[test]
fn codex_reports_its_version() {
    version("codex", "--version");
}

#[test]
fn gemini_reports_its_version() {
    version("gemini", "--version");
}

#[test]
fn opencode_reports_its_version() {
    version("opencode", "--version");
}

#[test]
fn kilocode_reports_its_version() {
    version("kilocode", "--version");
}

#[test]
fn aider_reports_its_version() {
    version("aider", "--version");
}

/// The agent's tool call wrote hello.txt as the user and committed it with
/// the user's identity, in the worktree's branch.
fn assert_committed(world: &World, out: &Output) {
    let file = world.ws.path().join("hello.txt");
    let meta = std::fs::metadata(&file)
        .unwrap_or_else(|e| panic!("no hello.txt on the host ({e}): {out:?}"));
    assert_eq!((meta.uid(), meta.gid()), (UID, UID), "hello.txt: {out:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hi");
    let last = world.git(&["log", "-1", "--format=%an|%ae|%cn|%ce|%s"]);
    assert_eq!(
        last,
        format!("{GIT_NAME}|{GIT_EMAIL}|{GIT_NAME}|{GIT_EMAIL}|add hello"),
        "{out:?}"
    );
    assert_eq!(world.git(&["rev-parse", "--abbrev-ref", "HEAD"]), "feature");
    assert_eq!(
        world.git(&["status", "--porcelain", "--untracked-files=no"]),
        "",
        "the host's git reads the index the agent left: {out:?}"
    );
}

/// The requests the stub received with `key`; at least one.
fn requests(key: &str, out: &Output) -> Vec<serde_json::Value> {
    let requests = model_api().requests_with(key);
    assert!(
        !requests.is_empty(),
        "no request reached the stub with the key: {out:?}"
    );
    requests
}

#[test]
fn claude_runs_a_tool_that_commits_as_the_user() {
    let world = World::new("claude");
    let key = key("sk-ant", "claude");
    let ca = model_api().ca();
    let env = [
        ("ANTHROPIC_API_KEY", key.as_str()),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
    ];
    let api = resolve("api.anthropic.com");
    let out = world.run(
        &env,
        &[
            "--resolve",
            &api,
            "claude",
            "-p",
            "--dangerously-skip-permissions",
            "Write hello.txt and commit it.",
        ],
    );
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains(STUB_REPLY), "{out:?}");
    assert_committed(&world, &out);
    // The relay put the real key on the request, over TLS, for the API's
    // own name; the tool's result went back in the next request.
    let requests = requests(&key, &out);
    let messages: Vec<_> = requests
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/v1/messages"))
        })
        .collect();
    assert!(messages.len() >= 2, "{requests:?}");
    for request in &messages {
        assert_eq!(request["headers"]["x-api-key"], key.as_str());
        assert_eq!(request["headers"]["host"], "api.anthropic.com");
        assert_eq!(request["scheme"], "https");
    }
    assert!(
        messages
            .iter()
            .any(|r| r["body"].to_string().contains("\"tool_result\"")),
        "the tool's result never came back: {requests:?}"
    );
}

#[test]
fn codex_runs_a_tool_that_commits_as_the_user() {
    let world = World::new("codex");
    let key = key("sk-openai", "codex");
    let ca = model_api().ca();
    let env = [
        ("OPENAI_API_KEY", key.as_str()),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
    ];
    let api = resolve("api.openai.com");
    let out = world.run(
        &env,
        &[
            "--resolve",
            &api,
            "codex",
            "exec",
            "Write hello.txt and commit it.",
        ],
    );
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains(STUB_REPLY), "{out:?}");
    assert_committed(&world, &out);
    let requests = requests(&key, &out);
    let posts: Vec<_> = requests
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/v1/responses")
        .collect();
    assert!(posts.len() >= 2, "{requests:?}");
    for request in &posts {
        assert_eq!(request["headers"]["authorization"], format!("Bearer {key}"));
        assert_eq!(request["headers"]["host"], "api.openai.com");
    }
    assert!(
        posts
            .iter()
            .any(|r| r["body"].to_string().contains("_call_output\"")),
        "the tool's result never came back: {requests:?}"
    );
}

#[test]
fn gemini_answers_a_prompt() {
    let world = World::new("gemini");
    let key = key("gemini", "gemini");
    let ca = format!("NODE_EXTRA_CA_CERTS={}", world.trust_stub());
    let api = resolve("generativelanguage.googleapis.com");
    let out = world.run(
        &[("GEMINI_API_KEY", key.as_str())],
        &[
            "--resolve",
            &api,
            "-e",
            &ca,
            "gemini",
            "--skip-trust",
            "-p",
            "Say hello.",
        ],
    );
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains(STUB_REPLY), "{out:?}");
    let requests = requests(&key, &out);
    assert!(
        requests.iter().any(|r| r["path"]
            .as_str()
            .is_some_and(|p| p.contains(":streamGenerateContent"))),
        "{requests:?}"
    );
}

/// An OpenAI-compatible provider named `stub` at the stub's plain HTTP
/// port, its key from OPENAI_API_KEY: OpenCode's and Kilo Code's
/// configuration (they share their schema).
pub fn openai_compatible_provider() -> String {
    let base = format!("http://models.test:{}/v1", model_api().http);
    serde_json::json!({
        "provider": {"stub": {
            "npm": "@ai-sdk/openai-compatible",
            "name": "Stub",
            "options": {"baseURL": base, "apiKey": "{env:OPENAI_API_KEY}"},
            "models": {"stub-model": {"name": "Stub model"}}
        }},
        "model": "stub/stub-model"
    })
    .to_string()
}

/// `--resolve` and `--allow-host` for models.test, the stub's plain port.
fn models_test() -> [String; 4] {
    [
        "--resolve".into(),
        resolve("models.test"),
        "--allow-host".into(),
        format!("models.test:{}", model_api().http),
    ]
}

/// A one-shot prompt of an agent given the stub as its OpenAI-compatible
/// provider, with `args` (after models.test's flags); it must print the
/// stub's answer, having sent the key.
fn answers_through_the_proxy(agent: &str, args: &[&str]) {
    let world = World::new(agent);
    let key = key("sk-openai", agent);
    let mut all: Vec<&str> = Vec::new();
    let net = models_test();
    all.extend(net.iter().map(String::as_str));
    all.extend(args);
    let out = world.run(&[("OPENAI_API_KEY", key.as_str())], &all);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains(STUB_REPLY), "{out:?}");
    let requests = requests(&key, &out);
    assert!(
        requests.iter().any(|r| r["path"] == "/v1/chat/completions"
            && r["headers"]["authorization"] == format!("Bearer {key}")),
        "{requests:?}"
    );
}

#[test]
fn opencode_answers_a_prompt() {
    let config = format!("OPENCODE_CONFIG_CONTENT={}", openai_compatible_provider());
    answers_through_the_proxy(
        "opencode",
        &["-e", &config, "opencode", "run", "Say hello."],
    );
}

#[test]
fn kilocode_answers_a_prompt() {
    let config = format!("KILO_CONFIG_CONTENT={}", openai_compatible_provider());
    answers_through_the_proxy(
        "kilocode",
        &["-e", &config, "kilocode", "run", "Say hello."],
    );
}

#[test]
fn aider_answers_a_prompt() {
    let base = format!("OPENAI_API_BASE=http://models.test:{}/v1", model_api().http);
    answers_through_the_proxy(
        "aider",
        &[
            "-e",
            &base,
            "aider",
            "--model",
            "openai/stub-model",
            "--yes-always",
            "--no-auto-commits",
            "--message",
            "Say hello.",
        ],
    );
}
