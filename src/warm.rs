//! Warm starts: a container created and started ahead of time, waiting for
//! the command of the next run with the same settings, so that run skips the
//! engine's create and start.
//!
//! Throwaway still holds: a warm container serves one command and is removed
//! after it, like any other. It waits in a small shell that reads one line
//! (the command, shell-quoted) on stdin and then `exec`s it, so the command
//! ends up exactly where a cold run puts it: the child of the init, with the
//! same environment, limits, mounts and user. Unused, it stops by itself
//! after the idle time.
//!
//! A warm container is named after a hash of its settings, the ID of its
//! image and its waiting shell among them (not the tag, which a rebuild
//! moves). A run claims it for itself alone and hands it the command
//! (`claim.rs`). The next one is prepared by a detached `sandbox
//! warm-prepare`, so the run that asked for it does not wait, and only once
//! that run is over and its workspace checked (`run/mod.rs`): a container
//! started while a command runs would be made while that command can still
//! change the workspace.
//!
//! A run on a terminal gets a warm container with a terminal of its own
//! (another container: the settings differ). The command line then goes
//! through the container's terminal, whose line discipline echoes it and
//! acts on control characters: the echo is dropped with everything before
//! the acknowledgement, and a command whose line a terminal would change
//! ([`fits_a_terminal`]) runs cold. The terminal is otherwise left as the
//! engine made it, as in a cold run.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use bollard::models::ContainerCreateBody;

use crate::engine::{Engine, Listed, NameTaken};
use crate::labels;
use crate::plan::RunPlan;
use crate::request::{self, Dialect, Purpose};
use crate::shell;

mod claim;
mod mounted;

pub use claim::{claim, Handed};

/// Prefix of an unclaimed warm container's name.
pub const NAME_PREFIX: &str = "sandbox-warm-";
/// After a warm container's name while its preparer checks it.
const PENDING: &str = "-pending";
/// What the waiting shell writes to stdout once it has the command and is
/// about to run it: the run knows the command started, and takes it off.
const ACK: u8 = 0x06;

/// A warm container's request, before it is tied to an image.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Warm {
    /// The engine it runs on.
    pub host: String,
    /// The run's request without its command, the image named as the run
    /// named it: [`Warm::pinned`] makes the container's own.
    pub body: ContainerCreateBody,
    /// How long it waits unused, in seconds.
    pub idle: u64,
    /// The stand-ins its mounts cover (`protect/`), made before it starts.
    #[serde(default)]
    pub stand_ins: Vec<crate::protect::Placeholder>,
    #[serde(default)]
    pub workspace: std::path::PathBuf,
    #[serde(default)]
    pub private_dir: std::path::PathBuf,
    /// The command's stdio goes through FIFOs (`pipes/`): the preparer
    /// makes them, the waiter execs the command through the stdio shim.
    #[serde(default)]
    pub fifos: bool,
}

impl Warm {
    /// The warm twin of `plan`'s container, waiting `idle` for a command,
    /// with what the preparer must make before it starts the container: the
    /// run's stand-ins may be gone by then.
    pub fn for_plan(plan: &RunPlan, idle: Duration) -> Warm {
        let mut body = request::build(plan, Purpose::Warm, Dialect::Docker);
        // A terminal is fixed when a container is created: a run on one
        // takes a container made with one (and stdin open, as for any).
        body.tty = Some(plan.io.tty);
        Warm {
            host: plan.lifecycle.host.clone(),
            body,
            idle: idle.as_secs(),
            stand_ins: plan.workspace.protections.placeholders.clone(),
            workspace: plan.workspace().to_path_buf(),
            private_dir: plan.workspace.private_dir.clone(),
            fifos: crate::pipes::not_here(plan).is_none(),
        }
    }

