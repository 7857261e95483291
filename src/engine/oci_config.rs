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

#[cfg(test)]
mod tests {
    //! The configs as `config.json` shows them, and what a container made from the image then runs with
    //! (read through the engine's own [`Image`](super::super::state::Image) accessors).

    use oci_spec::image::ImageConfiguration;
    use serde_json::{json, Value};

    use super::super::records::{new_record, ImageRecord};
    use super::super::state::Image;
    use super::{commit_config, import_config};
    use crate::request::{parse_change, ConfigChange};
    use crate::runtime::init::DEFAULT_PATH;

    /// The image the engine makes of `config`: what a start reads its Env, argv and working directory from.
    fn made_of(config: &[u8]) -> Image {
        let record = ImageRecord {
            id: "img_0123456789ab".into(),
            source: "/srv/rootfs".into(),
            created: "2020-01-01T00:00:00Z".into(),
            size: 0,
            digest: None,
            layers: Vec::new(),
            chain: Vec::new(),
            names: Vec::new(),
        };
        let parsed = ImageConfiguration::from_reader(config).expect("an OCI image config");
        Image { record, config: parsed, config_raw: config.to_vec() }
    }

    fn changes(lines: &[&str]) -> Vec<ConfigChange> {
        lines.iter().map(|l| parse_change(l).unwrap()).collect()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_imported_directory_has_this_hosts_platform_a_path_and_no_command() {
        let raw = import_config("2024-05-06T07:08:09Z", &[]);
        let config: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(config["os"], "linux");
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        assert_eq!(config["architecture"], arch, "the GOARCH name registries and Docker use");
        assert_eq!(config["created"], "2024-05-06T07:08:09Z");
        assert_eq!(config["rootfs"], json!({ "type": "layers", "diff_ids": [] }));
        assert!(config["config"].get("Cmd").is_none() && config["config"].get("Entrypoint").is_none());
        let image = made_of(&raw);
        assert_eq!(image.env(), vec![format!("PATH={DEFAULT_PATH}")]);
        assert!(image.default_argv().is_empty(), "no command: a start needs one written to cmd");
        assert_eq!(image.working_dir(), "");
    }

    #[test]
    fn import_changes_set_env_command_and_working_directory_as_docker_import_change() {
        let raw = import_config(
            "2024-05-06T07:08:09Z",
            &changes(&[
                "ENV MODE=prod",
                "ENV PATH=/opt/bin",
                "CMD echo first",
                "ENTRYPOINT [\"sh\", \"-c\"]",
                "CMD [\"echo $MODE\"]",
                "ENV MODE=dev",
                "WORKDIR /app",
            ]),
        );
        let image = made_of(&raw);
        // PATH is replaced where it stood, MODE takes its last value; the last CMD wins.
        assert_eq!(image.env(), strings(&["PATH=/opt/bin", "MODE=dev"]));
        assert_eq!(image.default_argv(), strings(&["sh", "-c", "echo $MODE"]));
        assert_eq!(image.working_dir(), "/app");
        // A shell-form CMD runs under /bin/sh -c.
        let shell = image_of_changes(&["CMD echo $HOME"]);
        assert_eq!(shell.default_argv(), strings(&["/bin/sh", "-c", "echo $HOME"]));
    }

    fn image_of_changes(lines: &[&str]) -> Image {
        made_of(&import_config("2024-05-06T07:08:09Z", &changes(lines)))
    }

    /// A pulled image's config: history, layers, labels, ports, a user.
    fn pulled() -> Vec<u8> {
        serde_json::to_vec(&json!({
            "created": "2020-01-01T00:00:00Z",
            "architecture": "arm64",
            "variant": "v8",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/bin:/bin", "MODE=prod", "KEEP=1"],
                "Entrypoint": ["/entry.sh"],
                "Cmd": ["serve", "--port", "80"],
                "WorkingDir": "/srv",
                "User": "www",
                "ExposedPorts": { "80/tcp": {} },
                "Labels": { "org.example": "yes" }
            },
            "rootfs": { "type": "layers", "diff_ids": ["sha256:aaaa", "sha256:bbbb"] },
            "history": [{ "created_by": "ADD rootfs" }]
        }))
        .unwrap()
    }

    #[test]
    fn a_commit_takes_the_containers_command_and_env_over_the_source_image() {
        let mut container = new_record("web");
        container.cmd = Some(strings(&["printf", "%s\n", "a  b"]));
        container.env = strings(&["MODE=dev", "NEW=2"]);
        let raw = commit_config(&pulled(), &container);
        let config: Value = serde_json::from_slice(&raw).unwrap();
        let image = made_of(&raw);
        // The container's argv exactly, not run through the source's Entrypoint (it already chose its command).
        assert_eq!(image.default_argv(), strings(&["printf", "%s\n", "a  b"]));
        assert!(config["config"].get("Entrypoint").is_none());
        assert_eq!(image.env(), strings(&["PATH=/usr/bin:/bin", "MODE=dev", "KEEP=1", "NEW=2"]));
        // The rest of the source's config stays; the layers and history don't (a commit is one whole snapshot).
        assert_eq!(image.working_dir(), "/srv");
        assert_eq!(config["config"]["User"], "www");
        assert_eq!(config["config"]["Labels"], json!({ "org.example": "yes" }));
        assert_eq!(config["config"]["ExposedPorts"], json!({ "80/tcp": {} }));
        assert_eq!(
            (&config["architecture"], &config["variant"], &config["os"]),
            (&json!("arm64"), &json!("v8"), &json!("linux"))
        );
        assert_eq!(config["rootfs"], json!({ "type": "layers", "diff_ids": [] }));
        assert!(config.get("history").is_none());
        assert_ne!(config["created"], "2020-01-01T00:00:00Z", "a commit is made now");
        assert!(config["created"].as_str().unwrap().starts_with("20"));
    }

    #[test]
    fn a_commit_of_a_container_that_set_nothing_runs_as_its_image_did() {
        let raw = commit_config(&pulled(), &new_record("plain"));
        let image = made_of(&raw);
        assert_eq!(image.default_argv(), strings(&["/entry.sh", "serve", "--port", "80"]));
        assert_eq!(image.env(), strings(&["PATH=/usr/bin:/bin", "MODE=prod", "KEEP=1"]));
        // Committing the commit changes nothing more.
        let again = commit_config(&raw, &new_record("plain"));
        assert_eq!(made_of(&again).default_argv(), image.default_argv());
        assert_eq!(made_of(&again).env(), image.env());
        // An imported image with no Env or config at all gets just the container's.
        let mut container = new_record("c");
        container.env = strings(&["ONLY=1"]);
        container.cmd = Some(strings(&["true"]));
        let bare = commit_config(br#"{"architecture":"amd64","os":"linux"}"#, &container);
        assert_eq!(made_of(&bare).env(), strings(&["ONLY=1"]));
        assert_eq!(made_of(&bare).default_argv(), strings(&["true"]));
    }

    #[test]
    fn broken_source_configs_never_panic() {
        let mut container = new_record("c");
        container.cmd = Some(strings(&["true"]));
        container.env = strings(&["A=1"]);
        for source in [&b""[..], b"not json", b"[]", b"3", b"null", br#"{"config": 7}"#, br#"{"config": {"Env": 5}}"#] {
            let out = commit_config(source, &container);
            assert!(
                serde_json::from_slice::<Value>(&out).is_ok() || out == source,
                "{:?}",
                String::from_utf8_lossy(source)
            );
        }
    }
}
