//! What the command changed, decided from a listing of the copied /work
//! rather than from the whole archive: a short-lived helper container
//! (`run/copy/listing.rs`) prints every entry's kind, mode, link count,
//! size and mtime (to the nanosecond), and only what differs from what was
//! sent is fetched.
//!
//! The listing is made from the hostile tree and is only advice: every
//! fetched entry still goes through `receive` and `beneath`. What a forged
//! listing can do is what the command could do itself: hide one of its own
//! changes, or claim one of its own deletions. A listing that cannot be read
//! unambiguously (a name with a newline in it, a count that does not match,
//! an entry without its directory) is refused as a whole, and the copy-back
//! falls back to the full archive.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::receive::is_protected;
use super::{Entry, Excludes, Manifest};

/// Run by `/bin/sh` in the helper, in /work: one line per entry (raw mode in
/// hex, links, size, mtime in seconds, then as date, time and zone, whose
/// time carries the nanoseconds, `./name`), then the number of entries
/// counted by NUL-terminated names, which no name can forge. GNU and
/// busybox `find`, `stat`, `tr` and `wc` all take these options, and both
/// `stat`s print `%y` to the nanosecond.
pub const LISTING_SCRIPT: &str = "cd /work || exit 1\n\
     find . -exec stat -c '%f %h %s %Y %y %n' {} + || exit 1\n\
     find . -print0 | tr -cd '\\0' | wc -c\n";

/// A tar header: every entry costs one, and a file's data is padded to it.
const BLOCK: u64 = 512;
/// What one more request costs, counted in bytes of archive: fetching a
/// whole directory beats fetching its changed files one by one once they
/// would cost more than the directory. An engine on another machine pays a
/// round trip per request.
const REQUEST: u64 = 256 * 1024;

/// What kind of entry the listing names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Link,
    /// A FIFO, socket or device: never copied back.
    Special,
}

/// One entry of /work as the helper saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    /// Hard links to it.
    pub links: u64,
    pub size: u64,
    pub mtime: i64,
    /// The nanoseconds of the mtime.
    pub nanos: u32,
}

/// Every entry of /work by path relative to it; the root is `""`.
pub type Listing = BTreeMap<PathBuf, Listed>;

/// Reads the helper's output; `Err` says why it cannot be trusted to be
/// complete, and the copy-back takes the whole archive instead.
pub fn parse(output: &[u8]) -> Result<Listing, String> {
    let output = output.strip_suffix(b"\n").ok_or("no end of line")?;
    let (lines, count) = match output.iter().rposition(|&b| b == b'\n') {
        Some(at) => (&output[..at], &output[at + 1..]),
        None => return Err("no entries".into()),
    };
    let count: usize = std::str::from_utf8(count)
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .ok_or("no count of entries")?;
    let mut listing = Listing::new();
    for line in lines.split(|&b| b == b'\n') {
        let (rel, listed) = parse_line(line)
            .ok_or_else(|| format!("unreadable line {:?}", String::from_utf8_lossy(line)))?;
        // Parents come first in find's walk: an entry without its
        // directory means lines were lost or forged.
        if let Some(parent) = rel.parent() {
            if listing.get(parent).map(|p| p.kind) != Some(Kind::Dir) {
                return Err(format!("{} is listed without its directory", rel.display()));
            }
        } else if !listing.is_empty() || listed.kind != Kind::Dir {
            return Err("the root is not the first directory listed".into());
        }
        if listing.insert(rel.clone(), listed).is_some() {
            return Err(format!("{} is listed twice", rel.display()));
        }
    }
    // A name with a newline in it reads as more lines than entries.
    if listing.len() != count {
        return Err(format!("{} lines for {count} entries", listing.len()));
    }
    Ok(listing)
}

/// `81a4 1 11 1700000000 2023-11-14 22:13:20.123456789 +0000 ./src/a.txt`
/// → (`src/a.txt`, what it is).
fn parse_line(line: &[u8]) -> Option<(PathBuf, Listed)> {
    let mut fields = line.splitn(8, |&b| b == b' ');
    let mut field = || std::str::from_utf8(fields.next()?).ok();
    let mut number = |radix| i128::from_str_radix(field()?, radix).ok();
    let (raw, links, size, mtime) = (number(16)?, number(10)?, number(10)?, number(10)?);
    let (_date, time, _zone) = (field()?, field()?, field()?);
    let nanos = match time.split_once('.') {
        Some((_, fraction)) if fraction.len() == 9 => fraction.parse().ok()?,
        _ => return None,
    };
    let name = fields.next()?;
    let rel = match name {
        b"." => PathBuf::new(),
        _ => PathBuf::from(OsStr::from_bytes(name.strip_prefix(b"./")?)),
    };
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let raw = u32::try_from(raw).ok()?;
    let kind = match raw & 0o170000 {
        0o040000 => Kind::Dir,
        0o100000 => Kind::File,
        0o120000 => Kind::Link,
        _ => Kind::Special,
    };
    let listed = Listed {
        kind,
        mode: raw & 0o7777,
        links: u64::try_from(links).ok()?,
        size: u64::try_from(size).ok()?,
        mtime: i64::try_from(mtime).ok()?,
        nanos,
    };
    Some((rel, listed))
}