    /// The name and request of the warm container for the image whose ID is
    /// `image_id`: what the run's image (a tag) names right now. The request
    /// names the image by that ID and the name is a hash of the request, so
    /// a run looks for a container of the image its tag names at that moment,
    /// and one made before a rebuild moved the tag is never claimed.
    pub fn pinned(&self, image_id: &str) -> (String, ContainerCreateBody) {
        let mut body = self.body.clone();
        let named = body.image.replace(image_id.to_string()).unwrap_or_default();
        // For `sandbox ls`, which would otherwise show the bare ID.
        let labels = body.labels.get_or_insert_with(Default::default);
        labels.insert(labels::IMAGE.into(), named);
        // The waiter is part of the settings: a run never hands its command
        // to a waiter of another version, which may not acknowledge it.
        body.cmd = Some(waiter(
            Duration::from_secs(self.idle),
            body.env.as_deref().unwrap_or_default(),
            self.fifos,
        ));
        // Through `Value`, whose maps are sorted: the body's HashMaps iterate
        // in a different order in every process.
        let settings = serde_json::to_value(&body)
            .and_then(|v| serde_json::to_vec(&v))
            .unwrap_or_default();
        let key = format!("{:016x}", crate::hash::fnv1a(&settings));
        let labels = body.labels.get_or_insert_with(Default::default);
        labels.insert(labels::COMMAND.into(), "(warm, waiting)".into());
        labels.insert(labels::WARM.into(), key.clone());
        (format!("{NAME_PREFIX}{key}"), body)
    }

    /// The image as the run named it.
    fn image(&self) -> &str {
        self.body.image.as_deref().unwrap_or_default()
    }
}

/// Variables a shell sets for itself and exports; the command must see the
/// container's own values, as in a cold run.
const SHELL_SETS: [&str; 3] = ["SHLVL", "PWD", "OLDPWD"];

/// The waiting shell. A watchdog ends it after `idle`; reading the command
/// stops the watchdog (and its sleep, so nothing stray is left beside the
/// command). `NL` stands for newlines inside arguments: see `handoff`. `env`
/// is the container's environment, restored where the shell changed it.
/// [`ACK`] goes out just before the `exec`: a run that never sees it knows
/// the command never started (the shell ended first, or could not write).
/// With `fifos`, the command runs through the stdio shim, which puts the
/// FIFOs the run holds on its stdin, stdout and stderr.
fn waiter(idle: Duration, env: &[String], fifos: bool) -> Vec<String> {
    let mut restore = String::new();
    for name in SHELL_SETS {
        let prefix = format!("{name}=");
        match env.iter().find_map(|e| e.strip_prefix(&prefix)) {
            Some(value) => restore.push_str(&format!("export {name}={}\n", shell::quote(value))),
            None => restore.push_str(&format!("unset {name}\n")),
        }
    }
    let script = format!(
        "( sleep {} & s=$!; trap 'kill $s 2>/dev/null; exit 0' TERM; wait $s; kill -TERM $$ ) &\n\
         w=$!\n\
         IFS= read -r line || exit 0\n\
         kill $w 2>/dev/null\n\
         NL='\n'\n\
         eval \"set -- $line\"\n\
         {restore}\
         printf '\\{ACK:03o}' || exit 0\n\
         exec {through}\"$@\"\n",
        idle.as_secs().max(1),
        through = match fifos {
            true => crate::pipes::shim_words().map(|w| format!("{w} ")).concat(),
            false => String::new(),
        },
    );
    vec!["/bin/sh".into(), "-c".into(), script, "sandbox-warm".into()]
}

/// The command as the one line the waiter reads: each argument quoted for
/// the shell, with a newline inside one written as `"$NL"` so the line stays
/// one line.
fn handoff(argv: &[String]) -> Vec<u8> {
    let words: Vec<String> = argv
        .iter()
        .map(|arg| {
            let lines: Vec<_> = arg.split('\n').map(shell::quote).collect();
            lines.join("\"$NL\"")
        })
        .collect();
    let mut line = words.join(" ").into_bytes();
    line.push(b'\n');
    line
}

