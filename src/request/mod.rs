//! Requests, parsed once at the boundary: every write, mkdir and rmdir on the control filesystem becomes one
//! typed [`Request`] here, or a [`ParseError`] saying what is wrong with the bytes. The engine never sees
//! raw input.

use std::path::PathBuf;

use crate::caller::Caller;
pub use crate::model::{VolumeSource, VolumeSpec};
use crate::network::{NetworkMode, PortMap};
use crate::registry::{normalize, PullSpec, PushSpec};
pub use build::{parse_build, valid_arg_name, BuildSpec};
pub use changes::{parse_change, ConfigChange};
pub use ctl::{parse_ctl, parse_signal, Ctl, DEFAULT_STOP_TIMEOUT, MAX_STOP_TIMEOUT_SECS};
pub use network::{parse_aliases, parse_networks, MAX_ALIASES};
pub use settings::{parse_setting, ContainerSetting, SettingKind};
pub use stdio::{parse_exec, ExecOptions};
pub use target::{all_write_targets, WriteKind, WriteTarget};

mod build;
mod changes;
mod ctl;
mod network;
mod settings;
mod stdio;
mod target;

/// Why the bytes of a write are not a valid request (always EINVAL).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("the value is not UTF-8 text")]
    NotText,
    #[error("the value holds a NUL byte")]
    Nul,
    #[error("the value is empty")]
    Empty,
    #[error("unknown verb '{}' (verbs: {})", quote(.0), ctl::VERBS)]
    UnknownVerb(String),
    #[error("'{}' takes at most one argument", quote(.0))]
    TooManyArgs(String),
    #[error("bad timeout '{}': give whole seconds", quote(.0))]
    BadTimeout(String),
    #[error("a grace period of {0} seconds is more than a year ({MAX_STOP_TIMEOUT_SECS})")]
    TimeoutRange(u64),
    #[error("unknown signal '{}'", quote(.0))]
    BadSignal(String),
    #[error("unknown exec option '{}' (options: -i, -t, -it, --interactive, --tty, then the command)", quote(.0))]
    BadExecOption(String),
    #[error("bad command line: {0}")]
    BadArgv(String),
    #[error("bad env line '{}': expected KEY=VALUE", quote(.0))]
    BadEnv(String),
    #[error("invalid name '{}': use [A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}", quote(.0))]
    BadName(String),
    #[error("'{}' is not an absolute path", quote(.0))]
    NotAbsolute(String),
    #[error("expected one word, got '{}'", quote(.0))]
    NotOneWord(String),
    #[error("bad import change '{}': use CMD, ENTRYPOINT, ENV KEY=VALUE, WORKDIR /PATH, USER, STOPSIGNAL, EXPOSE PORT[/PROTO], LABEL KEY=VALUE or VOLUME /PATH", quote(.0))]
    BadChange(String),
    #[error("{0}")]
    BadReference(String),
    #[error(transparent)]
    Limit(#[from] crate::cgroups::LimitError),
    #[error("{0}")]
    BadNetwork(String),
    #[error(transparent)]
    Ports(#[from] crate::network::PortsError),
    #[error("bad volume '{}': use SOURCE:TARGET[:ro], SOURCE a host path or a volume name, TARGET absolute", quote(.0))]
    BadVolume(String),
    #[error("two volumes are mounted at {0}")]
    TargetTwice(String),
    #[error("a command or a value holds at most {MAX_WRITE} bytes (a value: all written on one open file); this one had {0} or more")]
    TooLong(usize),
    #[error("bad {0} '{2}': use {1}")]
    BadSetting(&'static str, String, String),
    #[error("'{}' is not true or false", quote(.0))]
    BadBool(String),
    #[error("bad build: {0}")]
    BadBuild(String),
    #[error("unknown capability '{}' (names as in capabilities(7): NET_ADMIN or CAP_NET_ADMIN)", quote(.0))]
    BadCapability(String),
}

/// How much of a hostile value a message quotes: enough to recognise it, never a 64 KiB write whole.
pub const QUOTE_MAX: usize = 200;

/// `s` as a message quotes it: at most [`QUOTE_MAX`] bytes (cut at a character boundary), and how much more
/// there was.
pub fn quote(s: &str) -> String {
    let kept = prefix(s, QUOTE_MAX);
    if kept.len() == s.len() {
        return s.to_string();
    }
    format!("{kept}...[{} more bytes]", s.len() - kept.len())
}

/// The longest prefix of `s` of at most `max` bytes that ends at a character boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    let mut cut = max.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// The text of a `volumes` file: a `SOURCE:TARGET[:ro]` line each; blank text means none.
pub fn parse_volumes(text: &str) -> Result<Vec<VolumeSpec>, ParseError> {
    let mut specs: Vec<VolumeSpec> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bad = || ParseError::BadVolume(line.chars().take(80).collect());
        let parts: Vec<&str> = line.split(':').collect();
        let (source, target, readonly) = match parts.as_slice() {
            [s, t] => (*s, *t, false),
            [s, t, "ro"] => (*s, *t, true),
            [s, t, "rw"] => (*s, *t, false),
            _ => return Err(bad()),
        };
        let source = if source.starts_with('/') {
            VolumeSource::Host(PathBuf::from(source))
        } else {
            validate_name(source).map_err(|_| bad())?;
            VolumeSource::Named(source.to_string())
        };
        let clean = target.split('/').all(|c| c != ".." && c != ".");
        if !target.starts_with('/') || target.trim_matches('/').is_empty() || !clean {
            return Err(bad());
        }
        let target = format!("/{}", target.split('/').filter(|c| !c.is_empty()).collect::<Vec<_>>().join("/"));
        if specs.iter().any(|v| v.target == target) {
            return Err(ParseError::TargetTwice(target));
        }
        specs.push(VolumeSpec { source, target, readonly });
    }
    Ok(specs)
}

/// One operation on the engine.
#[derive(Debug, Clone)]
pub enum Request {
    /// `caller` is who wrote it: the directory is read with their identity.
    Import {
        dir: PathBuf,
        changes: Vec<ConfigChange>,
        caller: Caller,
    },
    Pull {
        spec: PullSpec,
    },
    Push {
        spec: PushSpec,
    },
    Run {
        image: String,
        argv: Option<Vec<String>>,
        /// `--rm`: removed once it has exited.
        auto_remove: bool,
    },
    CreateContainer {
        name: String,
    },
    RemoveContainer {
        name: String,
    },
    RemoveImage {
        id: String,
    },
    /// `name` (normalised) moves to the image `image` names.
    Tag {
        image: String,
        name: String,
    },
    /// `name` (normalised) is taken from its image.
    Untag {
        name: String,
    },
    SetImage {
        name: String,
        image: String,
    },
    SetCmd {
        name: String,
        argv: Option<Vec<String>>,
    },
    SetEnv {
        name: String,
        env: Vec<String>,
    },
    /// A limit file's write: its value, or (blank) back to its default.
    SetLimit {
        name: String,
        kind: crate::cgroups::LimitKind,
        limit: Option<crate::cgroups::Limit>,
    },
    SetNetwork {
        name: String,
        mode: NetworkMode,
    },
    SetPorts {
        name: String,
        ports: Vec<PortMap>,
    },
    /// A container's `networks`, in order; empty: the default, `bridge`.
    SetNetworks {
        name: String,
        networks: Vec<String>,
    },
    SetAliases {
        name: String,
        aliases: Vec<String>,
    },
    /// `mkdir networks/NAME`.
    CreateNetwork {
        name: String,
    },
    /// `rmdir networks/NAME`.
    RemoveNetwork {
        name: String,
    },
    /// A write of `networks/NAME/subnet`.
    SetSubnet {
        network: String,
        subnet: crate::network::Subnet,
    },
    /// Snapshot a container's rootfs into image `image`: an existing image id (replaced) or a new name.
    Commit {
        name: String,
        image: String,
    },
    SetVolumes {
        name: String,
        volumes: Vec<VolumeSpec>,
    },
    /// `None` clears it.
    SetVolumesFrom {
        name: String,
        from: Option<String>,
    },
    CreateVolume {
        name: String,
    },
    SetPrivileged {
        name: String,
        privileged: bool,
    },
    /// Capabilities (canonical names) added to the default ones.
    SetCapAdd {
        name: String,
        caps: Vec<String>,
    },
    /// One of the settings of how a container's command runs (see [`settings`]).
    SetSetting {
        name: String,
        setting: ContainerSetting,
    },
    /// Whether the daemon removes the container once it has exited.
    SetAutoRemove {
        name: String,
        auto_remove: bool,
    },
    /// Run `argv` inside running container `name`.
    Exec {
        name: String,
        argv: Vec<String>,
        options: ExecOptions,
    },
    /// Bytes for the stdin of an `interactive` container, as they were written.
    WriteStdin {
        name: String,
        bytes: Vec<u8>,
    },
    RemoveVolume {
        name: String,
    },
    Ctl {
        name: String,
        verb: Ctl,
    },
    /// `images/build`; `caller` is who wrote it: the context and the Dockerfile are read as them.
    Build {
        spec: BuildSpec,
        caller: Caller,
    },
    /// `rmdir builds/N`.
    RemoveBuild {
        n: u32,
    },
}

/// The most bytes one command may hold, and one value: all that is written on one open file of a value file,
/// or a scratch file renamed onto one. A bigger one is refused (EFBIG) and nothing of it is applied.
pub const MAX_WRITE: usize = 64 * 1024;

impl Request {
    /// Parses the bytes of one write to `target`, made by nobody in particular: an import reads as
    /// [`Caller::nobody`]. The mount's writes go through [`Request::from_write_by`].
    pub fn from_write(target: WriteTarget, data: &[u8]) -> Result<Request, ParseError> {
        Request::from_write_by(target, data, Caller::nobody())
    }

    /// Parses the bytes of one write to `target` made by `caller`.
    pub fn from_write_by(target: WriteTarget, data: &[u8], caller: Caller) -> Result<Request, ParseError> {
        if data.len() > MAX_WRITE {
            return Err(ParseError::TooLong(data.len()));
        }
        // Any bytes: stdin is not text.
        if let WriteTarget::Stdin(name) = target {
            return Ok(Request::WriteStdin { name, bytes: data.to_vec() });
        }
        let text = text(data)?;
        Ok(match target {
            WriteTarget::Import => {
                let mut lines = text.lines().filter(|l| !l.trim().is_empty());
                let dir = parse_abs_path(lines.next().unwrap_or(""))?;
                Request::Import { dir, changes: lines.map(parse_change).collect::<Result<_, _>>()?, caller }
            }
            WriteTarget::Build => Request::Build { spec: parse_build(text)?, caller },
            WriteTarget::Pull => {
                Request::Pull { spec: PullSpec::parse(text).map_err(|e| ParseError::BadReference(e.to_string()))? }
            }
            WriteTarget::Push => {
                Request::Push { spec: PushSpec::parse(text).map_err(|e| ParseError::BadReference(e.to_string()))? }
            }
            WriteTarget::Run => {
                let mut words = split_argv(text)?.ok_or(ParseError::Empty)?;
                // `--rm` first: removed once it has exited (its auto_remove), as `docker run --rm`.
                let auto_remove = words.first().is_some_and(|w| w == "--rm");
                if auto_remove {
                    words.remove(0);
                }
                if words.is_empty() {
                    return Err(ParseError::Empty);
                }
                let image = words.remove(0);
                Request::Run { image, argv: (!words.is_empty()).then_some(words), auto_remove }
            }
            WriteTarget::Image(name) => Request::SetImage { name, image: one_word(text)? },
            WriteTarget::Cmd(name) => Request::SetCmd { name, argv: split_argv(text)? },
            WriteTarget::Env(name) => Request::SetEnv { name, env: parse_env(text)? },
            WriteTarget::Ctl(name) => Request::Ctl { name, verb: parse_ctl(text)? },
            WriteTarget::Limit(name, kind) => {
                let limit = match text.trim() {
                    "" => None,
                    value => Some(crate::cgroups::parse_limit(kind, value)?),
                };
                Request::SetLimit { name, kind, limit }
            }
            WriteTarget::Network(name) => {
                let mode: NetworkMode = one_word(text)?.parse().map_err(ParseError::BadNetwork)?;
                if let Some(joined) = mode.joined() {
                    validate_name(joined)?;
                }
                Request::SetNetwork { name, mode }
            }
            WriteTarget::Ports(name) => Request::SetPorts { name, ports: crate::network::parse_ports(text)? },
            WriteTarget::Networks(name) => Request::SetNetworks { name, networks: parse_networks(text)? },
            WriteTarget::Aliases(name) => Request::SetAliases { name, aliases: parse_aliases(text)? },
            WriteTarget::Subnet(network) => {
                Request::SetSubnet { network, subnet: one_word(text)?.parse().map_err(ParseError::BadNetwork)? }
            }
            WriteTarget::Volumes(name) => Request::SetVolumes { name, volumes: parse_volumes(text)? },
            WriteTarget::Privileged(name) => Request::SetPrivileged { name, privileged: parse_bool(text)? },
            WriteTarget::AutoRemove(name) => Request::SetAutoRemove { name, auto_remove: parse_bool(text)? },
            WriteTarget::CapAdd(name) => {
                let caps = text
                    .split_whitespace()
                    .map(|w| {
                        crate::runtime::security::parse_capability(w)
                            .map(|c| c.to_string())
                            .ok_or_else(|| ParseError::BadCapability(w.chars().take(40).collect()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Request::SetCapAdd { name, caps }
            }
            WriteTarget::Exec(name) => {
                let (options, argv) = parse_exec(text)?;
                Request::Exec { name, argv, options }
            }
            WriteTarget::Stdin(name) => Request::WriteStdin { name, bytes: data.to_vec() },
            WriteTarget::Setting(name, kind) => Request::SetSetting { name, setting: parse_setting(kind, text)? },
            WriteTarget::VolumesFrom(name) => {
                let from = if text.trim().is_empty() { None } else { Some(one_word(text)?) };
                if let Some(f) = &from {
                    validate_name(f)?;
                }
                Request::SetVolumesFrom { name, from }
            }
            WriteTarget::Commit(name) => {
                let image = one_word(text)?;
                normalize(&image).map_err(|e| ParseError::BadReference(e.to_string()))?;
                Request::Commit { name, image }
            }
            WriteTarget::Tag => {
                let words: Vec<&str> = text.split_whitespace().collect();
                let [image, name] = words.as_slice() else {
                    return Err(ParseError::BadReference(format!("expected IMAGE NAME, got '{}'", quote(text.trim()))));
                };
                Request::Tag { image: (*image).to_string(), name: tag_name(name)? }
            }
            WriteTarget::Untag => Request::Untag {
                name: normalize(&one_word(text)?).map_err(|e| ParseError::BadReference(e.to_string()))?,
            },
        })
    }

    /// The request of `mkdir volumes/NAME`.
    pub fn create_volume(name: &str) -> Result<Request, ParseError> {
        validate_name(name)?;
        Ok(Request::CreateVolume { name: name.to_string() })
    }

    /// The request of `mkdir networks/NAME`.
    pub fn create_network(name: &str) -> Result<Request, ParseError> {
        network::validate_network_name(name)?;
        Ok(Request::CreateNetwork { name: name.to_string() })
    }

    /// The request of `mkdir containers/NAME`.
    pub fn create_container(name: &str) -> Result<Request, ParseError> {
        validate_name(name)?;
        Ok(Request::CreateContainer { name: name.to_string() })
    }
}

/// A name to tag an image with, normalised: a reference with a tag, not a digest (which names content).
pub fn tag_name(text: &str) -> Result<String, ParseError> {
    let name = normalize(text).map_err(|e| ParseError::BadReference(e.to_string()))?;
    if name.contains('@') {
        return Err(ParseError::BadReference(format!("'{}': a tag, not a digest", quote(text))));
    }
    Ok(name)
}

fn text(data: &[u8]) -> Result<&str, ParseError> {
    if data.contains(&0) {
        return Err(ParseError::Nul);
    }
    std::str::from_utf8(data).map_err(|_| ParseError::NotText)
}

/// Checks a container name: `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`.
pub fn validate_name(name: &str) -> Result<(), ParseError> {
    let bad = || ParseError::BadName(name.chars().take(80).collect());
    let mut chars = name.chars();
    let first = chars.next().ok_or_else(bad)?;
    if !first.is_ascii_alphanumeric() || name.len() > 64 {
        return Err(bad());
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(bad());
    }
    Ok(())
}

/// An argv: a JSON array of strings, or shell words. Blank text means "the default" (`None`).
pub fn split_argv(text: &str) -> Result<Option<Vec<String>>, ParseError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let words: Vec<String> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| ParseError::BadArgv(format!("not a JSON array of strings: {e}")))?
    } else {
        shell_words::split(trimmed).map_err(|e| ParseError::BadArgv(e.to_string()))?
    };
    if words.is_empty() || words[0].is_empty() {
        return Err(ParseError::BadArgv("no program".into()));
    }
    Ok(Some(words))
}

/// `KEY=VALUE` lines; blank lines and `#` comments are skipped.
pub fn parse_env(text: &str) -> Result<Vec<String>, ParseError> {
    let mut env = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            return Err(ParseError::BadEnv(line.chars().take(80).collect()));
        };
        let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ParseError::BadEnv(line.chars().take(80).collect()));
        }
        env.push(line.to_string());
    }
    Ok(env)
}

