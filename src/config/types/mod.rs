//! The settings' types, each parsed once, in one place, whether the value
//! comes from a flag (clap takes `FromStr`), the environment or a file (serde
//! takes `Deserialize`), so every source refuses the same values with the
//! same words: an [`Invalid`].
//!
//! `limits.rs` holds the amounts (a size, cores, a process count),
//! `choices.rs` the names (a user, a network, a seccomp profile, a pull
//! policy); this file the error they share and the serde glue.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value a setting cannot take: what it is not, and how to write one.
///
/// Its text, `"lots": not a size — use ...`, is what serde reports under the
/// key's path; [`Invalid::with_source`] and [`keyed`] put the source in front.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// The value as given.
    pub value: String,
    /// What it is not: "not a size".
    pub problem: &'static str,
    /// How to write a good one: "use a number with k, m, g or t, like 512m".
    pub hint: &'static str,
}

impl Invalid {
    fn new(value: impl Into<String>, problem: &'static str, hint: &'static str) -> Invalid {
        Invalid {
            value: value.into(),
            problem,
            hint,
        }
    }

    /// The one line for a value from `source`, a flag or a variable:
    /// `--memory "lots": not a size — use a number ...`.
    pub fn with_source(&self, source: &str) -> String {
        format!("{source} {self}")
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {} — {}", self.value, self.problem, self.hint)
    }
}

impl std::error::Error for Invalid {}

/// `message`, serde's text for a bad value of `key`, in the one shape: the
/// key, the value, where (`place`, e.g. `FILE:LINE`), what is wrong. `None`
/// when the message is not an [`Invalid`]'s (an unknown key, a wrong type).
pub fn keyed(key: &str, message: &str, place: Option<&str>) -> Option<String> {
    let (value, rest) = split_quoted(message)?;
    let rest = rest.strip_prefix(": ")?;
    let place = place.map(|p| format!(" ({p})")).unwrap_or_default();
    Some(format!("{key} {value}{place}: {rest}"))
}

/// A leading Debug-quoted string, as [`Invalid`] writes its value, and what
/// follows it.
pub fn split_quoted(text: &str) -> Option<(&str, &str)> {
    if !text.starts_with('"') {
        return None;
    }
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return Some(text.split_at(i + 1)),
            _ => {}
        }
    }
    None
}

/// A duration as people write one: `90s`, `5m`, `1h30m`.
pub fn duration(text: &str) -> Result<Duration, Invalid> {
    humantime::parse_duration(text.trim())
        .map_err(|_| Invalid::new(text, "not a duration", "use 90s, 5m, 1h30m"))
}

/// Text settings are written and read through `Display` and `FromStr`.
macro_rules! as_text {
    ($($kind:ty: $expecting:literal),* $(,)?) => {$(
        impl Serialize for $kind {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $kind {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(Text(PhantomData, $expecting))
            }
        }
    )*};
}

as_text! {
    Size: "a size such as 512m or 4g",
    User: "a user such as 1000:1000",
    Network: "a network: bridge, none, host or a name",
    SeccompSpec: "a seccomp profile: default, strict, debug or a path",
}

/// Reads a text setting; a plain number (`memory: 1048576`, `user: 1000`)
/// is its text too. A visitor rather than `String` first: serde_yaml keeps
/// the value's line in the error only when the value is read directly.
struct Text<T>(PhantomData<T>, &'static str);

impl<T: FromStr<Err = Invalid>> serde::de::Visitor<'_> for Text<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<T, E> {
        self.visit_str(&n.to_string())
    }
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<T, E> {
        self.visit_str(&n.to_string())
    }
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }
}

mod choices;
mod limits;

pub use choices::{Network, PullPolicy, SeccompSpec, User};
pub use limits::{Cpus, PidsLimit, Size};

/// `Option<Duration>` as humantime text (`30m`, `1h30m`); `null` or `0` for none.
pub mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text.as_deref().map(str::trim) {
            None | Some("0") | Some("") => Ok(None),
            Some(t) => duration(t).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// `Duration` as humantime text, where a value is required.
pub mod duration_required {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match duration_text::deserialize(d)? {
            Some(duration) => Ok(duration),
            None => Err(serde::de::Error::custom(
                "a duration is required here: use 90s, 5m, 1h30m",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_reads_the_same_from_every_source() {
        let invalid = "lots".parse::<Size>().unwrap_err();
        assert_eq!(
            invalid.with_source("--memory"),
            "--memory \"lots\": not a size — use a number with k, m, g or t, like 512m"
        );
        // serde_yaml writes the key's path before the message.
        let message = format!("{invalid}");
        assert_eq!(
            keyed("container.memory", &message, Some("config.yaml:3")).unwrap(),
            "container.memory \"lots\" (config.yaml:3): not a size — use a number with k, m, \
             g or t, like 512m"
        );
        assert_eq!(
            keyed("container.memory", &message, None).unwrap(),
            "container.memory \"lots\": not a size — use a number with k, m, g or t, like 512m"
        );
        assert_eq!(keyed("container", "unknown field `memroy`", None), None);
        let odd = Invalid::new("a\": b", "not a user", "use UID:GID");
        assert_eq!(
            keyed("container.user", &odd.to_string(), None).unwrap(),
            "container.user \"a\\\": b\": not a user — use UID:GID"
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        let err = duration("soon").unwrap_err();
        assert_eq!(
            err.with_source("--timeout"),
            "--timeout \"soon\": not a duration — use 90s, 5m, 1h30m"
        );
    }
}