/// The longest command line handed through a terminal: a terminal's line
/// discipline keeps 4095 bytes of a line and drops the rest.
const TERMINAL_LINE_MAX: usize = 4000;

/// Whether `argv`'s handoff line reaches a waiter on a terminal as written:
/// short enough for its line discipline, and without the control
/// characters it acts on (Ctrl-C, Ctrl-U, Ctrl-V, Ctrl-D, DEL, a carriage
/// return it turns into a newline, ...). Tabs pass; newlines inside
/// arguments never reach it as such (`handoff`). Otherwise the run is cold.
pub fn fits_a_terminal(argv: &[String]) -> bool {
    let line = handoff(argv);
    let mangled = |&b: &u8| (b < 0x20 && b != b'\t' && b != b'\n') || b == 0x7f;
    line.len() <= TERMINAL_LINE_MAX && !line.iter().any(mangled)
}

/// Starts a detached `sandbox warm-prepare` that creates the next warm
/// container, from the request it reads on stdin as one line. It outlives
/// this run on purpose, in a process group of its own so a Ctrl-C at the
/// terminal does not reach it.
pub fn prepare_in_background(warm: &Warm) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let mut request = serde_json::to_vec(warm).context("cannot encode the warm container")?;
    request.push(b'\n');
    let exe = std::env::current_exe().context("cannot find the sandbox binary")?;
    let mut child = Command::new(exe)
        .arg("warm-prepare")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(preparer_log(&warm.private_dir))
        .process_group(0)
        .spawn()
        .context("cannot start the warm-container preparer")?;
    let mut stdin = child.stdin.take().context("the preparer has no stdin")?;
    stdin
        .write_all(&request)
        .context("cannot hand the request to the preparer")?;
    // Not waited for: it is meant to finish after we have gone, and a
    // dropped `Child` neither waits nor kills.
    drop(child);
    Ok(())
}

/// Where the preparer's errors go: `warm-prepare.log` in the private
/// runtime directory, for a person to find. Never this run's stderr: the
/// preparer outlives the run, and a line of its own there would land after
/// sandbox has exited, amid whatever the terminal or pipe shows next.
fn preparer_log(private_dir: &Path) -> Stdio {
    crate::host_dirs::private_log(private_dir, PREPARER_LOG)
}

const PREPARER_LOG: &str = "warm-prepare.log";

/// Whether `outer` is a directory above `inner` (not `inner` itself).
fn encloses(outer: &Path, inner: &Path) -> bool {
    outer != inner && !outer.as_os_str().is_empty() && inner.starts_with(outer)
}

