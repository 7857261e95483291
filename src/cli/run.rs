//! `bocker run`: Docker's everyday flags, each written to a file of the new container before it starts
//! (`mkdir containers/NAME`, its files, `echo start > ctl`), so a shell can do all of it with `echo`. A run
//! without any goes through `containers/run` in one write. An image that is not here is pulled first, its
//! progress on stderr, as `docker run` does.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use super::attach::AttachFlags;
use super::run_limits::LimitFlags;
use super::{Cli, CliError, Out};
use crate::registry::PullSpec;

/// `bocker run`'s flags, as Docker spells them.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct RunOptions {
    /// Set an environment variable: KEY=VALUE, or KEY alone for this shell's value (left unset if it has
    /// none). Repeatable; after --env-file's, so it wins.
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Read environment variables from FILE: KEY=VALUE lines, KEY alone for this shell's value, `#`
    /// comments and blank lines skipped. Repeatable.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// The working directory inside the container (absolute; default the image's WorkingDir).
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Run as NAME|UID[:GROUP|GID] (default the image's User).
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// The program to run instead of the image's Entrypoint (one word, as Docker takes it; the command's
    /// words are its arguments, and the image's Cmd is not used). An empty one keeps the image's.
    #[arg(long, value_name = "PROGRAM")]
    pub entrypoint: Option<String>,
    /// The container's name (default ps_ and 12 hex digits).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The container's hostname (default its name).
    #[arg(short = 'h', long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Forward a host port: [HOSTADDR:]HOSTPORT:CTRPORT[/tcp|/udp]. Repeatable.
    #[arg(short = 'p', long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,
    /// A volume, SOURCE:TARGET[:ro]: a host path or a volume name (made if missing). Repeatable.
    #[arg(short = 'v', long = "volume", value_name = "VOLUME")]
    pub volumes: Vec<String>,
    /// bridge (default), none, host, container:NAME (join that running container's network namespace:
    /// its address, ports and localhost, and its /etc/hosts and resolv.conf; no -p, --add-host or --dns
    /// then), or a network of networks/ (its containers resolve this one by name). Repeatable for
    /// networks: an interface on each, eth0 first. Overrides BOCKER_NETWORK.
    #[arg(long, value_name = "NETWORK")]
    pub network: Vec<String>,
    /// Another name this container answers to on its networks (its aliases file). Repeatable.
    #[arg(long = "network-alias", value_name = "NAME")]
    pub network_alias: Vec<String>,
    /// A line NAME:IP (IPv4 or IPv6) added to the container's /etc/hosts (its extra_hosts file). Repeatable.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// A nameserver for the container's /etc/resolv.conf instead of the host's (its dns file). Repeatable.
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,
    /// Remove the container once it has exited (its auto_remove file).
    #[arg(long)]
    pub rm: bool,
    /// Restart policy: no, on-failure[:MAX], always or unless-stopped (its restart file).
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Run tini as pid 1: it forwards signals to the command and reaps orphans (its init file).
    #[arg(long)]
    pub init: bool,
    /// Start it and print its name, without waiting for it (with -i and -t, `bocker attach` joins it later).
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub attach: AttachFlags,
    #[command(flatten)]
    pub limits: LimitFlags,
    /// Add a capability to Docker's default 14 (NET_ADMIN or CAP_NET_ADMIN). Repeatable.
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Every capability, no seccomp filter, no masked paths.
    #[arg(long)]
    pub privileged: bool,
    /// Set a label: KEY=VALUE (KEY alone: an empty value). Repeatable.
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

/// A value for one of the new container's files, and the flag (or variable) that asked for it.
struct Setting {
    file: &'static str,
    value: String,
    from: String,
}

/// The settings in the order they are written (`network` before `ports`, `privileged` before `volumes`,
/// `entrypoint` before `cmd`); a file set twice (BOCKER_NETWORK, then --network) keeps the later value.
#[derive(Default)]
struct Settings(Vec<Setting>);

impl Settings {
    fn set(&mut self, file: &'static str, value: impl Into<String>, from: impl Into<String>) {
        let (value, from) = (value.into(), from.into());
        match self.0.iter_mut().find(|s| s.file == file) {
            Some(s) => *s = Setting { file, value, from },
            None => self.0.push(Setting { file, value, from }),
        }
    }
}

impl Cli {
    /// `bocker run [OPTIONS] IMAGE CMD...`: in the foreground, prints the output and returns the exit code;
    /// with `-d`, prints the container's name once it has started. Several words are the argv exactly; one
    /// word holding spaces is a shell line for `/bin/sh -c` (unless `--entrypoint` is given: then the words
    /// are its arguments, as Docker passes them).
    pub fn run(&self, image: &str, cmd: &[String], o: &RunOptions) -> Result<i32, CliError> {
        let argv: Vec<String> = match cmd {
            [one] if o.entrypoint.is_none() && one.contains(char::is_whitespace) => {
                vec!["/bin/sh".into(), "-c".into(), one.clone()]
            }
            _ => cmd.to_vec(),
        };
        if !o.detach {
            o.attach.check_terminal()?;
        }
        let settings = settings(o, &argv)?;
        self.ensure_image(image)?;
        if settings.0.iter().all(|s| s.file == "cmd") && !o.detach && o.name.is_none() {
            return self.run_at_once(image, &argv);
        }
        if !o.volumes.is_empty() {
            self.make_named_volumes(&o.volumes)?;
        }
        self.run_configured(image, o, settings)
    }

    /// An image that is not here but that a registry reference names is pulled, as `docker run` does.
    fn ensure_image(&self, image: &str) -> Result<(), CliError> {
        match self.resolve(image) {
            Err(CliError::NoImage(_)) if PullSpec::for_run(image).is_some() => {
                let _ = writeln!(io::stderr(), "Unable to find image '{image}' locally");
                self.pull_showing(image, image, Out::Stderr).map(|_| ())
            }
            resolved => resolved.map(|_| ()),
        }
    }

    /// A run with nothing to set: one write to `containers/run`.
    fn run_at_once(&self, image: &str, argv: &[String]) -> Result<i32, CliError> {
        let mut line = shell_words::quote(image).into_owned();
        if !argv.is_empty() {
            line.push(' ');
            line.push_str(&shell_words::join(argv));
        }
        let id = self.submit("containers/run", &line).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) if !self.has_image(image) => CliError::NoImage(image.to_string()),
            _ => CliError::Failed(self.why("containers/run", &e)),
        })?;
        self.follow(&id)
    }

    /// mkdir, every file, then `start` on an open `ctl`; a failed step removes the container again. In the
    /// foreground its `logs` is opened before the start (an `auto_remove` container stays while a reader
    /// holds it, so every byte is copied), and the exit code is read back from that `ctl`, which answers
    /// the run it started with its code even once the container is gone.
    fn run_configured(&self, image: &str, o: &RunOptions, settings: Settings) -> Result<i32, CliError> {
        let name = o.name.clone().unwrap_or_else(|| crate::ids::new_id("ps_"));
        let dir = format!("containers/{name}");
        fs::create_dir(self.path(&dir)).map_err(|e| match e.raw_os_error() {
            Some(libc::EEXIST) => CliError::Failed(format!("the container name '{name}' is already in use")),
            _ => CliError::Failed(self.why(&dir, &e)),
        })?;
        let started = self.put(&dir, "image", image, "IMAGE").and_then(|()| {
            for s in &settings.0 {
                self.put(&dir, s.file, &s.value, &s.from)?;
            }
            let logs = if o.detach { None } else { Some(self.open_logs(&dir)?) };
            let rel = format!("{dir}/ctl");
            let mut ctl = OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.path(&rel))
                .map_err(|e| self.refused(&dir, &rel, &e))?;
            ctl.write_all(b"start").map_err(|e| self.refused(&dir, &rel, &e))?;
            Ok((logs, ctl))
        });
        let (logs, ctl) = match started {
            Ok(started) => started,
            Err(e) => {
                let _ = fs::remove_dir(self.path(&dir));
                return Err(e);
            }
        };
        let Some(logs) = logs else {
            say!("{name}");
            return Ok(0);
        };
        if o.attach.attaches() {
            return self.attach_run(&dir, &o.attach, logs, ctl);
        }
        self.wait_run(&dir, logs, ctl)
    }

    /// Copies the run's `logs` to stdout until it has ended; its code from `ctl`.
    pub(super) fn wait_run(&self, dir: &str, logs: fs::File, ctl: fs::File) -> Result<i32, CliError> {
        self.copy_logs(dir, logs)?;
        match code_on(ctl) {
            Some(code) => Ok(code),
            // An older daemon answers nothing on ctl: its exit_code then (it has no auto_remove either).
            None => Ok(self.read(&format!("{dir}/exit_code")).parse().unwrap_or(1)),
        }
    }

    /// Writes `value` (and a newline) to `DIR/FILE` in one write, as `echo` does, and closes it: a value
    /// file may refuse a value at its close. Never creates a file (in a container's directory that would
    /// be a scratch file).
    fn put(&self, dir: &str, file: &str, value: &str, from: &str) -> Result<(), CliError> {
        let rel = format!("{dir}/{file}");
        let wrote = OpenOptions::new().write(true).truncate(true).open(self.path(&rel)).and_then(|mut f| {
            f.write_all(format!("{value}\n").as_bytes())?;
            nix::unistd::close(f).map_err(io::Error::from)
        });
        wrote.map_err(|e| match self.refused(dir, &rel, &e) {
            CliError::Failed(why) => CliError::Failed(format!("{from}: {why}")),
            other => other,
        })
    }

    /// Why a write to `rel` of container `dir` failed: the container's `error`, or `errors`' last line.
    fn refused(&self, dir: &str, rel: &str, e: &io::Error) -> CliError {
        if e.raw_os_error() == Some(libc::ENOENT) && self.path(dir).is_dir() {
            let file = rel.rsplit('/').next().unwrap_or(rel);
            return CliError::Failed(format!("this daemon has no '{file}' file: it is older than this bocker"));
        }
        let message = self.read(&format!("{dir}/error"));
        CliError::Failed(if message.is_empty() { self.why(rel, e) } else { message })
    }

    /// Makes the named volumes `-v NAME:TARGET` asks for that don't exist yet, as Docker does.
    fn make_named_volumes(&self, volumes: &[String]) -> Result<(), CliError> {
        for v in volumes {
            let source = v.split(':').next().unwrap_or("");
            if source.is_empty() || source.starts_with('/') || self.path(&format!("volumes/{source}")).is_dir() {
                continue;
            }
            let rel = format!("volumes/{source}");
            match fs::create_dir(self.path(&rel)) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(CliError::Failed(self.why(&rel, &e))),
            }
        }
        Ok(())
    }
}

