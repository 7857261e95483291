//! `inspect.json` of a container and of an image: one JSON document with the field names and shapes of
//! `docker inspect`, so a `jq` script written for Docker's reads ours. Rendered from the engine's views,
//! like every other file (see [`super::render`]).
//!
//! What differs from Docker's, and why:
//!
//! - `Id` is the container's name (bockerfs has no other id) and the image's `img_...` id; the top-level
//!   `Image` and `Config.Image` are that image id.
//! - `Config` holds the effective values, what a start runs (the container's own over its image's), as the
//!   files `cmd`, `entrypoint`, `user`, `workdir`, `hostname`, `stop_signal`, `labels` and `env` show them.
//!   `ExposedPorts` adds the container ports of its forwards to its image's, as `docker run -p` does.
//! - `HostConfig`'s limits are the configured ones (or the daemon's defaults), never read from the kernel:
//!   `Memory` bytes (0: no limit), `CpuShares` from `cpu.weight`, `CpuQuota`/`CpuPeriod` from `cpu.max`
//!   (0: no quota) and `NanoCpus` the same quota in Docker's `--cpus` unit, `PidsLimit` (-1: no limit).
//! - `State.Error` is what the container's `error` file says: the last failed write's message (a start's
//!   among them), empty after a write that succeeded.
//! - `NetworkSettings` shows the address as `ip` does (from the first start in bridge mode until removal)
//!   and the forwards as configured, running or not.

use serde_json::{json, Map, Value};

use crate::cgroups::{io_weight_to_blkio_weight, weight_to_shares, Max};
use crate::engine::{ContainerView, ImageView};
use crate::model::{ContainerStatus, VolumeSource};
use crate::network::PortMap;
use crate::registry::familiar;

/// Docker's time for "never": what `StartedAt` and `FinishedAt` show before the first start and exit.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A document as the file holds it: indented JSON and a newline.
pub fn bytes(doc: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(doc).unwrap_or_default();
    out.push(b'\n');
    out
}

/// `null` for an empty list (Docker's nil slices), else the list.
fn list(items: Vec<String>) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::from(items)
    }
}

