//! Moving bytes: our stdin into the container, the container's stdout and
//! stderr onto ours, kept apart and in the order the engine delivered them.
//!
//! Reading stdin and writing stdout block, so each has an OS thread of its own
//! and the async side only passes `Bytes` along bounded channels: no copies
//! beyond the kernel's, and backpressure all the way to the container.

use std::io::{ErrorKind, Read};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::engine::{Input, Output, OutputStream};

const CHUNK: usize = 64 * 1024;
const DEPTH: usize = 16;

/// Copies our stdin into the container's until EOF, then closes the
/// container's stdin so the command sees EOF too.
pub fn pump_stdin(mut input: Input) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(DEPTH);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut buf = vec![0; CHUNK];
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Bytes::from(buf)).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!("stdin: {e}");
                    break;
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            // The command may exit without reading all of its input.
            if input.write_all(&chunk).await.is_err() || input.flush().await.is_err() {
                return;
            }
        }
        let _ = input.shutdown().await;
    })
}

/// How the output stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum OutputEnd {
    /// The container closed its output: everything was delivered.
    Finished,
    /// Our stdout or stderr was closed (a pager quit, `| head`).
    ReaderGone,
}

/// Copies the container's output onto our stdout and stderr.
pub async fn forward_output(mut output: OutputStream) -> anyhow::Result<OutputEnd> {
    let (tx, mut rx) = mpsc::channel::<Output>(DEPTH);
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        while let Some(chunk) = rx.blocking_recv() {
            match chunk {
                Output::Stdout(bytes) => write_all(rustix::stdio::stdout(), &bytes)?,
                Output::Stderr(bytes) => write_all(rustix::stdio::stderr(), &bytes)?,
            }
        }
        Ok(())
    });
    let mut end = OutputEnd::Finished;
    while let Some(chunk) = output.next().await {
        if tx.send(chunk?).await.is_err() {
            end = OutputEnd::ReaderGone;
            break;
        }
    }
    drop(tx);
    // The writer has at most DEPTH chunks left; joining it off the runtime
    // keeps signals flowing while they drain.
    let written = tokio::task::spawn_blocking(move || writer.join()).await;
    match written {
        Ok(Ok(Ok(()))) => Ok(end),
        Ok(Ok(Err(e))) if e.kind() == ErrorKind::BrokenPipe => Ok(OutputEnd::ReaderGone),
        Ok(Ok(Err(e))) => Err(anyhow::Error::new(e).context("cannot write the command's output")),
        _ => Err(anyhow::anyhow!("the output writer stopped unexpectedly")),
    }
}

fn write_all(fd: rustix::fd::BorrowedFd<'_>, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
