//! Who made a container: the sandbox process, named so that a later process
//! on the same machine can tell whether it still runs. A pid alone is not a
//! name (pids are reused, and each pid namespace has its own); the boot,
//! the pid namespace, the pid and the process's start time together are.

use std::sync::OnceLock;

/// A sandbox process, as its containers' owner label names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// This boot of this machine's kernel (`/proc/sys/kernel/random/boot_id`).
    boot: String,
    /// The pid namespace's inode: a sandbox in another container sees
    /// other pids.
    pidns: u64,
    pid: i32,
    /// Clock ticks since boot when the process started.
    start: u64,
}

/// Whether the owner of a container still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It runs, or has ended and its parent has not collected it yet: a
    /// zombie still counts, so that nothing is judged before the process
    /// that started sandbox has seen it end. (The watcher does not wait:
    /// its pipe tells it.)
    Alive,
    Gone,
    /// On another machine or in another pid namespace, hidden from us, or
    /// named by a label this version cannot read: it may be alive.
    Unknown,
}

impl Owner {
    /// This process, read once; `None` where `/proc` does not tell (not
    /// Linux), and then nothing is labelled or judged.
    pub fn current() -> Option<&'static Owner> {
        static CURRENT: OnceLock<Option<Owner>> = OnceLock::new();
        CURRENT
            .get_or_init(|| {
                let pid = i32::try_from(std::process::id()).ok()?;
                Some(Owner {
                    boot: read_boot()?,
                    pidns: read_pidns("self")?,
                    pid,
                    start: read_start(&pid.to_string())?,
                })
            })
            .as_ref()
    }

    /// The label's value: `boot/pidns/pid/start`.
    pub fn label(&self) -> String {
        format!("{}/{}/{}/{}", self.boot, self.pidns, self.pid, self.start)
    }

    pub fn parse(label: &str) -> Option<Owner> {
        let mut parts = label.split('/');
        let owner = Owner {
            boot: parts.next().filter(|b| !b.is_empty())?.to_string(),
            pidns: parts.next()?.parse().ok()?,
            pid: parts.next()?.parse().ok().filter(|&p| p > 0)?,
            start: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(owner)
    }
}

/// Whether the process `label` names still runs, seen from `here`.
pub fn liveness(label: &str, here: &Owner) -> Liveness {
    let Some(owner) = Owner::parse(label) else {
        return Liveness::Unknown;
    };
    if owner.boot != here.boot || owner.pidns != here.pidns {
        return Liveness::Unknown;
    }
    let Some(pid) = rustix::process::Pid::from_raw(owner.pid) else {
        return Liveness::Unknown;
    };
    // The signal 0 test sees processes that `/proc` may hide (hidepid).
    match rustix::process::test_kill_process(pid) {
        Err(rustix::io::Errno::SRCH) => return Liveness::Gone,
        Ok(()) | Err(rustix::io::Errno::PERM) => {}
        Err(_) => return Liveness::Unknown,
    }
    match read_start(&owner.pid.to_string()) {
        // Another process has the pid now.
        Some(start) if start != owner.start => Liveness::Gone,
        Some(_) => Liveness::Alive,
        None => Liveness::Unknown,
    }
}

fn read_start(pid: &str) -> Option<u64> {
    parse_start(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The start time in a `/proc/PID/stat` line. The command name in
/// parentheses may hold spaces and parentheses: fields count from the last
/// `)`.
fn parse_start(line: &str) -> Option<u64> {
    let (_, rest) = line.rsplit_once(')')?;
    // The start time is field 22 of the line, the 20th after the name.
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn read_boot() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let boot = boot.trim();
    (!boot.is_empty() && !boot.contains('/')).then(|| boot.to_string())
}

/// The inode of a pid namespace, from its link: `pid:[4026531836]`.
fn read_pidns(pid: &str) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()?;
    let link = link.to_str()?;
    link.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_past_a_name_with_parentheses() {
        let line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615";
        assert_eq!(parse_start(line), Some(987654));
        assert_eq!(parse_start("4242 (x) S 1"), None);
    }

    #[test]
    fn a_label_reads_back_and_a_malformed_one_does_not() {
        let owner = Owner::current().expect("Linux has /proc");
        assert_eq!(Owner::parse(&owner.label()).as_ref(), Some(owner));
        for bad in [
            "",
            "a/1/2",
            "a/1/2/3/4",
            "/1/2/3",
            "a/x/2/3",
            "a/1/0/3",
            "a/1/-4/3",
        ] {
            assert_eq!(Owner::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn this_process_is_alive_and_an_ended_one_is_gone() {
        let here = Owner::current().unwrap();
        assert_eq!(liveness(&here.label(), here), Liveness::Alive);

        // A child that has exited but was not waited for: a zombie.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id().to_string();
        let start = read_start(&pid).unwrap();
        let label = format!("{}/{}/{pid}/{start}", here.boot, here.pidns);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let state = || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        while !state().rsplit_once(')').unwrap().1.starts_with(" Z") {
            assert!(std::time::Instant::now() < deadline, "the child exits");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(liveness(&label, here), Liveness::Alive, "not collected yet");
        child.wait().unwrap();
        assert_eq!(liveness(&label, here), Liveness::Gone, "reaped");

        // The same pid, started at another time: reused by someone else.
        let reused = format!(
            "{}/{}/{}/{}",
            here.boot,
            here.pidns,
            here.pid,
            here.start + 1
        );
        assert_eq!(liveness(&reused, here), Liveness::Gone);
    }

    #[test]
    fn another_machine_or_pid_namespace_cannot_be_judged() {
        let here = Owner::current().unwrap();
        let elsewhere = format!("other-boot/{}/{}/{}", here.pidns, here.pid, here.start);
        assert_eq!(liveness(&elsewhere, here), Liveness::Unknown);
        let other_ns = format!("{}/1/{}/{}", here.boot, here.pid, here.start);
        assert_eq!(liveness(&other_ns, here), Liveness::Unknown);
        assert_eq!(liveness("garbage", here), Liveness::Unknown);
    }
}
