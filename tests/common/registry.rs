//! A real registry for the tests: Debian's `docker-registry` on 127.0.0.1 and a free port, with its
//! storage in the test's directory, optionally behind basic auth. Images are crafted here, layer by layer,
//! and pushed with oci-client. Dropping it ends the registry (by its PID).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub struct TestRegistry {
    pub addr: String,
    pub dir: PathBuf,
    auth: RegistryAuth,
    child: Child,
    runtime: tokio::runtime::Runtime,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A layer blob, its media type and its diff id.
pub struct Layer {
    pub blob: Vec<u8>,
    pub media_type: &'static str,
    pub diff_id: String,
}

impl Layer {
    pub fn new(tar: Vec<u8>, compression: Compression) -> Layer {
        let diff_id = sha256(&tar);
        let (blob, media_type) = match compression {
            Compression::None => (tar, "application/vnd.oci.image.layer.v1.tar"),
            Compression::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&tar).unwrap();
                (gz.finish().unwrap(), "application/vnd.oci.image.layer.v1.tar+gzip")
            }
            Compression::Zstd => {
                (zstd::encode_all(tar.as_slice(), 3).unwrap(), "application/vnd.oci.image.layer.v1.tar+zstd")
            }
        };
        Layer { blob, media_type, diff_id }
    }
}

