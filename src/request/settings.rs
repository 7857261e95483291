//! The container settings that say how its command runs, each a value file (before start): `entrypoint`,
//! `user`, `workdir`, `hostname`, `stop_signal`, `labels`, `tty`, `interactive`, `restart`, `init`,
//! `extra_hosts` and `dns`. Parsed once into a validated [`ContainerSetting`]; blank text means "the
//! image's" (or the default) for all but `labels`, `extra_hosts` and `dns` (blank: none).

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{quote, split_argv, ParseError};
use crate::model::RestartPolicy;
use crate::network::etc::{parse_dns, parse_extra_hosts, ExtraHost};

/// Which setting a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SettingKind {
    Entrypoint,
    User,
    Workdir,
    Hostname,
    StopSignal,
    Labels,
    /// Whether the command's stdio is a terminal the monitor holds (`docker run -t`).
    Tty,
    /// Whether the command's stdin stays open to writes (`docker run -i`).
    Interactive,
    /// What brings it back after it ends (`docker run --restart`).
    Restart,
    /// Whether pid 1 is a small init that runs the command (`docker run --init`).
    Init,
    /// `NAME:IP` lines for its `/etc/hosts` (`docker run --add-host`).
    ExtraHosts,
    /// The servers of its `/etc/resolv.conf` (`docker run --dns`).
    Dns,
}

impl SettingKind {
    pub const ALL: [SettingKind; 12] = [
        SettingKind::Entrypoint,
        SettingKind::User,
        SettingKind::Workdir,
        SettingKind::Hostname,
        SettingKind::StopSignal,
        SettingKind::Labels,
        SettingKind::Tty,
        SettingKind::Interactive,
        SettingKind::Restart,
        SettingKind::Init,
        SettingKind::ExtraHosts,
        SettingKind::Dns,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            SettingKind::Entrypoint => "entrypoint",
            SettingKind::User => "user",
            SettingKind::Workdir => "workdir",
            SettingKind::Hostname => "hostname",
            SettingKind::StopSignal => "stop_signal",
            SettingKind::Labels => "labels",
            SettingKind::Tty => "tty",
            SettingKind::Interactive => "interactive",
            SettingKind::Restart => "restart",
            SettingKind::Init => "init",
            SettingKind::ExtraHosts => "extra_hosts",
            SettingKind::Dns => "dns",
        }
    }
}

/// A setting's new value; `None` is the image's (or the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerSetting {
    Entrypoint(Option<Vec<String>>),
    User(Option<String>),
    Workdir(Option<String>),
    Hostname(Option<String>),
    /// A signal's canonical name (`SIGQUIT`).
    StopSignal(Option<String>),
    Labels(BTreeMap<String, String>),
    Tty(bool),
    Interactive(bool),
    Restart(RestartPolicy),
    Init(bool),
    ExtraHosts(Vec<ExtraHost>),
    Dns(Vec<IpAddr>),
}

/// The longest user, working directory or label line taken.
const MAX_LINE: usize = 4096;

/// Parses what was written to the `kind` file.
pub fn parse_setting(kind: SettingKind, text: &str) -> Result<ContainerSetting, ParseError> {
    let one = text.trim();
    let blank = one.is_empty();
    let bad = |what: &str| ParseError::BadSetting(kind.file_name(), what.to_string(), quote(one));
    let lines = matches!(kind, SettingKind::Labels | SettingKind::ExtraHosts | SettingKind::Dns);
    if !lines && (one.contains('\n') || one.len() > MAX_LINE) {
        return Err(bad("one line"));
    }
    Ok(match kind {
        SettingKind::Entrypoint => ContainerSetting::Entrypoint(split_argv(text)?),
        SettingKind::User => {
            // A number is an id up to 2^31 - 1 (runc's bound); a name is checked in the container's passwd.
            let part_ok = |p: &str| {
                !p.is_empty()
                    && p.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                    && (p.parse::<u64>().map_or(!p.chars().all(|c| c.is_ascii_digit()), |n| n <= i32::MAX as u64))
            };
            let valid = match one.split_once(':') {
                Some((u, g)) => part_ok(u) && part_ok(g),
                None => part_ok(one),
            };
            if !blank && !valid {
                return Err(bad("NAME, UID, NAME:GROUP or UID:GID"));
            }
            ContainerSetting::User((!blank).then(|| one.to_string()))
        }
        SettingKind::Workdir => {
            if !blank && !one.starts_with('/') {
                return Err(bad("an absolute path"));
            }
            ContainerSetting::Workdir((!blank).then(|| one.to_string()))
        }
        SettingKind::Hostname => {
            // What sethostname(2) takes (64 bytes) and a resolver accepts: letters, digits, '-' and '.'.
            let valid = one.len() <= 64
                && !one.starts_with(['-', '.'])
                && one.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !blank && !valid {
                return Err(bad("up to 64 letters, digits, '-' and '.'"));
            }
            ContainerSetting::Hostname((!blank).then(|| one.to_string()))
        }
        SettingKind::StopSignal => {
            let signal = match blank {
                true => None,
                false => Some(
                    super::parse_signal(one)
                        .map_err(|_| bad("a signal's name or number (SIGQUIT, QUIT, 3)"))?
                        .as_str()
                        .to_string(),
                ),
            };
            ContainerSetting::StopSignal(signal)
        }
        SettingKind::Labels => ContainerSetting::Labels(parse_labels(text)?),
        SettingKind::ExtraHosts => ContainerSetting::ExtraHosts(parse_extra_hosts(text).map_err(|line| {
            ParseError::BadSetting("extra_hosts line", "NAME:IP (IPv4 or IPv6)".into(), quote(&line))
        })?),
        SettingKind::Dns => ContainerSetting::Dns(
            parse_dns(text)
                .map_err(|line| ParseError::BadSetting("dns line", "a server's IP address".into(), quote(&line)))?,
        ),
        SettingKind::Tty => ContainerSetting::Tty(super::parse_bool(text)?),
        SettingKind::Interactive => ContainerSetting::Interactive(super::parse_bool(text)?),
        SettingKind::Init => ContainerSetting::Init(super::parse_bool(text)?),
        SettingKind::Restart => ContainerSetting::Restart(
            RestartPolicy::parse(one).map_err(|_| bad("no, on-failure[:MAX], always or unless-stopped"))?,
        ),
    })
}

