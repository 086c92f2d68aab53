//! The command line without an engine: help, usage errors, configuration
//! errors, --dry-run, and an unreachable engine. DOCKER_HOST points nowhere,
//! so nothing here can start a container.

mod common;

use common::{hermetic, tempdir, Output};

fn sandbox(args: &[&str]) -> Output {
    let home = tempdir();
    sandbox_in(home.path(), args)
}

fn sandbox_in(home: &std::path::Path, args: &[&str]) -> Output {
    hermetic(home)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .current_dir(home)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run sandbox")
        .into()
}

#[test]
fn help_and_version() {
    let out = sandbox(&["--help"]);
    assert_eq!(out.status, 0);
    assert!(out.stdout.contains("run"), "{out:?}");
    let out = sandbox(&["run", "--help"]);
    for flag in [
        "--image",
        "--timeout",
        "--workspace",
        "--keep",
        "--env",
        "--network",
        "--memory",
        "--cpus",
        "--pids-limit",
        "--user",
        "--seccomp",
        "--pull",
        "--dry-run",
        "--read-only-workspace",
        "--no-tty",
    ] {
        assert!(out.stdout.contains(flag), "{flag} missing from run --help");
    }
    assert!(out.stdout.contains("125"), "exit statuses are documented");
    let out = sandbox(&["--version"]);
    assert_eq!(
        out.stdout,
        format!("sandbox {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_are_125() {
    let out = sandbox(&["run"]);
    assert_eq!(out.status, 125, "{out:?}");
    let out = sandbox(&["run", "--pull", "sometimes", "true"]);
    assert_eq!(out.status, 125, "{out:?}");
    let out = sandbox(&["frobnicate"]);
    assert_eq!(out.status, 125, "{out:?}");
}

#[test]
fn an_unreachable_engine_is_one_line_and_125() {
    let out = sandbox(&["run", "true"]);
    assert_eq!(out.status, 125, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out
        .stderr
        .starts_with("sandbox: cannot reach the Docker engine at unix:///nonexistent/docker.sock"));
    assert!(out.stderr.contains("daemon running"), "{out:?}");
}

#[test]
fn bad_input_is_one_line_and_125() {
    for args in [
        &["run", "--memory", "lots", "true"][..],
        &["run", "--timeout", "soon", "true"],
        &["run", "-w", "/no/such/dir", "true"],
        &["run", "--seccomp", "nonsense", "true"],
        &["run", "--seccomp", "/no/such/profile.json", "true"],
        &["run", "-e", "1BAD=x", "true"],
        &["--config", "/no/such/config.yaml", "run", "true"],
    ] {
        let out = sandbox(args);
        assert_eq!(out.status, 125, "{args:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("sandbox: "), "{args:?}: {out:?}");
        assert!(!out.stderr.contains("panicked"), "{args:?}: {out:?}");
    }
}

#[test]
fn config_errors_name_the_file_key_and_line() {
    let home = tempdir();
    let dir = home.path().join(".config/sandbox");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.yaml");
    std::fs::write(&file, "container:\n  memory: 1g\n  memroy: 2g\n").unwrap();
    let out = sandbox_in(home.path(), &["run", "true"]);
    assert_eq!(out.status, 125, "{out:?}");
    assert!(out.stderr.contains(&file.display().to_string()), "{out:?}");
    assert!(
        out.stderr.contains("memroy") && out.stderr.contains("line 3"),
        "{out:?}"
    );

    std::fs::write(&file, "images: [\n").unwrap();
    let out = sandbox_in(home.path(), &["run", "true"]);
    assert_eq!(out.status, 125);
    assert!(out.stderr.contains("line"), "{out:?}");
}

#[test]
fn dry_run_shows_names_never_values() {
    let home = tempdir();
    let out = hermetic(home.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("LANG", "C.UTF-8")
        .env("AWS_SECRET_ACCESS_KEY", "very-secret-value")
        .env("MY_SERVICE_TOKEN", "token-value")
        .env("UNLISTED", "plain-value")
        .current_dir(home.path())
        .args([
            "run",
            "--dry-run",
            "--memory",
            "1g",
            "-e",
            "EXTRA=given-value",
            "python",
            "app.py",
        ])
        .output()
        .unwrap();
    let out = Output::from(out);
    assert_eq!(out.status, 0, "no engine is needed: {out:?}");
    let text = &out.stdout;
    for value in [
        "very-secret-value",
        "token-value",
        "plain-value",
        "given-value",
    ] {
        assert!(!text.contains(value), "{value} printed: {text}");
    }
    assert!(text.contains("python:3.12-slim"), "{text}");
    assert!(text.contains("command:     python app.py"), "{text}");
    assert!(
        text.contains("AWS_SECRET_ACCESS_KEY (blocked by AWS_*)"),
        "{text}"
    );
    assert!(
        text.contains("MY_SERVICE_TOKEN (blocked by *_TOKEN)"),
        "{text}"
    );
    assert!(text.contains("UNLISTED (not in the allow list)"), "{text}");
    assert!(
        text.contains("env passed:  EXTRA HOME LANG") || text.contains("LANG"),
        "{text}"
    );
    assert!(text.contains("memory:      1g (swap 1g)"), "{text}");
    assert!(text.contains("seccomp:     default"), "{text}");
    assert!(
        text.contains(&format!(
            "{} -> /work (rw)",
            home.path().canonicalize().unwrap().display()
        )),
        "{text}"
    );
}

#[test]
fn the_example_config_loads() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml");
    let out = sandbox(&["--config", example, "run", "--dry-run", "true"]);
    assert_eq!(out.status, 0, "{out:?}");
}

#[test]
fn config_show_prints_the_effective_configuration() {
    let home = tempdir();
    let file = home.path().join("mine.yaml");
    std::fs::write(&file, "container:\n  memory: 2g\n").expect("write config");
    let out = sandbox_in(
        home.path(),
        &["--config", file.to_str().expect("utf-8"), "config", "show"],
    );
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("memory: 2g"), "{out:?}");
    assert!(
        out.stdout.contains("pids_limit: 512"),
        "defaults are merged in: {out:?}"
    );

    let out = sandbox_in(
        home.path(),
        &["--config", file.to_str().expect("utf-8"), "config", "path"],
    );
    assert_eq!(out.stdout.trim(), file.display().to_string());
    let out = sandbox_in(home.path(), &["config", "path"]);
    assert_eq!(
        out.stdout.trim(),
        home.path()
            .join(".config/sandbox/config.yaml")
            .display()
            .to_string()
    );
}
