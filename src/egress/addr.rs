//! The addresses the proxy never connects to, whatever name led there.
//!
//! The allow-list decides on names, and a name is whatever DNS says it is:
//! a hostile command that may reach `*.example.com` could point one of its
//! names at the host, the engine's bridge or the cloud metadata service.
//! So every address a name resolves to is checked here before the proxy
//! connects, and IPv6 forms that carry an IPv4 address inside are judged
//! by the address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why the proxy refuses to connect to `address` ("loopback", "private",
/// "link-local, cloud metadata"...), or `None` for a public address.
pub fn refusal(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn refusal_v4(address: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = address.octets();
    let why = match (a, b, c) {
        (0, _, _) => "unspecified",
        (127, _, _) => "loopback",
        (10, _, _) | (192, 168, _) => "private",
        (172, 16..=31, _) => "private",
        (169, 254, _) => "link-local, cloud metadata",
        (100, 64..=127, _) => "shared address space (carrier-grade NAT)",
        (192, 0, 0) => "IETF protocol assignments",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        _ if address.is_broadcast() => "broadcast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    };
    Some(why)
}

fn refusal_v6(address: Ipv6Addr) -> Option<&'static str> {
    if address.is_unspecified() {
        return Some("unspecified");
    }
    if address.is_loopback() {
        return Some("loopback");
    }
    if let Some(v4) = embedded_v4(address) {
        return refusal_v4(v4);
    }
    let s = address.segments();
    let why = match s[0] {
        0xfc00..=0xfdff => "private",
        0xfe80..=0xfebf => "link-local",
        // Site-local: deprecated, but still routed inside some networks.
        0xfec0..=0xfeff => "private",
        0xff00..=0xffff => "multicast",
        // Local-use NAT64 (RFC 8215): translated by a local gateway.
        0x64 if s[1] == 0xff9b && s[2] == 1 => "private",
        // Teredo hides its IPv4 endpoints; no service lives there.
        0x2001 if s[1] == 0 => "Teredo tunnel",
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only",
        _ => return None,
    };
    Some(why)
}

/// The IPv4 address an IPv6 address stands for, where one does:
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4
/// (`2002:aabb:ccdd::`). Each reaches that IPv4 address on some network.
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = address.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(low),
        [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, high, low16, ..] => Some(Ipv4Addr::new(
            (high >> 8) as u8,
            high as u8,
            (low16 >> 8) as u8,
            low16 as u8,
        )),
        _ => None,
    }
}

/// A network's addresses, `a.b.c.d/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    base: IpAddr,
    prefix: u8,
}

impl FromStr for Subnet {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Subnet> {
        let bad = || anyhow::anyhow!("{text:?} is not a subnet (a.b.c.d/n)");
        let (base, prefix) = text.split_once('/').ok_or_else(bad)?;
        let base: IpAddr = base.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let bits = if base.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(bad());
        }
        Ok(Subnet { base, prefix })
    }
}

impl Subnet {
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.base, address) {
            (IpAddr::V4(base), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(base) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(base) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(text: &str) -> Option<&'static str> {
        refusal(text.parse().unwrap())
    }

    #[test]
    fn each_refused_class_is_named() {
        for (address, reason) in [
            ("127.0.0.1", "loopback"),
            ("127.255.1.2", "loopback"),
            ("::1", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("::", "unspecified"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("fc00::1", "private"),
            ("fd12:3456::1", "private"),
            ("169.254.169.254", "link-local, cloud metadata"),
            ("fe80::1", "link-local"),
            ("100.64.0.1", "shared address space (carrier-grade NAT)"),
            (
                "100.127.255.254",
                "shared address space (carrier-grade NAT)",
            ),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.254", "reserved"),
            ("192.0.0.8", "IETF protocol assignments"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("192.0.2.1", "documentation"),
            ("2001:db8::1", "documentation"),
            ("2001:0:4136:e378::1", "Teredo tunnel"),
        ] {
            assert_eq!(why(address), Some(reason), "{address}");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_are_judged_by_the_ipv4_address() {
        for (address, reason) in [
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local, cloud metadata"),
            ("::ffff:0:10.1.2.3", "private"),
            ("::127.0.0.1", "loopback"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local, cloud metadata"),
            ("2002:7f00:1::", "loopback"),
            ("2002:c0a8:0101::1", "private"),
            ("2002:a9fe:a9fe::", "link-local, cloud metadata"),
        ] {
            assert_eq!(why(address), Some(reason), "{address}");
        }
        for public in [
            "::ffff:93.184.216.34",
            "64:ff9b::93.184.216.34",
            "2002:5db8:d822::1",
        ] {
            assert_eq!(why(public), None, "{public}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "169.253.0.1",
            "2606:4700::1",
            "2a00:1450:4001::200e",
        ] {
            assert_eq!(why(public), None, "{public}");
        }
    }

    #[test]
    fn a_subnet_holds_its_own_addresses_only() {
        let net: Subnet = "172.24.0.0/16".parse().unwrap();
        assert!(net.contains("172.24.0.3".parse().unwrap()));
        assert!(net.contains("::ffff:172.24.9.9".parse().unwrap()));
        assert!(!net.contains("172.17.0.3".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        for bad in ["172.24.0.0", "172.24.0.0/33", "x/8", "/8"] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
        let all: Subnet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }
}
