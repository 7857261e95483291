//! The image config a build writes: Docker's `config` object (Env, Cmd, Entrypoint, User, WorkingDir,
//! Labels, ExposedPorts, Volumes, StopSignal, Healthcheck, OnBuild, Shell) and the history, started from
//! the base image's and changed step by step. Its JSON is written with sorted keys and no time but the
//! ones the steps give, so the same steps on the same base give the same bytes, and so the same digest.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

/// The `created` of what has no time of its own.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

/// The shell of shell-form commands unless `SHELL` says otherwise.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// One entry of the image's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub created: String,
    pub created_by: String,
    /// A step that changed only the config.
    pub empty_layer: bool,
}

/// The config of the image a stage is building.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildConfig {
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub user: String,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
    pub exposed_ports: BTreeSet<String>,
    pub volumes: BTreeSet<String>,
    pub stop_signal: String,
    pub healthcheck: Option<Value>,
    pub on_build: Vec<String>,
    pub shell: Option<Vec<String>>,
    pub history: Vec<History>,
    /// When the image was made: the time of its last step.
    pub created: String,
    /// What the base config holds that this build does not change (architecture, variant, os...).
    rest: Map<String, Value>,
    /// Keys of the base's `config` object this build does not know, kept as they were.
    rest_config: Map<String, Value>,
}

impl BuildConfig {
    /// The config of `FROM scratch`: this host's platform, made at the epoch (so an image of config steps
    /// alone is the same image at every build), nothing else.
    pub fn scratch() -> BuildConfig {
        let mut rest = Map::new();
        rest.insert("architecture".into(), host_arch().into());
        rest.insert("os".into(), "linux".into());
        BuildConfig { rest, created: EPOCH.into(), ..BuildConfig::default() }
    }

    /// The config of a stage `FROM` an image whose raw config is `raw`. A field of the wrong shape is taken
    /// as absent, as everywhere else an image's config is read.
    pub fn from_image(raw: &[u8]) -> BuildConfig {
        let top: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
        let mut out = BuildConfig::scratch();
        let Value::Object(mut top) = top else { return out };
        let config = match top.remove("config") {
            Some(Value::Object(c)) => c,
            _ => Map::new(),
        };
        let strings = |v: Option<&Value>| -> Option<Vec<String>> {
            v?.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        };
        let string = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let keys = |v: Option<&Value>| -> BTreeSet<String> {
            v.and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default()
        };
        out.env = strings(config.get("Env")).unwrap_or_default();
        out.cmd = strings(config.get("Cmd"));
        out.entrypoint = strings(config.get("Entrypoint"));
        out.user = string(config.get("User"));
        out.working_dir = string(config.get("WorkingDir"));
        out.labels = config
            .get("Labels")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
            .unwrap_or_default();
        out.exposed_ports = keys(config.get("ExposedPorts"));
        out.volumes = keys(config.get("Volumes"));
        out.stop_signal = string(config.get("StopSignal"));
        out.healthcheck = config.get("Healthcheck").filter(|v| v.is_object()).cloned();
        out.on_build = strings(config.get("OnBuild")).unwrap_or_default();
        out.shell = strings(config.get("Shell")).filter(|s| !s.is_empty());
        out.created = Some(string(top.get("created"))).filter(|c| !c.is_empty()).unwrap_or_else(|| EPOCH.into());
        if let Some(Value::Array(items)) = top.get("history") {
            out.history = items
                .iter()
                .map(|h| History {
                    created: string(h.get("created")),
                    created_by: string(h.get("created_by")),
                    empty_layer: h.get("empty_layer").and_then(Value::as_bool).unwrap_or(false),
                })
                .collect();
        }
        for known in KNOWN {
            let _ = top.remove(*known);
        }
        out.rest = top;
        out.rest.entry("architecture").or_insert_with(|| host_arch().into());
        out.rest.entry("os").or_insert_with(|| "linux".into());
        out.rest_config = config.into_iter().filter(|(k, _)| !KNOWN_CONFIG.contains(&k.as_str())).collect();
        out
    }

    /// The shell of shell-form commands now.
    pub fn shell(&self) -> Vec<String> {
        self.shell.clone().unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
    }

