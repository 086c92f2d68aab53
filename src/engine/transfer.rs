//! A tar stream into or out of a container. Neither has a deadline as a
//! whole (a large workspace takes as long as it takes); what the engine must
//! do is keep moving: take the next chunk we have ready, give the next one
//! we ask for, answer once the stream has ended, each within [`ANSWER`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::deadline::ANSWER;
use super::{plain, Engine};

/// Since when the upload has been waiting, and whether on the engine: a
/// chunk handed over (or the end of the stream) waits on the engine; a poll
/// that found none waits on the walk of the workspace, which is ours.
struct Waiting {
    since: Instant,
    on_engine: bool,
}

/// How often a stalled upload is looked for.
const CHECK: Duration = Duration::from_millis(500);

impl Engine {
    /// Unpacks the tar stream from `chunks` into `path` in the container,
    /// which may be created and not yet started.
    pub async fn upload(&self, id: &str, path: &str, chunks: mpsc::Receiver<Bytes>) -> Result<()> {
        self.upload_within(id, path, chunks, ANSWER).await
    }

    /// [`Engine::upload`], the engine taking no more than `limit` over any
    /// chunk.
    async fn upload_within(
        &self,
        id: &str,
        path: &str,
        mut chunks: mpsc::Receiver<Bytes>,
        limit: Duration,
    ) -> Result<()> {
        let options = UploadToContainerOptionsBuilder::new().path(path).build();
        let waiting = Arc::new(Mutex::new(Waiting {
            since: Instant::now(),
            on_engine: true,
        }));
        let seen = Arc::clone(&waiting);
        let stream = futures_util::stream::poll_fn(move |cx| {
            let polled = chunks.poll_recv(cx);
            if let Ok(mut seen) = seen.lock() {
                *seen = Waiting {
                    since: Instant::now(),
                    on_engine: polled.is_ready(),
                };
            }
            polled
        });
        let what = || format!("cannot copy into {path} in the container");
        let uploaded =
            self.docker
                .upload_to_container(id, Some(options), bollard::body_stream(stream));
        let limit = self.silence.limit(limit);
        let stalled = async {
            loop {
                tokio::time::sleep(CHECK).await;
                let stalled = waiting
                    .lock()
                    .is_ok_and(|w| w.on_engine && w.since.elapsed() >= limit);
                if stalled {
                    break;
                }
            }
        };
        tokio::select! {
            uploaded = uploaded => {
                self.silence.answered();
                uploaded.map_err(plain).with_context(what)
            }
            () = stalled => Err(anyhow::Error::new(self.silence.unanswered(limit))).with_context(what),
        }
    }

