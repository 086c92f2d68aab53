//! Networks and locally built images: what the allow-list (`egress/`) asks
//! of the engine besides containers.

use std::collections::HashMap;

use anyhow::{anyhow, Context, Result};
use bollard::errors::Error as BollardError;
use bollard::models::{EndpointSettings, NetworkConnectRequest, NetworkCreateRequest};
use bollard::query_parameters::BuildImageOptionsBuilder;
use bytes::Bytes;
use futures_util::StreamExt;

use super::deadline::PULL_STALL;
use super::{plain, Engine, ANSWER};
use crate::labels;

/// A network of sandbox's, as listed.
pub struct ListedNetwork {
    pub name: String,
    /// Its owner label (`reaper/`), sealed.
    pub owner: String,
    /// Made for a run with `--keep`.
    pub kept: bool,
}

impl Engine {
    /// Creates a bridge network no container on it can leave: `internal`
    /// (no route out, no NAT) and with no address of the host on its bridge
    /// (`inhibit_ipv4`), so the host's own ports are out of reach too; the
    /// containers on it reach each other only.
    pub async fn create_closed_network(
        &self,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<String> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            internal: Some(true),
            options: Some(HashMap::from([(
                "com.docker.network.bridge.inhibit_ipv4".to_string(),
                "true".to_string(),
            )])),
            labels: Some(labels),
            ..Default::default()
        };
        let created = self.docker.create_network(request);
        match self.answered("create a network", ANSWER, created).await? {
            Ok(created) => Ok(created.id),
            Err(e) => Err(plain(e)).with_context(|| format!("cannot create the network {name}")),
        }
    }

    /// The networks sandbox made (the allow-list's), with their owner labels.
    pub async fn list_networks(&self) -> Result<Vec<ListedNetwork>> {
        let filter = format!("{}=true", labels::MANAGED);
        let options = bollard::query_parameters::ListNetworksOptionsBuilder::default()
            .filters(&HashMap::from([("label", vec![filter.as_str()])]))
            .build();
        let listed = self.docker.list_networks(Some(options));
        let networks = self
            .answered("list networks", ANSWER, listed)
            .await?
            .map_err(plain)
            .context("cannot list sandbox's networks")?;
        Ok(networks
            .into_iter()
            .map(|n| {
                let labels = n.labels.unwrap_or_default();
                ListedNetwork {
                    name: n.name.unwrap_or_default(),
                    owner: labels.get(labels::OWNER).cloned().unwrap_or_default(),
                    kept: labels.contains_key(labels::KEEP),
                }
            })
            .filter(|n| !n.name.is_empty())
            .collect())
    }

    /// The subnet (`a.b.c.d/n`) the engine gave `network`.
    pub async fn network_subnet(&self, network: &str) -> Result<String> {
        let inspected = self.docker.inspect_network(
            network,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        );
        let inspected = self
            .answered("inspect a network", ANSWER, inspected)
            .await?
            .map_err(plain)
            .with_context(|| format!("cannot inspect the network {network}"))?;
        inspected
            .ipam
            .and_then(|ipam| ipam.config)
            .unwrap_or_default()
            .into_iter()
            .find_map(|config| config.subnet)
            .with_context(|| format!("the network {network} has no subnet"))
    }

    /// Adds container `id` to `network`, reachable there as `aliases`.
    pub async fn connect_network(&self, network: &str, id: &str, aliases: &[&str]) -> Result<()> {
        let request = NetworkConnectRequest {
            container: id.to_string(),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(aliases.iter().map(|a| a.to_string()).collect()),
                ..Default::default()
            }),
        };
        let connected = self.docker.connect_network(network, request);
        self.answered("connect a container to a network", ANSWER, connected)
            .await?
            .map_err(plain)
            .with_context(|| format!("cannot connect the egress container to {network}"))
    }

    /// Removes `network`; one already gone is no error.
    pub async fn remove_network(&self, network: &str) -> Result<()> {
        let removed = self.docker.remove_network(network);
        match self.answered("remove a network", ANSWER, removed).await? {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(plain(e)).with_context(|| format!("cannot remove the network {network}")),
        }
    }

    /// Builds the image `tag` from `context`, a tar holding its Dockerfile.
    pub async fn build(&self, tag: &str, context: Bytes) -> Result<()> {
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(tag)
            .rm(true)
            .forcerm(true)
            .build();
        let body = bollard::body_full(context);
        let mut events = self.docker.build_image(options, None, Some(body));
        let what = format!("build {tag}");
        while let Some(event) = self.answered(&what, PULL_STALL, events.next()).await? {
            let event = event
                .map_err(plain)
                .with_context(|| format!("cannot build {tag}"))?;
            if let Some(detail) = event.error_detail.and_then(|d| d.message) {
                return Err(anyhow!("{detail}")).with_context(|| format!("cannot build {tag}"));
            }
        }
        Ok(())
    }

    /// Removes the images of `repository` but `keep`, those in use
    /// excepted: what earlier builds of sandbox left.
    pub async fn remove_images_except(&self, repository: &str, keep: &str) {
        let options = bollard::query_parameters::ListImagesOptionsBuilder::default()
            .filters(&HashMap::from([("reference", vec![repository])]))
            .build();
        let listed = self.docker.list_images(Some(options));
        let Ok(Ok(images)) = self.answered("list images", ANSWER, listed).await else {
            return;
        };
        for tag in images.iter().flat_map(|i| &i.repo_tags) {
            if tag.starts_with(keep) {
                continue;
            }
            let removed = self.docker.remove_image(
                tag,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            );
            if let Ok(Err(e)) = self.answered("remove an image", ANSWER, removed).await {
                tracing::debug!(tag, "not removed: {e}");
            }
        }
    }

    /// The engine's processor architecture as Go names it (`amd64`,
    /// `arm64`), and whether it is Podman's Docker-compatible service.
    pub async fn identity(&self) -> Result<(String, bool)> {
        let version = self.docker.version();
        let version = self
            .answered("ask the engine's version", ANSWER, version)
            .await?
            .map_err(plain)
            .context("cannot ask the engine's version")?;
        let podman = version
            .components
            .unwrap_or_default()
            .iter()
            .any(|c| c.name.to_lowercase().contains("podman"));
        Ok((version.arch.unwrap_or_default(), podman))
    }
}
