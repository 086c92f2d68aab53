//! The project file as the untrusted input it is: read only when it is a
//! regular file of its own, and never quoted in an error.
//!
//! A repository, or a container run earlier in the workspace, decides what
//! sits at `.sandbox.yml`: a link to `~/.ssh/id_ed25519`, a FIFO nobody
//! writes (a read that never returns), a device, a file of gigabytes. And a
//! YAML error quotes the value it could not use, which for such a file is
//! whatever the file holds.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::{FILE, MAX_SIZE};
use crate::config::Size;

/// The text of the project file at `path`, `None` when there is none.
///
/// The file comes with the repository, and a container may have replaced it
/// since: it is opened without following a link (`O_NOFOLLOW`), without
/// waiting on a pipe's writer (`O_NONBLOCK`), and read only if the open file
/// itself (`fstat`, not the path) is a regular file with no other name, no
/// larger than [`MAX_SIZE`]. A look at the path first keeps devices from
/// being opened at all.
pub fn read_untrusted(path: &Path) -> Result<Option<String>> {
    use rustix::fs::{Mode, OFlags};
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(meta) => refuse_unless_plain(path, &meta)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read the project file {shown}")),
    }
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        // Removed between the look and the open: as if it had never been.
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        // O_NOFOLLOW's answer for a link: one replaced the file meanwhile.
        Err(rustix::io::Errno::LOOP) => bail!(not_plain(path, "a symbolic link")),
        Err(e) => {
            return Err(std::io::Error::from(e))
                .with_context(|| format!("cannot read the project file {shown}"))
        }
    };
    let file = std::fs::File::from(fd);
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read the project file {shown}"))?;
    refuse_unless_plain(path, &meta)?;
    let mut bytes = Vec::new();
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the project file {shown}"))?;
    if bytes.len() as u64 > MAX_SIZE {
        bail!(too_large(path));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| anyhow!("the project file {shown} is not UTF-8 text — save it as UTF-8"))
}

/// Refuses anything but a regular file with one name and a sane size.
fn refuse_unless_plain(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let kind = meta.file_type();
    let what = if kind.is_file() {
        None
    } else if kind.is_symlink() {
        Some("a symbolic link")
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a named pipe (FIFO)")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else {
        Some("not a regular file")
    };
    if let Some(what) = what {
        bail!(not_plain(path, what));
    }
    // Another name for the same file may be one a container made, for a
    // file sandbox should never read on its behalf.
    if meta.nlink() > 1 {
        bail!(
            "the project file {} has {} hard links — sandbox reads {FILE} only when it is a \
             file of its own: replace it with a copy (cp, then mv over it)",
            path.display(),
            meta.nlink()
        );
    }
    if meta.len() > MAX_SIZE {
        bail!(too_large(path));
    }
    Ok(())
}

fn not_plain(path: &Path, what: &str) -> String {
    format!(
        "the project file {} is {what} — sandbox reads {FILE} only as a regular file: \
         replace it with one, or remove it",
        path.display()
    )
}

fn too_large(path: &Path) -> String {
    format!(
        "the project file {} is larger than {} — a project file is a few settings: shorten it",
        path.display(),
        Size(MAX_SIZE)
    )
}

/// serde_yaml's error without the file's contents: it quotes the values it
/// could not use (`invalid type: string "..."`, a setting's own `"lots": not
/// a size — ...`), and a file that is not what it seems could put anything
/// there.
/// What is left: the key path (when it is a plain one), what was wrong, and
/// the line and column.
pub fn redacted(error: &serde_yaml::Error) -> String {
    let full = error.to_string();
    let location = error
        .location()
        .map(|l| format!("line {} column {}", l.line(), l.column()));
    let message = match &location {
        Some(at) => full
            .strip_suffix(&format!(" at {at}"))
            .unwrap_or(&full)
            .to_string(),
        None => full.clone(),
    };
    // serde_yaml writes "path: message"; a path is keys of the file, kept
    // only when it looks like one.
    let (path, message) = match message.split_once(": ") {
        Some((path, rest)) if is_plain_path(path) => (Some(path.to_string()), rest.to_string()),
        _ => (None, message),
    };
    let what = describe(&message);
    let mut line = match path {
        Some(path) => format!("{path}: {what}"),
        None => what,
    };
    // libyaml's own messages already say where; the place goes before the
    // advice, which ends the line.
    if let Some(at) = location.filter(|at| !line.contains(at.as_str())) {
        line = match line.split_once(" — ") {
            Some((what, advice)) => format!("{what} at {at} — {advice}"),
            None => format!("{line} at {at}"),
        };
    }
    line
}