/// The exit code a read of the `ctl` that wrote `start` answers once the run has ended.
pub(super) fn code_on(mut ctl: fs::File) -> Option<i32> {
    let mut code = String::new();
    ctl.read_to_string(&mut code).ok()?;
    code.trim().parse().ok()
}

/// What the flags and bocker's variables set, file by file, in the order they are written.
fn settings(o: &RunOptions, argv: &[String]) -> Result<Settings, CliError> {
    let mut s = Settings::default();
    bocker_variables(&mut s)?;
    let modes = ["none", "host"];
    match o.network.as_slice() {
        [] => {}
        [mode] if modes.contains(&mode.as_str()) || mode.starts_with("container:") || mode == "bridge" => {
            s.set("network", mode, format!("--network {mode}"));
        }
        names => {
            if let Some(mode) = names.iter().find(|n| modes.contains(&n.as_str()) || n.starts_with("container:")) {
                return Err(CliError::Failed(format!("--network {mode} can't be given with other networks")));
            }
            s.set("network", "bridge", format!("--network {}", names.join(",")));
            s.set("networks", names.join("\n"), format!("--network {}", names.join(",")));
        }
    }
    if !o.network_alias.is_empty() {
        let aliases = o.network_alias.join("\n");
        s.set("aliases", aliases, format!("--network-alias {}", o.network_alias.join(",")));
    }
    if !o.add_host.is_empty() {
        s.set("extra_hosts", o.add_host.join("\n"), format!("--add-host {}", o.add_host.join(",")));
    }
    if !o.dns.is_empty() {
        s.set("dns", o.dns.join("\n"), format!("--dns {}", o.dns.join(",")));
    }
    if o.privileged {
        s.set("privileged", "true", "--privileged");
    }
    if !o.cap_add.is_empty() {
        s.set("cap_add", o.cap_add.join("\n"), format!("--cap-add {}", o.cap_add.join(",")));
    }
    if let Some(entrypoint) = &o.entrypoint {
        // One program, as Docker takes it: quoted, so a space stays in its name.
        let words = if entrypoint.is_empty() { String::new() } else { shell_words::quote(entrypoint).into_owned() };
        s.set("entrypoint", words, format!("--entrypoint {entrypoint}"));
    }
    if !argv.is_empty() {
        s.set("cmd", shell_words::join(argv), "COMMAND");
    }
    let env = env_lines(o)?;
    if !env.is_empty() {
        s.set("env", env.join("\n"), "--env");
    }
    for (file, value, flag) in
        [("workdir", &o.workdir, "--workdir"), ("user", &o.user, "--user"), ("hostname", &o.hostname, "--hostname")]
    {
        if let Some(v) = value {
            s.set(file, v, format!("{flag} {v}"));
        }
    }
    if !o.labels.is_empty() {
        let lines: Vec<String> =
            o.labels.iter().map(|l| if l.contains('=') { l.clone() } else { format!("{l}=") }).collect();
        s.set("labels", lines.join("\n"), "--label");
    }
    if !o.volumes.is_empty() {
        s.set("volumes", o.volumes.join("\n"), "--volume");
    }
    if !o.publish.is_empty() {
        s.set("ports", o.publish.join("\n"), "--publish");
    }
    for (file, value, flag) in o.limits.files()? {
        s.set(file, value, flag);
    }
    if o.rm {
        s.set("auto_remove", "true", "--rm");
    }
    if let Some(policy) = &o.restart {
        s.set("restart", policy, format!("--restart {policy}"));
    }
    if o.init {
        s.set("init", "true", "--init");
    }
    if o.attach.tty {
        s.set("tty", "true", "--tty");
    }
    if o.attach.interactive {
        s.set("interactive", "true", "--interactive");
    }
    // A line each: a newline in one would be a second line, or a second value.
    let lists = [&o.labels, &o.volumes, &o.publish, &o.cap_add, &o.add_host, &o.dns, &o.network, &o.network_alias];
    let one_line = [
        "network",
        "workdir",
        "user",
        "hostname",
        "memory.max",
        "memory.swap.max",
        "pids.max",
        "cpuset.cpus",
        "cpuset.mems",
        "restart",
    ];
    let many = lists.iter().flat_map(|l| l.iter()).any(|v| v.contains('\n'));
    if let Some(v) = s.0.iter().find(|v| one_line.contains(&v.file) && v.value.contains('\n')) {
        return Err(CliError::Failed(format!("{}: a value of one line", v.from.trim_end())));
    }
    if many {
        return Err(CliError::Failed(
            "a --label, --volume, --publish, --cap-add, --add-host, --dns, --network or --network-alias holds a newline"
                .into(),
        ));
    }
    Ok(s)
}

