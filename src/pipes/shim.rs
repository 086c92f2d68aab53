//! The stdio shim: the first program of a run whose stdin, stdout and stderr
//! go through FIFOs rather than the engine's attach stream (`pipes/mod.rs`).
//!
//! `shim DIR COMMAND ARGS...` opens `DIR/1` and `DIR/2` for writing and,
//! when it exists, `DIR/0` for reading, puts them on descriptors 1, 2 and 0,
//! and execs COMMAND as `execvp` would (the search through `PATH`, a script
//! without `#!` run by `/bin/sh`). What runs is then exactly what a run
//! through the engine's stream would run, in the same process (the init's
//! child, or the container's first process without one), with the same
//! environment: only its descriptors differ, and they are pipes either way.
//! With stdin open, it opens and closes `DIR/0-opened`, which tells the run
//! it may close its end of stdin's FIFO (`carry::into`).
//!
//! It runs in any image, `FROM scratch` included: a static executable with
//! no libc, built by `build.rs` for the target's architecture and mounted
//! read-only with the FIFOs. Its own failures go to the stderr it was started
//! with (the engine's), where a run reads docker-init's: a command that
//! cannot be executed gets the line `[sandbox-stdio] exec COMMAND failed:
//! REASON` and the status docker-init would give (127 not found, 126
//! otherwise), which the run puts in its own words (`run/cannot_run.rs`).
//! It never blocks on a FIFO: the run holds the other ends open before the
//! container starts, so a FIFO without a reader means one the engine's
//! machine does not share, and the shim says so and exits 125.

#![no_std]
#![no_main]

use core::arch::global_asm;

#[cfg(target_arch = "x86_64")]
mod sys {
    pub const WRITE: usize = 1;
    pub const CLOSE: usize = 3;
    pub const FCNTL: usize = 72;
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;
    pub const OPENAT: usize = 257;
    pub const DUP3: usize = 292;

    pub unsafe fn call(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        core::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a, in("rsi") b, in("rdx") c, in("r10") d,
            lateout("rcx") _, lateout("r11") _,
            options(nostack)
        );
        ret
    }
}

#[cfg(target_arch = "aarch64")]
mod sys {
    pub const DUP3: usize = 24;
    pub const FCNTL: usize = 25;
    pub const OPENAT: usize = 56;
    pub const CLOSE: usize = 57;
    pub const WRITE: usize = 64;
    pub const EXIT_GROUP: usize = 94;
    pub const EXECVE: usize = 221;

    pub unsafe fn call(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        core::arch::asm!(
            "svc 0",
            in("x8") n,
            inlateout("x0") a as isize => ret,
            in("x1") b, in("x2") c, in("x3") d,
            options(nostack)
        );
        ret
    }
}

// The kernel starts a static executable here, the stack holding argc, the
// argv pointers, a null, the environment's pointers and a null.
#[cfg(target_arch = "x86_64")]
global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

#[cfg(target_arch = "aarch64")]
global_asm!(
    ".globl _start",
    "_start:",
    "mov x29, xzr",
    "mov x0, sp",
    "bl {entry}",
    "brk #0",
    entry = sym entry,
);

const AT_FDCWD: isize = -100;
const O_RDONLY: usize = 0;
const O_WRONLY: usize = 1;
const O_NOCTTY: usize = 0o400;
const O_NONBLOCK: usize = 0o4000;
const O_CLOEXEC: usize = 0o2000000;
const F_GETFL: usize = 3;
const F_SETFL: usize = 4;
const F_DUPFD_CLOEXEC: usize = 1030;

const ENOENT: isize = 2;
const ENXIO: isize = 6;
const ENOEXEC: isize = 8;
const EACCES: isize = 13;
const ENOTDIR: isize = 20;

/// `PATH` when the environment has none: glibc's `execvp` searches the same.
const DEFAULT_PATH: &[u8] = b"/bin:/usr/bin";
/// Longest path the shim builds (the kernel's `PATH_MAX`).
const PATH_MAX: usize = 4096;

