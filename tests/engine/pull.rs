//! Pulling images, against a registry the tests run on loopback: nothing
//! leaves the machine.

use crate::common::{docker, image_only_in_registry, registry, Workspace};

fn run_image(ws: &Workspace, args: &[&str]) -> crate::common::Output {
    ws.command()
        .arg("run")
        .args(args)
        .output()
        .expect("run sandbox")
        .into()
}

#[test]
fn a_missing_image_is_pulled_with_one_plain_line() {
    let ws = Workspace::new();
    let image = image_only_in_registry("pull-missing");
    let out = run_image(&ws, &["--image", &image, "cat", "/unique"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        out.stdout.starts_with("pull-missing "),
        "the pulled image ran: {out:?}"
    );
    assert!(
        out.stderr
            .starts_with(&format!("sandbox: pulled {image}: ")),
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "one line an image: {out:?}");
    docker(&["rmi", &image]);
}

#[test]
fn quiet_pulls_say_nothing() {
    let ws = Workspace::new();
    let image = image_only_in_registry("pull-quiet");
    let out = run_image(&ws, &["-q", "--image", &image, "true"]);
    assert_eq!((out.status, out.stderr.as_str()), (0, ""), "{out:?}");
    docker(&["rmi", &image]);
}

#[test]
fn pull_always_pulls_a_present_image() {
    let ws = Workspace::new();
    let image = image_only_in_registry("pull-always");
    assert_eq!(run_image(&ws, &["--image", &image, "true"]).status, 0);
    let out = run_image(&ws, &["--pull", "always", "--image", &image, "true"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stderr.contains("up to date"), "pulled again: {out:?}");
    let out = run_image(&ws, &["--image", &image, "true"]);
    assert!(
        !out.stderr.contains("pulled") && !out.stderr.contains("up to date"),
        "present images are not pulled by default: {out:?}"
    );
    docker(&["rmi", &image]);
}

#[test]
fn pull_never_refuses_a_missing_image() {
    let ws = Workspace::new();
    let image = image_only_in_registry("pull-never");
    let out = run_image(&ws, &["--pull", "never", "--image", &image, "true"]);
    assert_eq!(out.status, 125, "{out:?}");
    assert!(
        out.stderr.contains(&image) && out.stderr.contains("--pull never"),
        "{out:?}"
    );
}

#[test]
fn a_failed_pull_names_the_image_and_the_reason() {
    let ws = Workspace::new();
    let image = format!("{}/sandbox-test/never-pushed:1", registry());
    let out = run_image(&ws, &["--image", &image, "true"]);
    assert_eq!(out.status, 125, "{out:?}");
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("sandbox: the image ") && last.contains(&image),
        "{out:?}"
    );
    assert!(
        last.contains("not found") || last.contains("manifest unknown"),
        "the engine's reason: {out:?}"
    );
}
