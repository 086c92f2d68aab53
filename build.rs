//! Builds the stdio shim (`src/pipes/shim.rs`): a static executable with no
//! libc, for the target's architecture, that a run on a local engine mounts
//! into its container to carry the command's stdio through FIFOs. Where it
//! cannot be built (another architecture or OS, a linker that refuses), an
//! empty file stands in and every run uses the engine's attach stream.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "src/pipes/shim.rs";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let shim = out.join("stdio-shim");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let supported = os == "linux" && matches!(arch.as_str(), "x86_64" | "aarch64");
    if !(supported && build(&shim)) {
        std::fs::write(&shim, b"").expect("write the empty stand-in for the shim");
    }
}

fn build(shim: &std::path::Path) -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").unwrap_or_default();
    let mut cmd = Command::new(rustc);
    cmd.args([
        "--edition",
        "2021",
        "--crate-type",
        "bin",
        "--crate-name",
        "stdio_shim",
    ])
    .args(["--target", &target])
    .args([
        "-C",
        "panic=abort",
        "-C",
        "opt-level=s",
        "-C",
        "debuginfo=0",
    ])
    .args(["-C", "strip=symbols", "-C", "relocation-model=static"])
    .args(["-C", "target-feature=+crt-static"])
    .args(["-C", "link-arg=-nostdlib", "-C", "link-arg=-nostartfiles"])
    .args([
        "-C",
        "link-arg=-static",
        "-C",
        "link-arg=-Wl,--build-id=none",
    ])
    .arg("-o")
    .arg(shim)
    .arg(SOURCE);
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace('-', "_")
    );
    if let Some(linker) = env::var_os(&linker_var) {
        let mut arg = std::ffi::OsString::from("linker=");
        arg.push(linker);
        cmd.arg("-C").arg(arg);
    }
    match cmd.output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            let why = String::from_utf8_lossy(&out.stderr);
            let first = why.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            println!("cargo:warning=the stdio shim did not build ({first}); runs use the engine's attach stream");
            false
        }
        Err(e) => {
            println!("cargo:warning=cannot run rustc for the stdio shim ({e}); runs use the engine's attach stream");
            false
        }
    }
}