/// The stderr the container started with, kept for the shim's own lines.
static mut REPORT: usize = 2;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(125)
}

// What the compiler calls for copies, fills and comparisons, which libc would
// provide. Volatile, so that these loops are not turned back into calls to
// themselves. `core` refers to the unwinder's personality even when nothing
// unwinds (`panic=abort`).
#[no_mangle]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    for i in 0..n {
        core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i)));
    }
    dst
}

#[no_mangle]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) < (src as usize) {
        return memcpy(dst, src, n);
    }
    for i in (0..n).rev() {
        core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i)));
    }
    dst
}

#[no_mangle]
unsafe extern "C" fn memset(dst: *mut u8, byte: i32, n: usize) -> *mut u8 {
    for i in 0..n {
        core::ptr::write_volatile(dst.add(i), byte as u8);
    }
    dst
}

#[no_mangle]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        let (x, y) = (core::ptr::read_volatile(a.add(i)), core::ptr::read_volatile(b.add(i)));
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

#[no_mangle]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    memcmp(a, b, n)
}

#[no_mangle]
unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    while core::ptr::read_volatile(s.add(n)) != 0 {
        n += 1;
    }
    n
}

#[no_mangle]
extern "C" fn rust_eh_personality() {}

fn exit(code: usize) -> ! {
    unsafe { sys::call(sys::EXIT_GROUP, code, 0, 0, 0) };
    loop {}
}

fn say(parts: &[&[u8]]) {
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            let n = unsafe { sys::call(sys::WRITE, REPORT, rest.as_ptr() as usize, rest.len(), 0) };
            if n <= 0 {
                return;
            }
            rest = &rest[n as usize..];
        }
    }
}

/// The NUL-terminated string at `p`, without its NUL.
unsafe fn c_str<'a>(p: *const u8) -> &'a [u8] {
    let mut n = 0;
    while *p.add(n) != 0 {
        n += 1;
    }
    core::slice::from_raw_parts(p, n)
}