    /// `path` in the container (stopped or not) as a tar stream.
    pub fn download(&self, id: &str, path: &str) -> impl Stream<Item = Result<Bytes>> + '_ {
        self.download_within(id, path, ANSWER)
    }

    /// [`Engine::download`], the engine taking no more than `limit` over
    /// any chunk.
    fn download_within(
        &self,
        id: &str,
        path: &str,
        limit: Duration,
    ) -> impl Stream<Item = Result<Bytes>> + '_ {
        let options = DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let what = format!("copy {path} out of the container");
        let chunks = Box::pin(self.docker.download_from_container(id, Some(options)));
        // Each chunk is timed only while we wait for it: the writer taking
        // its time with the last one is not the engine's doing.
        futures_util::stream::unfold(Some(chunks), move |chunks| {
            let what = what.clone();
            async move {
                let mut chunks = chunks?;
                match self.answered(&what, limit, chunks.next()).await {
                    Ok(None) => None,
                    Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(chunks))),
                    Ok(Some(Err(e))) => {
                        Some((Err(plain(e).context(format!("cannot {what}"))), None))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
    }
}

/// The stall rules against a stand-in engine on a socket of its own, which
/// answers the ping and then does as each test says: an engine cannot be
/// made to stall on one call alone.
#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{UnixListener, UnixStream};

    use super::*;
    use crate::engine::NoAnswer;

    const LIMIT: Duration = Duration::from_millis(500);

    #[derive(Clone, Copy)]
    enum Behaviour {
        /// Takes the request's head, then nothing more.
        StopsReading,
        /// Takes the whole body, then answers.
        Reads,
        /// Answers a download with one chunk, then nothing more.
        StopsSending,
        /// Answers a download with two chunks and the end at once.
        Sends,
    }

    /// A stand-in engine; the directory holds its socket.
    async fn engine(behaviour: Behaviour) -> (Engine, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                tokio::spawn(serve(connection, behaviour));
            }
        });
        let engine = Engine::connect(&format!("unix://{}", socket.display()))
            .await
            .unwrap();
        (engine, dir)
    }

    async fn serve(connection: UnixStream, behaviour: Behaviour) {
        let mut connection = BufReader::new(connection);
        loop {
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if connection.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let answer: &[u8] = if head.contains("/_ping") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"
            } else {
                match behaviour {
                    Behaviour::StopsReading => std::future::pending().await,
                    Behaviour::Reads => {
                        read_chunked(&mut connection).await;
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                    }
                    Behaviour::StopsSending => {
                        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n";
                        connection.get_mut().write_all(head).await.unwrap();
                        std::future::pending().await
                    }
                    Behaviour::Sends => {
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
                    }
                }
            };
            connection.get_mut().write_all(answer).await.unwrap();
        }
    }

    /// Reads a chunked body to its end.
    async fn read_chunked(connection: &mut BufReader<UnixStream>) {
        loop {
            let mut size = String::new();
            connection.read_line(&mut size).await.unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            connection.read_exact(&mut chunk).await.unwrap();
            if size == 0 {
                return;
            }
        }
    }

    /// Chunks of 64 KiB, `pause` apart, `count` of them (endless if none).
    fn chunks(pause: Duration, count: Option<usize>) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            let mut sent = 0;
            while count.is_none_or(|c| sent < c) {
                if tx.send(Bytes::from(vec![0u8; 64 * 1024])).await.is_err() {
                    return;
                }
                sent += 1;
                tokio::time::sleep(pause).await;
            }
        });
        rx
    }

    #[tokio::test]
    async fn an_upload_the_engine_stops_taking_ends_unanswered() {
        let (engine, _dir) = engine(Behaviour::StopsReading).await;
        let start = Instant::now();
        let upload = engine.upload_within("c1", "/work", chunks(Duration::ZERO, None), LIMIT);
        let e = upload.await.unwrap_err();
        assert!(e.is::<NoAnswer>(), "{e:#}");
        assert!(start.elapsed() < Duration::from_secs(10), "{e:#}");
        assert!(engine.is_silent());
    }

    #[tokio::test]
    async fn a_slow_walk_of_the_workspace_is_not_the_engines_silence() {
        let (engine, _dir) = engine(Behaviour::Reads).await;
        let slow = chunks(LIMIT * 3, Some(3));
        engine
            .upload_within("c1", "/work", slow, LIMIT)
            .await
            .unwrap();
        assert!(!engine.is_silent());
    }

    #[tokio::test]
    async fn a_download_the_engine_stops_sending_ends_unanswered() {
        let (engine, _dir) = engine(Behaviour::StopsSending).await;
        let got: Vec<Result<Bytes>> = engine.download_within("c1", "/work", LIMIT).collect().await;
        assert_eq!(got.len(), 2, "a chunk, then the error");
        assert_eq!(got[0].as_ref().unwrap().as_ref(), b"ab");
        let e = got[1].as_ref().unwrap_err();
        assert!(e.is::<NoAnswer>(), "{e:#}");
    }

    #[tokio::test]
    async fn a_slow_reader_of_a_download_is_not_the_engines_silence() {
        let (engine, _dir) = engine(Behaviour::Sends).await;
        let mut download = std::pin::pin!(engine.download_within("c1", "/work", LIMIT));
        let mut got = Vec::new();
        while let Some(chunk) = download.next().await {
            got.extend_from_slice(&chunk.unwrap());
            tokio::time::sleep(LIMIT * 3).await;
        }
        assert_eq!(got, b"abcd");
    }
}
