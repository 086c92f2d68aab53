//! `sandbox mcp` against the real engine, driven by a real MCP client: the
//! official Python SDK (`tests/mcp/driver.py`, `mcp` pinned in
//! `tests/mcp/requirements.txt`), over stdio and over HTTP. Each test is a
//! scenario of the driver in a fresh workspace, whose guard fails the test
//! if a container is left behind.
//!
//! The SDK is installed on first use into a virtual environment under
//! cargo's target directory (`python3 -m venv`, then pip from PyPI), once,
//! and reused while the pinned version stays the same.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{require_engine, sandbox_bin, test_image, Workspace};

const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/driver.py");
const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/requirements.txt");
/// A scenario bounds its own waits (150 s); this is the backstop.
const LIMIT: Duration = Duration::from_secs(240);

/// The venv's python, with the pinned SDK in it.
fn python() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mcp-venv");
        let python = venv.join("bin/python3");
        let stamp = venv.join("requirements.installed");
        let wanted = std::fs::read_to_string(REQUIREMENTS).expect("read requirements.txt");
        if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
            return python;
        }
        let _ = std::fs::remove_dir_all(&venv);
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs (apt-get install python3 python3-venv, or `make engine`)");
        assert!(
            made.success(),
            "python3 -m venv failed: apt-get install python3-venv"
        );
        let installed = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(REQUIREMENTS)
            .status()
            .expect("pip runs");
        assert!(
            installed.success(),
            "pip could not install {REQUIREMENTS} from PyPI"
        );
        std::fs::write(&stamp, wanted).expect("write the venv's stamp");
        python
    })
}

/// Runs `scenario` over `transport` in a fresh workspace whose
/// configuration maps every command to the test image.
fn scenario(scenario: &str, transport: &str) {
    require_engine();
    let python = python();
    let ws = Workspace::new();
    let config = ws.home().join(".config/sandbox");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.yaml"),
        format!(
            "images:\n  default: {image}\n  sh: {image}\ncontainer:\n  pull: never\n{cold}",
            image = test_image(),
            cold = common::cold_container_keys()
        ),
    )
    .unwrap();
    let mut child = Command::new(python)
        .arg(DRIVER)
        .args([scenario, transport])
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        )
        .env("HOME", ws.home())
        .env("XDG_CONFIG_HOME", ws.home().join(".config"))
        .env("SANDBOX_BIN", sandbox_bin())
        .env("SANDBOX_WORKSPACE", ws.path())
        .current_dir(ws.path())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the driver");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = reader.join().unwrap_or_default();
    match status {
        Some(status) if status.success() => eprintln!("{log}"),
        Some(status) => panic!("{scenario} over {transport} failed ({status}):\n{log}"),
        None => panic!("{scenario} over {transport} took longer than {LIMIT:?}:\n{log}"),
    }
}

#[test]
fn stdio_lists_tools_runs_commands_and_shares_files() {
    scenario("basics", "stdio");
}

#[test]
fn http_lists_tools_runs_commands_and_shares_files() {
    scenario("basics", "http");
}

#[test]
fn stdio_time_limit_is_an_error_with_the_output_so_far() {
    scenario("timeout", "stdio");
}

#[test]
fn http_time_limit_is_an_error_with_the_output_so_far() {
    scenario("timeout", "http");
}

#[test]
fn stdio_cancelled_call_leaves_no_container() {
    scenario("cancel", "stdio");
}

#[test]
fn http_cancelled_call_leaves_no_container() {
    scenario("cancel", "http");
}

#[test]
fn stdio_ten_concurrent_calls() {
    scenario("concurrent", "stdio");
}

#[test]
fn http_ten_concurrent_calls() {
    scenario("concurrent", "http");
}

#[test]
fn file_tools_refuse_paths_out_links_and_protected_names() {
    scenario("files_refuse", "stdio");
}

#[test]
fn output_over_the_cap_is_cut_with_its_size() {
    scenario("output_cap", "http");
}

#[test]
fn stdio_shutdown_with_calls_in_flight_leaves_no_container() {
    scenario("shutdown", "stdio");
}

#[test]
fn http_shutdown_with_calls_in_flight_leaves_no_container() {
    scenario("shutdown", "http");
}

#[test]
fn malformed_json_rpc_is_answered_and_the_server_goes_on() {
    scenario("malformed", "stdio");
}

#[test]
fn http_refuses_a_wrong_or_missing_token() {
    scenario("token", "http");
}
