//! The credential relay: plain HTTP in, TLS out, the real key added.