/// A message of serde's or libyaml's, with every value it quotes left out.
fn describe(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or_default();
        let expected = rest
            .split_once("`, ")
            .map(|(_, e)| format!(", {}", without_quotes(e)))
            .unwrap_or_default();
        return format!("unknown key {}{expected}", shown_key(key));
    }
    // The expectation is serde's or ours (the schema), never the file's.
    let expected = message
        .rfind(", expected ")
        .map(|i| &message[i + 2..])
        .map(without_quotes);
    if message.starts_with("invalid type: ") || message.starts_with("invalid value: ") {
        let what = message
            .trim_start_matches("invalid type: ")
            .trim_start_matches("invalid value: ");
        let kind: String = what
            .chars()
            .take_while(|c| c.is_ascii_alphabetic() || *c == ' ')
            .collect();
        let kind = kind.trim();
        return match expected {
            Some(expected) if !kind.is_empty() => {
                format!("wrong type of value ({kind}), {expected}")
            }
            Some(expected) => format!("wrong value, {expected}"),
            None => "wrong value".to_string(),
        };
    }
    if message.starts_with("duplicate entry") {
        return "a key given twice".to_string();
    }
    // A setting's own refusal (`types::Invalid`): the value goes, what is
    // wrong and the advice are the schema's.
    if let Some((_, rest)) = crate::config::types::split_quoted(message) {
        if let Some(rest) = rest.strip_prefix(": ") {
            return without_quotes(rest);
        }
    }
    without_quotes(message)
}

/// `text` with each double-quoted or backquoted part (a value, Debug-escaped
/// by serde) replaced by `…`. Backquoted names after "expected" or "field"
/// are the schema's and stay. An unclosed quote ends the text.
fn without_quotes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut escaped = false;
                let mut closed = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                }
                out.push('…');
                if !closed {
                    break;
                }
            }
            '`' => {
                let quoted: String = chars.by_ref().take_while(|c| *c != '`').collect();
                let schema = out.contains("expected") || out.ends_with("field ");
                if schema && is_plain_path(&quoted) {
                    out.push_str(&format!("`{quoted}`"));
                } else {
                    out.push('…');
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A key path as serde_yaml writes one: `container.memory`, `setup[1]`.
fn is_plain_path(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 120
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-[]?".contains(c))
}

/// A key of the file as an error shows it: printable and short.
pub fn shown_key(key: &str) -> String {
    let mut shown: String = key
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if key.chars().count() > 64 {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::project::{load, Manifest};
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn quoted_values_are_cut_out_whatever_they_hold() {
        assert_eq!(
            without_quotes(r#"invalid type: string "a \" b", expected `x`"#),
            "invalid type: string …, expected `x`"
        );
        assert_eq!(without_quotes(r#"bad "unclosed rest"#), "bad …");
        assert_eq!(
            without_quotes("integer `5`, expected i64"),
            "integer …, expected i64"
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sandbox-project-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `load` on a thread of its own: a read that blocks fails the test
    /// rather than hanging it.
    fn load_within(dir: &Path) -> Result<Option<Manifest>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = dir.to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(load(&dir));
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("load must never wait on the file")
    }

    fn refusal(dir: &Path) -> String {
        let err = load_within(dir).expect_err("refused");
        crate::ui::error_line(&err)
    }

    #[test]
    fn a_regular_file_loads_and_none_is_none() {
        let dir = scratch("plain");
        assert!(load_within(&dir).unwrap().is_none());
        std::fs::write(dir.join(FILE), "setup:\n  - make\n").unwrap();
        let manifest = load_within(&dir).unwrap().unwrap();
        assert_eq!(manifest.project.setup, ["make"]);
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        use rustix::fs::{FileType, Mode, CWD};
        let dir = scratch("fifo");
        let fifo = dir.join(FILE);
        rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, Mode::from(0o600), 0).unwrap();
        let line = refusal(&dir);
        assert!(line.contains("named pipe"), "{line}");
        assert!(line.contains(" — "), "says what to do: {line}");
    }

    #[test]
    fn links_are_never_followed() {
        let outside = scratch("outside");
        let secret = outside.join("id_rsa");
        std::fs::write(&secret, "image: sk-secret-in-linked-file\n").unwrap();

        let dir = scratch("symlink");
        std::os::unix::fs::symlink(&secret, dir.join(FILE)).unwrap();
        let line = refusal(&dir);
        assert!(line.contains("symbolic link"), "{line}");
        assert!(!line.contains("sk-secret"), "{line}");

        let dir = scratch("hardlink");
        std::fs::hard_link(&secret, dir.join(FILE)).unwrap();
        let line = refusal(&dir);
        assert!(line.contains("hard links"), "{line}");
        assert!(!line.contains("sk-secret"), "{line}");

        let dir = scratch("directory");
        std::fs::create_dir(dir.join(FILE)).unwrap();
        assert!(refusal(&dir).contains("a directory"));
    }

    #[test]
    fn an_oversized_file_is_refused() {
        let dir = scratch("large");
        let mut text = "setup:\n".to_string();
        while text.len() as u64 <= MAX_SIZE {
            text.push_str("  - echo padding padding padding padding padding padding\n");
        }
        std::fs::write(dir.join(FILE), &text).unwrap();
        let line = refusal(&dir);
        assert!(line.contains("larger than 1m"), "{line}");
        let cut = text[..MAX_SIZE as usize - 100].rfind('\n').unwrap() + 1;
        std::fs::write(dir.join(FILE), &text[..cut]).unwrap();
        assert!(load_within(&dir).unwrap().is_some());
    }
}
