//! Copying between a FIFO and one of our own descriptors, on a thread.
//!
//! `splice(2)` moves the bytes inside the kernel when the destination is a
//! pipe (a FIFO always is); into anything else (a file, a terminal) they go
//! through a buffer with `read`/`write`: splice moves a file's offset
//! without the lock `write` takes, so stdout and stderr on one file
//! (`> log 2>&1`) would overwrite each other.
//!
//! Every copy also watches a stop pipe, which the run closes once the
//! container has stopped. The container's processes are gone then, but a
//! descriptor one of them handed to a process outside (another run's
//! container) may live on: from the stop on, an output copy moves only what
//! the FIFO held at that moment, and stdin stops, so such a holder can
//! neither keep the run from ending nor read what is typed after it.
//! Reads never take more than is waiting, so none blocks on a writer.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::pipe::{splice, SpliceFlags};

use crate::streams::OutputEnd;

/// The most one call moves when the amount waiting cannot be known.
const CHUNK: usize = 1 << 20;
/// The buffer when `splice` cannot be used.
const BUFFER: usize = 128 * 1024;

/// Our stdin into the container's until our EOF (closing the FIFO then is
/// the command's EOF) or the stop. Never fails: a stdin we cannot read
/// ends the command's too.
///
/// At our EOF the FIFO is closed only once the shim has opened its end,
/// which it tells by opening and closing `opened`'s FIFO. A reader that
/// opens a FIFO after its last writer closed reads the end, but is never
/// told of it as an event (the kernel marks the hang-up for readers that
/// were there): an event loop (Node, Bun, asyncio, Go) would wait forever.
pub fn into(from: BorrowedFd<'static>, fifo: OwnedFd, stop: OwnedFd, opened: OwnedFd) {
    grow(from);
    let mut copy = Copy::new(from, fifo.as_fd());
    // A full FIFO nobody reads any more waits no longer than the run.
    copy.stop = Some(stop.as_fd());
    loop {
        match copy.wait(&stop) {
            Ok(Ready::Stopped) => return,
            Ok(Ready::Bytes(n)) => match copy.move_up_to(n) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("stdin: {e}");
                    break;
                }
            },
            Err(e) => {
                tracing::debug!("stdin: {e}");
                break;
            }
        }
    }
    // Its hang-up (always reported) once the shim's writer came and went;
    // the stop's once the run is over.
    let mut fds = [
        PollFd::new(&opened, PollFlags::IN),
        PollFd::new(&stop, PollFlags::IN),
    ];
    while let Ok(0) | Err(Errno::INTR) = poll(&mut fds, None) {}
}

