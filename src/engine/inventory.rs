//! What sandbox has on an engine, for `ls`, `prune` and `doctor`: its
//! containers and volumes, the engine's own description, which images it has.

use anyhow::{Context, Result};
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder,
};

use super::deadline::ANSWER;
use super::{plain, Engine};
use crate::labels;

/// One of sandbox's containers, as `ls` and `prune` see it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    /// Without docker's leading slash.
    pub name: String,
    pub image: String,
    pub command: String,
    pub workspace: String,
    /// The protections it was made with, when they follow submodules.
    pub guards: String,
    /// The sandbox process that made it (`reaper::Owner`); empty when none
    /// was named (a warm container, or one made by an older sandbox).
    pub owner: String,
    /// Made with `--keep`.
    pub kept: bool,
    /// created, running, paused, restarting, removing, exited or dead.
    pub state: String,
    /// The engine's own summary, such as "Exited (0) 5 minutes ago".
    pub status: String,
    /// Seconds since the epoch.
    pub created: i64,
    /// Bytes written to its own layer, when asked for.
    pub size: Option<u64>,
}

#[cfg(test)]
impl Listed {
    /// A container of sandbox's for tests, in `state` since `created`.
    pub fn example(state: &str, created: i64) -> Listed {
        Listed {
            id: "0123456789abcdef".into(),
            name: "sandbox-1".into(),
            image: "img:1".into(),
            command: "python app.py".into(),
            workspace: "/home/me/app".into(),
            guards: String::new(),
            owner: String::new(),
            kept: false,
            state: state.into(),
            status: "Exited (0) 1 minute ago".into(),
            created,
            size: Some(10),
        }
    }
}

/// A container still in "created" this long after its birth was abandoned;
/// a younger one may belong to a run, or a warm preparer, starting right now.
const CREATED_GRACE: i64 = 60;

impl Listed {
    /// Whether it has stopped for good: exited, dead, or created and abandoned.
    pub fn is_stopped(&self, now: i64) -> bool {
        match self.state.as_str() {
            "exited" | "dead" => true,
            "created" => now - self.created >= CREATED_GRACE,
            _ => false,
        }
    }
}

/// Seconds since the epoch, as the engine dates containers.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What `sandbox doctor` reports about the engine.
#[derive(Debug, Clone)]
pub struct About {
    pub version: String,
    pub api: String,
    pub os: String,
    pub runtimes: Vec<String>,
    pub default_runtime: String,
}

impl Engine {
    /// The engine's version, API and runtimes.
    pub async fn about(&self) -> Result<About> {
        let info = self
            .answered("describe the engine", ANSWER, self.docker.info())
            .await?
            .map_err(plain)
            .context("the engine did not describe itself")?;
        let version = self
            .answered("describe the engine", ANSWER, self.docker.version())
            .await?
            .map_err(plain)?;
        let mut runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        runtimes.sort();
        Ok(About {
            version: info.server_version.unwrap_or_default(),
            api: version.api_version.unwrap_or_default(),
            os: info.operating_system.unwrap_or_default(),
            runtimes,
            default_runtime: info.default_runtime.unwrap_or_default(),
        })
    }

    /// Whether `image` is present locally.
    pub async fn has_image(&self, image: &str) -> Result<bool> {
        let inspected = self.docker.inspect_image(image);
        match self
            .answered("inspect the image", ANSWER, inspected)
            .await?
        {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(plain(e)).with_context(|| format!("cannot inspect the image {image}")),
        }
    }

    /// sandbox's containers, running or not, oldest first; never anyone else's.
    /// `size` asks the engine to measure each one's layer, which is slow.
    pub async fn list(&self, size: bool) -> Result<Vec<Listed>> {
        let filters =
            std::collections::HashMap::from([("label", vec![format!("{}=true", labels::MANAGED)])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .size(size)
            .filters(&filters)
            .build();
        let found = self.docker.list_containers(Some(options));
        let found = self
            .answered("list containers", ANSWER, found)
            .await?
            .map_err(plain)
            .context("cannot list containers")?;
        let mut listed: Vec<Listed> = found
            .into_iter()
            .map(|c| {
                let label = |key: &str| {
                    c.labels
                        .as_ref()
                        .and_then(|l| l.get(key).cloned())
                        .unwrap_or_default()
                };
                Listed {
                    id: c.id.clone().unwrap_or_default(),
                    name: c
                        .names
                        .as_ref()
                        .and_then(|n| n.first())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    // A warm container is created from an ID; its label
                    // keeps the name the run used.
                    image: Some(label(labels::IMAGE))
                        .filter(|i| !i.is_empty())
                        .or_else(|| c.image.clone())
                        .unwrap_or_default(),
                    command: label(labels::COMMAND),
                    workspace: label(labels::WORKSPACE),
                    guards: label(labels::GUARDS),
                    owner: label(labels::OWNER),
                    kept: label(labels::KEEP) == "true",
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    status: c.status.clone().unwrap_or_default(),
                    created: c.created.unwrap_or_default(),
                    size: c.size_rw.and_then(|s| u64::try_from(s).ok()),
                }
            })
            .collect();
        listed.sort_by_key(|c| c.created);
        Ok(listed)
    }

    /// sandbox's volumes (a copied workspace's) that no container uses any
    /// more: left behind only when a run was killed outright.
    pub async fn unused_volumes(&self) -> Result<Vec<String>> {
        let filters = std::collections::HashMap::from([
            ("label", vec![format!("{}=true", labels::MANAGED)]),
            ("dangling", vec!["true".to_string()]),
        ]);
        let options = ListVolumesOptionsBuilder::new().filters(&filters).build();
        let listed = self.docker.list_volumes(Some(options));
        let listed = self
            .answered("list volumes", ANSWER, listed)
            .await?
            .map_err(plain)
            .context("cannot list volumes")?;
        Ok(listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    /// Removes a named volume; one already gone is fine.
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        let options = RemoveVolumeOptionsBuilder::new().force(true).build();
        let removed = self.docker.remove_volume(name, Some(options));
        match self.answered("remove a volume", ANSWER, removed).await? {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(plain(e)).with_context(|| format!("cannot remove the volume {name}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_containers_that_stopped_for_good_count_as_stopped() {
        let now = 1_000_000;
        assert!(Listed::example("exited", now - 5).is_stopped(now));
        assert!(Listed::example("dead", now).is_stopped(now));
        assert!(!Listed::example("running", now - 5000).is_stopped(now));
        assert!(!Listed::example("paused", now - 5000).is_stopped(now));
        assert!(
            !Listed::example("created", now - 5).is_stopped(now),
            "may be starting"
        );
        assert!(
            Listed::example("created", now - 600).is_stopped(now),
            "abandoned"
        );
    }
}