/// `sandbox warm-prepare`: the request on stdin becomes a started, waiting
/// container of the image its tag names now. Stale warm containers (stopped
/// after their idle time) go first; one of an image the tag has left simply
/// waits out its idle time, unclaimed.
pub async fn prepare(request: &[u8]) -> Result<()> {
    let warm: Warm = serde_json::from_slice(request).context("invalid warm request")?;
    let engine = &Engine::connect(&warm.host).await?;
    let now = crate::engine::now();
    let all = engine.list(false).await?;
    for old in &all {
        // Not one another preparer is starting right now.
        if old.name.starts_with(NAME_PREFIX) && old.is_stopped(now) {
            engine.remove(&old.id).await?;
        }
    }
    // A container of a workspace that holds this one can move this one's
    // path (swap it for a link) while nobody watches, and the engine would
    // mount what it then names. A run started by hand resolves the path
    // when it starts; a warm container is made unattended, so none is.
    if let Some(outer) = enclosing(&all, &warm.workspace, now, None) {
        say_enclosed(&warm.workspace, outer);
        return Ok(());
    }
    // Pinned to what the tag names now, which is what the next run looks up.
    let Some(image_id) = engine.image_id(warm.image()).await? else {
        return Ok(());
    };
    let (name, mut body) = warm.pinned(&image_id);
    if all.iter().any(|c| c.name == name && !c.is_stopped(now)) {
        // Another run has prepared the same one already.
        return Ok(());
    }
    // Made after the name: each container has FIFOs of its own.
    let fifos = match warm.fifos {
        true => {
            let idle = Duration::from_secs(warm.idle);
            Some(crate::pipes::make_warm(&warm.private_dir, idle)?)
        }
        false => None,
    };
    if let Some(fifos) = &fifos {
        let host_config = body.host_config.get_or_insert_with(Default::default);
        let mounts = host_config.mounts.get_or_insert_with(Vec::new);
        mounts.push(crate::pipes::mount(fifos.path()));
    }
    // Held until the container has started, so no run removes a stand-in
    // between its making and the mount over it.
    let _hold = match warm.stand_ins.is_empty() {
        true => None,
        false => Some(crate::protect::Hold::shared(
            &warm.private_dir,
            &warm.workspace,
        )?),
    };
    for stand_in in &warm.stand_ins {
        stand_in.stand_in(&warm.workspace)?;
    }
    // Every source opened now, and looked for inside once mounted.
    let mounts = body.host_config.as_ref().and_then(|h| h.mounts.as_deref());
    let expected = match mounted::expect(mounts.unwrap_or_default())? {
        Ok(expected) => expected,
        Err(refused) => {
            say_not(&warm.workspace, &refused);
            return Ok(());
        }
    };
    // Made under a name no run looks up, and given the one runs claim by
    // only once what it mounts has been checked.
    let pending = format!("{name}{PENDING}");
    let (id, warnings) = match engine.create(body, Some(&pending)).await {
        Ok(created) => created,
        // Another preparer is at the same one.
        Err(e) if e.is::<NameTaken>() => return Ok(()),
        Err(e) => return Err(e).context("cannot create the warm container"),
    };
    if !warnings.is_empty() {
        // A run would refuse these settings; a warm container must not differ.
        engine.remove(&id).await?;
        return Ok(());
    }
    if let Err(e) = engine.start(&id).await {
        engine.remove(&id).await?;
        return Err(e);
    }
    let started = match engine.state(&id).await {
        Ok(state) => state.and_then(|s| s.pid),
        Err(e) => {
            engine.remove(&id).await?;
            return Err(e);
        }
    };
    let inside = match started {
        Some(pid) => mounted::check(&mounted::root_of(pid), &expected),
        None => Err(mounted::Refused::Unseen(
            "/".into(),
            rustix::io::Errno::SRCH,
        )),
    };
    if let Err(refused) = inside {
        say_not(&warm.workspace, &refused);
        return engine.remove(&id).await;
    }
    // Listed again once the engine has mounted: one that came up between
    // the first listing and the start could have moved a path meanwhile.
    // (One made, run and removed within those milliseconds goes unseen.)
    let again = match engine.list(false).await {
        Ok(again) => again,
        Err(e) => {
            engine.remove(&id).await?;
            return Err(e);
        }
    };
    if let Some(outer) = enclosing(&again, &warm.workspace, now, Some(&all)) {
        say_enclosed(&warm.workspace, outer);
        return engine.remove(&id).await;
    }
    // Another preparer's container may have taken the name meanwhile.
    if !engine.rename(&id, &name).await? {
        return engine.remove(&id).await;
    }
    // The container's now, and the run that claims it removes them.
    if let Some(fifos) = fifos {
        fifos.keep();
    }
    Ok(())
}

/// A container of a workspace above `workspace` that runs, or, given the
/// listing of before, was made since.
fn enclosing<'a>(
    listed: &'a [Listed],
    workspace: &Path,
    now: i64,
    before: Option<&[Listed]>,
) -> Option<&'a Listed> {
    let new = |c: &Listed| before.is_some_and(|b| !b.iter().any(|old| old.id == c.id));
    listed
        .iter()
        .find(|c| encloses(Path::new(&c.workspace), workspace) && (!c.is_stopped(now) || new(c)))
}

