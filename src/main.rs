//! The `bocker` binary: the daemon, bocker's verbs over the mounted files, and the hidden per-container
//! monitor the daemon re-executes itself as.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use bockerfs::cgroups::{Limit, LimitKind, Limits, Max};
use bockerfs::cli::{BuildOptions, Cli, DetachKeys, EventsOptions, ExecOptions, LogsOptions, RunOptions};
use bockerfs::daemon::{self, DaemonOptions};

#[derive(Parser)]
#[command(name = "bocker", version, about = "Docker's core behind a control filesystem: drive it with echo and cat")]
struct Args {
    /// Where the control filesystem is mounted.
    #[arg(long, global = true, env = "BOCKER_MOUNT", default_value = "/mnt/bocker")]
    mount: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the control filesystem in the foreground.
    Daemon {
        /// Where images, containers and records are kept.
        #[arg(long, env = "BOCKER_ROOT", default_value = "/var/lib/bocker")]
        root: PathBuf,
        /// Size of the btrfs image file made under the root when the root is not on btrfs (K, M, G, T).
        #[arg(long, env = "BOCKER_STORE_SIZE", default_value = "20G", value_parser = parse_size)]
        store_size: u64,
        /// A registry (HOST[:PORT]) to reach over plain HTTP; loopback registries always are. Repeatable.
        #[arg(long = "insecure-registry", env = "BOCKER_INSECURE_REGISTRIES", value_delimiter = ',')]
        insecure_registries: Vec<String>,
        /// The parent group of containers' cgroups in each hierarchy.
        #[arg(long, env = "BOCKER_CGROUP_PARENT", default_value = "bocker")]
        cgroup_parent: String,
        /// Default cpu.weight of a container (bocker's cpu share 512 is weight 50).
        #[arg(long, default_value = "50", value_parser = |s: &str| match limit(LimitKind::CpuWeight, s)? {
            Limit::CpuWeight(w) => Ok::<u64, String>(w),
            _ => Err("a weight".to_string()),
        })]
        default_cpu_weight: u64,
        /// Default memory.max of a container (bocker's 512 MB).
        #[arg(long, default_value = "512M", value_parser = |s: &str| match limit(LimitKind::MemoryMax, s)? {
            Limit::MemoryMax(m) => Ok::<Max, String>(m),
            _ => Err("bytes".to_string()),
        })]
        default_memory_max: Max,
        /// Default pids.max of a container (Podman's 2048), so a fork bomb can't take the host.
        #[arg(long, default_value = "2048", value_parser = |s: &str| match limit(LimitKind::PidsMax, s)? {
            Limit::PidsMax(m) => Ok::<Max, String>(m),
            _ => Err("a number".to_string()),
        })]
        default_pids_max: Max,
        /// Size at which a container's (or an exec's) log begins a new segment (K, M, G; at least 4K), as
        /// Docker's `local` driver's max-size.
        #[arg(long, env = "BOCKER_LOG_MAX_SIZE", default_value = "20M", value_parser = parse_log_size)]
        log_max_size: u64,
        /// How many log segments are kept per container and per exec, the one written included (at least
        /// 1): at most max-size x max-files of output is on disk.
        #[arg(long, env = "BOCKER_LOG_MAX_FILES", default_value = "5", value_parser = clap::value_parser!(u32).range(1..=1000))]
        log_max_files: u32,
        /// Size at which the `events` file begins a new segment (K, M, G; at least 4K).
        #[arg(long, env = "BOCKER_EVENTS_MAX_SIZE", default_value = "1M", value_parser = parse_log_size)]
        events_max_size: u64,
        /// How many segments of the `events` file are kept, the one written included (at least 1).
        #[arg(long, env = "BOCKER_EVENTS_MAX_FILES", default_value = "5", value_parser = clap::value_parser!(u32).range(1..=1000))]
        events_max_files: u32,
        /// The init a container with `init` true runs as its pid 1 (statically linked: Debian's tini-static,
        /// Docker's docker-init); copied into a sealed memfd at each start.
        #[arg(long, env = "BOCKER_INIT_PATH", default_value = bockerfs::runtime::pid1::DEFAULT_INIT_PATH)]
        init_path: PathBuf,
        /// How many cached build steps that no image stands on are kept (the most recently made); those an
        /// image was built from are kept while it is.
        #[arg(long, env = "BOCKER_BUILD_CACHE_STEPS", default_value = "256")]
        build_cache_steps: usize,
        /// And how many bytes of them at most (K, M, G, T), each counted at its whole tree's size.
        #[arg(long, env = "BOCKER_BUILD_CACHE_SIZE", default_value = "10G", value_parser = parse_size)]
        build_cache_size: u64,
        /// The bridge containers are attached to; made if missing.
        #[arg(long, env = "BOCKER_BRIDGE", default_value = "bocker0", value_parser = bridge_name)]
        bridge: String,
        /// The bridge's subnet; the bridge takes its first address, containers the next ones (at most 4093).
        #[arg(long, env = "BOCKER_SUBNET", default_value = "10.0.0.0/24")]
        subnet: bockerfs::network::Subnet,
        /// A resolver for containers' /etc/resolv.conf (default: the host's, less loopback ones). Repeatable.
        #[arg(long = "dns", value_delimiter = ',')]
        dns: Vec<std::net::Ipv4Addr>,
        /// Where the subnets of networks made by `mkdir networks/NAME` are taken from, lowest free first
        /// (never one the host routes or another network has).
        #[arg(long, env = "BOCKER_NETWORK_POOL", default_value = "10.89.0.0/16")]
        network_pool: bockerfs::network::Subnet,
        /// The prefix length of each of those subnets (a /24 holds 253 containers).
        #[arg(long, env = "BOCKER_NETWORK_PREFIX", default_value_t = 24, value_parser = clap::value_parser!(u8).range(8..=30))]
        network_prefix: u8,
        /// A server (IP or IP:PORT) the networks' DNS forwards the names it doesn't own to (default: --dns,
        /// else the host's resolvers). Repeatable.
        #[arg(long = "dns-upstream", env = "BOCKER_DNS_UPSTREAM", value_delimiter = ',', value_parser = upstream)]
        dns_upstream: Vec<std::net::SocketAddr>,
        /// A group whose members may use the tree besides root (default: root only). Whoever can write the
        /// tree is root on the host, as with Docker's `docker` group, and pulls and pushes with the daemon's
        /// registry credentials.
        #[arg(long, env = "BOCKER_GROUP", value_parser = group)]
        group: Option<daemon::Group>,
        /// How many container monitors are kept started ahead, their pid and network namespaces made: a
        /// start with bridge networking takes one instead of starting its own (0: none).
        #[arg(long, env = "BOCKER_SPARES", default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=64))]
        spares: u8,
    },
    /// Make an image of a directory.
    Init { directory: PathBuf },
    /// Build an image from a Dockerfile in CONTEXT (docker build): prints each step as it runs (cached
    /// ones marked) and `Created: img_...`; exits 1 if the build fails. Through images/build and
    /// builds/N/ (docs/build.md: what a Dockerfile may hold, the step cache).
    Build {
        #[command(flatten)]
        options: BuildOptions,
        /// The build context: a directory, read with your identity, less what its .dockerignore leaves out.
        context: PathBuf,
    },
    /// Pull an image from a registry: NAME [TAG], or a full reference, and optionally platform=OS/ARCH.
    Pull {
        #[arg(required = true, num_args = 1..=3)]
        reference: Vec<String>,
    },
    /// Push a local image to a registry.
    Push { image: String, reference: String },
    /// List images: bocker's IMAGE_ID and SOURCE columns.
    Images {
        /// Add a NAMES column: each image's names as Docker shows them (alpine:latest), or <none>.
        #[arg(long)]
        names: bool,
    },
    /// List containers.
    Ps,
    /// Run a command in a new container, in the foreground (exits with its code; -it for a shell) or with
    /// -d; an image that is not here is pulled first. Honours BOCKER_NETWORK, BOCKER_CPU_SHARE and
    /// BOCKER_MEM_LIMIT.
    #[command(disable_help_flag = true)]
    Run {
        #[command(flatten)]
        options: Box<RunOptions>,
        /// Print help (-h is --hostname, as in Docker).
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        /// An image id, a name (pulled when not here, as Docker does) or an imported directory.
        image: String,
        /// The command and its arguments (default the image's); one word holding spaces is a shell line.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run a command in a running container; prints its output and exits with its code (-it for a shell).
    Exec {
        #[command(flatten)]
        options: ExecOptions,
        /// The running container's name.
        container: String,
        /// The command and its arguments; one word holding spaces is a shell line.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Print a container's output: what it wrote to stdout on stdout, to stderr on stderr, each line
    /// whole, in the order the lines were written.
    ///
    /// Read through the mount: containers/NAME/log_index (each chunk's time, stream, offset in logs and
    /// length) and containers/NAME/logs. Without -f it prints what is there and exits 0; a bad flag exits
    /// 1. Lines whose last bytes have no newline yet come last.
    Logs {
        #[command(flatten)]
        options: LogsOptions,
        container: String,
    },
    /// Join a running container: its output from now on, this terminal's input when it was run with -i
    /// (raw with -t); exits with its code once it ends. The detach keys leave it running.
    Attach {
        /// The keys that detach (with a container run -it): comma-separated single characters or ctrl-X
        /// [default: ctrl-p,ctrl-q].
        #[arg(long, value_name = "KEYS", value_parser = DetachKeys::parse)]
        detach_keys: Option<DetachKeys>,
        /// The running container's name.
        container: String,
    },
    /// Wait until each container is not running, then print its exit code (a line each, in the order
    /// given; 0 for one never started), as docker wait. Reads containers/NAME/wait, which blocks until then.
    /// Exits 1 if one does not exist (the others are still waited for).
    Wait {
        #[arg(required = true, value_name = "NAME")]
        containers: Vec<String>,
    },
    /// Print the daemon's events, a line each (TIME TYPE NAME ACTION [KEY=VALUE...]), and follow them as
    /// they come, until interrupted.
    ///
    /// Reads the events file at the mount's root: what it keeps (the daemon's --events-max-size x
    /// --events-max-files), then what is added, woken by poll() on the open file. Types and actions:
    /// container create start die (exit=CODE) oom kill (signal=N) stop restart (restart_count=N) pause
    /// unpause remove;
    /// image import pull push commit tag untag remove; volume create remove; network create remove.
    Events {
        #[command(flatten)]
        options: EventsOptions,
    },
    /// Make, remove, list and inspect networks (networks/: docs/networks.md).
    Network {
        #[command(subcommand)]
        command: bockerfs::cli::NetworkCommand,
    },
    /// Make an image of a container's filesystem: replace IMAGE if it exists, else a new image named IMAGE.
    Commit { container: String, image: String },
    /// Remove a container or an image (by id).
    Rm {
        /// Kill a running or paused container first (docker rm -f).
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Stop a container (SIGTERM, SIGKILL after the grace period) if it runs, then start it.
    Restart {
        /// Seconds to wait for it to stop before killing it.
        #[arg(short = 't', long = "time", value_name = "SECONDS", default_value_t = 10)]
        time: u64,
        container: String,
    },
    /// Freeze every process of a running container (the cgroup freezer): no CPU until unpaused.
    Pause { container: String },
    /// Thaw a paused container.
    Unpause { container: String },
    /// Remove an image's name (alpine, alpine:3.20, REGISTRY/REPO:TAG), and the image with its last name;
    /// an image id (or a unique prefix of one) removes the image.
    Rmi { image: String },
    /// Give IMAGE (an id, a unique id prefix or a name) the name NAME, taken from the image that had it.
    Tag { image: String, name: String },
    /// Print the inspect.json of containers and images as one JSON array, as docker inspect does; exit 1
    /// if one names nothing (the others are still printed).
    Inspect {
        /// A container's name, else an image: an id, a unique id prefix, a name or an imported directory.
        #[arg(required = true, value_name = "NAME|IMAGE")]
        what: Vec<String>,
    },
    #[command(name = "__monitor", hide = true)]
    Monitor {
        /// A spare, started ahead of any container; the directory only names its daemon.
        #[arg(long)]
        spare: bool,
        /// A spare's: the `cgroup.procs` of a group its container's process joins ahead (v1). Repeatable.
        #[arg(long)]
        join: Vec<PathBuf>,
        /// A spare's: the nice value it runs at (the daemon's).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        nice: i32,
        state_dir: PathBuf,
    },
    #[command(name = "__exec", hide = true)]
    ExecHelper { dir: PathBuf },
}

/// A network interface name: 1 to 15 bytes, no '/', ':' or whitespace.
fn bridge_name(s: &str) -> Result<String, String> {
    let ok = (1..=15).contains(&s.len()) && !s.contains(['/', ':']) && !s.chars().any(char::is_whitespace);
    if ok && s != "." && s != ".." {
        Ok(s.to_string())
    } else {
        Err(format!("'{s}' is not an interface name (1-15 characters, no '/', ':' or spaces)"))
    }
}

/// A DNS server: `IP` (port 53) or `IP:PORT`, IPv4 or `[IPv6]:PORT`.
fn upstream(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse::<std::net::SocketAddr>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| std::net::SocketAddr::from((ip, 53))))
        .map_err(|_| format!("'{s}' is not a DNS server (IP or IP:PORT)"))
}

