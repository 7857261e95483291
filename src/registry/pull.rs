//! One pull, step by step: manifest (through an index when there is one), config, layers.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::ImageConfiguration;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::reference::Platform;
use super::{LayerProgress, Progress, PullSpec, RegistryError};
use crate::store::Store;

const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

const CONFIG_TYPES: [&str; 2] =
    ["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"];

/// The most bytes a manifest or an image config may have, as containerd's limit: both are read whole into
/// memory, and a registry must not make the daemon hold more.
pub const MAX_METADATA: u64 = 4 * 1024 * 1024;

/// Refuses metadata (`what`) of `size` bytes when over [`MAX_METADATA`].
fn capped(what: &str, size: u64) -> Result<(), RegistryError> {
    if size > MAX_METADATA {
        return Err(RegistryError::TooBig { what: what.to_string(), size, limit: MAX_METADATA });
    }
    Ok(())
}

/// What a finished pull made.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub id: String,
    /// The digest of the image manifest (for this platform).
    pub digest: String,
    pub config_raw: Vec<u8>,
    /// Layer digests, as in the manifest.
    pub layers: Vec<String>,
    /// Chain ids: the layer subvolumes this image stands on.
    pub chain: Vec<String>,
    /// Bytes of the layers as stored in the registry.
    pub size: u64,
    /// False when the image was there already and nothing was downloaded.
    pub fresh: bool,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    platform: Option<IndexPlatform>,
}

#[derive(Deserialize)]
struct IndexPlatform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

fn compression(media_type: &str) -> Result<Compression, RegistryError> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar" | "application/vnd.oci.image.layer.nondistributable.v1.tar" => {
            Ok(Compression::None)
        }
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Ok(Compression::Zstd),
        other => Err(RegistryError::MediaType(other.to_string())),
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hex_of(digest: &str) -> Result<&str, RegistryError> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| RegistryError::MediaType(format!("digest {digest} (only sha256 is supported)")))
}

/// Chain ids of the image-spec: the first is the first diff id, each next one the digest of
/// `"<previous chain id> <diff id>"`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256_digest(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

fn manifest_err(reference: &Reference) -> impl Fn(oci_client::errors::OciDistributionError) -> RegistryError + '_ {
    move |source| RegistryError::Manifest { reference: reference.whole(), source }
}