/// The status `docker inspect` would show: a transition is shown as the settled status it leaves (a
/// stopping container is still running), but for a removal.
fn docker_status(c: &ContainerView<'_>) -> &'static str {
    if c.status == ContainerStatus::Removing {
        return "removing";
    }
    match c.record.status {
        ContainerStatus::Running => "running",
        ContainerStatus::Paused => "paused",
        ContainerStatus::Exited => "exited",
        _ => "created",
    }
}

/// A container's `inspect.json`.
pub fn container(c: &ContainerView<'_>) -> Value {
    let r = c.record;
    let argv = r.argv();
    // Docker's: a paused container is running, and paused.
    let running = r.status.has_process();
    let time = |t: &Option<String>| t.clone().unwrap_or_else(|| ZERO_TIME.to_string());
    let image = r.image.clone().unwrap_or_default();
    json!({
        "Id": r.name,
        "Name": format!("/{}", r.name),
        "Created": r.created,
        "Path": argv.first().cloned().unwrap_or_default(),
        "Args": argv.iter().skip(1).cloned().collect::<Vec<_>>(),
        "State": {
            "Status": docker_status(c),
            "Running": running,
            "Paused": r.status == ContainerStatus::Paused,
            "Restarting": false,
            "OOMKilled": r.oom_killed,
            "Dead": false,
            "Pid": if running { r.pid.unwrap_or(0) } else { 0 },
            "ExitCode": if running { 0 } else { r.exit_code.unwrap_or(0) },
            "Error": r.error,
            "StartedAt": time(&r.started_at),
            "FinishedAt": time(&r.finished_at),
        },
        "Image": image,
        "Driver": "btrfs",
        "Platform": "linux",
        "RestartCount": r.restart_count,
        "Config": config(c, &image),
        "HostConfig": host_config(c),
        "NetworkSettings": network_settings(c),
        "Mounts": mounts(c),
    })
}

/// Docker's `HostConfig.RestartPolicy` of `policy`.
fn restart_policy(policy: crate::model::RestartPolicy) -> Value {
    use crate::model::RestartPolicy as P;
    let (name, max) = match policy {
        P::No => ("no", 0),
        P::OnFailure { max } => ("on-failure", max.unwrap_or(0)),
        P::Always => ("always", 0),
        P::UnlessStopped => ("unless-stopped", 0),
    };
    json!({"Name": name, "MaximumRetryCount": max})
}

fn config(c: &ContainerView<'_>, image: &str) -> Value {
    let r = c.record;
    let defaults = r.image_defaults();
    let signal = r.run_stop_signal();
    let mut doc = json!({
        "Hostname": r.run_hostname(),
        "Domainname": "",
        "User": r.run_user(),
        "AttachStdin": r.interactive,
        "AttachStdout": false,
        "AttachStderr": false,
        "Tty": r.tty,
        "OpenStdin": r.interactive,
        "Env": c.env(),
        "Cmd": list(c.cmd()),
        "Entrypoint": list(c.entrypoint()),
        "Image": image,
        "Volumes": set(defaults.volumes.iter().cloned()),
        "WorkingDir": r.run_workdir(),
        "Labels": r.all_labels(),
        "StopSignal": if signal.is_empty() { "SIGTERM".to_string() } else { signal },
    });
    let mut exposed = defaults.exposed_ports.clone();
    exposed.extend(r.ports.iter().map(port_key));
    if !exposed.is_empty() {
        doc["ExposedPorts"] = set(exposed.into_iter());
    }
    if let Some(health) = defaults.healthcheck {
        doc["Healthcheck"] = health;
    }
    doc
}

/// Docker's set of strings: an object of empty objects (`{"/data": {}}`), `null` for none.
fn set(items: impl Iterator<Item = String>) -> Value {
    let map: Map<String, Value> = items.map(|k| (k, json!({}))).collect();
    if map.is_empty() {
        Value::Null
    } else {
        Value::Object(map)
    }
}

/// `CTRPORT/PROTO`, Docker's key of a port.
fn port_key(p: &PortMap) -> String {
    format!("{}/{}", p.ctr_port, p.proto.as_str())
}

/// Docker's port map: each container port, its host bindings (`HostIp` empty for every address).
fn bindings(ports: &[PortMap], any_addr: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for p in ports {
        let binding = json!({
            "HostIp": p.host_addr.map_or(any_addr.to_string(), |a| a.to_string()),
            "HostPort": p.host_port.to_string(),
        });
        match map.entry(port_key(p)).or_insert_with(|| json!([])) {
            Value::Array(list) => list.push(binding),
            other => *other = json!([binding]),
        }
    }
    map
}

fn host_config(c: &ContainerView<'_>) -> Value {
    let r = c.record;
    let limits = c.configured_limits();
    let max = |m: Option<Max>, none: i64| match m {
        Some(Max(Some(n))) => i64::try_from(n).unwrap_or(i64::MAX),
        _ => none,
    };
    let (quota, period) = match limits.cpu_max {
        Some(m) => (m.quota.map_or(0, |q| i64::try_from(q).unwrap_or(i64::MAX)), m.period),
        None => (0, 0),
    };
    let nano_cpus = if quota > 0 && period > 0 {
        u64::try_from(i128::from(quota) * 1_000_000_000 / i128::from(period)).unwrap_or(u64::MAX)
    } else {
        0
    };
    json!({
        "Binds": list(r.volumes.iter().map(|v| v.to_string()).collect()),
        "NetworkMode": r.network.to_string(),
        "ExtraHosts": list(r.extra_hosts.iter().map(|h| h.to_string()).collect()),
        "Dns": list(r.dns.iter().map(|d| d.to_string()).collect()),
        "PortBindings": bindings(&r.ports, ""),
        "RestartPolicy": restart_policy(r.restart),
        "AutoRemove": r.auto_remove,
        "Init": r.init,
        "VolumesFrom": list(r.volumes_from.iter().cloned().collect()),
        "CapAdd": list(r.security.cap_add.clone()),
        "Privileged": r.security.privileged,
        "Memory": max(limits.memory_max, 0),
        "NanoCpus": nano_cpus,
        "CpuShares": limits.cpu_weight.map_or(0, weight_to_shares),
        "CpuPeriod": period,
        "CpuQuota": quota,
        "PidsLimit": max(limits.pids_max, -1),
        // Docker's MemorySwap is memory plus swap, -1 for no swap limit.
        "MemorySwap": match (limits.memory_max, limits.swap_max()) {
            (Some(Max(Some(m))), Some(Max(Some(s)))) => i64::try_from(m.saturating_add(s)).unwrap_or(i64::MAX),
            (Some(Max(Some(_))), _) => -1,
            _ => 0,
        },
        "CpusetCpus": limits.cpuset_cpus.as_ref().map(|l| l.to_string()).unwrap_or_default(),
        "CpusetMems": limits.cpuset_mems.as_ref().map(|l| l.to_string()).unwrap_or_default(),
        "BlkioWeight": limits.io_weight.map_or(0, io_weight_to_blkio_weight),
        "BlkioDeviceReadBps": throttle(&limits, 0),
        "BlkioDeviceWriteBps": throttle(&limits, 1),
        "BlkioDeviceReadIOps": throttle(&limits, 2),
        "BlkioDeviceWriteIOps": throttle(&limits, 3),
    })
}

/// Docker's `BlkioDevice*` list for key `i` of `io.max` (rbps, wbps, riops, wiops): `null` when none.
fn throttle(limits: &crate::cgroups::Limits, i: usize) -> Value {
    let devices: Vec<Value> = limits
        .io_max
        .iter()
        .flat_map(|m| m.0.iter())
        .filter_map(|d| {
            let rate = d.keys()[i].1 .0?;
            Some(json!({"Path": format!("/dev/block/{}:{}", d.major, d.minor), "Rate": rate}))
        })
        .collect();
    if devices.is_empty() {
        Value::Null
    } else {
        Value::Array(devices)
    }
}

fn network_settings(c: &ContainerView<'_>) -> Value {
    let r = c.record;
    let one = |subnet: &crate::network::Subnet, ip: Option<std::net::Ipv4Addr>| {
        let address = ip.map(|ip| ip.to_string()).unwrap_or_default();
        let gateway = ip.map(|_| subnet.gateway().to_string()).unwrap_or_default();
        (address, gateway, ip.map_or(0, |_| subnet.prefix()))
    };
    let (address, gateway, prefix) = match c.networks.first() {
        Some((_, subnet, ip)) => one(subnet, *ip),
        None => (String::new(), String::new(), 0),
    };
    let mut ports = bindings(&r.ports, "0.0.0.0");
    for exposed in r.image_defaults().exposed_ports {
        ports.entry(exposed).or_insert(Value::Null);
    }
    let mut networks = serde_json::Map::new();
    for (name, subnet, ip) in &c.networks {
        let (address, gateway, prefix) = one(subnet, *ip);
        let aliases = if name == crate::engine::DEFAULT_NETWORK { Vec::new() } else { r.aliases.clone() };
        networks.insert(
            name.clone(),
            json!({"IPAddress": address, "Gateway": gateway, "IPPrefixLen": prefix, "Aliases": aliases}),
        );
    }
    if c.networks.is_empty() {
        networks.insert(r.network.to_string(), json!({"IPAddress": "", "Gateway": "", "IPPrefixLen": 0}));
    }
    json!({
        "IPAddress": address,
        "Gateway": gateway,
        "IPPrefixLen": prefix,
        "Ports": ports,
        "Networks": networks,
    })
}

/// Its volumes (its `volumes-from` container's too), as Docker's `Mounts`.
fn mounts(c: &ContainerView<'_>) -> Value {
    let mounts: Vec<Value> = c
        .all_volumes()
        .iter()
        .map(|v| {
            let source = c.volume_source(v).display().to_string();
            let mode = if v.readonly { "ro" } else { "" };
            match &v.source {
                VolumeSource::Host(_) => json!({
                    "Type": "bind",
                    "Source": source,
                    "Destination": v.target,
                    "Mode": mode,
                    "RW": !v.readonly,
                    "Propagation": "rprivate",
                }),
                VolumeSource::Named(name) => json!({
                    "Type": "volume",
                    "Name": name,
                    "Source": source,
                    "Destination": v.target,
                    "Driver": "local",
                    "Mode": mode,
                    "RW": !v.readonly,
                    "Propagation": "",
                }),
            }
        })
        .collect();
    Value::from(mounts)
}

/// The keys Docker's image `Config` always has: these show `""` when the image sets none...
const CONFIG_STRINGS: [&str; 4] = ["Hostname", "Domainname", "User", "WorkingDir"];
/// ...and these `null`.
const CONFIG_NULLS: [&str; 5] = ["Env", "Cmd", "Entrypoint", "Labels", "Volumes"];

/// The repository of a normalised name: `docker.io/library/alpine` of `docker.io/library/alpine:3.20`
/// (a registry's port is before the last `/`).
fn repository(name: &str) -> &str {
    let name = name.split('@').next().unwrap_or(name);
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => name,
    }
}