/// The size of the archive of what was sent: about what fetching all of
/// /work costs when the command changed nothing.
pub fn archive_size(sent: &Manifest) -> u64 {
    let data = |entry: &Entry| match entry {
        Entry::File { size, .. } => size.div_ceil(BLOCK) * BLOCK,
        _ => 0,
    };
    sent.values().map(|entry| BLOCK + data(entry)).sum()
}

/// What the copy-back does, decided from a listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Directories to make, or whose mode changed, parents first.
    pub dirs: Vec<(PathBuf, u32)>,
    /// Files and links to fetch.
    pub wanted: BTreeSet<PathBuf>,
    /// Changes never fetched, and why, as `receive` would refuse them.
    pub refused: Vec<(PathBuf, &'static str)>,
    /// Every path in /work: what was sent and is not here was deleted.
    pub present: BTreeSet<PathBuf>,
}

/// Compares the listing with what was sent, by the rules `receive` applies
/// to the archive: excluded new paths are left alone, special files and
/// hard links are refused, protected paths never come back.
pub fn changed(
    listing: &Listing,
    sent: &Manifest,
    excludes: &Excludes,
    protected: &[String],
) -> Changed {
    let mut changed = Changed::default();
    for (rel, now) in listing {
        if rel.as_os_str().is_empty() {
            continue;
        }
        changed.present.insert(rel.clone());
        let was = sent.get(rel);
        if was.is_none() && excludes.excludes(rel, true) {
            continue;
        }
        let why = match now.kind {
            Kind::Special => Some("a special file"),
            _ if was.is_some_and(|was| is_same(was, now)) => continue,
            _ if is_protected(rel, protected) => Some("protected"),
            // The archive would carry the second name as a hard link.
            Kind::File if now.links > 1 => Some("a hard link"),
            _ => None,
        };
        match (why, now.kind) {
            (Some(why), _) => changed.refused.push((rel.clone(), why)),
            (None, Kind::Dir) => changed.dirs.push((rel.clone(), now.mode)),
            (None, _) => {
                changed.wanted.insert(rel.clone());
            }
        }
    }
    changed
}

/// Whether the entry is as it was sent: a link by the length of its target
/// and its mtime (the engine keeps a link's mtime when it unpacks one).
///
/// What was sent carries whole seconds, as a tar header does, so the engine
/// unpacked it at nanosecond 0. A file the command rewrote at the same size
/// within that second differs by the fraction the kernel stamped it with.
fn is_same(was: &Entry, now: &Listed) -> bool {
    let untouched = now.nanos == 0;
    match (was, now.kind) {
        (Entry::Dir { mode }, Kind::Dir) => *mode == now.mode,
        (
            Entry::File {
                size, mtime, mode, ..
            },
            Kind::File,
        ) => untouched && (*size, *mtime, *mode) == (now.size, now.mtime, now.mode),
        (Entry::Link { target, mtime }, Kind::Link) => {
            untouched && (target.as_os_str().len() as u64, *mtime) == (now.size, now.mtime)
        }
        _ => false,
    }
}