/// `true` or `false` (`1`, `0`), as `privileged` and `auto_remove` take them.
pub(super) fn parse_bool(text: &str) -> Result<bool, ParseError> {
    match one_word(text)?.as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(ParseError::BadBool(other.chars().take(40).collect())),
    }
}

fn one_word(text: &str) -> Result<String, ParseError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [] => Err(ParseError::Empty),
        [w] => Ok((*w).to_string()),
        _ => Err(ParseError::NotOneWord(text.trim().chars().take(80).collect())),
    }
}

fn parse_abs_path(text: &str) -> Result<PathBuf, ParseError> {
    let path = text.trim_end_matches(['\n', '\r']);
    if path.is_empty() {
        return Err(ParseError::Empty);
    }
    if !path.starts_with('/') {
        return Err(ParseError::NotAbsolute(path.chars().take(200).collect()));
    }
    Ok(PathBuf::from(path))
}

/// Merges `overrides` (`KEY=VALUE`) over `base`: a key in both takes the override's value, in base's place
/// (the first one's, if base has it twice). Linear: an env of thousands of lines is rendered at every read.
pub fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
    let mut out: Vec<String> = base.to_vec();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, kv) in out.iter().enumerate() {
        at.entry(key(kv)).or_insert(i);
    }
    for kv in overrides {
        match at.get(&key(kv)) {
            Some(&i) => out[i] = kv.clone(),
            None => {
                at.insert(key(kv), out.len());
                out.push(kv.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
