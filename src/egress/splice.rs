//! A CONNECT tunnel's bytes, moved socket to socket by the kernel: splice(2)
//! through a pipe, so they are never copied into the proxy. Read and
//! written through a buffer, each byte crossed user space twice, which held
//! a tunnel to half the rate of a direct connection.

use std::io;

use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// What one splice moves at most: the pipe is made this large.
const CHUNK: usize = 1 << 20;

/// Carries bytes both ways between `a` and `b` until both directions end;
/// each end's write side is shut once the other stops sending.
pub async fn tunnel(a: &TcpStream, b: &TcpStream) -> io::Result<()> {
    tokio::try_join!(one_way(a, b), one_way(b, a)).map(|_| ())
}

async fn one_way(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    let (pipe_out, pipe_in) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
    // A larger pipe moves more per call; the default (64 KiB) still works.
    let chunk = fcntl_setpipe_size(&pipe_in, CHUNK)
        .unwrap_or(64 << 10)
        .min(CHUNK);
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    loop {
        // The pipe is empty here, so "would block" can only be the socket's.
        let moved = loop {
            from.readable().await?;
            match from.try_io(Interest::READABLE, || {
                Ok(splice(from, None, &pipe_in, None, chunk, flags)?)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => break other?,
            }
        };
        if moved == 0 {
            // End of what `from` sends: say so to `to`, as a proxy must.
            let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
            return Ok(());
        }
        let mut left = moved;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                Ok(splice(&pipe_out, None, to, None, left, flags)?)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
                Ok(written) => left -= written,
            }
        }
    }
}
