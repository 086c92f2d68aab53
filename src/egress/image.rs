//! The egress container's image: this very binary, the shared libraries it
//! was loaded with and the certificates the relays trust, `FROM scratch`.
//! Built through the engine on first use (nothing is pulled), named after
//! what went into it so that a new build of sandbox gets a new image.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bytes::Bytes;

use super::{BINARY, ROOTS};
use crate::engine::Engine;

/// The image's repository; the tag is a hash of its contents.
pub const REPOSITORY: &str = "sandbox-egress";

/// The tag of the egress image for this binary, built if the engine lacks
/// it. `arch` is the engine's: an image of this machine's binary runs only
/// on an engine of the same architecture.
///
/// Two images: the binary's (large, one per build of sandbox) and, over it,
/// the certificates' (small, one per bundle), so that a new bundle does not
/// copy the binary again. Building a binary's image removes those of other
/// builds.
pub async fn ensure(engine: &Engine, arch: &str, roots: Option<&Path>) -> Result<String> {
    let files = Files::of_this_process()?;
    let base = format!("{REPOSITORY}:{}", files.hash()?);
    let roots = match roots {
        Some(path) => read(path)?,
        None => Vec::new(),
    };
    let tag = format!("{base}-{}", crate::hash::sha256_hex(&roots, 12));
    if engine.image_id(&tag).await?.is_some() {
        return Ok(tag);
    }
    if engine.image_id(&base).await?.is_none() {
        let ours = go_arch();
        if !arch.is_empty() && arch != ours {
            bail!(
                "the allow-list's proxy runs sandbox's own binary ({ours}) beside the command, \
                 and this engine runs {arch} containers — run sandbox on a machine of the \
                 engine's kind, or use --network none"
            );
        }
        tracing::info!(tag = %base, "building the egress image");
        let context = files.context().context("cannot pack the egress image")?;
        engine.build(&base, context).await?;
        engine.remove_images_except(REPOSITORY, &base).await;
    }
    let mut context = tar::Builder::new(Vec::new());
    let dockerfile = format!("FROM {base}\nCOPY roots.pem {ROOTS}\n");
    append(&mut context, "Dockerfile", dockerfile.as_bytes(), 0o644)?;
    append(&mut context, "roots.pem", &roots, 0o644)?;
    let context = Bytes::from(context.into_inner()?);
    engine.build(&tag, context).await?;
    Ok(tag)
}

/// This machine's architecture as the engine names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// What goes into the image, by the path it has there.
struct Files {
    exe: PathBuf,
    /// Shared libraries, at the paths the loader finds them at.
    libraries: BTreeSet<PathBuf>,
    /// The program interpreter, at the path the binary names.
    interpreter: Option<PathBuf>,
}

impl Files {
    fn of_this_process() -> Result<Files> {
        let exe = PathBuf::from("/proc/self/exe");
        let maps = std::fs::read_to_string("/proc/self/maps")
            .context("cannot list this process's shared libraries")?;
        let own = std::fs::canonicalize(&exe).context("cannot find sandbox's own binary")?;
        let libraries = maps
            .lines()
            .filter_map(|line| line.split_whitespace().nth(5))
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && *p != own && p.to_string_lossy().contains(".so"))
            .collect();
        // The program headers and the interpreter's name come first.
        let mut head = Vec::new();
        std::fs::File::open(&exe)
            .and_then(|f| f.take(64 << 10).read_to_end(&mut head))
            .context("cannot read sandbox's own binary")?;
        let interpreter = interpreter(&head);
        Ok(Files {
            exe,
            libraries,
            interpreter,
        })
    }

    /// Identifies the contents without reading them all: each file's
    /// identity (device, inode, size, change time).
    fn hash(&self) -> Result<String> {
        let mut key = String::new();
        let all = [&self.exe]
            .into_iter()
            .chain(&self.libraries)
            .chain(&self.interpreter);
        for path in all {
            let meta = std::fs::metadata(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            key.push_str(&format!(
                "{}:{}:{}:{}:{}.{}\n",
                path.display(),
                meta.dev(),
                meta.ino(),
                meta.size(),
                meta.ctime(),
                meta.ctime_nsec()
            ));
        }
        Ok(crate::hash::sha256_hex(key.as_bytes(), 16))
    }

    /// The build context: a Dockerfile and the files under `root/`.
    fn context(&self) -> Result<Bytes> {
        let mut tar = tar::Builder::new(Vec::new());
        let dockerfile = "FROM scratch\nCOPY root/ /\nUSER 65534:65534\n";
        append(&mut tar, "Dockerfile", dockerfile.as_bytes(), 0o644)?;
        append(&mut tar, &format!("root{BINARY}"), &read(&self.exe)?, 0o755)?;
        for library in self.libraries.iter().chain(&self.interpreter) {
            let at = format!("root{}", library.display());
            append(&mut tar, &at, &read(library)?, 0o755)?;
        }
        Ok(Bytes::from(tar.into_inner()?))
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes)
}

fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_cksum();
    tar.append_data(&mut header, path, bytes)
        .with_context(|| format!("cannot add {path} to the egress image"))
}

/// The program interpreter a 64-bit little-endian ELF binary names
/// (`PT_INTERP`): it must be at that very path in the image. `None` for a
/// static binary.
fn interpreter(elf: &[u8]) -> Option<PathBuf> {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    // "\x7fELF", 64-bit, little-endian.
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (phoff, size, count) = (
        u64_at(0x20)? as usize,
        u16_at(0x36)? as usize,
        u16_at(0x38)?,
    );
    (0..count as usize).find_map(|i| {
        let header = phoff + i * size;
        if u32_at(header)? != PT_INTERP {
            return None;
        }
        let (offset, length) = (u64_at(header + 8)? as usize, u64_at(header + 32)? as usize);
        let path = elf.get(offset..offset + length)?;
        let path = path.strip_suffix(b"\0").unwrap_or(path);
        Some(PathBuf::from(String::from_utf8_lossy(path).into_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_binary_names_its_interpreter_and_libraries() {
        let files = Files::of_this_process().unwrap();
        let elf = std::fs::read("/proc/self/exe").unwrap();
        let interpreter = interpreter(&elf).expect("a dynamically linked test binary");
        assert!(interpreter.is_file(), "{}", interpreter.display());
        assert!(
            files
                .libraries
                .iter()
                .any(|l| l.to_string_lossy().contains("libc.so")),
            "{:?}",
            files.libraries
        );
        assert_eq!(files.hash().unwrap(), files.hash().unwrap());
        assert_eq!(super::interpreter(b"\x7fELF\x01\x01"), None);
        assert_eq!(super::interpreter(b"#!/bin/sh"), None);
    }
}
