//! The addresses the proxy never connects to, whatever name led there.

use std::net::IpAddr;

/// Why the proxy refuses to connect to `address` ("loopback", "private",
/// "link-local (cloud metadata)"...), or `None` for a public address.
pub fn refusal(address: IpAddr) -> Option<&'static str> {
    let _ = address;
    todo!()
}