/// In the log, for whoever wonders why runs here start cold.
fn say_enclosed(workspace: &Path, outer: &Listed) {
    let why = format!(
        "{} of {}, which holds it, runs",
        crate::engine::short_id(&outer.id),
        outer.workspace
    );
    say_not(workspace, &why);
}

fn say_not(workspace: &Path, why: &dyn std::fmt::Display) {
    tracing::warn!("no warm container for {}: {why}", workspace.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warm(argv: &[&str], env: &[(&str, &str)]) -> Warm {
        let plan = crate::plan::for_test(argv, env, "warm");
        Warm::for_plan(&plan, Duration::from_secs(60))
    }

    const ID: &str = "sha256:1111";

    #[test]
    fn only_a_workspace_above_encloses_one() {
        let inner = Path::new("/src/mono/app");
        assert!(encloses(Path::new("/src/mono"), inner));
        assert!(encloses(Path::new("/"), inner));
        for other in [
            "/src/mono/app",
            "/src/mono/app/sub",
            "/src/monorepo",
            "/src/mono/ap",
            "",
        ] {
            assert!(!encloses(Path::new(other), inner), "{other}");
        }
    }

    #[test]
    fn a_container_above_counts_while_it_runs_or_once_it_is_new() {
        let inner = Path::new("/src/mono/app");
        let at = |workspace: &str, id: &str, state: &str| Listed {
            workspace: workspace.into(),
            id: id.into(),
            ..Listed::example(state, 1000)
        };
        let before = [at("/src/mono", "old", "exited")];
        let found = |listed: &[Listed], before: Option<&[Listed]>| {
            enclosing(listed, inner, 1000, before).map(|c| c.id.clone())
        };
        assert_eq!(found(&before, None), None, "stopped");
        assert_eq!(found(&before, Some(&before)), None, "stopped, known");
        let running = [at("/src/mono", "old", "running")];
        assert_eq!(found(&running, None).as_deref(), Some("old"));
        let since = [before[0].clone(), at("/src", "new", "exited")];
        assert_eq!(found(&since, Some(&before)).as_deref(), Some("new"));
        let beside = [
            at("/src/other", "x", "running"),
            at(inner.to_str().unwrap(), "y", "running"),
        ];
        assert_eq!(found(&beside, Some(&before)), None, "not above");
    }

    #[test]
    fn the_name_follows_the_settings_not_the_command() {
        let (a, body) = warm(&["true"], &[("LANG", "C")]).pinned(ID);
        let (b, _) = warm(&["ls", "-l"], &[("LANG", "C")]).pinned(ID);
        let (c, _) = warm(&["true"], &[("LANG", "C.UTF-8")]).pinned(ID);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with(NAME_PREFIX));
        let labels = body.labels.unwrap();
        assert_eq!(labels[labels::WARM], &a[NAME_PREFIX.len()..]);
        assert_eq!(body.open_stdin, Some(true));
        assert_eq!(body.tty, Some(false));
        assert_eq!(body.cmd.unwrap()[0], "/bin/sh");
    }

    #[test]
    fn the_name_and_the_request_follow_the_image_id() {
        let warm = warm(&["--image", "img:1", "true"], &[]);
        let (one, pinned) = warm.pinned(ID);
        let (two, _) = warm.pinned("sha256:2222");
        assert_ne!(one, two, "a moved tag finds no container of the old image");
        assert_eq!(pinned.image.as_deref(), Some(ID), "created from the ID");
        assert_eq!(pinned.labels.unwrap()[labels::IMAGE], "img:1");
        assert_eq!(warm.image(), "img:1", "the request keeps the tag");
    }

    #[test]
    fn the_name_does_not_depend_on_map_order() {
        let mut one = warm(&["true"], &[]);
        let mut two = warm(&["true"], &[]);
        for (i, w) in [&mut one, &mut two].into_iter().enumerate() {
            let labels = w.body.labels.as_mut().unwrap();
            let keys = if i == 0 {
                ["a", "b", "c", "d"]
            } else {
                ["d", "c", "b", "a"]
            };
            for k in keys {
                labels.insert(k.into(), k.into());
            }
        }
        assert_eq!(one.pinned(ID).0, two.pinned(ID).0);
    }

    #[test]
    fn the_handoff_is_one_line_whatever_the_arguments() {
        let argv = ["printf", "%s|", "a b", "it's", "two\nlines", "", "$HOME"].map(String::from);
        let line = String::from_utf8(handoff(&argv)).unwrap();
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
        assert_eq!(
            line,
            "printf '%s|' 'a b' 'it'\\''s' two\"$NL\"lines '' '$HOME'\n"
        );
    }

    #[test]
    fn a_terminal_takes_only_lines_it_leaves_as_they_are() {
        let argv = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert!(fits_a_terminal(&argv(&["sh"])));
        assert!(fits_a_terminal(&argv(&[
            "printf",
            "a\tb",
            "two\nlines",
            "é"
        ])));
        for mangled in ["\r", "\x03", "\x15", "\x16", "\x04", "\x7f", "\x1b[A"] {
            assert!(!fits_a_terminal(&argv(&["echo", mangled])), "{mangled:?}");
        }
        let long = "x".repeat(TERMINAL_LINE_MAX);
        assert!(!fits_a_terminal(&argv(&["echo", &long])));
    }

    #[test]
    fn a_terminal_run_waits_in_a_container_with_a_terminal() {
        let plan = crate::plan::for_test(&["-t", "sh"], &[], "warm");
        let warm = Warm::for_plan(&plan, Duration::from_secs(60));
        let (name, body) = warm.pinned(ID);
        assert_eq!((body.tty, body.open_stdin), (Some(true), Some(true)));
        let plain = crate::plan::for_test(&["-T", "sh"], &[], "warm");
        let (other, _) = Warm::for_plan(&plain, Duration::from_secs(60)).pinned(ID);
        assert_ne!(name, other, "never claimed by a run without one");
    }

    #[test]
    fn the_preparer_logs_to_a_private_file_it_never_reaches_through_a_link() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        drop(preparer_log(dir.path()));
        let log = std::fs::metadata(dir.path().join(PREPARER_LOG)).unwrap();
        assert_eq!(log.permissions().mode() & 0o777, 0o600);

        let other = tempfile::tempdir().unwrap();
        std::fs::remove_file(dir.path().join(PREPARER_LOG)).unwrap();
        symlink(other.path().join("victim"), dir.path().join(PREPARER_LOG)).unwrap();
        drop(preparer_log(dir.path()));
        assert!(!other.path().join("victim").exists());
    }

    /// The waiter and the handoff together, through a real shell: what the
    /// command receives is exactly the argv that was handed over, and the
    /// acknowledgement comes before anything of the command's.
    #[test]
    fn the_waiter_execs_the_argv_it_reads() {
        let argv = [
            "printf",
            "[%s]",
            "a b",
            "it's",
            "two\nlines",
            "",
            "$HOME",
            "*",
            "~",
            "a=b",
            "'\nx\n'",
        ]
        .map(String::from);
        let mut script = waiter(Duration::from_secs(30), &[], false);
        let mut child = Command::new("/bin/sh")
            .args(script.split_off(1))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&handoff(&argv))
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.first(), Some(&ACK));
        assert_eq!(
            String::from_utf8(out.stdout[1..].to_vec()).unwrap(),
            "[a b][it's][two\nlines][][$HOME][*][~][a=b]['\nx\n']"
        );
    }

    #[test]
    fn a_waiter_that_gets_no_command_never_acknowledges() {
        // Short: its watchdog holds stdout open until it has slept.
        let mut script = waiter(Duration::from_secs(1), &[], false);
        let out = Command::new("/bin/sh")
            .args(script.split_off(1))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(out.stdout.is_empty(), "{out:?}");
    }
}
