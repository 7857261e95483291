//! Pushing a local image (imported, committed or pulled) to a registry: its root filesystem as one
//! gzip layer, its config with that layer's diff id, and an OCI manifest. Pulled back, it runs the same.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use sha2::{Digest as _, Sha256};

use super::pull::sha256_digest;
use super::{PushSpec, RegistryError};

const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// What a push reads: the image's root filesystem and config, and where to stage the layer.
pub struct PushSource {
    pub rootfs: PathBuf,
    pub config_raw: Vec<u8>,
    pub scratch: PathBuf,
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `rootfs` as a gzip tar to `out`; returns (blob digest, blob size, diff id).
fn build_layer(rootfs: &Path, out: &Path) -> io::Result<(String, u64, String)> {
    let file = Hashing { inner: std::fs::File::create(out)?, hasher: Sha256::new(), written: 0 };
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let tar_hash = Hashing { inner: gz, hasher: Sha256::new(), written: 0 };
    let mut builder = tar::Builder::new(tar_hash);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", rootfs)?;
    let tar_hash = builder.into_inner()?;
    let diff_id = format!("sha256:{}", hex::encode(tar_hash.hasher.finalize()));
    let mut file = tar_hash.inner.finish()?;
    file.flush()?;
    Ok((format!("sha256:{}", hex::encode(file.hasher.finalize())), file.written, diff_id))
}

/// The image's config with its layers replaced by the one pushed.
fn config_for(config_raw: &[u8], diff_id: &str) -> Result<Vec<u8>, RegistryError> {
    let mut config: serde_json::Value =
        serde_json::from_slice(config_raw).map_err(|e| RegistryError::Config(e.to_string()))?;
    let obj = config.as_object_mut().ok_or_else(|| RegistryError::Config("not a JSON object".into()))?;
    obj.insert("rootfs".into(), serde_json::json!({ "type": "layers", "diff_ids": [diff_id] }));
    // History entries describe the layers they made: those are gone, flattened into one.
    obj.remove("history");
    serde_json::to_vec(&config).map_err(|e| RegistryError::Config(e.to_string()))
}

pub async fn push(
    client: &Client,
    auth: &RegistryAuth,
    spec: &PushSpec,
    source: &PushSource,
) -> Result<String, RegistryError> {
    let reference = &spec.reference;
    let push_err = |source| RegistryError::Push { reference: reference.whole(), source };
    let blob = source.scratch.join(format!("push-{}", crate::ids::new_id("")));
    let built = build_layer(&source.rootfs, &blob).map_err(RegistryError::PushSource);
    let result = async {
        let (digest, size, diff_id) = built?;
        let config = config_for(&source.config_raw, &diff_id)?;
        let config_digest = sha256_digest(&config);
        client.store_auth_if_needed(reference.resolve_registry(), auth).await;
        client.auth(reference, auth, RegistryOperation::Push).await.map_err(push_err)?;
        let file = tokio::fs::File::open(&blob).await.map_err(RegistryError::PushSource)?;
        let stream = tokio_util::io::ReaderStream::new(file).map_err(oci_client::errors::OciDistributionError::IoError);
        client.push_blob_stream(reference, stream, &digest, Some(size)).await.map_err(push_err)?;
        client.push_blob(reference, config.clone(), &config_digest).await.map_err(push_err)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": { "mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len() },
            "layers": [{ "mediaType": LAYER_TYPE, "digest": digest, "size": size }],
        });
        let body = serde_json::to_vec(&manifest).map_err(|e| RegistryError::Config(e.to_string()))?;
        let manifest_digest = sha256_digest(&body);
        client
            .push_manifest_raw(reference, body, http::HeaderValue::from_static(MANIFEST_TYPE))
            .await
            .map_err(push_err)?;
        Ok(manifest_digest)
    }
    .await;
    let _ = std::fs::remove_file(&blob);
    result
}
