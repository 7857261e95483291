//! The config changes `images/import` takes after its directory, as `docker import --change` does: `CMD`,
//! `ENTRYPOINT`, `ENV`, `WORKDIR`, `USER`, `STOPSIGNAL`, `EXPOSE`, `LABEL`, `VOLUME`.

use super::{parse_env, parse_setting, parse_signal, split_argv, ContainerSetting, ParseError, SettingKind};

/// A change to an imported image's config, Docker's `import --change`: the lines after the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Env(String),
    WorkingDir(String),
    User(String),
    StopSignal(String),
    /// `PORT/PROTO`.
    Expose(String),
    Label(String, String),
    Volume(String),
}

/// `CMD ["a", "b"]` (or shell form `CMD a b`, run by `/bin/sh -c`), `ENTRYPOINT` likewise,
/// `ENV KEY=VALUE`, `WORKDIR /PATH`, `USER U[:G]`, `STOPSIGNAL SIG`, `EXPOSE PORT[/PROTO]`, `LABEL K=V`, `VOLUME /PATH`.
pub fn parse_change(line: &str) -> Result<ConfigChange, ParseError> {
    let bad = || ParseError::BadChange(line.chars().take(80).collect());
    let (word, rest) = line.trim().split_once(char::is_whitespace).ok_or_else(bad)?;
    let rest = rest.trim();
    let argv = || -> Result<Vec<String>, ParseError> {
        if rest.starts_with('[') {
            split_argv(rest)?.ok_or_else(bad)
        } else {
            Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
        }
    };
    match word.to_ascii_uppercase().as_str() {
        "CMD" => Ok(ConfigChange::Cmd(argv()?)),
        "ENTRYPOINT" => Ok(ConfigChange::Entrypoint(argv()?)),
        "ENV" => {
            let mut env = parse_env(rest)?;
            (env.len() == 1).then(|| ConfigChange::Env(env.remove(0))).ok_or_else(bad)
        }
        "WORKDIR" if rest.starts_with('/') => Ok(ConfigChange::WorkingDir(rest.to_string())),
        "USER" => match parse_setting(SettingKind::User, rest) {
            Ok(ContainerSetting::User(Some(user))) => Ok(ConfigChange::User(user)),
            _ => Err(bad()),
        },
        "STOPSIGNAL" => parse_signal(rest).map(|s| ConfigChange::StopSignal(s.as_str().to_string())).map_err(|_| bad()),
        "EXPOSE" => {
            let (port, proto) = rest.split_once('/').unwrap_or((rest, "tcp"));
            match (port.parse::<u16>(), proto) {
                (Ok(p), "tcp" | "udp" | "sctp") if p > 0 => Ok(ConfigChange::Expose(format!("{p}/{proto}"))),
                _ => Err(bad()),
            }
        }
        "LABEL" => match rest.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                Ok(ConfigChange::Label(k.to_string(), v.to_string()))
            }
            _ => Err(bad()),
        },
        "VOLUME" if rest.starts_with('/') && !rest.contains(char::is_whitespace) => {
            Ok(ConfigChange::Volume(rest.to_string()))
        }
        _ => Err(bad()),
    }
}