/// A tar of entries `(name, kind, data)`: kind 'f' file, 'd' dir, 's' symlink (data: target),
/// 'h' hardlink (data: target). Names are written raw, so malicious ones can be made.
pub fn tar_of(entries: &[(&str, char, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_ustar();
        let (entry_type, mode) = match kind {
            'd' => (tar::EntryType::Directory, 0o755),
            's' => (tar::EntryType::Symlink, 0o777),
            'h' => (tar::EntryType::Link, 0o644),
            _ => (tar::EntryType::Regular, 0o644),
        };
        h.set_entry_type(entry_type);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        if matches!(kind, 's' | 'h') {
            h.set_link_name(data).unwrap();
            h.set_size(0);
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        } else {
            let body = if *kind == 'd' { "" } else { data };
            h.set_size(body.len() as u64);
            h.set_cksum();
            b.append(&h, body.as_bytes()).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// A tar of a whole directory (a root filesystem), symlinks kept as symlinks.
pub fn tar_of_dir(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl TestRegistry {
    pub fn start(dir: &Path) -> TestRegistry {
        Self::start_with(dir, None)
    }

    /// A registry; with `basic`, behind htpasswd basic auth for that user and password.
    pub fn start_with(dir: &Path, basic: Option<(&str, &str)>) -> TestRegistry {
        let dir = dir.join(format!("registry-{}", free_port()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        let mut auth = RegistryAuth::Anonymous;
        if let Some((user, password)) = basic {
            let out =
                Command::new("htpasswd").args(["-Bbn", user, password]).output().expect("htpasswd (apache2-utils)");
            std::fs::write(dir.join("htpasswd"), &out.stdout).unwrap();
            config.push_str(&format!("auth:\n  htpasswd: {{realm: test, path: {}}}\n", dir.join("htpasswd").display()));
            auth = RegistryAuth::Basic(user.into(), password.into());
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        // Generous: under emulation (the VM guest), beside another test binary, a Go server takes its time.
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(&addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "registry exited with {status}: {}",
                    std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        TestRegistry { addr, dir, auth, child, runtime }
    }

    fn client(&self) -> Client {
        Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() })
    }

    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.addr)
    }

    /// Pushes an image of `layers` with `config` (its rootfs is filled in) in the OCI format; returns the
    /// manifest digest and size.
    pub fn push_image(&self, repo_tag: &str, layers: &[Layer], config: serde_json::Value) -> (String, usize) {
        let types = layers.iter().map(|l| l.media_type).collect::<Vec<_>>();
        self.push_as(
            repo_tag,
            layers,
            config,
            ("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.config.v1+json"),
            &types,
        )
    }

    /// The same in Docker's v2 schema 2 format (Docker media types for manifest, config and layers).
    pub fn push_docker_image(&self, repo_tag: &str, layers: &[Layer], config: serde_json::Value) -> (String, usize) {
        let types = vec!["application/vnd.docker.image.rootfs.diff.tar.gzip"; layers.len()];
        let kinds =
            ("application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.container.image.v1+json");
        self.push_as(repo_tag, layers, config, kinds, &types)
    }

    fn push_as(
        &self,
        repo_tag: &str,
        layers: &[Layer],
        config: serde_json::Value,
        kinds: (&'static str, &'static str),
        layer_types: &[&str],
    ) -> (String, usize) {
        self.push_edited(repo_tag, layers, config, kinds, layer_types, |_| {})
    }

    /// Pushes an OCI image whose manifest `edit` changes first (a lying descriptor, say).
    pub fn push_image_edited(
        &self,
        repo_tag: &str,
        layers: &[Layer],
        config: serde_json::Value,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> (String, usize) {
        let types = layers.iter().map(|l| l.media_type).collect::<Vec<_>>();
        let kinds = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.config.v1+json");
        self.push_edited(repo_tag, layers, config, kinds, &types, edit)
    }

    fn push_edited(
        &self,
        repo_tag: &str,
        layers: &[Layer],
        mut config: serde_json::Value,
        (manifest_type, config_type): (&'static str, &'static str),
        layer_types: &[&str],
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> (String, usize) {
        let reference: Reference = self.reference(repo_tag).parse().unwrap();
        config["rootfs"] = serde_json::json!({ "type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>() });
        let config = serde_json::to_vec(&config).unwrap();
        let client = self.client();
        self.runtime.block_on(async {
            client.store_auth_if_needed(reference.resolve_registry(), &self.auth).await;
            client.auth(&reference, &self.auth, oci_client::RegistryOperation::Push).await.unwrap();
            for l in layers {
                client.push_blob(&reference, l.blob.clone(), &sha256(&l.blob)).await.unwrap();
            }
            client.push_blob(&reference, config.clone(), &sha256(&config)).await.unwrap();
        });
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": { "mediaType": config_type, "digest": sha256(&config), "size": config.len() },
            "layers": layers.iter().zip(layer_types).map(|(l, t)| serde_json::json!({ "mediaType": t, "digest": sha256(&l.blob), "size": l.blob.len() })).collect::<Vec<_>>(),
        });
        edit(&mut manifest);
        self.push_manifest(repo_tag, &serde_json::to_vec(&manifest).unwrap(), manifest_type)
    }

    /// Pushes an image index of `(manifest digest, size, os, architecture, variant)` entries.
    pub fn push_index(&self, repo_tag: &str, entries: &[(String, usize, &str, &str, Option<&str>)]) {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .map(|(digest, size, os, arch, variant)| {
                let mut platform = serde_json::json!({ "os": os, "architecture": arch });
                if let Some(v) = variant {
                    platform["variant"] = (*v).into();
                }
                serde_json::json!({ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size, "platform": platform })
            })
            .collect();
        let index = serde_json::json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests });
        self.push_manifest(repo_tag, &serde_json::to_vec(&index).unwrap(), "application/vnd.oci.image.index.v1+json");
    }

    fn push_manifest(&self, repo_tag: &str, body: &[u8], media_type: &'static str) -> (String, usize) {
        let reference: Reference = self.reference(repo_tag).parse().unwrap();
        let client = self.client();
        self.runtime.block_on(async {
            client.store_auth_if_needed(reference.resolve_registry(), &self.auth).await;
            client.auth(&reference, &self.auth, oci_client::RegistryOperation::Push).await.unwrap();
            client
                .push_manifest_raw(&reference, body.to_vec(), http::HeaderValue::from_static(media_type))
                .await
                .unwrap();
        });
        (sha256(body), body.len())
    }

    /// Where the registry keeps a blob's bytes, to corrupt it behind its back.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.join("data/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

/// A registry that serves one manifest of `len` bytes for any reference, on 127.0.0.1 and a free port:
/// what a hostile registry could send (Debian's docker-registry refuses to store a manifest over 4 MiB).
/// Its thread ends with the test process; dropping it stops accepting.
pub struct HugeManifestRegistry {
    pub addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HugeManifestRegistry {
    pub fn start(len: usize) -> HugeManifestRegistry {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut body =
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"pad":""#
                .to_vec();
        body.resize(len.saturating_sub(4), b'a');
        body.extend_from_slice(br#""}}"#);
        let digest = sha256(&body);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let manifest = first.contains("/manifests/");
                let (kind, payload): (&str, &[u8]) = if manifest {
                    ("application/vnd.oci.image.manifest.v1+json", &body)
                } else {
                    ("application/json", b"{}")
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nDocker-Content-Digest: {digest}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    payload.len()
                );
                let _ = conn.write_all(head.as_bytes()).and_then(|()| conn.write_all(payload));
            }
        });
        HugeManifestRegistry { addr, stop }
    }
}

impl Drop for HugeManifestRegistry {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(&self.addr);
    }
}

impl TestRegistry {
    /// Ends the registry now, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A config with the given Env, Cmd and WorkingDir for this host's platform.
pub fn config(env: &[&str], cmd: &[&str], workdir: &str) -> serde_json::Value {
    serde_json::json!({
        "architecture": if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" },
        "os": "linux",
        "config": { "Env": env, "Cmd": cmd, "WorkingDir": workdir },
    })
}

/// Bytes gzip can't shrink, so a layer takes a while to move.
pub fn noise(len: usize) -> String {
    // A 1 MiB block of xorshift noise, repeated: gzip's 32 KiB window sees no repeat, so it compresses no
    // better than noise throughout, and it is made in a blink even unoptimised under emulation (the VM
    // guest), where a byte-at-a-time loop over 300 MB took minutes.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let block: String = (0..len.min(1 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'!' + (x % 90) as u8) as char
        })
        .collect();
    let mut s = block.repeat(len.div_ceil(block.len().max(1)));
    s.truncate(len);
    s
}
