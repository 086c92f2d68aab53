//! The forward proxy: CONNECT and plain HTTP, decided by name.