/// The paths to fetch, each one archive request: a wanted file or link, or
/// a whole directory when its changed entries would cost more one by one
/// (`""` is /work itself, the full archive).
pub fn fetch_units(listing: &Listing, wanted: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    /// A directory's subtree so far: its archive's size, what fetching its
    /// wanted entries one by one costs, and those fetches.
    #[derive(Default)]
    struct Subtree {
        size: u64,
        split: u64,
        units: Vec<PathBuf>,
    }
    let mut open: HashMap<&Path, Subtree> = HashMap::new();
    // Children before their directory: a subtree follows its root in order.
    for (rel, now) in listing.iter().rev() {
        let (size, cost, units) = match now.kind {
            Kind::Dir => {
                let inside = open.remove(rel.as_path()).unwrap_or_default();
                let size = BLOCK + inside.size;
                match inside.units.is_empty() || inside.split <= size + REQUEST {
                    true => (size, inside.split, inside.units),
                    false => (size, size + REQUEST, vec![rel.clone()]),
                }
            }
            _ => {
                let size = BLOCK + now.size.div_ceil(BLOCK) * BLOCK;
                match wanted.contains(rel) {
                    true => (size, size + REQUEST, vec![rel.clone()]),
                    false => (size, 0, Vec::new()),
                }
            }
        };
        let Some(parent) = rel.parent() else {
            let mut units = units;
            units.sort();
            return units;
        };
        let parent = open.entry(parent).or_default();
        parent.size += size;
        parent.split += cost;
        parent.units.extend(units);
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `%y` of an mtime in whole seconds, as the engine unpacks what was
    /// sent; its date and zone are never read.
    const WHOLE: &str = "2023-11-14 22:13:20.000000000 +0000";

    /// A line as the helper prints it, from one without `%y`'s fields
    /// (`81a4 1 11 1 ./a`), whose mtime was whole seconds.
    fn line(short: &str) -> String {
        let fields: Vec<&str> = short.splitn(5, ' ').collect();
        let (numbers, name) = (fields[..4].join(" "), fields[4]);
        format!("{numbers} {WHOLE} {name}")
    }

    /// The helper's output: `lines` written as for [`line`], the count.
    fn listing(lines: &[&str]) -> Vec<u8> {
        let mut out = String::new();
        for short in lines {
            out.push_str(&line(short));
            out.push('\n');
        }
        out.push_str(&format!("{}\n", lines.len()));
        out.into_bytes()
    }

    fn file(size: u64, mtime: i64) -> Entry {
        Entry::File {
            size,
            mtime,
            mode: 0o644,
            nanos: 0,
        }
    }

    #[test]
    fn a_listing_reads_as_find_and_stat_print_it() {
        let out = listing(&[
            "41ed 3 4096 1700000000 .",
            "41ed 2 4096 1700000000 ./src",
            "81a4 1 11 1700000001 ./src/a b.txt",
            "a1ff 1 5 1700000002 ./link",
            "11a4 1 0 1700000003 ./fifo",
            "89ed 1 3 1700000004 ./tool",
        ]);
        let listing = parse(&out).unwrap();
        assert_eq!(listing.len(), 6);
        let a = &listing[Path::new("src/a b.txt")];
        assert_eq!(
            (a.kind, a.mode, a.size, a.mtime),
            (Kind::File, 0o644, 11, 1700000001)
        );
        assert_eq!(listing[Path::new("link")].kind, Kind::Link);
        assert_eq!(listing[Path::new("fifo")].kind, Kind::Special);
        assert_eq!(listing[Path::new("tool")].mode, 0o4755, "setuid is seen");
        assert_eq!(listing[Path::new("")].kind, Kind::Dir);
    }

    /// What a name with a newline (or a forged line) does to the listing:
    /// it is refused as a whole, never read as something else.
    /// `text` with each entry's line written as for [`line`]; the other
    /// lines (counts, stray words) as they are.
    fn expanded(text: &str) -> String {
        let entry = |l: &str| l.split(' ').count() >= 5;
        let lines: Vec<String> = text
            .split('\n')
            .map(|l| if entry(l) { line(l) } else { l.to_string() })
            .collect();
        lines.join("\n")
    }

    #[test]
    fn an_ambiguous_listing_is_refused() {
        let root = "41ed 2 4096 1 .";
        let cases = [
            ("81a4 1 1 1 ./a\n1\n", "a is listed without its directory"),
            ("41ed 2 4096 1 .\n81a4 1 1 1 ./a\nb\n2\n", "unreadable line"),
            (
                "41ed 2 4096 1 .\n81a4 1 1 1 ./a\n81a4 1 1 1 ./x\n2\n",
                "3 lines for 2 entries",
            ),
            (
                "41ed 2 4096 1 .\n81a4 1 1 1 ./d/a\n2\n",
                "without its directory",
            ),
            (
                "41ed 2 4096 1 .\n81a4 1 1 1 ./../etc\n2\n",
                "unreadable line",
            ),
            (
                "41ed 2 4096 1 .\n81a4 1 1 1 ./a\n81a4 1 1 1 ./a\n3\n",
                "twice",
            ),
            ("81a4 1 1 1 .\n1\n", "the root is not the first directory"),
            ("41ed 2 4096 1 .\n1", "no end of line"),
        ];
        for (text, why) in cases {
            let out = expanded(text);
            let err = parse(out.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{err} for {out:?}");
        }
        // An mtime without its nanoseconds would make every rewrite within
        // a second look untouched.
        for time in ["22:13:20", "22:13:20.5", "22:13:20.12345678x"] {
            let out = format!("41ed 2 4096 1 2023-11-14 {time} +0000 .\n1\n");
            let err = parse(out.as_bytes()).unwrap_err();
            assert!(err.contains("unreadable line"), "{err} for {out:?}");
        }
        assert!(
            parse(expanded(&format!("{root}\n1\n")).as_bytes()).is_ok(),
            "the control"
        );
    }

    #[test]
    fn only_what_differs_is_wanted_and_refusals_match_receive() {
        let out = listing(&[
            "41ed 3 4096 1 .",
            "41ed 2 4096 1 ./.git",
            "81ed 1 4 9 ./.git/hook",
            "41ed 2 4096 1 ./new",
            "81a4 1 3 9 ./new/f",
            "81a4 1 4 1 ./same",
            "81a4 1 5 1 ./grown",
            "81a4 2 4 9 ./hard",
            "a1ff 1 4 7 ./link",
            "a1ff 1 9 7 ./moved",
            "41c0 2 4096 1 ./private",
            "11a4 1 0 1 ./fifo",
            "81a4 1 1 1 ./x.log",
        ]);
        let listing = parse(&out).unwrap();
        let sent: Manifest = [
            ("same", file(4, 1)),
            ("grown", file(4, 1)),
            ("gone", file(1, 1)),
            ("private", Entry::Dir { mode: 0o755 }),
            (
                "link",
                Entry::Link {
                    target: "same".into(),
                    mtime: 7,
                },
            ),
            (
                "moved",
                Entry::Link {
                    target: "same".into(),
                    mtime: 7,
                },
            ),
        ]
        .into_iter()
        .map(|(p, e)| (PathBuf::from(p), e))
        .collect();
        let excludes = Excludes::parse("*.log\n").unwrap();

        let changed = changed(&listing, &sent, &excludes, &[]);

        let paths = |v: &[&str]| v.iter().map(PathBuf::from).collect::<BTreeSet<_>>();
        assert_eq!(changed.wanted, paths(&["grown", "moved", "new/f"]));
        assert_eq!(
            changed.dirs,
            [
                (PathBuf::from("new"), 0o755),
                (PathBuf::from("private"), 0o700)
            ]
        );
        assert_eq!(
            changed.refused,
            [
                (PathBuf::from(".git"), "protected"),
                (PathBuf::from(".git/hook"), "protected"),
                (PathBuf::from("fifo"), "a special file"),
                (PathBuf::from("hard"), "a hard link"),
            ]
        );
        assert!(!changed.present.contains(Path::new("gone")));
        assert!(changed.present.contains(Path::new("x.log")));
    }

    /// Sent at whole seconds: a same-sized rewrite within that second
    /// shows only in the nanoseconds.
    #[test]
    fn a_rewrite_within_the_second_it_was_sent_with_is_wanted() {
        let at =
            |fraction: &str, name: &str| format!("1 2023-11-14 22:13:20.{fraction} +0000 ./{name}");
        let lines = [
            line("41ed 2 4096 1 ."),
            format!("81a4 1 4 {}", at("000000000", "kept")),
            format!("81a4 1 4 {}", at("183920117", "rewritten")),
            format!("a1ff 1 4 {}", at("000000000", "link")),
            format!("a1ff 1 4 {}", at("500000000", "relinked")),
        ];
        let out = format!("{}\n{}\n", lines.join("\n"), lines.len());
        let listing = parse(out.as_bytes()).unwrap();
        assert_eq!(listing[Path::new("rewritten")].nanos, 183920117);
        let link = || Entry::Link {
            target: "kept".into(),
            mtime: 1,
        };
        let sent: Manifest = [
            ("kept", file(4, 1)),
            ("rewritten", file(4, 1)),
            ("link", link()),
            ("relinked", link()),
        ]
        .into_iter()
        .map(|(p, e)| (PathBuf::from(p), e))
        .collect();

        let changed = changed(&listing, &sent, &Excludes::parse("").unwrap(), &[]);

        let wanted: Vec<_> = changed.wanted.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(wanted, ["relinked", "rewritten"]);
    }

    #[test]
    fn a_few_changed_files_travel_alone_and_many_bring_their_directory() {
        let mut lines = vec!["41ed 3 4096 1 .".to_string(), "41ed 2 4096 1 ./big".into()];
        for i in 0..40 {
            lines.push(format!("81a4 1 5242880 1 ./big/f{i:02}"));
        }
        lines.push("41ed 2 4096 1 ./small".into());
        for i in 0..40 {
            lines.push(format!("81a4 1 100 1 ./small/f{i:02}"));
        }
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let listing = parse(&listing(&lines)).unwrap();
        let wanted: BTreeSet<PathBuf> = ["big/f03", "small/f01", "small/f02", "small/f03"]
            .into_iter()
            .map(PathBuf::from)
            .collect();

        let units = fetch_units(&listing, &wanted);

        assert_eq!(units, [PathBuf::from("big/f03"), PathBuf::from("small")]);
        assert_eq!(
            fetch_units(&listing, &BTreeSet::new()),
            Vec::<PathBuf>::new()
        );
        let all: BTreeSet<PathBuf> = listing
            .iter()
            .filter(|(_, l)| l.kind == Kind::File)
            .map(|(p, _)| p.clone())
            .collect();
        assert_eq!(
            fetch_units(&listing, &all),
            [PathBuf::new()],
            "everything: /work"
        );
    }
}
