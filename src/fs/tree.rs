//! The shape of the control filesystem: which names exist where, what kind of file each is, and its mode.
//! Pure naming: whether an image or container exists is the engine's to say.

use super::render::{BuildField, ContainerField, ExecField, ImageField, NetworkField};
use crate::cgroups::{LimitKind, StatFile};
use crate::logs::LogView;
use crate::request::{SettingKind, WriteTarget};

/// A file or directory of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    Root,
    Readme,
    Errors,
    /// `events` at the root: the daemon's event stream, read from its segments as a log is (see
    /// [`crate::engine::EventType`]).
    Events,
    Images,
    Import,
    Pull,
    Push,
    Pulls,
    Tag,
    Untag,
    /// `images/by-name/` (`""`) and each directory below it: a name's `/`-separated parts but its last.
    ByName(String),
    /// `images/by-name/NAME`: a symlink to the image directory of the image named NAME (normalised: its last
    /// part, `REPO:TAG` or `REPO@DIGEST`, is the link's name).
    NameLink(String),
    Image(String),
    ImageFile(String, ImageFile),
    /// `images/build`: write a build line, read back the image id on the same open file.
    Build,
    /// `builds/`, each build in it by number, and its files.
    Builds,
    BuildDir(u32),
    BuildFile(u32, BuildFile),
    Containers,
    Run,
    Container(String),
    ContainerFile(String, ContainerFile),
    /// `containers/NAME/execs/`, and each exec in it by number.
    Execs(String),
    Exec(String, u32),
    ExecFile(String, u32, ExecFile),
    Volumes,
    Volume(String),
    /// `volumes/NAME/data`: a symlink to the volume's content.
    VolumeData(String),
    /// `networks/`, each network in it by name, and its files.
    Networks,
    Network(String),
    NetworkFile(String, NetworkField),
    /// A scratch file made by `open(O_CREAT)` in a container's directory or the root, by its number: it lives
    /// in the daemon's memory until renamed onto a value file or closed for the last time (see
    /// [`super::values`]). Never listed.
    Scratch(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFile {
    Field(ImageField),
    Rootfs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildFile {
    Field(BuildField),
    /// `logs`: every step's header and output, read as a container's `logs` is.
    Logs,
}

/// The size a request file reports (as sysfs's files report a page): what its open's read gives back is
/// that open's own (see [`Node::is_request`]), and the kernel serves writes to it from many writers at once
/// only within the size it knows.
pub const REQUEST_FILE_SIZE: u64 = 4096;

const BUILD_FILES: [(&str, BuildFile); 9] = [
    ("status", BuildFile::Field(BuildField::Status)),
    ("logs", BuildFile::Logs),
    ("image", BuildFile::Field(BuildField::Image)),
    ("dockerfile", BuildFile::Field(BuildField::Dockerfile)),
    ("context", BuildFile::Field(BuildField::Context)),
    ("tags", BuildFile::Field(BuildField::Tags)),
    ("started_at", BuildFile::Field(BuildField::StartedAt)),
    ("finished_at", BuildFile::Field(BuildField::FinishedAt)),
    ("error", BuildFile::Field(BuildField::Error)),
];

const NETWORK_FILES: [(&str, NetworkField); 4] = [
    ("subnet", NetworkField::Subnet),
    ("gateway", NetworkField::Gateway),
    ("bridge", NetworkField::Bridge),
    ("containers", NetworkField::Containers),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecFile {
    Field(ExecField),
    /// `logs`, `stdout`, `stderr`, `log_index`: read from the exec's log on disk (see [`super::logs`]).
    Log(LogView),
    /// A symlink to the exec's attach socket.
    Attach,
    /// A read waits until it has exited, then gives its exit code (see [`super::waits`]).
    Wait,
}

const EXEC_FILES: [(&str, ExecFile); 12] = [
    ("cmd", ExecFile::Field(ExecField::Cmd)),
    ("status", ExecFile::Field(ExecField::Status)),
    ("exit_code", ExecFile::Field(ExecField::ExitCode)),
    ("pid", ExecFile::Field(ExecField::Pid)),
    ("started_at", ExecFile::Field(ExecField::StartedAt)),
    ("finished_at", ExecFile::Field(ExecField::FinishedAt)),
    ("logs", ExecFile::Log(LogView::Logs)),
    ("stdout", ExecFile::Log(LogView::Stdout)),
    ("stderr", ExecFile::Log(LogView::Stderr)),
    ("log_index", ExecFile::Log(LogView::Index)),
    ("attach", ExecFile::Attach),
    ("wait", ExecFile::Wait),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerFile {
    Field(ContainerField),
    Ctl,
    /// Write an image id or a new image name; read back the image id on the same open file.
    Commit,
    /// Write a command line; read back the exec's number on the same open file.
    Exec,
    /// `logs`, `stdout`, `stderr`, `log_index`: read from the container's log on disk (see [`super::logs`]).
    Log(LogView),
    Rootfs,
    /// A symlink to the monitor's attach socket (see docs/attach.md).
    Attach,
    /// Write bytes for the command's stdin (when `interactive`).
    Stdin,
    /// A read waits until it is not running, then gives its exit code (see [`super::waits`]).
    Wait,
}

/// How a node is read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A file; `writable` says whether it takes writes.
    File {
        writable: bool,
        readable: bool,
    },
    Symlink,
}

const IMAGE_FILES: [(&str, ImageFile); 9] = [
    ("source", ImageFile::Field(ImageField::Source)),
    ("names", ImageFile::Field(ImageField::Names)),
    ("created", ImageFile::Field(ImageField::Created)),
    ("size", ImageFile::Field(ImageField::Size)),
    ("digest", ImageFile::Field(ImageField::Digest)),
    ("layers", ImageFile::Field(ImageField::Layers)),
    ("config.json", ImageFile::Field(ImageField::Config)),
    ("inspect.json", ImageFile::Field(ImageField::Inspect)),
    ("rootfs", ImageFile::Rootfs),
];

const CONTAINER_FILES: [(&str, ContainerFile); 69] = [
    ("cpu.weight", ContainerFile::Field(ContainerField::Limit(LimitKind::CpuWeight))),
    ("cpu.max", ContainerFile::Field(ContainerField::Limit(LimitKind::CpuMax))),
    ("memory.max", ContainerFile::Field(ContainerField::Limit(LimitKind::MemoryMax))),
    ("pids.max", ContainerFile::Field(ContainerField::Limit(LimitKind::PidsMax))),
    ("memory.high", ContainerFile::Field(ContainerField::Limit(LimitKind::MemoryHigh))),
    ("memory.swap.max", ContainerFile::Field(ContainerField::Limit(LimitKind::MemorySwapMax))),
    ("io.weight", ContainerFile::Field(ContainerField::Limit(LimitKind::IoWeight))),
    ("io.max", ContainerFile::Field(ContainerField::Limit(LimitKind::IoMax))),
    ("cpuset.cpus", ContainerFile::Field(ContainerField::Limit(LimitKind::CpusetCpus))),
    ("cpuset.mems", ContainerFile::Field(ContainerField::Limit(LimitKind::CpusetMems))),
    ("memory.stat", ContainerFile::Field(ContainerField::Stat(StatFile::MemoryStat))),
    ("memory.events", ContainerFile::Field(ContainerField::Stat(StatFile::MemoryEvents))),
    ("io.stat", ContainerFile::Field(ContainerField::Stat(StatFile::IoStat))),
    ("cpu.stat", ContainerFile::Field(ContainerField::Stat(StatFile::CpuStat))),
    ("cpu.pressure", ContainerFile::Field(ContainerField::Stat(StatFile::CpuPressure))),
    ("memory.pressure", ContainerFile::Field(ContainerField::Stat(StatFile::MemoryPressure))),
    ("io.pressure", ContainerFile::Field(ContainerField::Stat(StatFile::IoPressure))),
    ("memory.current", ContainerFile::Field(ContainerField::MemoryCurrent)),
    ("memory.peak", ContainerFile::Field(ContainerField::MemoryPeak)),
    ("cpu.usage_usec", ContainerFile::Field(ContainerField::CpuUsage)),
    ("pids.current", ContainerFile::Field(ContainerField::PidsCurrent)),
    ("events", ContainerFile::Field(ContainerField::Events)),
    ("network", ContainerFile::Field(ContainerField::Network)),
    ("ports", ContainerFile::Field(ContainerField::Ports)),
    ("ip", ContainerFile::Field(ContainerField::Ip)),
    ("networks", ContainerFile::Field(ContainerField::Networks)),
    ("aliases", ContainerFile::Field(ContainerField::Aliases)),
    ("extra_hosts", ContainerFile::Field(ContainerField::Setting(SettingKind::ExtraHosts))),
    ("dns", ContainerFile::Field(ContainerField::Setting(SettingKind::Dns))),
    ("volumes", ContainerFile::Field(ContainerField::Volumes)),
    ("volumes-from", ContainerFile::Field(ContainerField::VolumesFrom)),
    ("privileged", ContainerFile::Field(ContainerField::Privileged)),
    ("cap_add", ContainerFile::Field(ContainerField::CapAdd)),
    ("auto_remove", ContainerFile::Field(ContainerField::AutoRemove)),
    ("image", ContainerFile::Field(ContainerField::Image)),
    ("cmd", ContainerFile::Field(ContainerField::Cmd)),
    ("env", ContainerFile::Field(ContainerField::Env)),
    ("entrypoint", ContainerFile::Field(ContainerField::Setting(SettingKind::Entrypoint))),
    ("user", ContainerFile::Field(ContainerField::Setting(SettingKind::User))),
    ("workdir", ContainerFile::Field(ContainerField::Setting(SettingKind::Workdir))),
    ("hostname", ContainerFile::Field(ContainerField::Setting(SettingKind::Hostname))),
    ("stop_signal", ContainerFile::Field(ContainerField::Setting(SettingKind::StopSignal))),
    ("labels", ContainerFile::Field(ContainerField::Setting(SettingKind::Labels))),
    ("tty", ContainerFile::Field(ContainerField::Setting(SettingKind::Tty))),
    ("interactive", ContainerFile::Field(ContainerField::Setting(SettingKind::Interactive))),
    ("restart", ContainerFile::Field(ContainerField::Setting(SettingKind::Restart))),
    ("restart_count", ContainerFile::Field(ContainerField::RestartCount)),
    ("init", ContainerFile::Field(ContainerField::Setting(SettingKind::Init))),
    ("exposed_ports", ContainerFile::Field(ContainerField::ExposedPorts)),
    ("healthcheck", ContainerFile::Field(ContainerField::Healthcheck)),
    ("ctl", ContainerFile::Ctl),
    ("commit", ContainerFile::Commit),
    ("exec", ContainerFile::Exec),
    ("status", ContainerFile::Field(ContainerField::Status)),
    ("exit_code", ContainerFile::Field(ContainerField::ExitCode)),
    ("pid", ContainerFile::Field(ContainerField::Pid)),
    ("created", ContainerFile::Field(ContainerField::Created)),
    ("started_at", ContainerFile::Field(ContainerField::StartedAt)),
    ("finished_at", ContainerFile::Field(ContainerField::FinishedAt)),
    ("logs", ContainerFile::Log(LogView::Logs)),
    ("stdout", ContainerFile::Log(LogView::Stdout)),
    ("stderr", ContainerFile::Log(LogView::Stderr)),
    ("log_index", ContainerFile::Log(LogView::Index)),
    ("error", ContainerFile::Field(ContainerField::Error)),
    ("inspect.json", ContainerFile::Field(ContainerField::Inspect)),
    ("rootfs", ContainerFile::Rootfs),
    ("attach", ContainerFile::Attach),
    ("stdin", ContainerFile::Stdin),
    ("wait", ContainerFile::Wait),
];

impl Node {
    /// The node called `name` inside this one, by name alone.
    pub fn child(&self, name: &str) -> Option<Node> {
        Some(match (self, name) {
            (Node::Root, "README") => Node::Readme,
            (Node::Root, "errors") => Node::Errors,
            (Node::Root, "events") => Node::Events,
            (Node::Root, "images") => Node::Images,
            (Node::Root, "containers") => Node::Containers,
            (Node::Root, "volumes") => Node::Volumes,
            (Node::Root, "builds") => Node::Builds,
            (Node::Root, "networks") => Node::Networks,
            (Node::Networks, n) => Node::Network(n.to_string()),
            (Node::Network(n), f) => Node::NetworkFile(n.clone(), NETWORK_FILES.iter().find(|(name, _)| *name == f)?.1),
            (Node::Builds, n) => Node::BuildDir(n.parse().ok().filter(|id: &u32| id.to_string() == n)?),
            (Node::BuildDir(n), f) => Node::BuildFile(*n, BUILD_FILES.iter().find(|(name, _)| *name == f)?.1),
            (Node::Images, "build") => Node::Build,
            (Node::Volumes, n) => Node::Volume(n.to_string()),
            (Node::Volume(v), "data") => Node::VolumeData(v.clone()),
            (Node::Images, "import") => Node::Import,
            (Node::Images, "pull") => Node::Pull,
            (Node::Images, "push") => Node::Push,
            (Node::Images, "pulls") => Node::Pulls,
            (Node::Images, "tag") => Node::Tag,
            (Node::Images, "untag") => Node::Untag,
            (Node::Images, "by-name") => Node::ByName(String::new()),
            // Below the top, a part with ':' or '@' ends a name (a registry's port is only in the top's).
            (Node::ByName(dir), part) if !dir.is_empty() && part.contains([':', '@']) => {
                Node::NameLink(format!("{dir}/{part}"))
            }
            (Node::ByName(dir), part) if dir.is_empty() => Node::ByName(part.to_string()),
            (Node::ByName(dir), part) => Node::ByName(format!("{dir}/{part}")),
            (Node::Images, id) => Node::Image(id.to_string()),
            (Node::Containers, "run") => Node::Run,
            (Node::Containers, n) => Node::Container(n.to_string()),
            (Node::Image(id), f) => {
                let file = IMAGE_FILES.iter().find(|(n, _)| *n == f)?.1;
                Node::ImageFile(id.clone(), file)
            }
            (Node::Container(c), "execs") => Node::Execs(c.clone()),
            (Node::Execs(c), n) => {
                // Only canonical numbers: "01" is not exec 1.
                let id: u32 = n.parse().ok().filter(|id: &u32| id.to_string() == n)?;
                Node::Exec(c.clone(), id)
            }
            (Node::Exec(c, id), f) => {
                let file = EXEC_FILES.iter().find(|(n, _)| *n == f)?.1;
                Node::ExecFile(c.clone(), *id, file)
            }
            (Node::Container(c), f) => {
                let file = CONTAINER_FILES.iter().find(|(n, _)| *n == f)?.1;
                Node::ContainerFile(c.clone(), file)
            }
            _ => return None,
        })
    }

    /// The fixed children of this node; images and containers are listed by the engine.
    pub fn fixed_children(&self) -> Vec<(&'static str, Node)> {
        let named = |names: &[&'static str]| names.iter().filter_map(|n| Some((*n, self.child(n)?))).collect();
        match self {
            Node::Root => {
                named(&["README", "errors", "events", "images", "containers", "volumes", "networks", "builds"])
            }
            Node::Network(_) => named(&NETWORK_FILES.map(|(n, _)| n)),
            Node::BuildDir(_) => named(&BUILD_FILES.map(|(n, _)| n)),
            Node::Volume(_) => named(&["data"]),
            Node::Images => named(&["import", "build", "pull", "push", "pulls", "tag", "untag", "by-name"]),
            Node::Containers => named(&["run"]),
            Node::Image(_) => named(&IMAGE_FILES.map(|(n, _)| n)),
            Node::Container(_) => {
                let mut files: Vec<(&'static str, Node)> = named(&CONTAINER_FILES.map(|(n, _)| n));
                files.extend(self.child("execs").map(|n| ("execs", n)));
                files
            }
            Node::Exec(..) => named(&EXEC_FILES.map(|(n, _)| n)),
            _ => Vec::new(),
        }
    }

    pub fn kind(&self) -> Kind {
        let file = |writable, readable| Kind::File { writable, readable };
        match self {
            Node::Root
            | Node::Images
            | Node::Containers
            | Node::Image(_)
            | Node::ByName(_)
            | Node::Container(_)
            | Node::Volumes
            | Node::Volume(_)
            | Node::Networks
            | Node::Network(_)
            | Node::Execs(_)
            | Node::Builds
            | Node::BuildDir(_)
            | Node::Exec(..) => Kind::Dir,
            Node::ImageFile(_, ImageFile::Rootfs)
            | Node::ContainerFile(_, ContainerFile::Rootfs | ContainerFile::Attach)
            | Node::ExecFile(_, _, ExecFile::Attach)
            | Node::VolumeData(_)
            | Node::NameLink(_) => Kind::Symlink,
            Node::NetworkFile(_, NetworkField::Subnet) => file(true, true),
            Node::Readme
            | Node::Errors
            | Node::Events
            | Node::Pulls
            | Node::ImageFile(..)
            | Node::ExecFile(..)
            | Node::NetworkFile(..)
            | Node::BuildFile(..) => file(false, true),
            Node::Import
            | Node::Build
            | Node::Pull
            | Node::Push
            | Node::Tag
            | Node::Untag
            | Node::Run
            | Node::Scratch(_) => file(true, true),
            Node::ContainerFile(_, f) => match f {
                ContainerFile::Field(
                    ContainerField::Image
                    | ContainerField::Cmd
                    | ContainerField::Env
                    | ContainerField::Limit(_)
                    | ContainerField::Network
                    | ContainerField::Networks
                    | ContainerField::Aliases
                    | ContainerField::Ports
                    | ContainerField::Volumes
                    | ContainerField::VolumesFrom
                    | ContainerField::Privileged
                    | ContainerField::CapAdd
                    | ContainerField::Setting(_)
                    | ContainerField::AutoRemove,
                )
                | ContainerFile::Ctl
                | ContainerFile::Commit
                | ContainerFile::Exec => file(true, true),
                ContainerFile::Stdin => file(true, false),
                _ => file(false, true),
            },
        }
    }

    /// Permission bits shown by `ls -l`.
    pub fn perm(&self) -> u16 {
        match (self, self.kind()) {
            (Node::ByName(_), _) => 0o555,
            (_, Kind::Dir) => 0o755,
            (_, Kind::Symlink) => 0o777,
            // A scratch file is 0600 whatever it was made or chmod-ed with: vim, seeing that its test file
            // (`4913`) can't take the original's mode, saves by copy and in place instead of renaming the
            // original away (which the tree refuses).
            (
                Node::Import
                | Node::Build
                | Node::Pull
                | Node::Push
                | Node::Tag
                | Node::Untag
                | Node::Run
                | Node::Scratch(_),
                _,
            ) => 0o600,
            (_, Kind::File { writable: true, .. }) => 0o644,
            _ => 0o444,
        }
    }

    /// Which view of a log this file is, for a container's or an exec's `logs`, `stdout`, `stderr` and
    /// `log_index`; `events`, kept in segments as a log is, reads as a `logs`.
    pub fn log_view(&self) -> Option<LogView> {
        match self {
            Node::ContainerFile(_, ContainerFile::Log(v)) | Node::ExecFile(_, _, ExecFile::Log(v)) => Some(*v),
            Node::Events | Node::BuildFile(_, BuildFile::Logs) => Some(LogView::Logs),
            _ => None,
        }
    }

    /// Whether this is a request file: a command file at the top of the tree, whose write may take long
    /// (a start that may pull first, a pull, a build) and whose read gives back what this open's write
    /// answered (an id), nothing before it. Writes to one from many opens are served at once: the kernel
    /// does that only within the size it knows (FOPEN_PARALLEL_DIRECT_WRITES, Linux 6.2), so such a file
    /// reports [`REQUEST_FILE_SIZE`]. (A container's command files, `ctl`, `exec` and `commit`, keep the
    /// kernel's one write at a time per file.)
    pub fn is_request(&self) -> bool {
        matches!(self, Node::Import | Node::Build | Node::Pull | Node::Push | Node::Tag | Node::Untag | Node::Run)
    }

    /// The container whose file this is: a write to it that fails is recorded in that container's `error`.
    pub fn container(&self) -> Option<&str> {
        match self {
            Node::ContainerFile(name, _) => Some(name),
            _ => None,
        }
    }

    /// Whether `create` may make a scratch file here: a container's directory, or the root.
    pub fn takes_scratch(&self) -> bool {
        matches!(self, Node::Root | Node::Container(_))
    }

    /// Where a write to this node goes, if it takes writes.
    pub fn write_target(&self) -> Option<WriteTarget> {
        Some(match self {
            Node::Import => WriteTarget::Import,
            Node::Build => WriteTarget::Build,
            Node::Pull => WriteTarget::Pull,
            Node::Push => WriteTarget::Push,
            Node::Tag => WriteTarget::Tag,
            Node::Untag => WriteTarget::Untag,
            Node::Run => WriteTarget::Run,
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::Image)) => WriteTarget::Image(n.clone()),
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::Cmd)) => WriteTarget::Cmd(n.clone()),
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::Env)) => WriteTarget::Env(n.clone()),
            Node::ContainerFile(n, ContainerFile::Ctl) => WriteTarget::Ctl(n.clone()),
            Node::ContainerFile(n, ContainerFile::Commit) => WriteTarget::Commit(n.clone()),
            Node::ContainerFile(n, ContainerFile::Exec) => WriteTarget::Exec(n.clone()),
            Node::ContainerFile(n, ContainerFile::Stdin) => WriteTarget::Stdin(n.clone()),
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::Privileged)) => {
                WriteTarget::Privileged(n.clone())
            }
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::CapAdd)) => WriteTarget::CapAdd(n.clone()),
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::Setting(kind))) => {
                WriteTarget::Setting(n.clone(), *kind)
            }
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::AutoRemove)) => {
                WriteTarget::AutoRemove(n.clone())
            }
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::Volumes)) => WriteTarget::Volumes(n.clone()),
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::VolumesFrom)) => {
                WriteTarget::VolumesFrom(n.clone())
            }
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::Network)) => WriteTarget::Network(n.clone()),
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::Networks)) => WriteTarget::Networks(n.clone()),
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::Aliases)) => WriteTarget::Aliases(n.clone()),
            Node::NetworkFile(n, NetworkField::Subnet) => WriteTarget::Subnet(n.clone()),
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::Ports)) => WriteTarget::Ports(n.clone()),
            Node::ContainerFile(n, ContainerFile::Field(ContainerField::Limit(kind))) => {
                WriteTarget::Limit(n.clone(), *kind)
            }
            _ => return None,
        })
    }

    /// The path below the mount, as `errors` shows it.
    pub fn path(&self) -> String {
        match self {
            Node::Root => String::new(),
            Node::Readme => "README".into(),
            Node::Errors => "errors".into(),
            Node::Events => "events".into(),
            Node::Images => "images".into(),
            Node::Import => "images/import".into(),
            Node::Build => "images/build".into(),
            Node::Builds => "builds".into(),
            Node::BuildDir(n) => format!("builds/{n}"),
            Node::BuildFile(n, f) => format!("builds/{n}/{}", name(&BUILD_FILES, *f)),
            Node::Pull => "images/pull".into(),
            Node::Push => "images/push".into(),
            Node::Pulls => "images/pulls".into(),
            Node::Tag => "images/tag".into(),
            Node::Untag => "images/untag".into(),
            Node::ByName(dir) if dir.is_empty() => "images/by-name".into(),
            Node::ByName(dir) => format!("images/by-name/{dir}"),
            Node::NameLink(name) => format!("images/by-name/{name}"),
            Node::Image(id) => format!("images/{id}"),
            Node::ImageFile(id, f) => format!("images/{id}/{}", name(&IMAGE_FILES, *f)),
            Node::Containers => "containers".into(),
            Node::Run => "containers/run".into(),
            Node::Container(c) => format!("containers/{c}"),
            Node::ContainerFile(c, f) => format!("containers/{c}/{}", name(&CONTAINER_FILES, *f)),
            Node::Execs(c) => format!("containers/{c}/execs"),
            Node::Exec(c, n) => format!("containers/{c}/execs/{n}"),
            Node::ExecFile(c, n, f) => format!("containers/{c}/execs/{n}/{}", name(&EXEC_FILES, *f)),
            Node::Volumes => "volumes".into(),
            Node::Volume(v) => format!("volumes/{v}"),
            Node::VolumeData(v) => format!("volumes/{v}/data"),
            Node::Networks => "networks".into(),
            Node::Network(n) => format!("networks/{n}"),
            Node::NetworkFile(n, f) => format!("networks/{n}/{}", name(&NETWORK_FILES, *f)),
            Node::Scratch(n) => format!("(scratch file {n})"),
        }
    }
}

