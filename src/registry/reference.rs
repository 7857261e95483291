//! What a write to `images/pull` or `images/push` names, parsed once: a reference in any of the forms
//! users type (`alpine`, `alpine:3.20`, bocker's `centos 7`, `docker.io/library/alpine:3.20`,
//! `localhost:5000/team/app:v1`, `name@sha256:...`) and an optional `platform=OS/ARCH[/VARIANT]` word.

use oci_client::Reference;

use super::RegistryError;

/// A platform to pick from an image index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This host, in Go's names as image indexes use them.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Platform { os: "linux".into(), architecture: architecture.into(), variant: variant.map(str::to_string) }
    }

    fn parse(text: &str) -> Result<Platform, RegistryError> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform { os: (*os).into(), architecture: (*arch).into(), variant: None })
            }
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform { os: (*os).into(), architecture: (*arch).into(), variant: Some((*variant).into()) })
            }
            _ => Err(RegistryError::Platform(text.to_string())),
        }
    }

    /// Whether an index entry's platform is this one. A missing variant matches on either side, except
    /// that a variant asked for must be the one offered when the entry names one.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        self.os == os
            && self.architecture == architecture
            && match (self.variant.as_deref(), variant) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A parsed `images/pull` request.
#[derive(Debug, Clone)]
pub struct PullSpec {
    pub reference: Reference,
    /// The reference as written (bocker's two-word form joined), the image's `source`.
    pub source: String,
    /// A platform asked for; otherwise this host's.
    pub platform: Option<Platform>,
}

impl PullSpec {
    /// `NAME[:TAG|@DIGEST]`, or bocker's `NAME TAG`, optionally followed by `platform=OS/ARCH[/VARIANT]`.
    pub fn parse(text: &str) -> Result<PullSpec, RegistryError> {
        let mut words: Vec<&str> = text.split_whitespace().collect();
        let mut platform = None;
        if let Some(pos) = words.iter().position(|w| w.starts_with("platform=")) {
            platform = Some(Platform::parse(&words.remove(pos)["platform=".len()..])?);
        }
        let source = match words.as_slice() {
            [name] => (*name).to_string(),
            // A name with no tag of its own (a registry's port may hold a ':') and a plain tag.
            [name, tag]
                if !name.contains('@')
                    && !name.rsplit('/').next().unwrap_or("").contains(':')
                    && !tag.contains(['/', ':', '@']) =>
            {
                format!("{name}:{tag}")
            }
            _ => return Err(RegistryError::Reference(text.trim().chars().take(200).collect())),
        };
        let reference: Reference = source.parse().map_err(|_| RegistryError::Reference(source.clone()))?;
        Ok(PullSpec { reference, source, platform })
    }
}

impl PullSpec {
    /// What a run of `image`, which names no image here, pulls: a registry reference as Docker takes one
    /// (`alpine`, `alpine:3.20`, `localhost:5000/team/app:v1`, `name@sha256:...`), for this host's
    /// platform. Never a path (`/srv/rootfs`, `./x`), an id or id prefix (`img_...`), or anything else
    /// that is not a reference (spaces, `platform=`): those stay unknown images.
    pub fn for_run(image: &str) -> Option<PullSpec> {
        let path_or_id = image.starts_with(['/', '.']) || image.starts_with("img_");
        if path_or_id || image.is_empty() || image.contains(char::is_whitespace) || image.contains('=') {
            return None;
        }
        PullSpec::parse(image).ok()
    }
}

/// A parsed `images/push` request: `IMAGE REF`.
#[derive(Debug, Clone)]
pub struct PushSpec {
    pub image: String,
    pub reference: Reference,
}

impl PushSpec {
    pub fn parse(text: &str) -> Result<PushSpec, RegistryError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let [image, target] = words.as_slice() else {
            return Err(RegistryError::Reference(text.trim().chars().take(200).collect()));
        };
        let reference: Reference = target.parse().map_err(|_| RegistryError::Reference((*target).to_string()))?;
        if reference.digest().is_some() {
            return Err(RegistryError::Reference(format!("{target}: push to a tag, not a digest")));
        }
        Ok(PushSpec { image: (*image).to_string(), reference })
    }
}

/// A reference in Docker's normalised form, an image's name: `alpine` is `docker.io/library/alpine:latest`
/// (a missing registry is Docker Hub's, a one-part Hub repository is under `library/`, a missing tag is
/// `latest`); `REGISTRY/REPO[:TAG]` keeps its registry (a first part with a `.` or a `:`, or `localhost`);
/// `NAME@sha256:...` is `REGISTRY/REPO@sha256:...` (a tag given with a digest is dropped, as the digest
/// names the content).
pub fn normalize(text: &str) -> Result<String, RegistryError> {
    let bad = || RegistryError::Reference(text.chars().take(200).collect());
    let text = text.trim();
    if text.is_empty() || text.len() > 512 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let r: Reference = text.parse().map_err(|_| bad())?;
    Ok(normal_form(&r))
}

