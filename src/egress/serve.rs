//! `sandbox egress-proxy`: what runs in the egress container.

use anyhow::Result;

use super::Spec;

/// Serves the proxy and the relays of `spec` until killed; writes
/// [`super::READY`] then one [`super::Decision`] per line on stdout.
pub async fn serve(spec: Spec) -> Result<()> {
    let _ = spec;
    todo!()
}
