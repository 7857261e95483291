//! The OCI image configs the engine writes itself: an imported directory's and a committed container's.

use super::records::ContainerRecord;
use crate::request::{merge_env, ConfigChange};
use crate::runtime;
use crate::times;

/// A committed image's config: the source image's platform (its raw config, if the image is still
/// there), with the container's config as `docker commit` records it: what the container kept of its image
/// (see [`ImageConfig`](crate::model::ImageConfig)) with its own entrypoint, arguments, environment, user,
/// working directory, stop signal and labels laid over; a new creation time, and no layers.
pub(super) fn commit_config(source: Option<&[u8]>, container: &ContainerRecord) -> Vec<u8> {
    let parsed = source.and_then(|raw| serde_json::from_slice::<serde_json::Value>(raw).ok());
    let mut config = match parsed {
        Some(v) if v.is_object() => v,
        _ => {
            serde_json::from_slice(&import_config(&times::now_rfc3339(), &[])).unwrap_or_else(|_| serde_json::json!({}))
        }
    };
    let Some(top) = config.as_object_mut() else { return Vec::new() };
    top.insert("created".into(), times::now_rfc3339().into());
    top.insert("rootfs".into(), serde_json::json!({ "type": "layers", "diff_ids": [] }));
    top.remove("history");
    let kept = match &container.image_config {
        Some(kept) => kept.clone(),
        None => crate::model::ImageConfig::from_raw(source.unwrap_or_default()),
    };
    let inner = top.entry("config").or_insert_with(|| serde_json::json!({}));
    if !inner.is_object() {
        *inner = serde_json::json!({});
    }
    let Some(inner) = inner.as_object_mut() else { return Vec::new() };
    let mut put = |key: &str, value: serde_json::Value, empty: bool| {
        if empty {
            inner.remove(key);
        } else {
            inner.insert(key.into(), value);
        }
    };
    let entrypoint = kept.entrypoint_of(container.entrypoint.as_deref());
    let cmd = kept.cmd_of(container.entrypoint.as_deref(), container.cmd.as_deref());
    put("Entrypoint", entrypoint.clone().into(), entrypoint.is_empty());
    put("Cmd", cmd.clone().into(), cmd.is_empty());
    let env = merge_env(&kept.env, &container.env);
    put("Env", env.clone().into(), env.is_empty());
    let user = container.run_user();
    put("User", user.clone().into(), user.is_empty());
    let workdir = container.workdir.clone().unwrap_or_else(|| kept.working_dir.clone());
    put("WorkingDir", workdir.clone().into(), workdir.is_empty());
    let stop = container.run_stop_signal();
    put("StopSignal", stop.clone().into(), stop.is_empty());
    let labels = container.all_labels();
    put("Labels", serde_json::to_value(&labels).unwrap_or_default(), labels.is_empty());
    // What only the image declared, kept by the container (the image itself may be gone).
    let keys =
        |keys: &[String]| serde_json::Value::Object(keys.iter().map(|k| (k.clone(), serde_json::json!({}))).collect());
    if !inner.contains_key("Volumes") && !kept.volumes.is_empty() {
        inner.insert("Volumes".into(), keys(&kept.volumes));
    }
    if !inner.contains_key("ExposedPorts") && !kept.exposed_ports.is_empty() {
        inner.insert("ExposedPorts".into(), keys(&kept.exposed_ports));
    }
    if let (false, Some(check)) = (inner.contains_key("Healthcheck"), &kept.healthcheck) {
        inner.insert("Healthcheck".into(), check.clone());
    }
    serde_json::to_vec_pretty(&config).unwrap_or_default()
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
            ConfigChange::User(user) => config.insert("User".into(), user.clone().into()),
            ConfigChange::StopSignal(signal) => config.insert("StopSignal".into(), signal.clone().into()),
            ConfigChange::Expose(port) => set_key(&mut config, "ExposedPorts", port, serde_json::json!({})),
            ConfigChange::Label(key, value) => set_key(&mut config, "Labels", key, value.clone().into()),
            ConfigChange::Volume(path) => set_key(&mut config, "Volumes", path, serde_json::json!({})),
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

/// Sets `key` in the object `field` of `config` (made if missing); `None`, for the match above.
fn set_key(
    config: &mut serde_json::Map<String, serde_json::Value>,
    field: &str,
    key: &str,
    value: serde_json::Value,
) -> Option<serde_json::Value> {
    let object = config.entry(field).or_insert_with(|| serde_json::json!({}));
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_string(), value);
    }
    None
}

#[cfg(test)]
mod tests {
    //! The configs as `config.json` shows them, and what a container made from the image then runs with
    //! (what it keeps of it: [`ImageConfig`]).

    use oci_spec::image::ImageConfiguration;
    use serde_json::{json, Value};

