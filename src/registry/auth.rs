//! Registry credentials from the standard Docker `config.json`: `$REGISTRY_AUTH_FILE` (Podman's), then
//! `$DOCKER_CONFIG/config.json`, then `~/.docker/config.json`. Entries are `auths.<registry>.auth`
//! (base64 of `user:password`), or `username` and `password`, or an `identitytoken`. Without one, pulls
//! are anonymous (Docker Hub's anonymous bearer tokens are fetched by the client).

use std::path::PathBuf;

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: std::collections::HashMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

fn config_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(f));
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        files.push(PathBuf::from(d).join("config.json"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        files.push(PathBuf::from(home).join(".docker/config.json"));
    }
    files
}

/// The keys a registry's entry may be under: Docker Hub has several historical names.
fn keys(registry: &str) -> Vec<String> {
    let mut keys = vec![registry.to_string(), format!("https://{registry}"), format!("http://{registry}")];
    if matches!(registry, "index.docker.io" | "docker.io" | "registry-1.docker.io") {
        keys.extend(
            ["https://index.docker.io/v1/", "docker.io", "index.docker.io", "registry-1.docker.io"].map(String::from),
        );
    }
    keys
}

/// The credentials for `registry`, or anonymous.
pub fn lookup(registry: &str) -> RegistryAuth {
    for file in config_files() {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let Ok(config) = serde_json::from_str::<ConfigFile>(&text) else {
            tracing::warn!(file = %file.display(), "cannot parse registry credentials");
            continue;
        };
        for key in keys(registry) {
            if let Some(entry) = config.auths.get(&key) {
                if let Some(auth) = from_entry(entry) {
                    return auth;
                }
            }
        }
    }
    RegistryAuth::Anonymous
}

fn from_entry(entry: &AuthEntry) -> Option<RegistryAuth> {
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Some(RegistryAuth::Basic(u.clone(), p.clone()));
    }
    if let Some(encoded) = &entry.auth {
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        return Some(RegistryAuth::Basic(user.to_string(), password.to_string()));
    }
    entry.identitytoken.as_ref().map(|t| RegistryAuth::Bearer(t.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        let e = AuthEntry { auth: Some("dXNlcjpwYTpzcw==".into()), ..Default::default() };
        assert!(matches!(from_entry(&e), Some(RegistryAuth::Basic(u, p)) if u == "user" && p == "pa:ss"));
        let e = AuthEntry { username: Some("a".into()), password: Some("b".into()), ..Default::default() };
        assert!(matches!(from_entry(&e), Some(RegistryAuth::Basic(u, p)) if u == "a" && p == "b"));
        assert!(from_entry(&AuthEntry { auth: Some("!!".into()), ..Default::default() }).is_none());
        assert!(keys("index.docker.io").contains(&"https://index.docker.io/v1/".to_string()));
    }
}
