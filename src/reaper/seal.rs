//! Why an owner label can be believed. Anyone can put labels on a
//! container: an image's `LABEL` lines are copied onto every container made
//! from it, and a compose file sets them directly, both of which a
//! repository supplies. A label naming a dead sandbox would have the
//! watcher remove the user's own database container. So sandbox seals the
//! owner labels it writes with a key of this user's (HMAC-SHA256, in the
//! private runtime directory, which no container mounts), and judges only
//! containers whose seal holds: any other is someone else's.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The key's file in the private runtime directory.
const KEY_FILE: &str = "owner.key";
const KEY_LEN: usize = 32;
/// Bytes of the tag kept in the label: 128 bits cannot be guessed.
const TAG_LEN: usize = 16;

pub struct Seal(hmac::Key);

impl Seal {
    /// This user's key in `private_dir`, made on first use.
    pub fn load(private_dir: &Path) -> Result<Seal> {
        let path = private_dir.join(KEY_FILE);
        let key = match read_key(&path) {
            Ok(key) => key,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => make_key(private_dir, &path)?,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(Seal(hmac::Key::new(hmac::HMAC_SHA256, &key)))
    }

    /// `owner` with its seal: `owner/tag`.
    pub fn sign(&self, owner: &str) -> String {
        format!("{owner}/{}", hex(&self.tag(owner)))
    }

    /// The owner a sealed label names, if its seal is this key's.
    pub fn open<'a>(&self, label: &'a str) -> Option<&'a str> {
        let (owner, tag) = label.rsplit_once('/')?;
        let tag = unhex(tag)?;
        let expected = self.tag(owner);
        // Every byte compared, whatever the first difference.
        let differs = tag
            .iter()
            .zip(&expected)
            .fold(0, |acc, (a, b)| acc | (a ^ b));
        (tag.len() == TAG_LEN && differs == 0).then_some(owner)
    }

    fn tag(&self, owner: &str) -> Vec<u8> {
        hmac::sign(&self.0, owner.as_bytes()).as_ref()[..TAG_LEN].to_vec()
    }
}

/// The key, if the file is one: a regular file of this user's that nobody
/// else can read, not reached through a link.
fn read_key(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_nofollow())
        .open(path)?;
    let meta = file.metadata()?;
    let mine = meta.uid() == rustix::process::geteuid().as_raw();
    if !meta.is_file() || !mine || meta.mode() & 0o077 != 0 || meta.len() != KEY_LEN as u64 {
        return Err(std::io::Error::other(
            "it is not a key of this user's: remove it, and sandbox makes a new one",
        ));
    }
    let mut key = Vec::with_capacity(KEY_LEN);
    file.read_to_end(&mut key)?;
    Ok(key)
}

/// A new key, written beside and linked into place, so that of two
/// sandboxes starting at once, both end up with the one that won.
fn make_key(dir: &Path, path: &Path) -> Result<Vec<u8>> {
    let mut key = vec![0; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| anyhow::anyhow!("no random bytes for the owner key"))?;
    // A name no other maker uses, in this process or another.
    let mut nonce = [0u8; 8];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| anyhow::anyhow!("no random bytes for the owner key"))?;
    let partial = dir.join(format!(".{KEY_FILE}.{}", hex(&nonce)));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_nofollow())
        .open(&partial)
        .and_then(|mut file| file.write_all(&key).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::hard_link(&partial, path));
    let _ = std::fs::remove_file(&partial);
    match written {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key(path).with_context(|| format!("cannot read {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
}

fn libc_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sandbox-seal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_sealed_label_opens_with_its_key_only() {
        let (one, two) = (dir("one"), dir("two"));
        let seal = Seal::load(&one).unwrap();
        let label = seal.sign("boot/4026531836/42/7");
        assert_eq!(seal.open(&label), Some("boot/4026531836/42/7"));
        assert_eq!(
            Seal::load(&one).unwrap().open(&label),
            Some("boot/4026531836/42/7"),
            "the same key next time"
        );
        assert_eq!(
            Seal::load(&two).unwrap().open(&label),
            None,
            "another user's key"
        );
        // What a repository can write: an unsealed label, a forged tag, the
        // tag of another owner.
        assert_eq!(seal.open("boot/4026531836/42/7"), None);
        assert_eq!(
            seal.open(&format!("boot/4026531836/42/7/{}", "0".repeat(32))),
            None
        );
        let other = seal.sign("boot/4026531836/43/7");
        let (_, tag) = other.rsplit_once('/').unwrap();
        assert_eq!(seal.open(&format!("boot/4026531836/42/7/{tag}")), None);
    }

    #[test]
    fn a_key_others_can_read_or_a_link_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let shared = dir("shared");
        Seal::load(&shared).unwrap();
        let key = shared.join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Seal::load(&shared).is_err());
        let linked = dir("linked");
        std::os::unix::fs::symlink(&key, linked.join(KEY_FILE)).unwrap();
        assert!(Seal::load(&linked).is_err());
    }
}
