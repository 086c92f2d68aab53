//! How many bytes a copy will move, for a progress display's total and time
//! left: guesses, never used to decide anything. Each is a closure, so the
//! display runs it only when it shows a total (on a terminal), off the
//! runtime's thread.

use std::path::Path;

use super::{send, Entry, Excludes, Manifest};

/// A tar entry's size: its header and its contents padded to the block.
fn entry_bytes(size: u64) -> u64 {
    512 + size.div_ceil(512) * 512
}

/// The two zero blocks that end an archive.
const END: u64 = 1024;

/// The archive of `workspace` as `send` will write it, from a walk that
/// reads no file's contents.
pub fn of_workspace(
    workspace: &Path,
    excludes: &Excludes,
) -> impl FnOnce() -> u64 + Send + 'static {
    let (workspace, excludes) = (workspace.to_path_buf(), excludes.clone());
    move || {
        send::walk(&workspace, &excludes)
            .filter_map(Result::ok)
            .filter(|found| found.depth() > 0)
            .map(|found| {
                let size = found
                    .metadata()
                    .ok()
                    .filter(|m| m.is_file())
                    .map_or(0, |m| m.len());
                entry_bytes(size)
            })
            .sum::<u64>()
            + END
    }
}

/// What comes back, guessed from what went in: the archive of `sent`.
pub fn of_manifest(sent: &Manifest) -> impl FnOnce() -> u64 + Send + 'static {
    let total = sent
        .values()
        .map(|entry| match entry {
            Entry::File { size, .. } => entry_bytes(*size),
            Entry::Dir { .. } | Entry::Link { .. } => entry_bytes(0),
        })
        .sum::<u64>()
        + END;
    move || total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_is_estimated_as_its_archive() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a"), vec![0; 1000]).unwrap();
        std::fs::write(dir.join("sub/b"), b"x").unwrap();
        std::fs::write(dir.join("skipped"), vec![0; 5000]).unwrap();
        let excludes = Excludes::parse("skipped\n").unwrap();
        let total = of_workspace(&dir, &excludes)();
        // a: 512 + 1024; sub: 512; sub/b: 512 + 512.
        assert_eq!(total, 1536 + 512 + 1024 + END);
        let mut written = Vec::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let sent = std::thread::spawn(move || send(&dir, &excludes, tx, |_| {}));
        while let Some(chunk) = rx.blocking_recv() {
            written.extend_from_slice(&chunk);
        }
        let manifest = sent.join().unwrap().unwrap();
        assert_eq!(of_manifest(&manifest)(), total, "the same guess both ways");
        assert!(
            (written.len() as u64).abs_diff(total) <= 10 * 1024,
            "close to the real archive: {} against {total}",
            written.len()
        );
    }
}
