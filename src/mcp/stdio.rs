//! MCP over stdio, the transport agents spawn locally: one JSON-RPC message
//! per line each way.
//!
//! rmcp reads the lines itself, but passes over a line that is not JSON in
//! silence (it fears an error storm with a peer that echoes errors back).
//! JSON-RPC answers such a line with a parse error (-32700, id null), and a
//! client that sent a broken message should learn why it gets no answer:
//! so lines pass through here first. Those that parse as JSON go on to rmcp
//! (which answers a well-formed line that is no message with "invalid
//! request"); the others are answered here. Both kinds of answer leave
//! through one writer, a line at a time, so they never interleave.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Room for messages on their way in or out.
const BUFFER: usize = 256 * 1024;

/// The ends rmcp reads from and writes to, and a token cancelled when
/// stdin ends: the client is gone, so the server stops its calls at once
/// rather than when rmcp has given up on their answers. stdin and stdout
/// are served by two tasks until stdin ends and rmcp closes its side.
pub fn transport() -> (DuplexStream, DuplexStream, CancellationToken) {
    let (stdin, stdout) = rmcp::transport::stdio_pipes();
    let (to_rmcp, from_us) = tokio::io::duplex(BUFFER);
    let (to_us, from_rmcp) = tokio::io::duplex(BUFFER);
    let (errors_tx, errors_rx) = mpsc::channel::<Vec<u8>>(16);
    let ended = CancellationToken::new();
    let input_ended = ended.clone();
    tokio::spawn(async move {
        read_lines(BufReader::new(stdin), to_rmcp, errors_tx).await;
        input_ended.cancel();
    });
    tokio::spawn(write_lines(BufReader::new(from_rmcp), stdout, errors_rx));
    (from_us, to_us, ended)
}

/// stdin, line by line, to rmcp; a line that is not JSON gets its parse
/// error instead. rmcp sees end-of-file when stdin does.
async fn read_lines(
    mut stdin: impl tokio::io::AsyncBufRead + Unpin,
    mut to_rmcp: DuplexStream,
    errors: mpsc::Sender<Vec<u8>>,
) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let message = line.strip_suffix(b"\n").unwrap_or(&line);
        let message = message.strip_suffix(b"\r").unwrap_or(message);
        if message.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_error(message) {
            Some(answer) => {
                if errors.send(answer).await.is_err() {
                    break;
                }
            }
            None => {
                let sent = async {
                    to_rmcp.write_all(message).await?;
                    to_rmcp.write_all(b"\n").await
                };
                if sent.await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to_rmcp.shutdown().await;
}

/// rmcp's lines and the parse errors, to stdout, whole lines only.
async fn write_lines(
    mut from_rmcp: impl tokio::io::AsyncBufRead + Unpin,
    mut stdout: impl tokio::io::AsyncWrite + Unpin,
    mut errors: mpsc::Receiver<Vec<u8>>,
) {
    // Kept across turns of the loop: a line half read when an error
    // answer goes first is finished on the next turn (`read_until`
    // appends).
    let mut line = Vec::new();
    let mut errors_open = true;
    loop {
        let answer = tokio::select! {
            read = from_rmcp.read_until(b'\n', &mut line) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => std::mem::take(&mut line),
            },
            answer = errors.recv(), if errors_open => match answer {
                Some(answer) => answer,
                None => {
                    errors_open = false;
                    continue;
                }
            },
        };
        if stdout.write_all(&answer).await.is_err() || stdout.flush().await.is_err() {
            break;
        }
    }
}

/// JSON-RPC's answer to `message` when it is not JSON at all.
fn parse_error(message: &[u8]) -> Option<Vec<u8>> {
    let error = serde_json::from_slice::<serde::de::IgnoredAny>(message).err()?;
    if !matches!(
        error.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    ) {
        return None;
    }
    let answer = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32700, "message": format!("parse error: not JSON: {error}")},
    });
    let mut line = serde_json::to_vec(&answer).ok()?;
    line.push(b'\n');
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_is_not_json_gets_a_parse_error() {
        let answer = parse_error(b"{not json").expect("an answer");
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["error"]["code"], -32700);
        assert!(answer["id"].is_null());
        // JSON that is no message is rmcp's to answer ("invalid request").
        for json in [&b"[1,2]"[..], b"42", b"{\"jsonrpc\":\"2.0\"}"] {
            assert_eq!(parse_error(json), None);
        }
    }

    #[tokio::test]
    async fn lines_pass_through_and_broken_ones_are_answered() {
        let input: &[u8] = b"{\"a\":1}\n\n}}}\n{\"b\":2}\r\n";
        let (to_rmcp, mut from_us) = tokio::io::duplex(1024);
        let (tx, mut rx) = mpsc::channel(4);
        read_lines(input, to_rmcp, tx).await;
        let mut passed = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut from_us, &mut passed)
            .await
            .unwrap();
        assert_eq!(passed, "{\"a\":1}\n{\"b\":2}\n");
        let answer = rx.recv().await.expect("one parse error");
        assert!(String::from_utf8_lossy(&answer).contains("-32700"));
        assert!(rx.recv().await.is_none());
    }
}
