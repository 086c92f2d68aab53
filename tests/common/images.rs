//! The images the engine tests run in, each built locally on first use from
//! files of this machine: nothing is pulled, no registry is needed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{docker, require_engine, tempdir};

/// The image every engine test runs in: `FROM scratch` plus the host's static
/// busybox. Nothing is pulled; no registry is needed.
pub const TEST_IMAGE: &str = "sandbox-test/busybox:1";
const BUSYBOX: &str = "/usr/bin/busybox";

/// The test image, built on first use.
pub fn test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        require_engine();
        assert!(
            Path::new(BUSYBOX).is_file(),
            "{BUSYBOX} is missing: apt-get install busybox-static (`make engine` does)"
        );
        let context = tempdir();
        std::fs::copy(BUSYBOX, context.path().join("busybox")).expect("copy busybox");
        build(
            TEST_IMAGE,
            context.path(),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             ENV PATH=/bin\nLABEL dev.sandbox.test=1\n",
        );
    });
    TEST_IMAGE
}

/// A stand-in coding agent, `sandbox-test/agent:1`: busybox plus a script
/// installed as `claude` and `codex` that prints its arguments, uid, terminal
/// and environment, and counts its runs in its state directory.
pub const AGENT_IMAGE: &str = "sandbox-test/agent:1";

pub fn agent_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let base = test_image();
        let context = tempdir();
        let script = "#!/bin/sh\n\
            echo \"args: $*\"\n\
            echo \"uid: $(id -u):$(id -g)\"\n\
            echo \"tty: $(tty)\"\n\
            env | sort | sed 's/^/env: /'\n\
            state=\"${CLAUDE_CONFIG_DIR:-${CODEX_HOME:-$HOME/.none}}\"\n\
            mkdir -p \"$state\" && echo run >> \"$state/runs\" && echo \"runs: $(wc -l < \"$state/runs\")\"\n";
        std::fs::write(context.path().join("agent"), script).expect("write agent script");
        build(
            AGENT_IMAGE,
            context.path(),
            &format!(
                "FROM {base}\nCOPY agent /usr/local/bin/claude\nCOPY agent /usr/local/bin/codex\n\
                 RUN [\"/bin/chmod\", \"755\", \"/usr/local/bin/claude\", \"/usr/local/bin/codex\"]\n\
                 ENV PATH=/usr/local/bin:/bin\n"
            ),
        );
    });
    AGENT_IMAGE
}

/// The test image plus the host's git (the binary and the libraries it
/// links), for tests of what a command may do to a repository. Built once.
pub const GIT_IMAGE: &str = "sandbox-test/git:1";

pub fn git_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| with_host_binary(GIT_IMAGE, "/usr/bin/git", "git", &[]));
    GIT_IMAGE
}

/// The test image plus the host's curl, for the allow-list's tests, with a
/// stand-in `claude` that shows its key and base URL and sends one request
/// to `$ANTHROPIC_BASE_URL/v1/messages` as Claude Code does. Built once.
pub const CURL_IMAGE: &str = "sandbox-test/curl:1";

pub fn curl_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let claude = "#!/bin/sh\n\
            echo \"key: $ANTHROPIC_API_KEY\"\n\
            echo \"base: $ANTHROPIC_BASE_URL\"\n\
            env | grep -c sk-ant-real || true\n\
            exec curl -sS -H \"x-api-key: $ANTHROPIC_API_KEY\" -d '{}' \"$ANTHROPIC_BASE_URL/v1/messages\"\n";
        with_host_binary(CURL_IMAGE, "/usr/bin/curl", "curl", &[("usr/local/bin/claude", claude)]);
    });
    CURL_IMAGE
}

/// Builds `tag`: the test image plus the host's `binary`, the libraries
/// it links (as `ldd` lists them) and `scripts` (path in the image, text).
fn with_host_binary(tag: &str, binary: &str, package: &str, scripts: &[(&str, &str)]) {
    let base = test_image();
    let context = tempdir();
    let root = context.path().join("root");
    let binary = Path::new(binary);
    assert!(
        binary.is_file(),
        "{} is missing: apt-get install {package}",
        binary.display()
    );
    let ldd = Command::new("ldd").arg(binary).output().expect("ldd runs");
    let mut files = vec![binary.to_path_buf()];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux... (0x...)"
        let path = line.split("=>").last().unwrap_or("").trim();
        let path = path.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            files.push(PathBuf::from(path));
        }
    }
    for file in &files {
        let copy = root.join(file.strip_prefix("/").unwrap());
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(file, &copy).expect("copy the binary and its libraries");
    }
    for (path, text) in scripts {
        let copy = root.join(path);
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::write(&copy, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    build(
        tag,
        context.path(),
        &format!("FROM {base}\nCOPY root/ /\nENV PATH=/usr/local/bin:/usr/bin:/bin\n"),
    );
}

/// Builds `context` with `dockerfile` as the image `tag`.
pub(super) fn build(tag: &str, context: &Path, dockerfile: &str) {
    std::fs::write(context.join("Dockerfile"), dockerfile).expect("write Dockerfile");
    let out = docker(&[
        "build",
        "-q",
        "-t",
        tag,
        context.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status, 0, "building {tag} failed: {}", out.stderr);
}