/// The file name of `file` in `list`.
fn name<T: PartialEq + Copy>(list: &[(&'static str, T)], file: T) -> &'static str {
    list.iter().find(|(_, x)| *x == file).map_or("?", |(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let c = Node::Root.child("containers").unwrap().child("web").unwrap();
        for (name, node) in c.fixed_children() {
            assert_eq!(node.path(), format!("containers/web/{name}"));
            assert_eq!(c.child(name), Some(node));
        }
        assert_eq!(c.child("nope"), None);
        assert_eq!(Node::Readme.child("x"), None);
        assert_eq!(Node::Root.child("images").unwrap().child("import"), Some(Node::Import));
    }

    #[test]
    fn a_name_is_nested_directories_and_a_link() {
        let by_name = Node::Images.child("by-name").unwrap();
        let link = ["localhost:5000", "team", "app:v1"].iter().fold(by_name.clone(), |n, p| n.child(p).unwrap());
        assert_eq!(link, Node::NameLink("localhost:5000/team/app:v1".into()));
        assert_eq!(link.kind(), Kind::Symlink);
        assert_eq!(link.path(), "images/by-name/localhost:5000/team/app:v1");
        let dir = by_name.child("docker.io").unwrap().child("library").unwrap();
        assert_eq!(dir, Node::ByName("docker.io/library".into()));
        assert_eq!((dir.kind(), dir.perm()), (Kind::Dir, 0o555));
        assert_eq!(dir.child("alpine@sha256:ab"), Some(Node::NameLink("docker.io/library/alpine@sha256:ab".into())));
        assert_eq!(Node::Images.child("tag").unwrap().write_target(), Some(WriteTarget::Tag));
    }

    #[test]
    fn modes() {
        assert_eq!(Node::Root.kind(), Kind::Dir);
        let ctl = Node::ContainerFile("a".into(), ContainerFile::Ctl);
        assert!(matches!(ctl.kind(), Kind::File { writable: true, .. }));
        assert_eq!(ctl.write_target(), Some(WriteTarget::Ctl("a".into())));
        let status = Node::ContainerFile("a".into(), ContainerFile::Field(ContainerField::Status));
        assert_eq!(status.perm(), 0o444);
        assert_eq!(status.write_target(), None);
    }
}