/// bocker's `BOCKER_NETWORK` (bridge, none, host), `BOCKER_CPU_SHARE` (cpu.shares, mapped to cpu.weight
/// as the kernel does) and `BOCKER_MEM_LIMIT` (megabytes).
fn bocker_variables(s: &mut Settings) -> Result<(), CliError> {
    if let Ok(network) = std::env::var("BOCKER_NETWORK") {
        s.set("network", network.trim(), "BOCKER_NETWORK");
    }
    if let Ok(share) = std::env::var("BOCKER_CPU_SHARE") {
        let shares: u64 = share
            .trim()
            .parse()
            .map_err(|_| CliError::Failed(format!("BOCKER_CPU_SHARE: '{share}' is not a number")))?;
        s.set("cpu.weight", crate::cgroups::shares_to_weight(shares).to_string(), "BOCKER_CPU_SHARE");
    }
    if let Ok(mb) = std::env::var("BOCKER_MEM_LIMIT") {
        let mb: u64 = mb
            .trim()
            .parse()
            .map_err(|_| CliError::Failed(format!("BOCKER_MEM_LIMIT: '{mb}' is not a number of MB")))?;
        s.set("memory.max", format!("{mb}M"), "BOCKER_MEM_LIMIT");
    }
    Ok(())
}

