//! The egress side of one run: its closed network, and the egress container
//! on it that runs this binary's proxy. Started before the run's first
//! container, removed after its last, its refusals counted for the line at
//! the end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;

use super::image;
use super::{Decision, Spec, READY};
use crate::engine::{short_id, Engine, Output, OutputStream};
use crate::plan::{Egress, RunPlan};
use crate::ui::Ui;

/// How long the proxy may take to listen once started.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A run's egress: made with [`Sidecar::prepare`], its proxy started with
/// [`Sidecar::launch`], removed with [`Sidecar::finish`] on every path.
pub struct Sidecar {
    network: String,
    /// The network's subnet: the proxy serves no one else.
    clients: String,
    image: String,
    id: Option<String>,
    refused: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Reads the proxy's decisions until its output ends; set once the
    /// proxy listens.
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl Sidecar {
    /// Makes `egress`'s image (when missing) and network: what a container
    /// of the run needs to be created. The proxy starts with [`Self::launch`],
    /// which the pipeline runs beside the creation of its container: the
    /// egress container's start is most of the allow-list's cost.
    pub async fn prepare(engine: &Engine, egress: &Egress, plan: &RunPlan) -> Result<Sidecar> {
        let (arch, podman) = engine.identity().await?;
        if podman {
            bail!(
                "the allow-list (--network allow) needs Docker's closed networks, which Podman \
                 does not offer — use --network none, or a Docker engine"
            );
        }
        let image = image::ensure(engine, &arch, egress.roots.as_deref()).await?;
        let labels = crate::request::network_labels(plan);
        engine
            .create_closed_network(&egress.network, labels)
            .await?;
        let clients = match engine.network_subnet(&egress.network).await {
            Ok(subnet) => subnet,
            Err(e) => {
                let _ = engine.remove_network(&egress.network).await;
                return Err(e);
            }
        };
        Ok(Sidecar {
            network: egress.network.clone(),
            clients,
            image,
            id: None,
            refused: Arc::default(),
            reader: None,
        })
    }

    /// Starts the proxy, returning once it listens; at once if it already
    /// does. What it made is removed by [`Self::finish`], whatever this
    /// returns.
    pub async fn launch(&mut self, engine: &Engine, plan: &RunPlan) -> Result<()> {
        if self.reader.is_some() {
            return Ok(());
        }
        let egress = plan
            .egress
            .as_ref()
            .context("a run without an allow-list")?;
        let spec = Spec {
            allow: super::policy::expand(&egress.allow)?
                .iter()
                .map(ToString::to_string)
                .collect(),
            resolve: egress.resolve.clone(),
            relays: egress.relays.iter().map(|r| r.spec.clone()).collect(),
            roots: String::new(),
            clients: Some(self.clients.clone()),
        };
        let spec = serde_json::to_string(&spec).context("cannot encode the egress policy")?;
        let seccomp = crate::seccomp::profile("default")?;
        let body = crate::request::egress(plan, &self.network, &self.image, &spec, &seccomp);
        let (id, _) = engine
            .create(body, None)
            .await
            .context("cannot create the egress container")?;
        self.id = Some(id.clone());
        engine
            .connect_network("bridge", &id, &[])
            .await
            .context("cannot give the egress container its way out")?;
        let (output, _) = engine.attach(&id, false, false).await?;
        engine
            .start(&id)
            .await
            .context("cannot start the egress container")?;
        let mut lines = Lines::new(output);
        let ready = tokio::time::timeout(READY_WITHIN, lines.until(READY)).await;
        match ready {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => bail!(
                "the egress proxy did not start within {}s: {}",
                READY_WITHIN.as_secs(),
                lines.said()
            ),
        }
        tracing::debug!(id = short_id(&id), "egress proxy ready");
        let refused = Arc::clone(&self.refused);
        self.reader = Some(tokio::spawn(async move {
            lines.decisions(&refused).await;
        }));
        Ok(())
    }

    /// Removes the proxy and the network, then says which hosts were
    /// refused. The run's containers must be gone (the network cannot go
    /// while one is on it); a kept one keeps them all.
    pub async fn finish(mut self, engine: &Engine, kept: bool, ui: Ui) {
        if kept {
            ui.warn(&format!(
                "kept the network {} and its egress container (remove them with `sandbox prune`)",
                self.network
            ));
        } else {
            self.remove(engine).await;
            // Its output has ended with it: every decision is counted.
            if let Some(reader) = self.reader.take() {
                let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
            }
        }
        let refused = self.refused.lock().map(|r| r.clone()).unwrap_or_default();
        if let Some(line) = summary(&refused) {
            ui.notice(&line);
        }
    }

    /// Removes the egress container once the run's last container has
    /// exited (unless the run is kept); the network goes in [`Self::finish`].
    pub async fn remove_proxy(&mut self, engine: &Engine, kept: bool) {
        if kept {
            return;
        }
        if let Some(id) = self.id.take() {
            if let Err(e) = engine.remove(&id).await {
                tracing::warn!("{e:#}");
            }
        }
    }

    async fn remove(&mut self, engine: &Engine) {
        self.remove_proxy(engine, false).await;
        if let Err(e) = engine.remove_network(&self.network).await {
            tracing::warn!(
                "{e:#} — remove it with `docker network rm {}`",
                self.network
            );
        }
    }
}

/// How many refused hosts the tally names; the rest are [`OTHERS`].
const MAX_NAMED: usize = 100;
/// The tally's key for refusals past [`MAX_NAMED`] hosts.
const OTHERS: &str = "\u{10ffff}others";
/// How many hosts the line at the end names.
const SHOWN: usize = 10;

/// The line at the end of a run the allow-list refused something in: the
/// most refused hosts first.
fn summary(refused: &BTreeMap<String, u64>) -> Option<String> {
    if refused.is_empty() {
        return None;
    }
    let total: u64 = refused.values().sum();
    let mut named: Vec<(&String, &u64)> = refused.iter().filter(|(h, _)| *h != OTHERS).collect();
    named.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut hosts: Vec<String> = named
        .iter()
        .take(SHOWN)
        .map(|(h, n)| format!("{} ({n})", crate::ui::sanitize(h)))
        .collect();
    let rest: u64 = total - named.iter().take(SHOWN).map(|(_, n)| **n).sum::<u64>();
    if rest > 0 {
        hosts.push(format!("{rest} more to other hosts"));
    }
    let requests = if total == 1 { "request" } else { "requests" };
    Some(format!(
        "the allow-list refused {total} {requests}: {} — allow a host with --allow-host HOST \
         or network.allow",
        hosts.join(", ")
    ))
}

/// The egress container's output, a line at a time.
struct Lines {
    output: OutputStream,
    pending: Vec<u8>,
    /// What it said besides decisions, for an error.
    said: String,
}

impl Lines {
    fn new(output: OutputStream) -> Lines {
        Lines {
            output,
            pending: Vec::new(),
            said: String::new(),
        }
    }