/// The normalised name of a parsed reference (see [`normalize`]).
pub fn normal_form(r: &Reference) -> String {
    match r.digest() {
        Some(d) => format!("{}/{}@{d}", r.registry(), r.repository()),
        None => format!("{}/{}:{}", r.registry(), r.repository(), r.tag().unwrap_or("latest")),
    }
}

/// A normalised name as Docker shows it: Docker Hub's `docker.io/library/` and `docker.io/` left out.
pub fn familiar(name: &str) -> &str {
    name.strip_prefix("docker.io/library/").or_else(|| name.strip_prefix("docker.io/")).unwrap_or(name)
}

/// Whether a registry host is on this machine (plain HTTP is allowed there).
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_pulls_references_only() {
        for pulled in ["alpine", "alpine:3.20", "localhost:5000/team/app:v1", "quay.io/org/app", "team/app"] {
            assert!(PullSpec::for_run(pulled).is_some(), "{pulled}");
        }
        for kept in
            ["/srv/rootfs", "./rootfs", "../x", "img_3f2a", "img_nope", "", "a b", "platform=linux/arm64", "UPPER"]
        {
            assert!(PullSpec::for_run(kept).is_none(), "{kept}");
        }
    }

    fn whole(text: &str) -> String {
        PullSpec::parse(text).unwrap().reference.whole()
    }

    #[test]
    fn the_forms_users_type() {
        assert_eq!(whole("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(whole("alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(whole("centos 7"), "docker.io/library/centos:7");
        assert_eq!(PullSpec::parse("centos 7").unwrap().source, "centos:7");
        assert_eq!(whole("localhost:5000/team/app v2"), "localhost:5000/team/app:v2");
        assert_eq!(whole("docker.io/library/alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(whole("localhost:5000/team/app:v1"), "localhost:5000/team/app:v1");
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(whole(&format!("alpine@{digest}")), format!("docker.io/library/alpine@{digest}"));
        let spec = PullSpec::parse("alpine platform=linux/arm64/v8").unwrap();
        assert_eq!(spec.platform.unwrap().to_string(), "linux/arm64/v8");
        assert_eq!(spec.source, "alpine");
    }

    #[test]
    fn names_are_normalised_as_docker_does() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for (typed, name) in [
            ("alpine", "docker.io/library/alpine:latest".to_string()),
            ("alpine:latest", "docker.io/library/alpine:latest".into()),
            ("library/alpine", "docker.io/library/alpine:latest".into()),
            ("docker.io/library/alpine", "docker.io/library/alpine:latest".into()),
            ("index.docker.io/library/alpine:3.20", "docker.io/library/alpine:3.20".into()),
            ("team/app:v1", "docker.io/team/app:v1".into()),
            ("localhost:5000/x", "localhost:5000/x:latest".into()),
            ("localhost/x:2", "localhost/x:2".into()),
            ("127.0.0.1:5000/a/b/c:v1", "127.0.0.1:5000/a/b/c:v1".into()),
            ("quay.io/org/app", "quay.io/org/app:latest".into()),
            (&format!("alpine@{digest}"), format!("docker.io/library/alpine@{digest}")),
            (&format!("alpine:3@{digest}"), format!("docker.io/library/alpine@{digest}")),
            (" alpine\n", "docker.io/library/alpine:latest".into()),
        ] {
            assert_eq!(normalize(typed).unwrap(), name, "{typed:?}");
        }
        for bad in ["", "UPPER", "a b", "a::b", "alpine@sha256:12", "-x", "x/", "a\tb", &"a".repeat(600)] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
        assert_eq!(familiar("docker.io/library/alpine:latest"), "alpine:latest");
        assert_eq!(familiar("docker.io/team/app:v1"), "team/app:v1");
        assert_eq!(familiar("localhost:5000/x:latest"), "localhost:5000/x:latest");
    }

    #[test]
    fn bad_references() {
        for bad in ["", "a b c", "UPPER", "alpine platform=linux", "alpine:3.20 7", "a::b", "alpine platform=//"] {
            assert!(PullSpec::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PushSpec::parse("img_1").is_err());
        assert!(PushSpec::parse(&format!("img_1 localhost:5000/a@sha256:{}", "a".repeat(64))).is_err());
        assert_eq!(PushSpec::parse("img_1 localhost:5000/a:v1").unwrap().reference.whole(), "localhost:5000/a:v1");
    }

    #[test]
    fn platforms_and_loopback() {
        let arm = Platform::parse("linux/arm64/v8").unwrap();
        assert!(arm.matches("linux", "arm64", Some("v8")));
        assert!(arm.matches("linux", "arm64", None));
        assert!(!arm.matches("linux", "arm64", Some("v7")));
        assert!(!arm.matches("linux", "amd64", None));
        assert!(Platform::host().matches("linux", Platform::host().architecture.as_str(), None));
        for r in ["localhost:5000", "127.0.0.1:5000", "[::1]:5000", "localhost"] {
            assert!(is_loopback(r), "{r}");
        }
        for r in ["docker.io", "10.0.0.1:5000", "example.com:5000"] {
            assert!(!is_loopback(r), "{r}");
        }
    }
}
