//! The attach endpoint by hand, for a terminal on a local socket. bollard's
//! attach decoder takes any chunk that starts with byte 0, 1 or 2 for a frame
//! header, and a terminal's stream has no frames: it ate those bytes.

use anyhow::{anyhow, Context, Result};

use super::{Input, Output, OutputStream};

/// The attach endpoint by hand, over the engine's unix socket: the HTTP
/// request, the engine's switch to a raw stream (101, or 200 from older
/// engines), then the terminal's bytes as they come, unframed.
pub async fn attach_raw(socket: &str, id: &str, stdin: bool) -> Result<(OutputStream, Input)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot connect to {socket}"))?;
    let request = format!(
        "POST /containers/{id}/attach?stream=1&stdin={}&stdout=1&stderr=1 HTTP/1.1\r\n\
         Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n",
        u8::from(stdin)
    );
    stream.write_all(request.as_bytes()).await?;
    // Byte by byte, so not one byte of the stream after the headers is taken.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            return Err(anyhow!("the engine's answer has no end of headers"));
        }
        stream.read_exact(&mut byte).await?;
        head.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&head);
    let status = status.lines().next().unwrap_or_default().to_string();
    if !(status.contains(" 101 ") || status.contains(" 200 ")) {
        return Err(anyhow!("the engine answered {}", status.trim()));
    }
    let (read, write) = stream.into_split();
    // One chunk per read, as the terminal produced it; the stream ends at EOF
    // or after the first error.
    let output = futures_util::stream::unfold(Some(read), |read| async move {
        let mut read = read?;
        let mut buffer = bytes::BytesMut::with_capacity(64 * 1024);
        match read.read_buf(&mut buffer).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(Output::Stdout(buffer.freeze())), Some(read))),
            Err(e) => Some((
                Err(anyhow::Error::new(e).context("the container's output stream broke")),
                None,
            )),
        }
    });
    Ok((Box::pin(output), Box::pin(write)))
}
