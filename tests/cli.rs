//! The command line without an engine: help, usage errors, configuration
//! errors, --dry-run, and an unreachable engine. DOCKER_HOST points nowhere,
//! so nothing here can start a container.

mod common;

use common::{hermetic, tempdir, Output};

fn sandbox(args: &[&str]) -> Output {
    let home = tempdir();
    sandbox_in(home.path(), args)
}

/// `sandbox` with its configuration under `home`, run in `home`: HOME
/// itself is elsewhere, as a workspace that holds HOME is refused.
fn sandbox_in(home: &std::path::Path, args: &[&str]) -> Output {
    hermetic(home)
        .env("HOME", "/nonexistent/home")
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
fn the_machine_and_the_home_directory_are_refused_as_workspaces() {
    let home = tempdir();
    let project = home.path().join("src/app");
    std::fs::create_dir_all(&project).unwrap();
    let run = |cwd: &std::path::Path, args: &[&str]| -> Output {
        hermetic(home.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .current_dir(cwd)
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    for (cwd, args, said) in [
        (
            std::path::Path::new("/"),
            &["run", "true"][..],
            "cannot be /",
        ),
        (&project, &["run", "-w", "/", "true"][..], "cannot be /"),
        (
            home.path(),
            &["run", "true"][..],
            "holds your home directory",
        ),
    ] {
        let out = run(cwd, args);
        assert_eq!(out.status, 125, "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert!(out.stderr.contains(said), "{out:?}");
    }
    // The control: from a project under HOME, or with -w naming HOME, the
    // run goes as far as the (missing) engine.
    for (cwd, args) in [
        (&project, vec!["run", "true"]),
        (
            &project,
            vec!["run", "-w", home.path().to_str().unwrap(), "true"],
        ),
    ] {
        let out = run(cwd, &args);
        assert!(
            out.stderr.contains("cannot reach the Docker engine"),
            "{out:?}"
        );
    }
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
fn bad_allow_list_input_is_named_before_anything_starts() {
    for (args, named) in [
        (&["run", "--allow-host", "a.*.com", "true"][..], "a.*.com"),
        (&["run", "--allow-host", "@pipy", "true"], "@pipy"),
        (&["run", "--allow-host", "a.com:70000", "true"], "70000"),
        (&["run", "--allow-host", "a.com:0", "true"], "out of range"),
        (
            &[
                "run",
                "--network",
                "bridge",
                "--allow-host",
                "a.com",
                "true",
            ],
            "--allow-host",
        ),
        (
            &["run", "--allow-host", "a.com", "--resolve", "a.com", "true"],
            "a.com",
        ),
    ] {
        let out = sandbox(args);
        assert_eq!(out.status, 125, "{args:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {out:?}");
        assert!(out.stderr.contains(named), "{args:?}: {out:?}");
        // Refused before the engine was asked (it points nowhere).
        assert!(!out.stderr.contains("cannot reach"), "{args:?}: {out:?}");
    }
    let out = sandbox(&[
        "run",
        "--dry-run",
        "--allow-host",
        "@pypi",
        "--allow-host",
        "x.test:8443",
        "true",
    ]);
    assert_eq!(out.status, 0, "{out:?}");
    for said in [
        "allow-list",
        "@pypi x.test:8443",
        "pypi.org files.pythonhosted.org",
    ] {
        assert!(
            out.stdout.contains(said),
            "--dry-run shows {said:?}: {out:?}"
        );
    }
}

/// Codex reads its base URL only from its configuration: the run's (the
/// relay's, or the user's own) reaches it as `--config`, before the words
/// typed; with neither, nothing is added.
#[test]
fn codex_is_given_its_base_url_on_its_command_line() {
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let command = |env: &[(&str, &str)]| {
        let mut cmd = hermetic(home.path());
        cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
            .current_dir(project.path())
            .args(["run", "--dry-run", "codex", "exec", "hi"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out: Output = cmd.output().unwrap().into();
        assert_eq!(out.status, 0, "{out:?}");
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("command:"))
            .unwrap();
        line.trim_start_matches("command:").trim().to_string()
    };
    assert_eq!(
        command(&[("OPENAI_API_KEY", "sk-test")]),
        "codex '--config=openai_base_url=\"http://egress:8081/v1\"' exec hi"
    );
    assert_eq!(
        command(&[
            ("OPENAI_API_KEY", "sk-test"),
            ("OPENAI_BASE_URL", "http://mine.test/v1")
        ]),
        "codex '--config=openai_base_url=\"http://mine.test/v1\"' exec hi"
    );
    assert_eq!(command(&[]), "codex exec hi");
}

/// `sandbox mcp` runs its callers' commands with `--no-agent`: a caller
/// naming an agent gets a plain command, not the agent's keys and state.
/// The control: without it the same words start the agent with its key.
#[test]
fn no_agent_makes_an_agents_name_a_plain_command() {
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let dry_run = |extra: &[&str]| -> Output {
        let mut cmd = hermetic(home.path());
        cmd.env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env("GEMINI_API_KEY", "host-secret")
            .current_dir(project.path())
            .args(["run", "--dry-run", "--network", "none"])
            .args(extra)
            .args(["--", "gemini", "-p", "hi"]);
        cmd.output().unwrap().into()
    };
    let agent = dry_run(&[]);
    assert!(agent.stdout.contains("agent:       gemini"), "{agent:?}");
    let passed = |out: &Output| {
        let line = out.stdout.lines().find(|l| l.starts_with("env passed:"));
        line.unwrap_or_default().to_string()
    };
    assert!(passed(&agent).contains("GEMINI_API_KEY"), "{agent:?}");
    let plain = dry_run(&["--no-agent", "--timeout=18446744073709551615s"]);
    assert_eq!(plain.status, 0, "{plain:?}");
    assert!(!plain.stdout.contains("agent:"), "{plain:?}");
    assert!(!passed(&plain).contains("GEMINI_API_KEY"), "{plain:?}");
    assert!(
        !plain.stdout.contains(".gemini ->"),
        "no state mounted: {plain:?}"
    );
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
        .env("HOME", "/nonexistent/home")
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

#[test]
fn config_init_writes_the_defaults_once() {
    let home = tempdir();
    let out = sandbox_in(home.path(), &["config", "init"]);
    assert_eq!(out.status, 0, "{out:?}");
    let file = home.path().join(".config/sandbox/config.yaml");
    let written = std::fs::read_to_string(&file).expect("init wrote the file");
    assert!(written.starts_with("# sandbox configuration"), "commented");

    let defaults = sandbox(&["config", "show"]).stdout;
    let shown = sandbox_in(home.path(), &["config", "show"]);
    assert_eq!(shown.stdout, defaults, "the written file is the defaults");

    std::fs::write(&file, "container:\n  memory: 1g\n").unwrap();
    let out = sandbox_in(home.path(), &["config", "init"]);
    assert_eq!(out.status, 125, "{out:?}");
    assert!(out.stderr.contains("--force"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "container:\n  memory: 1g\n"
    );
    let out = sandbox_in(home.path(), &["config", "init", "--force"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);
}

#[test]
fn config_validate_reports_every_problem_with_its_line() {
    let home = tempdir();
    let file = home.path().join("bad.yaml");
    std::fs::write(
        &file,
        "container:\n  memory: lots\n  timeout: soon\nsecurity:\n  seccompp: strict\n",
    )
    .unwrap();
    let out = sandbox_in(home.path(), &["config", "validate", file.to_str().unwrap()]);
    assert_eq!(out.status, 125, "{out:?}");
    let path = file.display().to_string();
    for (line, key) in [(2, "memory"), (3, "timeout"), (5, "seccompp")] {
        let expected = format!("{path}:{line}: ");
        let hit = out.stderr.lines().find(|l| l.starts_with(&expected));
        assert!(hit.is_some_and(|l| l.contains(key)), "{key}: {out:?}");
    }
    assert!(out.stderr.contains("3 problems"), "{out:?}");

    // A broken file in use does not stop validate from reporting on it.
    let out = sandbox_in(
        home.path(),
        &["--config", file.to_str().unwrap(), "config", "validate"],
    );
    assert_eq!(out.status, 125, "{out:?}");
    assert!(out.stderr.contains("seccompp"), "{out:?}");

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml");
    let out = sandbox(&["config", "validate", example]);
    assert_eq!(
        (out.status, out.stdout.trim()),
        (0, &*format!("{example}: valid"))
    );
}

#[test]
fn config_edit_opens_the_editor_then_checks_the_file() {
    let home = tempdir();
    let editor = home.path().join("editor.sh");
    // A scripted "editor" that saves a typo.
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf 'container:\\n  memroy: 1g\\n' > \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out: Output = hermetic(home.path())
        .env("EDITOR", &editor)
        .args(["config", "edit"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
        .into();
    assert_eq!(out.status, 125, "{out:?}");
    assert!(out.stderr.contains(":2: container.memroy"), "{out:?}");
}

#[test]
fn completions_and_the_manual_page() {
    for (shell, marker) in [
        ("bash", "_sandbox()"),
        ("zsh", "#compdef sandbox"),
        ("fish", "complete -c sandbox"),
    ] {
        let out = sandbox(&["completions", shell]);
        assert_eq!(out.status, 0, "{out:?}");
        assert!(
            out.stdout.contains(marker),
            "{shell}: {}",
            &out.stdout[..200.min(out.stdout.len())]
        );
        assert!(
            out.stdout.contains("prune"),
            "{shell} completes subcommands"
        );
        // The control is above: the scripts name subcommands and flags,
        // so a hidden one would be seen.
        for hidden in ["warm-prepare", "warm_prepare", "reap", "--volume", "--rm"] {
            assert!(!out.stdout.contains(hidden), "{shell} offers {hidden}");
        }
        assert!(out.stdout.contains("read-only-workspace"), "{shell}");
    }
    let out = sandbox(&["completions", "tcsh"]);
    assert_eq!(out.status, 125, "{out:?}");
    let out = sandbox(&["man"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        out.stdout.starts_with(".ie"),
        "roff: {}",
        &out.stdout[..100]
    );
    assert!(out.stdout.contains("sandbox"), "{out:?}");
}

#[test]
fn a_manual_page_per_subcommand() {
    let out = sandbox(&["man", "run"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains(".TH sandbox-run 1"), "{out:?}");
    assert!(
        out.stdout.contains("\\-\\-timeout"),
        "run's own flags: {out:?}"
    );
    let out = sandbox(&["man", "config", "show"]);
    assert!(out.stdout.contains(".TH sandbox-config-show 1"), "{out:?}");
    // The control: sandbox's own page is another.
    assert!(sandbox(&["man"]).stdout.contains(".TH sandbox 1"));

    let out = sandbox(&["man", "nope"]);
    assert_eq!(out.status, 125, "{out:?}");
    assert!(out.stderr.contains("pages for: run, ls"), "{out:?}");
    assert!(!out.stderr.contains("warm-prepare"), "{out:?}");

    let dir = tempdir();
    let out = sandbox(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status, 0, "{out:?}");
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    for page in [
        "sandbox.1",
        "sandbox-run.1",
        "sandbox-ls.1",
        "sandbox-config-show.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} missing: {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("warm")), "{pages:?}");
}

#[test]
fn a_bare_sandbox_prints_the_help() {
    let out = sandbox(&[]);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("Usage: sandbox"), "{out:?}");
    assert!(out.stdout.contains("run "), "{out:?}");
    assert_eq!(out.stderr, "", "not an error: {out:?}");
    // The control: flags without a subcommand are a usage error, in one
    // line that names no hidden subcommand.
    let out = sandbox(&["-v"]);
    assert_eq!(out.status, 125, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("sandbox run COMMAND"), "{out:?}");
    assert!(!out.stderr.contains("warm-prepare"), "{out:?}");
}

#[test]
fn docker_habits_do_what_they_mean_or_are_refused() {
    let plan = |args: &[&str]| {
        let mut all = vec!["run", "--dry-run"];
        all.extend_from_slice(args);
        sandbox(&all)
    };
    // -it, -u and --rm mean what they mean to docker.
    let out = plan(&["-it", "-u", "1:2", "--rm", "sh"]);
    assert_eq!(out.status, 0, "{out:?}");
    for line in [
        "tty:         yes",
        "stdin:       forwarded",
        "user:        1:2",
        "command:     sh",
    ] {
        assert!(out.stdout.contains(line), "{line}: {out:?}");
    }
    assert!(out.stdout.contains("keep:        no"), "{out:?}");
    // The control: without them, no terminal (stdin is /dev/null here).
    let out = plan(&["sh"]);
    assert!(out.stdout.contains("tty:         no"), "{out:?}");
    // -i and -t take no value: the image and timeout are long flags only,
    // and a docker habit never names an image by accident.
    let out = plan(&["-t", "5m", "true"]);
    assert!(out.stdout.contains("command:     5m true"), "{out:?}");
    let out = plan(&["--image", "busybox:1", "--timeout", "5m", "true"]);
    assert!(out.stdout.contains("image:       busybox:1"), "{out:?}");
    assert!(out.stdout.contains("timeout:     5m"), "{out:?}");

    let out = sandbox(&["run", "--rm", "-k", "true"]);
    assert_eq!(out.status, 125, "{out:?}");

    for args in [
        &["run", "-v", "/data:/data", "ls"][..],
        &["run", "--volume", "/data:/data", "ls"],
        &["run", "--mount", "type=bind,src=/data,dst=/data", "ls"],
    ] {
        let out = sandbox(args);
        assert_eq!(out.status, 125, "{args:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("sandbox mounts no volumes")
                && out.stderr.contains("/work")
                && out.stderr.contains("--workspace DIR"),
            "{args:?}: {out:?}"
        );
    }
    // The control: -v with the command after it is --verbose, as ever.
    let out = plan(&["-v", "ls", "a:b"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("command:     ls a:b"), "{out:?}");
}

#[test]
fn negative_values_get_the_types_words() {
    for (flag, value, said) in [
        ("--memory", "-1g", "not a size"),
        ("--cpus", "-1", "not a number of cores"),
        ("--pids-limit", "-5", "not a process limit"),
    ] {
        let out = sandbox(&["run", flag, value, "true"]);
        assert_eq!(out.status, 125, "{flag}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{flag}: {out:?}");
        assert!(
            out.stderr
                .starts_with(&format!("sandbox: {flag} \"{value}\": {said}")),
            "{flag}: {out:?}"
        );
        assert!(!out.stderr.contains("unexpected argument"), "{out:?}");
    }
    // The control: the same flags with good values parse.
    let out = sandbox(&["run", "--dry-run", "--memory", "1g", "--cpus", "1", "true"]);
    assert_eq!(out.status, 0, "{out:?}");
}

#[test]
fn verbose_output_into_a_pipe_has_no_colour() {
    // -vv logs before the (missing) engine is reached: a runtime
    // directory that is not there is not used, and says so.
    let home = tempdir();
    let out: Output = hermetic(home.path())
        .env("HOME", "/nonexistent/home")
        .env("XDG_RUNTIME_DIR", "/nonexistent/run")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .current_dir(home.path())
        .args(["-vv", "run", "true"])
        .output()
        .unwrap()
        .into();
    assert!(out.stderr.contains("DEBUG XDG_RUNTIME_DIR"), "{out:?}");
    assert!(
        !out.stderr.contains('\x1b'),
        "escape codes in a pipe: {out:?}"
    );
    // The control: on a terminal the same logs are coloured.
    let on_terminal = on_a_terminal(&["-vv", "run", "true"]);
    assert!(on_terminal.contains('\x1b'), "{on_terminal:?}");
}

/// What `sandbox ARGS` writes to a terminal (stdout and stderr both).
fn on_a_terminal(args: &[&str]) -> String {
    use portable_pty::{native_pty_system, CommandBuilder, PtySize};
    use std::io::Read;
    let home = tempdir();
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("open a pseudo-terminal");
    let mut command = CommandBuilder::new(common::sandbox_bin());
    command.env_clear();
    command.env("HOME", "/nonexistent/home");
    command.env("XDG_CONFIG_HOME", home.path().join(".config"));
    command.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    command.env("XDG_RUNTIME_DIR", "/nonexistent/run");
    command.cwd(home.path());
    command.args(args);
    let mut child = pty.slave.spawn_command(command).expect("spawn sandbox");
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().expect("read the terminal");
    let mut text = Vec::new();
    // The reader ends with an error once the child has exited and closed it.
    let _ = reader.read_to_end(&mut text);
    child.wait().expect("sandbox exits");
    String::from_utf8_lossy(&text).into_owned()
}

/// A socket the user may not open is answered with how to get access, not
/// with "is the daemon running?". Tests run as root, which opens any
/// socket, so sandbox runs as nobody (setpriv) against a mode-000 socket.
#[test]
fn a_socket_the_user_may_not_open_says_how_to_get_access() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.path().join("docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // Anyone who gets in is hung up on at once: an engine that is broken.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    let as_nobody = |mode: u32| -> Output {
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(mode)).unwrap();
        let host = format!("unix://{}", socket.display());
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(common::sandbox_bin())
            .args(["-H", &host, "ls"])
            .env_clear()
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join(".config"))
            .current_dir(dir.path())
            .output()
            .expect("run setpriv (util-linux)")
            .into()
    };
    let out = as_nobody(0o000);
    assert_eq!(out.status, 125, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("permission denied"), "{out:?}");
    for way in ["docker group", "usermod -aG docker", "rootless", "sudo"] {
        let way = way.replace("docker group", "usually docker");
        assert!(out.stderr.contains(&way), "{way}: {out:?}");
    }
    assert!(!out.stderr.contains("daemon running"), "{out:?}");
    // The control: the same socket, open to all, is reached, and what
    // fails then is the engine, with the advice for that.
    let out = as_nobody(0o777);
    assert_eq!(out.status, 125, "{out:?}");
    assert!(!out.stderr.contains("permission denied"), "{out:?}");
    assert!(out.stderr.contains("daemon running"), "{out:?}");
}

#[test]
fn a_project_file_with_a_typo_is_125_before_any_engine() {
    let home = tempdir();
    std::fs::write(home.path().join(".sandbox.yml"), "stup:\n  - make\n").unwrap();
    let out = sandbox_in(home.path(), &["run", "--dry-run", "true"]);
    assert_eq!(out.status, 125, "{out:?}");
    assert!(
        out.stderr.contains(".sandbox.yml") && out.stderr.contains("stup"),
        "{out:?}"
    );

    std::fs::write(home.path().join(".sandbox.yml"), "setup:\n  - make deps\n").unwrap();
    let out = sandbox_in(home.path(), &["run", "--dry-run", "true"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("setup 1:     make deps"), "{out:?}");
}

#[test]
fn doctor_without_an_engine_still_reports_the_rest() {
    let home = tempdir();
    let out = sandbox_in(home.path(), &["doctor"]);
    assert_eq!(out.status, 125, "{out:?}");
    assert!(out.stdout.contains("config "), "{out:?}");
    assert!(out.stdout.contains("workspace "), "{out:?}");
    let engine = out
        .stdout
        .lines()
        .find(|l| l.starts_with("engine"))
        .unwrap_or_default();
    assert!(engine.contains("cannot reach the Docker engine"), "{out:?}");
    assert!(out.stderr.contains("1 problem found"), "{out:?}");
}

/// An env file may come with the repository: in an agent's run it may hold
/// keys, but nothing that sends the agent's requests or key elsewhere.
#[test]
fn an_env_file_cannot_steer_an_agent() {
    let home = tempdir();
    let file = home.path().join("repo.env");
    let run = || {
        let args = [
            "run",
            "--dry-run",
            "--env-file",
            file.to_str().unwrap(),
            "claude",
        ];
        sandbox_in(home.path(), &args)
    };
    for line in [
        "ANTHROPIC_BASE_URL=https://attacker.example",
        "HTTPS_PROXY=http://attacker.example:8080",
        "NODE_OPTIONS=--require /work/steal.js",
    ] {
        std::fs::write(&file, format!("{line}\n")).unwrap();
        let out = run();
        let name = line.split('=').next().unwrap();
        assert_eq!(out.status, 125, "{line}: {out:?}");
        assert!(
            out.stderr.contains(name) && out.stderr.contains("-e"),
            "{out:?}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    }
    std::fs::write(&file, "ANTHROPIC_API_KEY=sk-mine\n").unwrap();
    assert_eq!(run().status, 0, "a key is what env files hold");
}