/// `parts` joined into `buf`, NUL-terminated; `None` when too long.
fn join<'a>(buf: &'a mut [u8; PATH_MAX], parts: &[&[u8]]) -> Option<&'a [u8]> {
    let mut n = 0;
    for part in parts {
        if n + part.len() + 1 > buf.len() {
            return None;
        }
        buf[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    buf[n] = 0;
    Some(&buf[..=n])
}

/// Puts `DIR/NAME`, opened with `flags`, on descriptor `target`. A missing
/// stdin FIFO leaves the descriptor as the container started it.
fn redirect(dir: &[u8], name: &[u8], flags: usize, target: usize) {
    let mut buf = [0u8; PATH_MAX];
    let Some(path) = join(&mut buf, &[dir, b"/", name]) else {
        say(&[b"[sandbox-stdio] the FIFO directory's name is too long\n"]);
        exit(125);
    };
    let open = flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
    let fd = unsafe { sys::call(sys::OPENAT, AT_FDCWD as usize, path.as_ptr() as usize, open, 0) };
    if fd == -ENOENT && target == 0 {
        return;
    }
    if fd == -ENXIO {
        say(&[
            b"[sandbox-stdio] nobody holds ",
            &path[..path.len() - 1],
            b": the engine does not share this machine's files\n",
        ]);
        exit(125);
    }
    if fd < 0 {
        say(&[b"[sandbox-stdio] cannot open ", &path[..path.len() - 1], b"\n"]);
        exit(125);
    }
    let fd = fd as usize;
    unsafe {
        // Blocking from here, as a pipe from the engine would be.
        let status = sys::call(sys::FCNTL, fd, F_GETFL, 0, 0);
        if status < 0
            || sys::call(sys::FCNTL, fd, F_SETFL, status as usize & !O_NONBLOCK, 0) < 0
            || sys::call(sys::DUP3, fd, target, 0, 0) < 0
        {
            say(&[b"[sandbox-stdio] cannot use ", &path[..path.len() - 1], b"\n"]);
            exit(125);
        }
        sys::call(sys::CLOSE, fd, 0, 0, 0);
    }
}

/// Runs `path` with `argv` (the command's own, `argv[0]` its name), or
/// returns the error. A file the kernel cannot execute by itself is a
/// script without `#!`: `/bin/sh` runs it, as `execvp` does, with the slot
/// before `argv` (the shim's own arguments, no longer needed) for its name.
unsafe fn try_exec(path: &[u8], argv: *mut *const u8, envp: *const *const u8) -> isize {
    let err = sys::call(sys::EXECVE, path.as_ptr() as usize, argv as usize, envp as usize, 0);
    if err != -ENOEXEC {
        return err;
    }
    let sh = b"/bin/sh\0";
    *argv.sub(1) = sh.as_ptr();
    *argv = path.as_ptr();
    let _ = sys::call(sys::EXECVE, sh.as_ptr() as usize, argv.sub(1) as usize, envp as usize, 0);
    -ENOEXEC
}

/// What `execvp` does, with its errors: the first not-found kind of error
/// moves on to the next directory, a refusal is remembered, anything else
/// ends the search.
unsafe fn exec(argv: *mut *const u8, envp: *const *const u8) -> isize {
    let file = c_str(*argv);
    let mut buf = [0u8; PATH_MAX];
    if file.is_empty() {
        return -ENOENT;
    }
    if file.contains(&b'/') {
        let Some(path) = join(&mut buf, &[file]) else {
            return -ENOENT;
        };
        return try_exec(path, argv, envp);
    }
    let mut search = DEFAULT_PATH;
    let mut env = envp;
    while !(*env).is_null() {
        let entry = c_str(*env);
        if let Some(value) = entry.strip_prefix(b"PATH=") {
            search = value;
            break;
        }
        env = env.add(1);
    }
    let mut refused = false;
    for dir in search.split(|&b| b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let Some(path) = join(&mut buf, &[dir, b"/", file]) else {
            continue;
        };
        match try_exec(path, argv, envp) {
            e if e == -EACCES => refused = true,
            e if e == -ENOENT || e == -ENOTDIR => {}
            e => return e,
        }
    }
    if refused {
        -EACCES
    } else {
        -ENOENT
    }
}

unsafe extern "C" fn entry(stack: *const usize) -> ! {
    let argc = *stack;
    let argv = stack.add(1) as *mut *const u8;
    if argc < 3 {
        say(&[b"[sandbox-stdio] usage: shim DIR COMMAND [ARG...]\n"]);
        exit(125);
    }
    let envp = argv.add(argc + 1) as *const *const u8;
    let kept = sys::call(sys::FCNTL, 2, F_DUPFD_CLOEXEC, 3, 0);
    if kept >= 0 {
        REPORT = kept as usize;
    }
    let dir = c_str(*argv.add(1));
    redirect(dir, b"1", O_WRONLY, 1);
    redirect(dir, b"2", O_WRONLY, 2);
    redirect(dir, b"0", O_RDONLY, 0);
    // Tells the run its stdin is open here: it closes its end (our EOF)
    // only then, or an event loop reading ours would never see the end.
    let mut buf = [0u8; PATH_MAX];
    if let Some(path) = join(&mut buf, &[dir, b"/0-opened"]) {
        // `OPENED` in mod.rs.
        let flags = O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
        let fd = sys::call(sys::OPENAT, AT_FDCWD as usize, path.as_ptr() as usize, flags, 0);
        if fd >= 0 {
            sys::call(sys::CLOSE, fd as usize, 0, 0, 0);
        }
    }
    let command = argv.add(2);
    let name = c_str(*command);
    let err = exec(command, envp);
    let (reason, code): (&[u8], usize) = match err {
        e if e == -ENOENT || e == -ENOTDIR => (b"No such file or directory", 127),
        e if e == -EACCES => (b"Permission denied", 126),
        e if e == -ENOEXEC => (b"Exec format error", 126),
        _ => (b"cannot execute", 126),
    };
    say(&[b"[sandbox-stdio] exec ", name, b" failed: ", reason, b"\n"]);
    exit(code)
}