    use super::super::records::new_record;
    use super::{commit_config, import_config};
    use crate::model::ImageConfig;
    use crate::request::{parse_change, ConfigChange};
    use crate::runtime::init::DEFAULT_PATH;

    /// What a container made of an image with `config` keeps of it: its Env, argv and working directory.
    fn made_of(config: &[u8]) -> ImageConfig {
        ImageConfiguration::from_reader(config).expect("an OCI image config");
        ImageConfig::from_raw(config)
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
        assert_eq!(image.env, vec![format!("PATH={DEFAULT_PATH}")]);
        assert!(image.argv(None, None).is_empty(), "no command: a start needs one written to cmd");
        assert_eq!(image.working_dir, "");
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
        assert_eq!(image.env, strings(&["PATH=/opt/bin", "MODE=dev"]));
        assert_eq!(image.argv(None, None), strings(&["sh", "-c", "echo $MODE"]));
        assert_eq!(image.working_dir, "/app");
        // A shell-form CMD runs under /bin/sh -c.
        let shell = image_of_changes(&["CMD echo $HOME"]);
        assert_eq!(shell.argv(None, None), strings(&["/bin/sh", "-c", "echo $HOME"]));
    }

    fn image_of_changes(lines: &[&str]) -> ImageConfig {
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

    /// A container made from the pulled image, as the engine makes one: it keeps the image's config.
    fn from_pulled(name: &str) -> crate::engine::records::ContainerRecord {
        let mut container = new_record(name);
        container.image_config = Some(crate::model::ImageConfig::from_raw(&pulled()));
        container
    }

    #[test]
    fn a_commit_takes_the_containers_command_and_env_over_the_source_image() {
        let mut container = from_pulled("web");
        container.cmd = Some(strings(&["printf", "%s\n", "a  b"]));
        container.env = strings(&["MODE=dev", "NEW=2"]);
        let raw = commit_config(Some(&pulled()), &container);
        let config: Value = serde_json::from_slice(&raw).unwrap();
        let image = made_of(&raw);
        // Its arguments after the image's entrypoint, as it ran.
        assert_eq!(image.argv(None, None), strings(&["/entry.sh", "printf", "%s\n", "a  b"]));
        // Its own entrypoint replaces the image's and clears the image's Cmd.
        let mut own = from_pulled("own");
        own.entrypoint = Some(strings(&["sh"]));
        let own = made_of(&commit_config(Some(&pulled()), &own));
        assert_eq!(own.argv(None, None), strings(&["sh"]));
        assert_eq!(image.env, strings(&["PATH=/usr/bin:/bin", "MODE=dev", "KEEP=1", "NEW=2"]));
        // The rest of the source's config stays; the layers and history don't (a commit is one whole snapshot).
        assert_eq!(image.working_dir, "/srv");
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
        let raw = commit_config(Some(&pulled()), &from_pulled("plain"));
        let image = made_of(&raw);
        assert_eq!(image.argv(None, None), strings(&["/entry.sh", "serve", "--port", "80"]));
        assert_eq!(image.env, strings(&["PATH=/usr/bin:/bin", "MODE=prod", "KEEP=1"]));
        // Committing the commit changes nothing more.
        let mut plain = new_record("plain");
        plain.image_config = Some(crate::model::ImageConfig::from_raw(&raw));
        let again = commit_config(Some(&raw), &plain);
        assert_eq!(made_of(&again).argv(None, None), image.argv(None, None));
        assert_eq!(made_of(&again).env, image.env);
        // An imported image with no Env or config at all gets just the container's.
        let mut container = new_record("c");
        container.env = strings(&["ONLY=1"]);
        container.cmd = Some(strings(&["true"]));
        let bare = commit_config(Some(br#"{"architecture":"amd64","os":"linux"}"#), &container);
        assert_eq!(made_of(&bare).env, strings(&["ONLY=1"]));
        assert_eq!(made_of(&bare).argv(None, None), strings(&["true"]));
    }

    #[test]
    fn broken_source_configs_never_panic() {
        let mut container = new_record("c");
        container.cmd = Some(strings(&["true"]));
        container.env = strings(&["A=1"]);
        for source in [&b""[..], b"not json", b"[]", b"3", b"null", br#"{"config": 7}"#, br#"{"config": {"Env": 5}}"#] {
            let out = commit_config(Some(source), &container);
            let config: Value = serde_json::from_slice(&out).unwrap_or_else(|_| panic!("{source:?}"));
            assert_eq!(config["config"]["Cmd"], json!(["true"]), "{:?}", String::from_utf8_lossy(source));
        }
        // The image itself may be gone: the container's kept config is enough.
        let gone = commit_config(None, &from_pulled("orphan"));
        assert_eq!(made_of(&gone).argv(None, None), strings(&["/entry.sh", "serve", "--port", "80"]));
    }
}
