//! Drives the pull pipeline with the test stand-in sink, for `tests/bench/pull-bench` while
//! the confined applier is not available. Ignored by default; the bench script runs it with
//! OCIMETAL_STANDIN_IMAGE, OCIMETAL_STANDIN_INSECURE and OCIMETAL_STANDIN_DEST set.

#[path = "support/registry.rs"]
mod registry;

use ocimetal::oci::{pull_into_sink, resolve, PullOptions};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark driver: needs a registry and an image, see tests/bench/pull-bench"]
async fn pull_with_standin_sink() {
    let image = std::env::var("OCIMETAL_STANDIN_IMAGE").expect("OCIMETAL_STANDIN_IMAGE");
    let dest = std::env::var("OCIMETAL_STANDIN_DEST").expect("OCIMETAL_STANDIN_DEST");
    let insecure = std::env::var("OCIMETAL_STANDIN_INSECURE").unwrap_or_default();
    let opts = PullOptions {
        insecure_registries: insecure.split(',').map(String::from).collect(),
        ..PullOptions::default()
    };
    std::fs::create_dir_all(&dest).unwrap();
    let resolved = resolve(&image, &opts).await.unwrap();
    // OCIMETAL_STANDIN_SINK=null times download and decompression alone.
    let sink: Box<dyn ocimetal::oci::LayerSink> =
        match std::env::var("OCIMETAL_STANDIN_SINK").as_deref() {
            Ok("null") => Box::new(NullSink),
            _ => Box::new(registry::UnpackSink { root: dest.into() }),
        };
    let report = pull_into_sink(&resolved, &opts, sink).await.unwrap();
    assert_eq!(report.layers.len(), resolved.layers.len());
}

/// Reads each layer to its end and writes nothing.
struct NullSink;

impl ocimetal::oci::LayerSink for NullSink {
    fn apply_layer(
        &mut self,
        tar: &mut dyn std::io::Read,
    ) -> anyhow::Result<ocimetal::oci::apply::LayerStats> {
        let bytes = std::io::copy(tar, &mut std::io::sink())?;
        Ok(ocimetal::oci::apply::LayerStats {
            bytes,
            ..Default::default()
        })
    }
}