/// `KEY=VALUE` lines (blank lines and `#` comments skipped); a key is non-empty and has no blank.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, ParseError> {
    let mut labels = BTreeMap::new();
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let valid = line.len() <= MAX_LINE;
        match line.split_once('=') {
            Some((key, value)) if valid && !key.is_empty() && !key.contains(char::is_whitespace) => {
                labels.insert(key.to_string(), value.to_string());
            }
            _ => return Err(ParseError::BadSetting("labels", "KEY=VALUE lines".into(), quote(line))),
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: SettingKind, text: &str) -> Result<ContainerSetting, ParseError> {
        parse_setting(kind, text)
    }

    #[test]
    fn each_setting_takes_its_forms_and_blank_is_the_images() {
        use ContainerSetting as S;
        assert_eq!(
            parse(SettingKind::Entrypoint, "sh -c\n").unwrap(),
            S::Entrypoint(Some(vec!["sh".into(), "-c".into()]))
        );
        assert_eq!(parse(SettingKind::Entrypoint, "\n").unwrap(), S::Entrypoint(None));
        for user in ["redis", "999", "redis:redis", "1000:1000", "www-data"] {
            assert_eq!(parse(SettingKind::User, &format!("{user}\n")).unwrap(), S::User(Some(user.into())));
        }
        assert_eq!(parse(SettingKind::User, "").unwrap(), S::User(None));
        assert_eq!(parse(SettingKind::Workdir, "/srv/app\n").unwrap(), S::Workdir(Some("/srv/app".into())));
        assert_eq!(parse(SettingKind::Hostname, "web-1.local\n").unwrap(), S::Hostname(Some("web-1.local".into())));
        assert_eq!(parse(SettingKind::StopSignal, "quit\n").unwrap(), S::StopSignal(Some("SIGQUIT".into())));
        assert_eq!(parse(SettingKind::StopSignal, "9").unwrap(), S::StopSignal(Some("SIGKILL".into())));
        let labels = parse(SettingKind::Labels, "a=1\n# c\n\nb.c=x=y\n").unwrap();
        assert_eq!(labels, S::Labels([("a".into(), "1".into()), ("b.c".into(), "x=y".into())].into()));
        assert_eq!(parse(SettingKind::Tty, "true\n").unwrap(), S::Tty(true));
        assert_eq!(parse(SettingKind::Interactive, "0").unwrap(), S::Interactive(false));
        assert_eq!(
            parse(SettingKind::Restart, "on-failure:2\n").unwrap(),
            S::Restart(RestartPolicy::OnFailure { max: Some(2) })
        );
        assert_eq!(parse(SettingKind::Restart, "\n").unwrap(), S::Restart(RestartPolicy::No));
        let S::ExtraHosts(hosts) = parse(SettingKind::ExtraHosts, "db:10.1.2.3\nv6:fd00::1\n").unwrap() else {
            panic!("not extra_hosts")
        };
        assert_eq!(hosts.len(), 2);
        assert_eq!(
            parse(SettingKind::Dns, "10.0.0.53\n::1\n").unwrap(),
            S::Dns(vec!["10.0.0.53".parse().unwrap(), "::1".parse().unwrap()])
        );
        assert_eq!(parse(SettingKind::Dns, "").unwrap(), S::Dns(Vec::new()));
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        for (kind, text) in [
            (SettingKind::User, "root;rm"),
            (SettingKind::User, "a:b:c"),
            (SettingKind::User, ":x"),
            (SettingKind::User, "a\nb"),
            (SettingKind::User, "4294967295"),
            (SettingKind::User, "0:2147483648"),
            (SettingKind::Workdir, "srv"),
            (SettingKind::Hostname, "-x"),
            (SettingKind::Hostname, &"h".repeat(65)),
            (SettingKind::Hostname, "a b"),
            (SettingKind::StopSignal, "SIGNOPE"),
            (SettingKind::Labels, "novalue"),
            (SettingKind::Labels, "=x"),
            (SettingKind::Labels, "a b=c"),
            (SettingKind::Entrypoint, "'open"),
            (SettingKind::Tty, "yes"),
            (SettingKind::Interactive, ""),
            (SettingKind::Restart, "sometimes"),
            (SettingKind::ExtraHosts, "db:10.1.2.3\ndb 10.1.2.4"),
            (SettingKind::Dns, "10.0.0.53\nresolver"),
        ] {
            assert!(parse(kind, text).is_err(), "{kind:?} took {text:?}");
        }
        let e = parse(SettingKind::User, "root;rm").unwrap_err().to_string();
        assert!(e.contains("user") && e.contains("NAME:GROUP"), "{e}");
        let e = parse(SettingKind::ExtraHosts, "db:10.1.2.3\nweb:10.1.2\n").unwrap_err().to_string();
        assert!(e.contains("'web:10.1.2'") && !e.contains("db:"), "names the bad line: {e}");
    }
}
