//! A command's output, kept within a cap: its first and last bytes, with a
//! marker in the middle saying how much was left out, and the total size.
//! Everything is read (the child would block on a full pipe otherwise, and
//! the total is only known at the end); only the cap is kept in memory.

use std::collections::VecDeque;

/// One output stream of a command, as it arrives.
#[derive(Debug)]
pub struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    total: u64,
}

/// What a [`Capture`] kept, as text for the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    pub text: String,
    /// Bytes the command wrote in all.
    pub total: u64,
    /// Whether bytes were left out of `text`.
    pub cut: bool,
}

impl Capture {
    /// Keeps at most `cap` bytes: the first half and the last half. The
    /// end of a log is where a failure is usually explained.
    pub fn new(cap: usize) -> Capture {
        let head_cap = cap / 2;
        Capture {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_cap,
            tail_cap: cap - head_cap,
            total: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.head_cap - self.head.len();
        let (first, rest) = bytes.split_at(room.min(bytes.len()));
        self.head.extend_from_slice(first);
        bytes = rest;
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            bytes = &bytes[bytes.len() - self.tail_cap..];
        } else {
            let over = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..over);
        }
        self.tail.extend(bytes);
    }

    /// The last line written, if it is whole and still kept: where sandbox
    /// puts its own one-line error.
    pub fn last_line(&self) -> Option<String> {
        let kept: Vec<u8> = self.head.iter().chain(self.tail.iter()).copied().collect();
        let text = String::from_utf8_lossy(&kept);
        text.trim_end_matches('\n')
            .rsplit('\n')
            .next()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
    }

    pub fn finish(self) -> Captured {
        let kept = (self.head.len() + self.tail.len()) as u64;
        let cut = kept < self.total;
        let head = String::from_utf8_lossy(&self.head).into_owned();
        let tail = String::from_utf8_lossy(&Vec::from(self.tail)).into_owned();
        let text = match cut {
            false => head + &tail,
            true => format!(
                "{head}\n[sandbox: output cut: {} bytes in all, the {} in the middle left out]\n{tail}",
                self.total,
                self.total - kept
            ),
        };
        Captured {
            text,
            total: self.total,
            cut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(cap: usize, chunks: &[&[u8]]) -> Captured {
        let mut capture = Capture::new(cap);
        for chunk in chunks {
            capture.push(chunk);
        }
        capture.finish()
    }

    #[test]
    fn output_within_the_cap_is_whole() {
        let out = captured(8, &[b"abc", b"defgh"]);
        assert_eq!(out.text, "abcdefgh");
        assert_eq!((out.total, out.cut), (8, false));
    }

    #[test]
    fn output_over_the_cap_keeps_both_ends_and_says_so() {
        let out = captured(8, &[b"abc", b"defghijkl", b"mn"]);
        assert!(out
            .text
            .starts_with("abcd\n[sandbox: output cut: 14 bytes in all, the 6"));
        assert!(out.text.ends_with("]\nklmn"), "{}", out.text);
        assert!(out.cut);
        // One large chunk, too.
        let out = captured(4, &[&[b'x'; 1000], b"END"]);
        assert!(out.text.starts_with("xx\n["));
        assert!(out.text.ends_with("ND") && out.total == 1003);
    }

    #[test]
    fn the_last_line_is_the_last_whole_one() {
        let mut capture = Capture::new(64);
        capture.push(b"noise\nsandbox: the engine is down\n");
        assert_eq!(
            capture.last_line().as_deref(),
            Some("sandbox: the engine is down")
        );
        assert_eq!(Capture::new(8).last_line(), None);
    }
}
