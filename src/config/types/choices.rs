//! The settings that name something: whom to run as, which network, which
//! seccomp profile, when to pull.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Invalid;

/// Whom the command runs as: `UID[:GID]`, numbers or names the image knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User(String);

impl User {
    /// Numeric uid and gid, when the user was given as numbers.
    pub fn numeric(&self) -> Option<(u32, u32)> {
        let (uid, gid) = self.0.split_once(':')?;
        Some((uid.parse().ok()?, gid.parse().ok()?))
    }
}

impl FromStr for User {
    type Err = Invalid;
    fn from_str(text: &str) -> Result<User, Invalid> {
        let (uid, gid) = text.split_once(':').unwrap_or((text, ""));
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        };
        if !part_ok(uid) || !(gid.is_empty() || part_ok(gid)) {
            return Err(Invalid::new(
                text,
                "not a user",
                "use UID:GID, like 1000:1000",
            ));
        }
        Ok(User(text.to_string()))
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The container's network, as the engine's network mode names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    Bridge,
    /// No network at all: only loopback.
    None,
    /// The host's own network stack.
    Host,
    /// Only the hosts of the allow-list (`network.allow`, `--allow-host`),
    /// through sandbox's egress proxy (`egress/`).
    Allow,
    /// A network created with `docker network create`.
    Named(String),
}

impl FromStr for Network {
    type Err = Invalid;
    fn from_str(text: &str) -> Result<Network, Invalid> {
        Ok(match text {
            "bridge" => Network::Bridge,
            "none" => Network::None,
            "host" => Network::Host,
            "allow" => Network::Allow,
            _ if text.trim().is_empty() => {
                return Err(Invalid::new(
                    text,
                    "not a network",
                    "use bridge, none, host, allow or a network's name",
                ))
            }
            name => Network::Named(name.to_string()),
        })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Network::Bridge => "bridge",
            Network::None => "none",
            Network::Host => "host",
            Network::Allow => "allow",
            Network::Named(name) => name,
        })
    }
}

/// Which seccomp profile to load: a built-in one by name, or a JSON file.
/// Only the choice; `security.rs` loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompSpec {
    /// Docker's default allow list, with the calls a container never needs removed.
    Default,
    /// The default without the calls few programs make.
    Strict,
    /// Logs what the default would refuse.
    Debug,
    /// A profile of one's own, as the path was written.
    File(String),
}

impl FromStr for SeccompSpec {
    type Err = Invalid;
    fn from_str(text: &str) -> Result<SeccompSpec, Invalid> {
        Ok(match text {
            "default" => SeccompSpec::Default,
            "strict" => SeccompSpec::Strict,
            "debug" => SeccompSpec::Debug,
            // As `security::profile` tells a path from a name.
            path if path.contains('/') || path.ends_with(".json") => {
                SeccompSpec::File(path.to_string())
            }
            _ => {
                return Err(Invalid::new(
                    text,
                    "no such seccomp profile",
                    "use default, strict, debug or a path to a JSON file",
                ))
            }
        })
    }
}

impl fmt::Display for SeccompSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SeccompSpec::Default => "default",
            SeccompSpec::Strict => "strict",
            SeccompSpec::Debug => "debug",
            SeccompSpec::File(path) => path,
        })
    }
}

/// When to pull the image, as `docker run --pull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Pull only when the image is not present locally
    Missing,
    /// Pull before every run
    Always,
    /// Never pull; fail when the image is not present
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_ids_or_names() {
        let user: User = "1000:1001".parse().unwrap();
        assert_eq!(user.numeric(), Some((1000, 1001)));
        assert_eq!(user.to_string(), "1000:1001");
        let named: User = "app:staff".parse().unwrap();
        assert_eq!(
            (named.numeric(), named.to_string()),
            (None, "app:staff".into())
        );
        assert!("1000".parse::<User>().is_ok_and(|u| u.numeric().is_none()));
        for bad in ["", "a b", ":1", "1:a b", "1:2:3"] {
            assert!(bad.parse::<User>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn networks_and_profiles_name_what_the_engine_takes() {
        for text in ["bridge", "none", "host", "my-net"] {
            assert_eq!(text.parse::<Network>().unwrap().to_string(), text);
        }
        assert_eq!("none".parse::<Network>().unwrap(), Network::None);
        assert!(" ".parse::<Network>().is_err());
        for text in ["default", "strict", "debug", "./mine.json", "/etc/p"] {
            assert_eq!(text.parse::<SeccompSpec>().unwrap().to_string(), text);
        }
        assert_eq!(
            "strict".parse::<SeccompSpec>().unwrap(),
            SeccompSpec::Strict
        );
        assert!("nonsense".parse::<SeccompSpec>().is_err());
    }

    #[test]
    fn every_builtin_profile_name_loads() {
        for spec in [
            SeccompSpec::Default,
            SeccompSpec::Strict,
            SeccompSpec::Debug,
        ] {
            let profile = crate::seccomp::profile(&spec.to_string()).unwrap();
            assert_eq!(profile.name, spec.to_string());
        }
    }
}