/// A group by name (or gid), as /etc/group has it.
fn group(s: &str) -> Result<daemon::Group, String> {
    let found = match s.parse::<u32>() {
        Ok(gid) => nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)),
        Err(_) => nix::unistd::Group::from_name(s),
    };
    match found {
        Ok(Some(g)) => Ok(daemon::Group { name: g.name, gid: g.gid.as_raw() }),
        Ok(None) => Err(format!("no group '{s}' (see /etc/group)")),
        Err(e) => Err(format!("cannot look up group '{s}': {e}")),
    }
}

fn limit(kind: LimitKind, s: &str) -> Result<Limit, String> {
    bockerfs::cgroups::parse_limit(kind, s).map_err(|e| e.to_string())
}

fn parse_size(s: &str) -> Result<u64, String> {
    daemon::parse_size(s).ok_or_else(|| format!("'{s}' is not a size (like 512M or 20G)"))
}

fn parse_log_size(s: &str) -> Result<u64, String> {
    let size = parse_size(s)?;
    if size < bockerfs::logs::MIN_SEGMENT {
        return Err(format!("'{s}' is below the smallest log segment, 4K"));
    }
    Ok(size)
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        // --help and --version print to stdout and succeed; a bad command line fails with 1, as every error.
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            if let Err(write) = e.print() {
                if e.use_stderr() || write.kind() != std::io::ErrorKind::BrokenPipe {
                    return ExitCode::from(1);
                }
            }
            return ExitCode::from(code);
        }
    };
    match run(args) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            use std::io::Write;
            // bocker's own messages go where bocker printed them, to stdout; every other error to stderr.
            if e.downcast_ref::<bockerfs::cli::CliError>().is_some_and(|c| c.on_stdout()) {
                let _ = writeln!(std::io::stdout(), "{e:#}");
            } else {
                let _ = writeln!(std::io::stderr(), "{e:#}");
            }
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> anyhow::Result<i32> {
    let cli = |mount| Cli::new(mount).map_err(anyhow::Error::from);
    let code = match args.command {
        Command::Daemon {
            root,
            store_size,
            insecure_registries,
            cgroup_parent,
            default_cpu_weight,
            default_memory_max,
            default_pids_max,
            log_max_size,
            log_max_files,
            events_max_size,
            events_max_files,
            init_path,
            build_cache_steps,
            build_cache_size,
            bridge,
            subnet,
            dns,
            network_pool,
            network_prefix,
            dns_upstream,
            group,
            spares,
        } => {
            init_logging();
            let mut default_limits = Limits::default();
            for l in [
                Limit::CpuWeight(default_cpu_weight),
                Limit::MemoryMax(default_memory_max),
                Limit::PidsMax(default_pids_max),
            ] {
                default_limits.put(l);
            }
            let opts = DaemonOptions {
                root,
                init_path,
                build_cache_steps,
                build_cache_size,
                mount: args.mount,
                store_size,
                insecure_registries,
                cgroup_parent,
                default_limits,
                log_limits: bockerfs::logs::LogLimits { max_size: log_max_size, max_files: log_max_files },
                event_limits: bockerfs::logs::LogLimits { max_size: events_max_size, max_files: events_max_files },
                network: bockerfs::network::NetworkOptions {
                    bridge,
                    subnet,
                    dns,
                    pool: network_pool,
                    pool_prefix: network_prefix,
                    upstreams: dns_upstream,
                },
                group,
                spares: spares.into(),
            };
            daemon::run(&opts).context("bocker daemon")?;
            0
        }
        Command::Init { directory } => cli(args.mount)?.init(&directory)?,
        Command::Build { options, context } => cli(args.mount)?.build(&context, &options)?,
        Command::Pull { reference } => cli(args.mount)?.pull(&reference)?,
        Command::Push { image, reference } => cli(args.mount)?.push(&image, &reference)?,
        Command::Images { names } => cli(args.mount)?.images(names)?,
        Command::Commit { container, image } => cli(args.mount)?.commit(&container, &image)?,
        Command::Ps => cli(args.mount)?.ps()?,
        Command::Run { options, image, command, .. } => cli(args.mount)?.run(&image, &command, &options)?,
        Command::Logs { options, container } => cli(args.mount)?.logs(&container, &options)?,
        Command::Exec { options, container, command } => cli(args.mount)?.exec(&container, &command, &options)?,
        Command::Attach { detach_keys, container } => cli(args.mount)?.attach(&container, detach_keys)?,
        Command::Rm { force: false, id } => cli(args.mount)?.rm(&id)?,
        Command::Rm { force: true, id } => cli(args.mount)?.rm_force(&id)?,
        Command::Restart { time, container } => cli(args.mount)?.restart(&container, time)?,
        Command::Pause { container } => cli(args.mount)?.pause(&container)?,
        Command::Unpause { container } => cli(args.mount)?.unpause(&container)?,
        Command::Rmi { image } => cli(args.mount)?.rmi(&image)?,
        Command::Tag { image, name } => cli(args.mount)?.tag(&image, &name)?,
        Command::Inspect { what } => cli(args.mount)?.inspect(&what)?,
        Command::Wait { containers } => cli(args.mount)?.wait(&containers)?,
        Command::Events { options } => cli(args.mount)?.events(&options)?,
        Command::Network { command } => cli(args.mount)?.network(&command)?,
        Command::Monitor { spare: true, join, nice, .. } => bockerfs::runtime::monitor::spare_main(&join, nice),
        Command::Monitor { state_dir, .. } => bockerfs::runtime::monitor::main(&state_dir),
        Command::ExecHelper { dir } => bockerfs::runtime::exec::main(&dir),
    };
    Ok(code)
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}