/// The `env` lines of `--env-file` files then `-e` flags, as Docker reads them: `KEY=VALUE` as it is,
/// `KEY` alone with this process's value (left out if it has none).
fn env_lines(o: &RunOptions) -> Result<Vec<String>, CliError> {
    let mut lines = Vec::new();
    let mut add = |entry: &str, from: &str| -> Result<(), CliError> {
        let line = match entry.split_once('=') {
            Some(_) => entry.to_string(),
            None => match std::env::var_os(entry.trim()) {
                Some(value) => format!("{}={}", entry.trim(), value.to_string_lossy()),
                None => return Ok(()),
            },
        };
        if line.contains('\n') {
            return Err(CliError::Failed(format!("{from}: the value of '{}' holds a newline", entry.trim())));
        }
        lines.push(line);
        Ok(())
    };
    for file in &o.env_file {
        let text =
            fs::read_to_string(file).map_err(|e| CliError::Failed(format!("--env-file {}: {e}", file.display())))?;
        for line in text.lines() {
            let line = line.trim_start().trim_end_matches('\r');
            if !line.is_empty() && !line.starts_with('#') {
                add(line, &format!("--env-file {}", file.display()))?;
            }
        }
    }
    for e in &o.env {
        add(e, &format!("--env {e}"))?;
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_and_flags_as_docker_reads_them() {
        let dir = std::env::temp_dir().join(format!("bocker-envfile-{}", std::process::id()));
        std::fs::write(&dir, "# a comment\n\nA=1\n  B=two words\nBOCKER_TEST_UNSET_VAR\nPATH\n").unwrap();
        let o = RunOptions {
            env_file: vec![dir.clone()],
            env: vec!["C=3".into(), "A=9".into(), "BOCKER_TEST_UNSET_VAR".into()],
            ..Default::default()
        };
        let lines = env_lines(&o).unwrap();
        let _ = std::fs::remove_file(&dir);
        let path = format!("PATH={}", std::env::var("PATH").unwrap());
        assert_eq!(lines, ["A=1", "B=two words", path.as_str(), "C=3", "A=9"]);
    }

    #[test]
    fn a_file_set_twice_keeps_its_place_and_the_later_value() {
        let mut s = Settings::default();
        s.set("network", "none", "BOCKER_NETWORK");
        s.set("ports", "80:80", "--publish");
        s.set("network", "bridge", "--network");
        let shown: Vec<(&str, &str)> = s.0.iter().map(|s| (s.file, s.value.as_str())).collect();
        assert_eq!(shown, [("network", "bridge"), ("ports", "80:80")]);
    }
}
