//! Which file of the tree a write goes to, and how that file takes what is written: a command file takes
//! each write as one command, a value file takes everything written on one open file as its value (see
//! docs/filesystem.md, "Writing").

/// Which control file a write went to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteTarget {
    Import,
    /// `images/build`: a build line (see [`super::BuildSpec`]).
    Build,
    Pull,
    Push,
    /// `images/tag`: `IMAGE NAME`.
    Tag,
    /// `images/untag`: `NAME`.
    Untag,
    Run,
    Image(String),
    Cmd(String),
    Env(String),
    Ctl(String),
    /// A limit file (`cpu.weight`, `memory.max`, `io.max`, ...) of a container.
    Limit(String, crate::cgroups::LimitKind),
    Network(String),
    /// A container's `networks`: network names, one per line.
    Networks(String),
    /// A container's `aliases`: names, one per line.
    Aliases(String),
    /// `networks/NAME/subnet`: a CIDR.
    Subnet(String),
    Ports(String),
    Commit(String),
    Volumes(String),
    VolumesFrom(String),
    Exec(String),
    Privileged(String),
    CapAdd(String),
    /// `entrypoint`, `user`, `workdir`, `hostname`, `stop_signal` or `labels` of a container.
    Setting(String, super::SettingKind),
    /// `auto_remove`: `true` or `false`.
    AutoRemove(String),
    /// `stdin`: bytes for an interactive container's stdin.
    Stdin(String),
}

/// How a file takes its writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// One write is one command (`ctl`, `exec`, `commit`, `stdin`, `containers/run`, `images/import|pull|push|tag|untag`):
    /// two writes on one open file are two commands, and `O_APPEND` changes nothing.
    Command,
    /// The value is everything written on one open file (`O_APPEND`: added to the current value), applied
    /// at each write; a file saved by rename onto it is one whole value.
    Value,
}

impl WriteTarget {
    /// Whether this file takes commands or a value: the one place that says so.
    pub fn kind(&self) -> WriteKind {
        match self {
            WriteTarget::Import
            | WriteTarget::Build
            | WriteTarget::Pull
            | WriteTarget::Push
            | WriteTarget::Tag
            | WriteTarget::Untag
            | WriteTarget::Run
            | WriteTarget::Ctl(_)
            | WriteTarget::Commit(_)
            | WriteTarget::Exec(_)
            | WriteTarget::Stdin(_) => WriteKind::Command,
            WriteTarget::Image(_)
            | WriteTarget::Cmd(_)
            | WriteTarget::Env(_)
            | WriteTarget::Limit(..)
            | WriteTarget::Network(_)
            | WriteTarget::Networks(_)
            | WriteTarget::Aliases(_)
            | WriteTarget::Subnet(_)
            | WriteTarget::Ports(_)
            | WriteTarget::Volumes(_)
            | WriteTarget::VolumesFrom(_)
            | WriteTarget::Privileged(_)
            | WriteTarget::CapAdd(_)
            | WriteTarget::Setting(..)
            | WriteTarget::AutoRemove(_) => WriteKind::Value,
        }
    }
}

/// Every control file a write can go to, for container `name` where the file is a container's: for fuzzing
/// and for tests that go over all of them.
pub fn all_write_targets(name: &str) -> Vec<WriteTarget> {
    let n = || name.to_string();
    let mut all = vec![
        WriteTarget::Import,
        WriteTarget::Build,
        WriteTarget::Pull,
        WriteTarget::Push,
        WriteTarget::Tag,
        WriteTarget::Untag,
        WriteTarget::Run,
        WriteTarget::Image(n()),
        WriteTarget::Cmd(n()),
        WriteTarget::Env(n()),
        WriteTarget::Ctl(n()),
        WriteTarget::Network(n()),
        WriteTarget::Networks(n()),
        WriteTarget::Aliases(n()),
        WriteTarget::Subnet(n()),
        WriteTarget::Ports(n()),
        WriteTarget::Commit(n()),
        WriteTarget::Volumes(n()),
        WriteTarget::VolumesFrom(n()),
        WriteTarget::Exec(n()),
        WriteTarget::Privileged(n()),
        WriteTarget::CapAdd(n()),
        WriteTarget::AutoRemove(n()),
        WriteTarget::Stdin(n()),
    ];
    all.extend(crate::cgroups::LimitKind::ALL.into_iter().map(|k| WriteTarget::Limit(n(), k)));
    all.extend(super::SettingKind::ALL.into_iter().map(|k| WriteTarget::Setting(n(), k)));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_values() {
        let kinds: Vec<(WriteTarget, WriteKind)> =
            all_write_targets("c").into_iter().map(|t| (t.clone(), t.kind())).collect();
        let commands: Vec<&WriteTarget> =
            kinds.iter().filter(|(_, k)| *k == WriteKind::Command).map(|(t, _)| t).collect();
        assert_eq!(commands.len(), 11, "{commands:?}");
        assert_eq!(WriteTarget::Ctl("c".into()).kind(), WriteKind::Command);
        assert_eq!(WriteTarget::Env("c".into()).kind(), WriteKind::Value);
        assert_eq!(WriteTarget::Limit("c".into(), crate::cgroups::LimitKind::PidsMax).kind(), WriteKind::Value);
    }
}
