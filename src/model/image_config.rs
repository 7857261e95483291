//! What a container keeps of its image's config (the `config` object of the OCI image config, with
//! Docker's field names and meaning), taken when its image is set: so a container runs, restarts and
//! commits the same whatever happens to the image afterwards (Docker's `rmi` of an image in use).
//!
//! Read leniently from the image's raw config: a field of the wrong shape (a hostile or odd registry) is
//! taken as absent, never fatal, so one bad field costs only that field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The run-time defaults of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    /// `NAME`, `UID`, `NAME:GROUP`, `UID:GID`; empty is root.
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub working_dir: String,
    /// A signal name or number (`SIGQUIT`, `3`); empty is SIGTERM.
    #[serde(default)]
    pub stop_signal: String,
    /// Paths that get an anonymous volume.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// `PORT/PROTO`, as the image declares them.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Docker's `Healthcheck` object, as the image has it.
    #[serde(default)]
    pub healthcheck: Option<Value>,
}

impl ImageConfig {
    /// The defaults in an image's raw config (`{"config": {"Entrypoint": ...}}`); all empty if it has none.
    pub fn from_raw(raw: &[u8]) -> ImageConfig {
        let top: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
        let config = top.get("config").or_else(|| top.get("Config")).unwrap_or(&Value::Null);
        let strings = |key: &str| -> Vec<String> {
            match config.get(key) {
                Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                _ => Vec::new(),
            }
        };
        let string = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let keys = |key: &str| -> Vec<String> {
            match config.get(key) {
                Some(Value::Object(map)) => map.keys().cloned().collect(),
                _ => Vec::new(),
            }
        };
        let labels = match config.get("Labels") {
            Some(Value::Object(map)) => {
                map.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect()
            }
            _ => BTreeMap::new(),
        };
        ImageConfig {
            entrypoint: strings("Entrypoint"),
            cmd: strings("Cmd"),
            env: strings("Env"),
            user: string("User"),
            working_dir: string("WorkingDir"),
            stop_signal: string("StopSignal"),
            volumes: keys("Volumes"),
            exposed_ports: keys("ExposedPorts"),
            labels,
            healthcheck: config.get("Healthcheck").filter(|v| v.is_object()).cloned(),
        }
    }

    /// The entrypoint that runs: the container's if it set one, else the image's.
    pub fn entrypoint_of(&self, entrypoint: Option<&[String]>) -> Vec<String> {
        entrypoint.unwrap_or(&self.entrypoint).to_vec()
    }

    /// The arguments after it: the container's if it set them, else the image's Cmd unless the container
    /// set its own entrypoint (`docker run --entrypoint` clears the image's Cmd). Docker's `Config.Cmd`.
    pub fn cmd_of(&self, entrypoint: Option<&[String]>, cmd: Option<&[String]>) -> Vec<String> {
        match (cmd, entrypoint) {
            (Some(args), _) => args.to_vec(),
            (None, None) => self.cmd.clone(),
            (None, Some(_)) => Vec::new(),
        }
    }

    /// What runs, as Docker puts it together: [`Self::entrypoint_of`], then [`Self::cmd_of`].
    pub fn argv(&self, entrypoint: Option<&[String]>, cmd: Option<&[String]>) -> Vec<String> {
        let mut argv = self.entrypoint_of(entrypoint);
        argv.extend(self.cmd_of(entrypoint, cmd));
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn docker_fields_are_read_and_a_field_of_the_wrong_shape_is_only_that_field_lost() {
        let raw = br#"{"config":{"Entrypoint":["docker-entrypoint.sh"],"Cmd":["redis-server"],
            "User":"redis:redis","WorkingDir":"/data","StopSignal":"SIGQUIT","Env":["A=1",7],
            "Volumes":{"/data":{}},"ExposedPorts":{"6379/tcp":{}},"Labels":{"a":"b","n":1},
            "Healthcheck":{"Test":["CMD","true"]}}}"#;
        let c = ImageConfig::from_raw(raw);
        assert_eq!(c.entrypoint, ["docker-entrypoint.sh"]);
        assert_eq!(c.cmd, ["redis-server"]);
        assert_eq!(c.user, "redis:redis");
        assert_eq!(c.working_dir, "/data");
        assert_eq!(c.stop_signal, "SIGQUIT");
        assert_eq!(c.env, ["A=1"]);
        assert_eq!(c.volumes, ["/data"]);
        assert_eq!(c.exposed_ports, ["6379/tcp"]);
        assert_eq!(c.labels.len(), 1);
        assert!(c.healthcheck.is_some());
        let odd = ImageConfig::from_raw(br#"{"config":{"Cmd":"not a list","User":5,"Labels":[]}}"#);
        assert_eq!(odd, ImageConfig::default());
        assert_eq!(ImageConfig::from_raw(b"not json"), ImageConfig::default());
    }

    #[test]
    fn arguments_follow_the_entrypoint_and_a_new_entrypoint_drops_the_images_cmd() {
        let c = ImageConfig { entrypoint: words(&["ep.sh"]), cmd: words(&["serve"]), ..Default::default() };
        assert_eq!(c.argv(None, None), ["ep.sh", "serve"]);
        assert_eq!(
            c.argv(None, Some(&words(&["redis-server", "--appendonly", "yes"]))),
            ["ep.sh", "redis-server", "--appendonly", "yes"]
        );
        assert_eq!(c.argv(Some(&words(&["sh"])), None), ["sh"]);
        assert_eq!(c.argv(Some(&words(&["sh"])), Some(&words(&["-c", "id"]))), ["sh", "-c", "id"]);
        let plain = ImageConfig { cmd: words(&["sh"]), ..Default::default() };
        assert_eq!(plain.argv(None, Some(&words(&["echo", "hi"]))), ["echo", "hi"]);
    }
}