/// An image's `inspect.json`.
pub fn image(i: &ImageView<'_>) -> Value {
    let r = i.record;
    let raw: Value = serde_json::from_slice(i.config_raw).unwrap_or(Value::Null);
    let tags: Vec<String> = r.names.iter().filter(|n| !n.contains('@')).map(|n| familiar(n).to_string()).collect();
    let mut digests: Vec<String> = Vec::new();
    for name in &r.names {
        let digest = match (name.split_once('@'), &r.digest) {
            (Some(_), _) => name.clone(),
            (None, Some(d)) => format!("{}@{d}", repository(name)),
            (None, None) => continue,
        };
        let digest = familiar(&digest).to_string();
        if !digests.contains(&digest) {
            digests.push(digest);
        }
    }
    let mut config = match raw.get("config").or_else(|| raw.get("Config")) {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    for key in CONFIG_STRINGS {
        config.entry(key).or_insert_with(|| json!(""));
    }
    for key in CONFIG_NULLS {
        config.entry(key).or_insert(Value::Null);
    }
    let text = |key: &str| raw.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let layers = match raw.get("rootfs").and_then(|f| f.get("diff_ids")) {
        Some(Value::Array(ids)) => ids.iter().filter(|v| v.is_string()).cloned().collect(),
        _ => Vec::new(),
    };
    let mut doc = json!({
        "Id": r.id,
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": "",
        "Comment": text("comment"),
        "Created": r.created,
        "Author": text("author"),
        "Config": config,
        "Architecture": text("architecture"),
        "Os": text("os"),
        "Size": r.size,
        "RootFS": {"Type": "layers", "Layers": layers},
    });
    let variant = text("variant");
    if !variant.is_empty() {
        doc["Variant"] = json!(variant);
    }
    doc
}

#[cfg(test)]
mod tests {
    //! An image's document, from records built here (a container's needs the engine: tests/inspect.rs).

    use super::*;
    use crate::engine::ImageRecord;

    fn record() -> ImageRecord {
        ImageRecord {
            id: "img_0123456789ab".into(),
            source: "localhost:5000/team/app:v1".into(),
            created: "2024-05-06T07:08:09Z".into(),
            size: 42,
            digest: Some("sha256:abcd".into()),
            layers: vec!["sha256:1111".into()],
            chain: Vec::new(),
            steps: Vec::new(),
            names: vec![
                "docker.io/library/alpine:3.20".into(),
                "localhost:5000/team/app:v1".into(),
                "localhost:5000/team/app:v2".into(),
                "docker.io/library/busybox@sha256:beef".into(),
            ],
        }
    }

    #[test]
    fn an_images_document_has_dockers_fields() {
        let raw = br#"{"architecture":"amd64","os":"linux","variant":"v8",
            "config":{"Cmd":["sh"],"User":"redis","ExposedPorts":{"80/tcp":{}}},
            "rootfs":{"type":"layers","diff_ids":["sha256:d1",7]}}"#;
        let r = record();
        let doc = image(&ImageView { record: &r, config_raw: raw });
        assert_eq!(doc["Id"], "img_0123456789ab");
        assert_eq!(doc["RepoTags"], json!(["alpine:3.20", "localhost:5000/team/app:v1", "localhost:5000/team/app:v2"]));
        assert_eq!(
            doc["RepoDigests"],
            json!(["alpine@sha256:abcd", "localhost:5000/team/app@sha256:abcd", "busybox@sha256:beef"]),
            "a repository once, however many tags it has here"
        );
        assert_eq!((doc["Architecture"].as_str(), doc["Os"].as_str()), (Some("amd64"), Some("linux")));
        assert_eq!(doc["Variant"], "v8");
        assert_eq!(doc["Size"], 42);
        assert_eq!(doc["Config"]["Cmd"], json!(["sh"]));
        assert_eq!(doc["Config"]["User"], "redis");
        assert_eq!(doc["Config"]["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(doc["Config"]["Entrypoint"], Value::Null, "a key the image lacks is there, as Docker's");
        assert_eq!(doc["RootFS"], json!({"Type": "layers", "Layers": ["sha256:d1"]}));
        assert!(bytes(&doc).ends_with(b"}\n"));
    }

    #[test]
    fn an_odd_config_costs_only_its_fields() {
        let r = ImageRecord { names: Vec::new(), digest: None, ..record() };
        for raw in [&b"not json"[..], b"[]", br#"{"config":5,"rootfs":{"diff_ids":"x"},"os":3}"#] {
            let doc = image(&ImageView { record: &r, config_raw: raw });
            assert_eq!(doc["RepoTags"], json!([]));
            assert_eq!(doc["RepoDigests"], json!([]));
            assert_eq!(doc["Os"], "");
            assert_eq!(doc["Config"]["Cmd"], Value::Null);
            assert_eq!(doc["RootFS"]["Layers"], json!([]));
            assert!(doc.get("Variant").is_none());
        }
    }

    #[test]
    fn repositories_keep_their_registrys_port() {
        assert_eq!(repository("localhost:5000/x:latest"), "localhost:5000/x");
        assert_eq!(repository("localhost:5000/x"), "localhost:5000/x");
        assert_eq!(repository("docker.io/library/alpine@sha256:ab"), "docker.io/library/alpine");
    }
}
