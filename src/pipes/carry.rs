//! Copying between a FIFO and one of our own descriptors, on a thread:
//! `splice(2)` moves the bytes inside the kernel when either side is a pipe
//! (a FIFO always is); a descriptor it cannot splice (a terminal, some
//! sockets) gets plain reads and writes through one buffer.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::pipe::{splice, SpliceFlags};

use crate::streams::OutputEnd;

/// The most one call moves: a pipe's default capacity sixteen times over.
const CHUNK: usize = 1 << 20;
/// The buffer when `splice` cannot be used.
const BUFFER: usize = 128 * 1024;

/// Our stdin into the container's until our EOF; closing the FIFO then is
/// the command's EOF. Never fails: a stdin we cannot read ends the
/// command's too.
pub fn into(from: BorrowedFd<'static>, fifo: OwnedFd) {
    grow(from);
    let copied = set_blocking(fifo.as_fd()).and_then(|()| copy(from, fifo.as_fd()));
    if let Err(e) = copied {
        tracing::debug!("stdin: {e}");
    }
}

/// The container's stdout or stderr onto ours until every writer has
/// closed it. A reader of ours that went away closes the FIFO, so the
/// command's next write fails (SIGPIPE) as it would on a pipe of its own.
pub fn out_of(fifo: OwnedFd, to: BorrowedFd<'static>) -> io::Result<OutputEnd> {
    // Opened before the shim opened its end: until a writer has come, a read
    // would see the end of the stream. poll waits for the first bytes, or
    // for the last writer's going (which a writer that never came, opened
    // and closed at the run's end, stands for).
    let mut fds = [PollFd::new(&fifo, PollFlags::IN)];
    loop {
        match poll(&mut fds, None) {
            Ok(_) => break,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    set_blocking(fifo.as_fd())?;
    grow(to);
    match copy(fifo.as_fd(), to) {
        Ok(()) => Ok(OutputEnd::Finished),
        Err(Errno::PIPE) => Ok(OutputEnd::ReaderGone),
        Err(e) => Err(e.into()),
    }
}

/// Our stdin or stdout, when it is a pipe smaller than the FIFO, grows to
/// the FIFO's size: each hand-over between the other program and this copy
/// then moves as much as one with the command does. A pipe already larger,
/// or one that cannot grow, stays as it is.
fn grow(pipe: BorrowedFd<'_>) {
    if let Ok(size) = rustix::pipe::fcntl_getpipe_size(pipe) {
        if size < super::PIPE_SIZE {
            let _ = rustix::pipe::fcntl_setpipe_size(pipe, super::PIPE_SIZE);
        }
    }
}

fn set_blocking(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags - rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// Everything from `from` to `to`, until `from`'s end.
fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), Errno> {
    loop {
        match splice(from, None, to, None, CHUNK, SpliceFlags::MOVE) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => wait_for(from, to)?,
            // Neither side a pipe, or one that cannot splice.
            Err(Errno::INVAL) => return copy_through_buffer(from, to),
            Err(e) => return Err(e),
        }
    }
}

fn copy_through_buffer(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match rustix::io::read(from, &mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => {
                wait_for(from, to)?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            match rustix::io::write(to, rest) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => wait_for(from, to)?,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Either side may be non-blocking (a descriptor shared with a program
/// that set it so): wait until `from` has bytes and `to` takes them.
fn wait_for(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<(), Errno> {
    for (fd, flags) in [(from, PollFlags::IN), (to, PollFlags::OUT)] {
        let mut fds = [PollFd::new(&fd, flags)];
        match poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
