//! The OCI image configs the engine writes itself: an imported directory's and a committed container's.

use super::records::ContainerRecord;
use crate::request::{merge_env, ConfigChange};
use crate::runtime;
use crate::times;

/// A committed image's config: the source image's, with the container's command (as Cmd, clearing the
/// Entrypoint it already includes) and its environment laid over, a new creation time, and no layers.
pub(super) fn commit_config(source: &[u8], container: &ContainerRecord) -> Vec<u8> {
    let mut config: serde_json::Value = serde_json::from_slice(source).unwrap_or_else(|_| serde_json::json!({}));
    let Some(top) = config.as_object_mut() else { return source.to_vec() };
    top.insert("created".into(), times::now_rfc3339().into());
    top.insert("rootfs".into(), serde_json::json!({ "type": "layers", "diff_ids": [] }));
    top.remove("history");
    let inner = top.entry("config").or_insert_with(|| serde_json::json!({}));
    if let Some(inner) = inner.as_object_mut() {
        if let Some(argv) = &container.cmd {
            inner.insert("Cmd".into(), argv.clone().into());
            inner.remove("Entrypoint");
        }
        if !container.env.is_empty() {
            let base: Vec<String> =
                inner.get("Env").and_then(|e| serde_json::from_value(e.clone()).ok()).unwrap_or_default();
            inner.insert("Env".into(), merge_env(&base, &container.env).into());
        }
    }
    serde_json::to_vec_pretty(&config).unwrap_or_else(|_| source.to_vec())
}

/// The OCI image config of an imported directory: this host's platform and a default PATH, no Cmd, then
/// the import's changes.
pub(super) fn import_config(created: &str, changes: &[ConfigChange]) -> Vec<u8> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    let mut env = vec![format!("PATH={}", runtime::init::DEFAULT_PATH)];
    let mut config = serde_json::Map::new();
    for change in changes {
        match change {
            ConfigChange::Cmd(argv) => config.insert("Cmd".into(), argv.clone().into()),
            ConfigChange::Entrypoint(argv) => config.insert("Entrypoint".into(), argv.clone().into()),
            ConfigChange::WorkingDir(dir) => config.insert("WorkingDir".into(), dir.clone().into()),
            ConfigChange::Env(kv) => {
                env = merge_env(&env, std::slice::from_ref(kv));
                None
            }
        };
    }
    config.insert("Env".into(), env.into());
    let config = serde_json::json!({
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": [] },
    });
    serde_json::to_vec_pretty(&config).unwrap_or_default()
}
