//! The amounts a setting limits a container by, each refusing what the
//! engine would misread: no zero size, no zero or endless cores, no fewer
//! than one process.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Invalid;

/// A size in bytes written the docker way: `512m`, `4g`, `1024k`, `100` (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Size {
    pub fn parse(text: &str) -> Result<Size, Invalid> {
        let t = text.trim().to_ascii_lowercase();
        let t = t.strip_suffix('b').unwrap_or(&t);
        let (digits, shift) = match t.chars().last() {
            Some('k') => (&t[..t.len() - 1], 10),
            Some('m') => (&t[..t.len() - 1], 20),
            Some('g') => (&t[..t.len() - 1], 30),
            Some('t') => (&t[..t.len() - 1], 40),
            _ => (t, 0),
        };
        let n: u64 = digits.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            Invalid::new(
                text,
                "not a size",
                "use a number with k, m, g or t, like 512m",
            )
        })?;
        n.checked_mul(1 << shift)
            .map(Size)
            .ok_or_else(|| Invalid::new(text, "too large a size", "use a smaller one, like 4g"))
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Size {
    type Err = Invalid;
    fn from_str(text: &str) -> Result<Size, Invalid> {
        Size::parse(text)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(40, 't'), (30, 'g'), (20, 'm'), (10, 'k')];
        match units
            .iter()
            .find(|(shift, _)| self.0.is_multiple_of(1u64 << shift))
        {
            Some((shift, unit)) => write!(f, "{}{unit}", self.0 >> shift),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A CPU limit in cores: a finite number above zero.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Cpus(f64);

impl Cpus {
    const PROBLEM: &'static str = "not a number of cores";
    const HINT: &'static str = "use a number above 0, like 1.5";

    pub fn new(cores: f64) -> Result<Cpus, Invalid> {
        match cores > 0.0 && cores.is_finite() {
            true => Ok(Cpus(cores)),
            false => Err(Invalid::new(cores.to_string(), Self::PROBLEM, Self::HINT)),
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl FromStr for Cpus {
    type Err = Invalid;
    fn from_str(text: &str) -> Result<Cpus, Invalid> {
        let cores = text
            .trim()
            .parse()
            .map_err(|_| Invalid::new(text, Self::PROBLEM, Self::HINT))?;
        Cpus::new(cores).map_err(|e| Invalid {
            value: text.into(),
            ..e
        })
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The most processes and threads a container may hold: at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PidsLimit(i64);

impl PidsLimit {
    const PROBLEM: &'static str = "not a process limit";
    const HINT: &'static str = "use a whole number of at least 1, like 512";
    pub(in crate::config) const DEFAULT: PidsLimit = PidsLimit(512);

    pub fn new(limit: i64) -> Result<PidsLimit, Invalid> {
        match limit >= 1 {
            true => Ok(PidsLimit(limit)),
            false => Err(Invalid::new(limit.to_string(), Self::PROBLEM, Self::HINT)),
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl FromStr for PidsLimit {
    type Err = Invalid;
    fn from_str(text: &str) -> Result<PidsLimit, Invalid> {
        let limit = text
            .trim()
            .parse()
            .map_err(|_| Invalid::new(text, Self::PROBLEM, Self::HINT))?;
        PidsLimit::new(limit).map_err(|e| Invalid {
            value: text.into(),
            ..e
        })
    }
}

impl PartialEq<i64> for PidsLimit {
    fn eq(&self, other: &i64) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for PidsLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Cpus;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of cores such as 1.5")
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Cpus, E> {
                Cpus::new(n).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Cpus, E> {
                self.visit_f64(n as f64)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Cpus, E> {
                self.visit_f64(n as f64)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for PidsLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for PidsLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PidsLimit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number of processes such as 512")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<PidsLimit, E> {
                PidsLimit::new(n).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<PidsLimit, E> {
                let too_large = || Invalid::new(n.to_string(), PidsLimit::PROBLEM, PidsLimit::HINT);
                self.visit_i64(i64::try_from(n).map_err(|_| E::custom(too_large()))?)
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_the_docker_way() {
        assert_eq!(Size::parse("512m").unwrap(), Size(512 << 20));
        assert_eq!(Size::parse("4G").unwrap(), Size(4 << 30));
        assert_eq!(Size::parse("1024kb").unwrap(), Size(1 << 20));
        assert_eq!(Size::parse("100").unwrap(), Size(100));
        for bad in ["", "m", "-1g", "0", "1x", "99999999999t"] {
            assert!(Size::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(Size(4 << 30).to_string(), "4g");
        assert_eq!(Size(1500).to_string(), "1500");
    }

    #[test]
    fn cores_and_process_limits_are_checked_here_alone() {
        assert_eq!("1.5".parse::<Cpus>().unwrap().get(), 1.5);
        for bad in ["0", "-1", "inf", "NaN", "many", ""] {
            let err = bad.parse::<Cpus>().unwrap_err();
            assert_eq!(err.value, bad);
        }
        assert!(Cpus::new(f64::INFINITY).is_err());
        assert_eq!("64".parse::<PidsLimit>().unwrap(), 64);
        for bad in ["0", "-5", "1.5", "lots"] {
            assert!(bad.parse::<PidsLimit>().is_err(), "{bad}");
        }
    }
}