pub async fn pull(
    client: &Client,
    auth: &RegistryAuth,
    spec: &PullSpec,
    store: &Store,
    progress: &Progress,
    pull_id: u64,
    known: &dyn Fn(&str) -> bool,
) -> Result<Pulled, RegistryError> {
    let reference = &spec.reference;
    let wanted = spec.platform.clone().unwrap_or_else(Platform::host);
    let (raw, digest) =
        client.pull_manifest_raw(reference, auth, &MANIFEST_TYPES).await.map_err(manifest_err(reference))?;
    capped("the manifest", raw.len() as u64)?;
    let top: Manifest = serde_json::from_slice(&raw).map_err(|e| RegistryError::Config(format!("manifest: {e}")))?;
    let (manifest, digest, from_index) = match &top.manifests {
        Some(entries) => {
            let chosen = entries
                .iter()
                .find(|m| {
                    m.platform.as_ref().is_some_and(|p| wanted.matches(&p.os, &p.architecture, p.variant.as_deref()))
                })
                .ok_or_else(|| RegistryError::NoPlatform {
                    reference: reference.whole(),
                    wanted: wanted.to_string(),
                    available: entries
                        .iter()
                        .filter_map(|m| m.platform.as_ref())
                        .map(|p| {
                            format!(
                                "{}/{}{}",
                                p.os,
                                p.architecture,
                                p.variant.as_ref().map(|v| format!("/{v}")).unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            capped("the manifest", chosen.size)?;
            let child = Reference::with_digest(
                reference.registry().into(),
                reference.repository().into(),
                chosen.digest.clone(),
            );
            let (raw, digest) =
                client.pull_manifest_raw(&child, auth, &MANIFEST_TYPES).await.map_err(manifest_err(reference))?;
            capped("the manifest", raw.len() as u64)?;
            let m: Manifest =
                serde_json::from_slice(&raw).map_err(|e| RegistryError::Config(format!("manifest: {e}")))?;
            (m, digest, true)
        }
        None => (top, digest, false),
    };
    if manifest.manifests.is_some() || manifest.media_type.contains("index") || manifest.media_type.contains("list") {
        return Err(RegistryError::MediaType(format!("{} inside an index", manifest.media_type)));
    }
    let config_desc = manifest.config.ok_or_else(|| RegistryError::Config("the manifest has no config".into()))?;
    if !config_desc.media_type.is_empty() && !CONFIG_TYPES.contains(&config_desc.media_type.as_str()) {
        return Err(RegistryError::MediaType(config_desc.media_type));
    }
    let kinds = manifest.layers.iter().map(|l| compression(&l.media_type)).collect::<Result<Vec<_>, _>>()?;
    for l in &manifest.layers {
        hex_of(&l.digest)?;
    }

    // The config: small, fetched whole, checked against its digest.
    let config_hex = hex_of(&config_desc.digest)?.to_string();
    capped("the image config", config_desc.size)?;
    let mut capped_config = Capped { data: Vec::new(), over: false };
    let fetched = client.pull_blob(reference, config_desc.digest.as_str(), &mut capped_config).await;
    if capped_config.over {
        return Err(RegistryError::TooBig {
            what: "the image config".into(),
            size: capped_config.data.len() as u64,
            limit: MAX_METADATA,
        });
    }
    fetched.map_err(|source| RegistryError::Blob { digest: config_desc.digest.clone(), source })?;
    let config_raw = capped_config.data;
    let actual = sha256_digest(&config_raw);
    if actual != config_desc.digest {
        return Err(RegistryError::DigestMismatch { digest: config_desc.digest, actual });
    }
    let config =
        ImageConfiguration::from_reader(config_raw.as_slice()).map_err(|e| RegistryError::Config(e.to_string()))?;
    if !from_index && spec.platform.is_some() {
        let (os, arch) = (config.os().to_string(), config.architecture().to_string());
        if !wanted.matches(&os, &arch, config.variant().as_deref()) {
            return Err(RegistryError::NoPlatform {
                reference: reference.whole(),
                wanted: wanted.to_string(),
                available: format!("{os}/{arch}"),
            });
        }
    }
    let diff_ids = config.rootfs().diff_ids().clone();
    if diff_ids.len() != manifest.layers.len() {
        return Err(RegistryError::Config(format!("{} layers but {} diff ids", manifest.layers.len(), diff_ids.len())));
    }
    let chain = chain_ids(&diff_ids);
    let id = format!("img_{}", &config_hex[..12]);
    let size = manifest.layers.iter().map(|l| l.size).sum();
    let layers: Vec<String> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
    let pulled = |fresh| Pulled {
        id: id.clone(),
        digest: digest.clone(),
        config_raw: config_raw.clone(),
        layers: layers.clone(),
        chain: chain.clone(),
        size,
        fresh,
    };
    if known(&id) {
        return Ok(pulled(false));
    }

    // Downloads of the missing layers run at once; layers are applied in order as they arrive.
    let mut downloads = Downloads { tasks: Vec::new(), files: Vec::new() };
    let mut slots = Vec::with_capacity(manifest.layers.len());
    for (i, layer) in manifest.layers.iter().enumerate() {
        if store.has_layer(&chain[i]) {
            progress.add_layer(pull_id, &layer.digest, layer.size, "exists").done.store(layer.size, Ordering::Relaxed);
            slots.push(None);
            continue;
        }
        let lp = progress.add_layer(pull_id, &layer.digest, layer.size, "waiting");
        let path = store.blob_path(&layer.digest);
        downloads.files.push(path.clone());
        let (client, reference, digest, size) = (client.clone(), reference.clone(), layer.digest.clone(), layer.size);
        let task = tokio::spawn({
            let (path, lp) = (path.clone(), lp.clone());
            async move { download(&client, &reference, &digest, size, &path, &lp).await }
        });
        downloads.tasks.push(task.abort_handle());
        slots.push(Some((task, path, lp)));
    }
    for (i, slot) in slots.into_iter().enumerate() {
        let Some((task, path, lp)) = slot else { continue };
        task.await
            .map_err(|e| RegistryError::Download { digest: layers[i].clone(), source: std::io::Error::other(e) })??;
        lp.set("applying");
        // This future runs on the thread that called block_on, not on a runtime worker: applying the
        // layer here blocks only that thread while the other downloads go on.
        let parent = i.checked_sub(1).map(|p| chain[p].as_str());
        store.add_layer(parent, &chain[i], |dir| apply(dir, &path, kinds[i], &layers[i], &diff_ids[i]))?;
        let _ = std::fs::remove_file(&path);
        lp.set("done");
    }
    store.image_from_layer(chain.last().map(String::as_str), &id)?;
    Ok(pulled(true))
}

/// The downloads of one pull: aborted, and their files removed, however the pull ends.
struct Downloads {
    tasks: Vec<tokio::task::AbortHandle>,
    files: Vec<PathBuf>,
}

impl Drop for Downloads {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Streams one blob to `path`, counting bytes for the progress file and checking its digest. A blob longer
/// than its descriptor's `size` is cut off as soon as it passes it, and one shorter fails too.
async fn download(
    client: &Client,
    reference: &Reference,
    digest: &str,
    size: u64,
    path: &Path,
    lp: &LayerProgress,
) -> Result<(), RegistryError> {
    let io_err = |source| RegistryError::Download { digest: digest.to_string(), source };
    lp.set("downloading");
    let mut blob = client
        .pull_blob_stream(reference, digest)
        .await
        .map_err(|source| RegistryError::Blob { digest: digest.to_string(), source })?;
    let mut file = tokio::fs::File::create(path).await.map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut got: u64 = 0;
    let mismatch = |actual| RegistryError::SizeMismatch { digest: digest.to_string(), size, actual };
    while let Some(chunk) = blob.stream.next().await {
        let chunk = chunk.map_err(io_err)?;
        got += chunk.len() as u64;
        if got > size {
            return Err(mismatch(format!("more than {size}")));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io_err)?;
        lp.done.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    file.flush().await.map_err(io_err)?;
    if got != size {
        return Err(mismatch(got.to_string()));
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != digest {
        return Err(RegistryError::DigestMismatch { digest: digest.to_string(), actual });
    }
    lp.set("downloaded");
    Ok(())
}

/// An in-memory sink for a blob that refuses bytes past [`MAX_METADATA`].
struct Capped {
    data: Vec<u8>,
    over: bool,
}

impl tokio::io::AsyncWrite for Capped {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.data.len() as u64 + buf.len() as u64 > MAX_METADATA {
            self.over = true;
            return std::task::Poll::Ready(Err(std::io::Error::from_raw_os_error(libc::EFBIG)));
        }
        self.data.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A reader that hashes what passes through it: the diff id of a layer is the digest of its tar.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Decompresses the blob at `blob` as a stream and applies it onto `dir`, checking its diff id.
fn apply(dir: &Path, blob: &Path, kind: Compression, digest: &str, diff_id: &str) -> Result<(), RegistryError> {
    let io_err = |source| RegistryError::Download { digest: digest.to_string(), source };
    let file = std::io::BufReader::new(std::fs::File::open(blob).map_err(io_err)?);
    let reader: Box<dyn Read> = match kind {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(io_err)?),
    };
    let mut hashing = Hashing { inner: reader, hasher: Sha256::new() };
    crate::store::unpack::apply_layer(dir, &mut hashing)
        .map_err(|source| RegistryError::Layer { digest: digest.to_string(), source })?;
    // The tar reader stops at the end-of-archive blocks: the diff id covers the padding after them too.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(io_err)?;
    let actual = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
    if actual != diff_id {
        return Err(RegistryError::DiffIdMismatch { digest: digest.to_string(), diff_id: diff_id.to_string() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = sha256_digest(b"a");
        let b = sha256_digest(b"b");
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], sha256_digest(format!("{a} {b}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn media_types() {
        assert_eq!(compression("application/vnd.oci.image.layer.v1.tar+zstd").unwrap(), Compression::Zstd);
        assert_eq!(compression("application/vnd.docker.image.rootfs.diff.tar.gzip").unwrap(), Compression::Gzip);
        assert_eq!(compression("application/vnd.oci.image.layer.v1.tar").unwrap(), Compression::None);
        assert!(compression("application/x-bzip2").is_err());
        assert!(hex_of("sha512:abc").is_err());
    }
}