/// The container's stdout or stderr onto ours until every writer has
/// closed it, or, once stopped, until what it held then is out. A reader of
/// ours that went away closes the FIFO, so the command's next write fails
/// (SIGPIPE) as it would on a pipe of its own, and `gone` is told at once.
/// `moved` counts the bytes.
pub fn out_of(
    fifo: OwnedFd,
    to: BorrowedFd<'static>,
    stop: OwnedFd,
    gone: impl FnOnce(),
    moved: Arc<AtomicU64>,
) -> io::Result<OutputEnd> {
    grow(to);
    let mut copy = Copy::new(fifo.as_fd(), to);
    // Until the stop, whatever comes; after it, what was there.
    let mut left: Option<usize> = None;
    loop {
        let ready = match left {
            Some(rest) => match rest.min(copy.waiting().unwrap_or(0)) {
                0 => return Ok(OutputEnd::Finished),
                now => Ready::Bytes(now),
            },
            None => copy.wait(&stop)?,
        };
        let n = match ready {
            Ready::Stopped => {
                left = Some(copy.waiting()?);
                continue;
            }
            Ready::Bytes(n) => n,
        };
        match copy.move_up_to(n) {
            // The end: every writer gone, nothing left.
            Ok(0) => return Ok(OutputEnd::Finished),
            Ok(m) => {
                moved.fetch_add(m as u64, Ordering::Relaxed);
                if let Some(rest) = left.as_mut() {
                    *rest = rest.saturating_sub(m);
                }
            }
            Err(Errno::PIPE) => {
                gone();
                return Ok(OutputEnd::ReaderGone);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

enum Ready {
    Stopped,
    /// This many bytes can be read without blocking; 0 at the end.
    Bytes(usize),
}

struct Copy<'a> {
    from: BorrowedFd<'a>,
    to: BorrowedFd<'a>,
    splices: bool,
    buffer: Vec<u8>,
    /// Ends a wait for either side when closed.
    stop: Option<BorrowedFd<'a>>,
}

impl<'a> Copy<'a> {
    fn new(from: BorrowedFd<'a>, to: BorrowedFd<'a>) -> Copy<'a> {
        Copy {
            from,
            to,
            splices: is_pipe(to),
            buffer: Vec::new(),
            stop: None,
        }
    }

    /// What `from` holds now; an error where it cannot say (a device).
    fn waiting(&self) -> Result<usize, Errno> {
        rustix::io::ioctl_fionread(self.from).map(|n| n as usize)
    }

    /// Until `from` has bytes or has ended, or `stop` is closed.
    fn wait(&self, stop: &OwnedFd) -> Result<Ready, Errno> {
        loop {
            let mut fds = [
                PollFd::new(&self.from, PollFlags::IN),
                PollFd::new(stop, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e),
            }
            if !fds[1].revents().is_empty() {
                return Ok(Ready::Stopped);
            }
            if fds[0].revents().is_empty() {
                continue;
            }
            // Readable with nothing waiting: the end (a pipe's last writer
            // gone, a file's end, a terminal's ^D). A descriptor that cannot
            // say gets a read of any size, which its kind does not block.
            return Ok(Ready::Bytes(self.waiting().unwrap_or(CHUNK)));
        }
    }

    /// Moves up to `n` bytes (0: reads once, to see the end); how many moved.
    fn move_up_to(&mut self, n: usize) -> Result<usize, Errno> {
        let n = n.max(1);
        if self.splices {
            loop {
                match splice(self.from, None, self.to, None, n, SpliceFlags::MOVE) {
                    Ok(m) => return Ok(m),
                    Err(Errno::INTR) => {}
                    Err(Errno::AGAIN) => wait_for(self.from, self.to, self.stop)?,
                    // A kind of descriptor that cannot splice after all.
                    Err(Errno::INVAL) => {
                        self.splices = false;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if self.buffer.is_empty() {
            self.buffer = vec![0; BUFFER];
        }
        let want = n.min(self.buffer.len());
        let got = loop {
            match rustix::io::read(self.from, &mut self.buffer[..want]) {
                Ok(got) => break got,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => wait_for(self.from, self.to, self.stop)?,
                Err(e) => return Err(e),
            }
        };
        let mut rest = &self.buffer[..got];
        while !rest.is_empty() {
            match rustix::io::write(self.to, rest) {
                Ok(w) => rest = &rest[w..],
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => wait_for(self.from, self.to, self.stop)?,
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }
}

fn is_pipe(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo
    })
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

/// Either side may be non-blocking (the FIFOs are; a descriptor shared with
/// a program that set it so): wait until `from` has bytes and `to` takes
/// them, or `stop` is closed (`CANCELED`).
fn wait_for(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    stop: Option<BorrowedFd<'_>>,
) -> Result<(), Errno> {
    for (fd, flags) in [(from, PollFlags::IN), (to, PollFlags::OUT)] {
        let mut fds = vec![PollFd::new(&fd, flags)];
        if let Some(stop) = &stop {
            fds.push(PollFd::new(stop, PollFlags::IN));
        }
        match poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
        if fds.get(1).is_some_and(|f| !f.revents().is_empty()) {
            return Err(Errno::CANCELED);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// stdout and stderr onto one file: every line arrives, none is
    /// overwritten by the other stream's (splice would share the offset
    /// without write's lock).
    #[test]
    fn two_streams_onto_one_file_lose_nothing() {
        let file = tempfile::tempfile().unwrap();
        let (stop_r, stop_w) = rustix::pipe::pipe().unwrap();
        let mut threads = Vec::new();
        let mut writers = Vec::new();
        for stream in ["out", "err"] {
            let (r, w) = rustix::pipe::pipe().unwrap();
            writers.push((w, stream));
            let to: BorrowedFd<'static> = for_the_process(file.try_clone().unwrap());
            let stop = stop_r.try_clone().unwrap();
            let moved = Arc::new(AtomicU64::new(0));
            threads.push(std::thread::spawn(move || {
                out_of(r, to, stop, || {}, moved)
            }));
        }
        let feeders: Vec<_> = writers
            .into_iter()
            .map(|(w, stream)| {
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        let line = format!("{stream}{i}\n");
                        rustix::io::write(&w, line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for f in feeders {
            f.join().unwrap();
        }
        for t in threads {
            assert_eq!(t.join().unwrap().unwrap(), OutputEnd::Finished);
        }
        drop(stop_w);
        let text = std::fs::read_to_string(format!("/proc/self/fd/{}", fd_number(&file))).unwrap();
        assert_eq!(text.lines().count(), 40_000);
    }

    /// A writer that outlives the container holds nothing up: once stopped,
    /// what was waiting goes out and the copy ends.
    #[test]
    fn a_writer_left_behind_does_not_hold_the_copy_after_the_stop() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let (out_r, out_w) = rustix::pipe::pipe().unwrap();
        let (stop_r, stop_w) = rustix::pipe::pipe().unwrap();
        rustix::io::write(&w, b"before the stop").unwrap();
        let to: BorrowedFd<'static> = for_the_process(std::fs::File::from(out_w));
        let moved = Arc::new(AtomicU64::new(0));
        let counted = moved.clone();
        let copy = std::thread::spawn(move || out_of(r, to, stop_r, || {}, counted));
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(stop_w);
        assert_eq!(copy.join().unwrap().unwrap(), OutputEnd::Finished);
        assert_eq!(moved.load(Ordering::Relaxed), 15);
        let mut got = [0u8; 64];
        let n = rustix::io::read(&out_r, &mut got).unwrap();
        assert_eq!(&got[..n], b"before the stop");
        // The writer was still open: the copy did not wait for it, and its
        // later writes find no reader.
        assert_eq!(rustix::io::write(&w, b"after"), Err(Errno::PIPE));
    }

    /// A descriptor for the rest of the test process, as stdout is.
    /// What `fd` has for a reader within `millis`: nothing, data, a hang-up.
    fn events(fd: &OwnedFd, millis: i64) -> PollFlags {
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let timeout = rustix::event::Timespec {
            tv_sec: millis / 1000,
            tv_nsec: (millis % 1000) * 1_000_000,
        };
        poll(&mut fds, Some(&timeout)).unwrap();
        fds[0].revents()
    }

    /// Our EOF comes before the shim has opened stdin's FIFO: the FIFO
    /// stays open until it has (it opens and closes `0-opened`), so the
    /// command, opening late, is told of the end as an event. The control:
    /// a reader that opens after the last writer closed reads the data and
    /// is never told of the end.
    #[test]
    fn our_end_closes_once_the_shim_has_opened_its_own() {
        use rustix::fs::{open, Mode, OFlags};
        let dir = tempfile::tempdir().unwrap();
        let fifo = |name: &str| {
            let at = dir.path().join(name);
            rustix::fs::mkfifoat(rustix::fs::CWD, &at, Mode::from_raw_mode(0o600)).unwrap();
            at
        };
        let (stdin, opened) = (fifo("0"), fifo("0-opened"));
        let nonblocking = OFlags::NONBLOCK | OFlags::CLOEXEC;
        let writer = open(&stdin, OFlags::RDWR | nonblocking, Mode::empty()).unwrap();
        let ours = open(&opened, OFlags::RDONLY | nonblocking, Mode::empty()).unwrap();
        let (input, mut feed) = std::io::pipe().unwrap();
        std::io::Write::write_all(&mut feed, b"hi").unwrap();
        drop(feed);
        let from = for_the_process(std::fs::File::from(OwnedFd::from(input)));
        let (stop_r, stop_w) = rustix::pipe::pipe().unwrap();
        let copy = std::thread::spawn(move || into(from, writer, stop_r, ours));
        // Our EOF is long past: the copy would have closed the FIFO by now.
        std::thread::sleep(std::time::Duration::from_millis(200));

        let late = open(&stdin, OFlags::RDONLY | nonblocking, Mode::empty()).unwrap();
        // As the shim does, whether anyone reads it or not.
        drop(open(&opened, OFlags::WRONLY | nonblocking, Mode::empty()));
        assert!(events(&late, 5000).contains(PollFlags::IN));
        assert_eq!(rustix::io::read(&late, &mut [0u8; 8]).unwrap(), 2);
        assert!(
            events(&late, 5000).contains(PollFlags::HUP),
            "the end as an event"
        );
        drop(stop_w);
        copy.join().unwrap();

        // CONTROL: the FIFO's last writer closed before its reader opened.
        let control = fifo("control");
        let held = open(&control, OFlags::RDONLY | nonblocking, Mode::empty()).unwrap();
        let writer = open(&control, OFlags::WRONLY | nonblocking, Mode::empty()).unwrap();
        rustix::io::write(&writer, b"hi").unwrap();
        drop(writer);
        let late = open(&control, OFlags::RDONLY | nonblocking, Mode::empty()).unwrap();
        assert_eq!(rustix::io::read(&late, &mut [0u8; 8]).unwrap(), 2);
        assert!(events(&late, 300).is_empty(), "no event for the end");
        assert_eq!(
            rustix::io::read(&late, &mut [0u8; 8]).unwrap(),
            0,
            "yet it ended"
        );
        drop(held);
    }

    fn for_the_process(file: std::fs::File) -> BorrowedFd<'static> {
        let file: &'static std::fs::File = Box::leak(Box::new(file));
        file.as_fd()
    }

    fn fd_number(file: &std::fs::File) -> i32 {
        use std::os::fd::AsRawFd;
        file.as_raw_fd()
    }
}
