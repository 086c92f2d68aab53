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
    pub async fn upload(
        &self,
        id: &str,
        path: &str,
        mut chunks: mpsc::Receiver<Bytes>,
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
        let limit = self.silence.limit(ANSWER);
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
                match self.answered(&what, ANSWER, chunks.next()).await {
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
