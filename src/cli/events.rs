//! `bocker wait` and `bocker events`, over `containers/NAME/wait` and the root's `events`.
//!
//! `wait` reads each container's `wait` in turn (a read blocks until it is not running, then gives its
//! exit code) and prints the codes, a line each, as `docker wait`. `events` prints the `events` file and
//! follows it: at its end it waits in `poll()` on the open file, which the daemon makes readable when lines
//! are added (a second at most between looks, so `--until` ends on time and a daemon without poll support
//! is still followed).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::since::{rfc3339, since_arg};
use super::{io_err, Cli, CliError};

/// `bocker events`'s flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EventsOptions {
    /// Only events at T or later: an RFC 3339 time, a duration before now (10m, 1h30m) or Unix seconds.
    #[arg(long, value_name = "T", value_parser = since_arg)]
    pub since: Option<u64>,
    /// Only events before T, and stop following at T (at once for a T already past).
    #[arg(long, value_name = "T", value_parser = since_arg)]
    pub until: Option<u64>,
    /// KEY=VALUE: type=container|image|volume|network, event=ACTION, container=NAME, image=ID, volume=NAME,
    /// network=NAME.
    /// Repeatable: values of one key are alternatives, different keys must all match (as Docker's).
    #[arg(long = "filter", short = 'f', value_name = "KEY=VALUE", value_parser = parse_filter)]
    pub filters: Vec<(String, String)>,
}

fn parse_filter(s: &str) -> Result<(String, String), String> {
    let (key, value) = s.split_once('=').ok_or_else(|| format!("'{s}' is not KEY=VALUE"))?;
    match key {
        "type" | "event" | "container" | "image" | "volume" => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("'{key}' is not a filter: type, event, container, image or volume")),
    }
}

impl EventsOptions {
    /// Whether the event `line` (`TIME TYPE NAME ACTION ...`) is one to print.
    fn wants(&self, line: &str) -> bool {
        let mut words = line.split(' ');
        let (Some(time), Some(kind), Some(name), Some(action)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return false;
        };
        let at = rfc3339(time).unwrap_or(0);
        if self.since.is_some_and(|t| at < i128::from(t)) || self.until.is_some_and(|t| at >= i128::from(t)) {
            return false;
        }
        let keys = ["type", "event", "container", "image", "volume", "network"];
        keys.iter().all(|key| {
            let mut values = self.filters.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).peekable();
            if values.peek().is_none() {
                return true;
            }
            let value = match *key {
                "type" => Some(kind),
                "event" => Some(action),
                object if object == kind => Some(name),
                _ => None,
            };
            value.is_some_and(|v| values.any(|w| w == v))
        })
    }

    /// Whether `--until` has passed.
    fn over(&self) -> bool {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        self.until.is_some_and(|t| now >= t)
    }
}

impl Cli {
    /// `bocker wait NAME...`: each one's exit code once it is not running, in the order given; one that
    /// does not exist is told on stderr, and the command then exits 1 (the others are still waited for).
    pub fn wait(&self, names: &[String]) -> Result<i32, CliError> {
        let mut code = 0;
        for name in names {
            let plain = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
            // A read interrupted by a signal we take (SIGTSTP, then SIGCONT) is read again by read_to_string.
            let read = if plain {
                std::fs::read_to_string(self.path(&format!("containers/{name}/wait")))
            } else {
                Err(io::Error::from(io::ErrorKind::NotFound))
            };
            match read {
                Ok(text) => say!("{}", text.trim_end()),
                Err(e) => {
                    let why = match e.kind() {
                        io::ErrorKind::NotFound => format!("No such container: {name}"),
                        _ => format!("{name}: {e}"),
                    };
                    let _ = writeln!(io::stderr(), "Error: {why}");
                    code = 1;
                }
            }
        }
        Ok(code)
    }

    /// `bocker events`: prints the events kept, then each new one as it comes, until interrupted (or
    /// `--until`).
    pub fn events(&self, o: &EventsOptions) -> Result<i32, CliError> {
        let mut file = File::open(self.path("events")).map_err(io_err("cannot open events"))?;
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut idle = false;
        loop {
            let n = match file.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Fallen behind a rotation (ENODATA): what is kept now, from its start.
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {
                    let _ =
                        writeln!(io::stderr(), "bocker events: some events were rotated away before they were read");
                    file = File::open(self.path("events")).map_err(io_err("cannot open events"))?;
                    pending.clear();
                    continue;
                }
                Err(e) => return Err(io_err("cannot read events")(e)),
            };
            pending.extend_from_slice(&buf[..n]);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                if o.wants(&line) {
                    say!("{line}");
                }
            }
            if n > 0 {
                idle = false;
                continue;
            }
            if o.over() {
                return Ok(0);
            }
            // A poll that said "ready" for nothing new (a daemon without poll support): look again later.
            if idle {
                std::thread::sleep(Duration::from_millis(200));
            }
            let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
            idle = matches!(poll(&mut fds, PollTimeout::from(1000u16)), Ok(n) if n > 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(filters: &[(&str, &str)]) -> EventsOptions {
        EventsOptions {
            filters: filters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn filters_are_anded_across_keys_and_ored_within_one() {
        let start = "2026-12-01T17:00:00.000000000Z container web start";
        let die = "2026-12-01T17:00:01.000000000Z container web die exit=3";
        let pull = "2026-12-01T17:00:02.000000000Z image img_1 pull ref=docker.io/library/alpine:latest";
        assert!(opts(&[]).wants(start));
        assert!(opts(&[("type", "container")]).wants(die) && !opts(&[("type", "container")]).wants(pull));
        let either = opts(&[("event", "start"), ("event", "die")]);
        assert!(either.wants(start) && either.wants(die) && !either.wants(pull));
        assert!(opts(&[("container", "web"), ("event", "die")]).wants(die));
        assert!(!opts(&[("container", "web"), ("event", "die")]).wants(start));
        assert!(!opts(&[("container", "img_1")]).wants(pull), "an image is no container");
        assert!(opts(&[("image", "img_1")]).wants(pull));
        let since = EventsOptions { since: Some(1_796_144_401_000_000_000), ..Default::default() };
        assert!(!since.wants(start) && since.wants(die));
        let until = EventsOptions { until: Some(1_796_144_401_000_000_000), ..Default::default() };
        assert!(until.wants(start) && !until.wants(die));
        assert!(!opts(&[]).wants("not an event"));
        assert!(parse_filter("label=x").is_err() && parse_filter("type").is_err());
    }
}