    async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            match self.output.next().await? {
                Ok(Output::Stdout(bytes)) => self.pending.extend_from_slice(&bytes),
                Ok(Output::Stderr(bytes)) => {
                    if self.said.len() < 4096 {
                        self.said.push_str(&String::from_utf8_lossy(&bytes));
                    }
                }
                Err(_) => return None,
            }
        }
    }

    async fn until(&mut self, wanted: &str) -> Result<()> {
        while let Some(line) = self.next().await {
            if line == wanted {
                return Ok(());
            }
        }
        Err(anyhow!(
            "the egress proxy stopped before it listened: {}",
            self.said()
        ))
    }

    fn said(&self) -> String {
        match self.said.trim() {
            "" => "it said nothing".to_string(),
            said => said.lines().last().unwrap_or(said).to_string(),
        }
    }

    /// Reads decisions until the container's output ends: each is logged
    /// (`-v`), each refusal counted.
    async fn decisions(mut self, refused: &Mutex<BTreeMap<String, u64>>) {
        while let Some(line) = self.next().await {
            let Ok(decision) = serde_json::from_str::<Decision>(&line) else {
                continue;
            };
            let target = format!("{}:{}", decision.host, decision.port);
            match decision.allowed {
                true => tracing::info!(target = %target, why = %decision.why, "egress allowed"),
                false => {
                    tracing::info!(target = %target, why = %decision.why, "egress refused");
                    if let Ok(mut refused) = refused.lock() {
                        // A command that asks for endless names gets a
                        // bounded tally: the rest are counted as others.
                        let key = match refused.len() < MAX_NAMED || refused.contains_key(&target) {
                            true => target,
                            false => OTHERS.to_string(),
                        };
                        *refused.entry(key).or_default() += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_each_host() {
        assert_eq!(summary(&BTreeMap::new()), None);
        let refused = BTreeMap::from([("a.test:443".to_string(), 2), ("b.test:80".to_string(), 1)]);
        let line = summary(&refused).unwrap();
        assert!(
            line.starts_with("the allow-list refused 3 requests: a.test:443 (2), b.test:80 (1)"),
            "{line}"
        );
        let many: BTreeMap<String, u64> = (0..50)
            .map(|i| (format!("h{i:02}.test:80"), 1))
            .chain([(OTHERS.to_string(), 7), ("top.test:80".to_string(), 9)])
            .collect();
        let line = summary(&many).unwrap();
        assert!(
            line.starts_with(
                "the allow-list refused 66 requests: top.test:80 (9), h00.test:80 (1)"
            ),
            "{line}"
        );
        assert!(
            line.contains("h08.test:80 (1), 48 more to other hosts"),
            "{line}"
        );
    }
}
