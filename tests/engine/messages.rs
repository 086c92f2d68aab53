//! What sandbox says, and when it says nothing: a command that cannot be
//! invoked (126/127) in sandbox's own words, with the command's own output
//! never touched; `--quiet`; a pull without a terminal.

use std::os::unix::fs::PermissionsExt;

use crate::common::{docker, image_only_in_registry, test_image, Output, Workspace};

/// `sandbox run` without `--warm`, even in the warm pass: docker-init's
/// line is a cold run's (a warm container's waiter is a shell).
fn cold(ws: &Workspace, args: &[&str]) -> Output {
    ws.command()
        .args(["run", "--image", test_image(), "--pull", "never"])
        .args(args)
        .output()
        .expect("run sandbox")
        .into()
}

/// The same command under a plain `docker run --init`, with the workspace
/// at /work: what the engine and docker-init say by themselves.
fn plain(ws: &Workspace, args: &[&str]) -> Output {
    let volume = format!("{}:/work", ws.path().display());
    let mut all = vec!["run", "--rm", "--init", "-v", &volume, "-w", "/work"];
    all.push(test_image());
    all.extend_from_slice(args);
    docker(&all)
}

#[test]
fn a_command_that_cannot_run_is_named_in_sandboxs_words() {
    let ws = Workspace::new();
    std::fs::write(ws.path().join("script"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(ws.path().join("script"), PermissionsExt::from_mode(0o644)).unwrap();
    for (args, status, said) in [
        (
            &["no-such-command", "arg"][..],
            127,
            "sandbox: no-such-command: not found in the image (exit 127) — ",
        ),
        (
            &["./no-such-file"],
            127,
            "sandbox: ./no-such-file: no such file in the container, or its #! interpreter is missing (exit 127) — ",
        ),
        (
            &["./script"],
            126,
            "sandbox: ./script: cannot be executed: permission denied (exit 126) — ",
        ),
    ] {
        let out = cold(&ws, args);
        assert_eq!(out.status, status, "{args:?}: {out:?}");
        assert_eq!(out.stdout, "", "{args:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with(said), "{args:?}: {out:?}");
        assert!(!out.stderr.contains("tini"), "{args:?}: {out:?}");
        // The control: docker-init's own line, which sandbox replaces.
        let control = plain(&ws, args);
        assert_eq!(control.status, status, "{args:?}: {control:?}");
        assert!(
            control.stderr.starts_with("[FATAL tini ("),
            "{args:?}: {control:?}"
        );
        assert!(control.stderr.contains(&format!("exec {} failed: ", args[0])));
    }
}

#[test]
fn without_an_init_the_engines_refusal_reads_the_same() {
    let ws = Workspace::new();
    let config = ws.home().join(".config/sandbox");
    std::fs::create_dir_all(&config).unwrap();
    let text = format!("{}security:\n  init: false\n", crate::common::cold_config());
    std::fs::write(config.join("config.yaml"), text).unwrap();
    let out = cold(&ws, &["no-such-command"]);
    assert_eq!(out.status, 127, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with("sandbox: no-such-command: not found in the image (exit 127) — "),
        "{out:?}"
    );
    // The control: the engine's own words, which name runc and $PATH.
    let control = docker(&["run", "--rm", test_image(), "no-such-command"]);
    assert_eq!(control.status, 127, "{control:?}");
    assert!(
        control.stderr.contains("executable file not found"),
        "{control:?}"
    );
}

/// Only docker-init's exact line, about this command, first and alone on
/// stderr, confirmed by the status it gives, is replaced; a command that
/// prints the same line keeps every byte of it.
#[test]
fn the_commands_own_output_is_never_taken() {
    let ws = Workspace::new();
    let line = "[FATAL tini (7)] exec sh failed: No such file or directory";
    let other = "[FATAL tini (7)] exec python failed: No such file or directory";
    for (script, status, stdout, stderr) in [
        // The line itself, then success: the command ran.
        (
            format!("echo '{line}' >&2"),
            0,
            String::new(),
            format!("{line}\n"),
        ),
        // Exit 127 too, but the line names another command.
        (
            format!("echo '{other}' >&2; exit 127"),
            127,
            String::new(),
            format!("{other}\n"),
        ),
        // The line, then more.
        (
            format!("echo '{line}' >&2; echo more >&2; exit 127"),
            127,
            String::new(),
            format!("{line}\nmore\n"),
        ),
        // Output before it.
        (
            format!("echo out; echo '{line}' >&2; exit 127"),
            127,
            "out\n".to_string(),
            format!("{line}\n"),
        ),
        // On stdout: never docker-init's.
        (
            format!("echo '{line}'; exit 127"),
            127,
            format!("{line}\n"),
            String::new(),
        ),
        // Only its beginning, without the line's end.
        (
            "printf '[FATAL tini (7)] exec sh' >&2; exit 127".to_string(),
            127,
            String::new(),
            "[FATAL tini (7)] exec sh".to_string(),
        ),
    ] {
        let out = cold(&ws, &["sh", "-c", &script]);
        assert_eq!(
            (out.status, out.stdout.as_str(), out.stderr.as_str()),
            (status, stdout.as_str(), stderr.as_str()),
            "{script}"
        );
    }
}

#[test]
fn quiet_says_nothing_but_errors() {
    let ws = Workspace::new();
    std::fs::write(ws.path().join("kept"), "k").unwrap();
    let run = |args: &[&str]| -> Output {
        let mut all = vec!["run", "--image", test_image(), "--pull", "never"];
        all.extend_from_slice(args);
        ws.command().args(&all).output().unwrap().into()
    };
    let copied = ["--copy-workspace", "sh", "-c", "cat kept; echo x > made"];
    // The control: without -q a copied run reports what it moved.
    let out = run(&copied);
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(out.stdout, "k");
    for said in [
        "sandbox: sent ",
        " of the workspace in ",
        "sandbox: copied back ",
    ] {
        assert!(out.stderr.contains(said), "{said}: {out:?}");
    }
    std::fs::remove_file(ws.path().join("made")).unwrap();

    let mut quiet = vec!["-q"];
    quiet.extend_from_slice(&copied);
    let out = run(&quiet);
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (0, "k", ""),
        "{out:?}"
    );
    assert!(ws.path().join("made").exists(), "the change came back");

    // Errors still speak.
    let out = run(&["-q", "no-such-command"]);
    assert_eq!(out.status, 127, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}

#[test]
fn a_pull_without_a_terminal_is_one_line() {
    let ws = Workspace::new();
    let image = image_only_in_registry("one-line-pull");
    let out: Output = ws
        .command()
        .args(["run", "--image", &image, "cat", "/unique"])
        .output()
        .unwrap()
        .into();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.starts_with("one-line-pull "), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with(&format!("sandbox: pulled {image}: 1 new layer, ")),
        "{out:?}"
    );
    // The control: the engine reports each layer as it goes, several
    // statuses a layer, as the docker CLI shows them without a terminal
    // (from the tests' own registry on loopback, as above).
    docker(&["rmi", &image]);
    let control = docker(&["pull", &image]);
    assert_eq!(control.status, 0, "{control:?}");
    assert!(control.stdout.lines().count() > 2, "{control:?}");
    docker(&["rmi", &image]);
}