    /// Sets `key` in the environment, replacing its earlier value in place.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self.env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key) {
            Some(e) => *e = entry,
            None => self.env.push(entry),
        }
    }

    /// The value of `key` in the environment.
    pub fn env_value(&self, key: &str) -> Option<String> {
        self.env.iter().find_map(|e| e.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.to_string()))
    }

    /// The config JSON: Docker's and the OCI image spec's fields, keys sorted.
    pub fn to_json(&self) -> Vec<u8> {
        let mut config = self.rest_config.clone();
        let mut put = |k: &str, v: Value| {
            config.insert(k.into(), v);
        };
        put("Env", json!(self.env));
        if let Some(cmd) = &self.cmd {
            put("Cmd", json!(cmd));
        }
        if let Some(entrypoint) = &self.entrypoint {
            put("Entrypoint", json!(entrypoint));
        }
        let set = |s: &BTreeSet<String>| Value::Object(s.iter().map(|k| (k.clone(), json!({}))).collect());
        for (key, value, keep) in [
            ("User", json!(self.user), !self.user.is_empty()),
            ("WorkingDir", json!(self.working_dir), !self.working_dir.is_empty()),
            ("Labels", json!(self.labels), !self.labels.is_empty()),
            ("ExposedPorts", set(&self.exposed_ports), !self.exposed_ports.is_empty()),
            ("Volumes", set(&self.volumes), !self.volumes.is_empty()),
            ("StopSignal", json!(self.stop_signal), !self.stop_signal.is_empty()),
            ("OnBuild", json!(self.on_build), !self.on_build.is_empty()),
        ] {
            if keep {
                put(key, value);
            }
        }
        if let Some(check) = &self.healthcheck {
            put("Healthcheck", check.clone());
        }
        if let Some(shell) = &self.shell {
            put("Shell", json!(shell));
        }
        let history: Vec<Value> = self
            .history
            .iter()
            .map(|h| {
                let mut e = json!({ "created": h.created, "created_by": h.created_by, "comment": "bocker build" });
                if h.empty_layer {
                    e["empty_layer"] = json!(true);
                }
                e
            })
            .collect();
        let mut top = self.rest.clone();
        top.insert("created".into(), json!(self.created));
        top.insert("config".into(), Value::Object(config));
        top.insert("rootfs".into(), json!({ "type": "layers", "diff_ids": [] }));
        top.insert("history".into(), Value::Array(history));
        // serde_json's map is a BTreeMap here: keys come out sorted.
        serde_json::to_vec_pretty(&Value::Object(top)).unwrap_or_default()
    }
}

/// Top-level keys a build writes itself.
const KNOWN: &[&str] = &["config", "created", "rootfs", "history", "container", "container_config", "docker_version"];

/// Keys of the `config` object a build writes itself.
const KNOWN_CONFIG: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "User",
    "WorkingDir",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
];

/// This host's architecture as OCI names it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_config_is_kept_field_by_field_and_written_back_in_the_same_bytes() {
        let raw = br#"{"architecture":"amd64","os":"linux","variant":"v8","created":"2026-01-01T00:00:00Z",
            "config":{"Env":["PATH=/bin","A=1"],"Cmd":["sh"],"User":"app","WorkingDir":"/w","Labels":{"l":"v"},
              "ExposedPorts":{"80/tcp":{}},"Volumes":{"/data":{}},"StopSignal":"SIGQUIT","OnBuild":["RUN x"],
              "Healthcheck":{"Test":["CMD","true"]},"Odd":7},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},
            "history":[{"created":"2026-01-01T00:00:00Z","created_by":"ADD x","comment":"c"}]}"#;
        let c = BuildConfig::from_image(raw);
        assert_eq!(c.env, ["PATH=/bin", "A=1"]);
        assert_eq!(c.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert_eq!((c.user.as_str(), c.working_dir.as_str(), c.stop_signal.as_str()), ("app", "/w", "SIGQUIT"));
        assert_eq!(c.on_build, ["RUN x"]);
        assert_eq!(c.history.len(), 1);
        let out: Value = serde_json::from_slice(&c.to_json()).unwrap();
        assert_eq!(out["variant"], "v8");
        assert_eq!(out["config"]["Odd"], 7);
        assert_eq!(out["config"]["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(out["rootfs"]["diff_ids"], json!([]));
        assert_eq!(c.to_json(), BuildConfig::from_image(&c.to_json()).to_json(), "read and written back: same bytes");
        oci_spec::image::ImageConfiguration::from_reader(c.to_json().as_slice()).expect("an OCI image config");
    }

    #[test]
    fn env_is_set_in_place_and_a_bad_base_is_scratch() {
        let mut c = BuildConfig::from_image(b"not json");
        assert_eq!(c, BuildConfig::scratch());
        c.set_env("A", "1");
        c.set_env("B", "2");
        c.set_env("A", "3=x");
        assert_eq!(c.env, ["A=3=x", "B=2"]);
        assert_eq!(c.env_value("A").as_deref(), Some("3=x"));
        assert_eq!(c.shell(), ["/bin/sh", "-c"]);
    }
}
