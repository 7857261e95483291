//! The verbs written to `containers/<name>/ctl`: start, stop, restart, kill, pause, unpause, remove and
//! close-stdin, each parsed once into a [`Ctl`].

use std::time::Duration;

use nix::sys::signal::Signal;

use super::ParseError;

/// A verb written to `containers/<name>/ctl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctl {
    Start,
    /// SIGTERM, then SIGKILL after the grace period.
    Stop(Duration),
    /// A stop with this grace period if it runs, then a start (`docker restart`).
    Restart(Duration),
    Kill(Signal),
    /// Its cgroup frozen (`docker pause`).
    Pause,
    /// Its cgroup thawed (`docker unpause`).
    Unpause,
    /// Killed if it runs, then removed as rmdir removes it (`docker rm -f`).
    Remove,
    /// The end of the command's input (see docs/attach.md).
    CloseStdin,
}

/// The verbs, as the unknown-verb message lists them.
pub(super) const VERBS: &str =
    "start, stop [SECONDS], restart [SECONDS], kill [SIGNAL], pause, unpause, remove, close-stdin";

/// The default grace period of `stop`, as Docker's.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest grace period `stop` takes.
pub const MAX_STOP_TIMEOUT_SECS: u64 = 365 * 24 * 3600;

/// A verb line of `ctl`.
pub fn parse_ctl(text: &str) -> Result<Ctl, ParseError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (verb, args) = words.split_first().ok_or(ParseError::Empty)?;
    if args.len() > 1 {
        return Err(ParseError::TooManyArgs((*verb).to_string()));
    }
    let arg = args.first().copied();
    let bare = |verb: Ctl| match arg {
        None => Ok(verb),
        Some(_) => Err(ParseError::TooManyArgs((*words[0]).to_string())),
    };
    match *verb {
        "start" => bare(Ctl::Start),
        "stop" => Ok(Ctl::Stop(grace(arg)?)),
        "restart" => Ok(Ctl::Restart(grace(arg)?)),
        "kill" => Ok(Ctl::Kill(arg.map_or(Ok(Signal::SIGKILL), parse_signal)?)),
        "pause" => bare(Ctl::Pause),
        "unpause" => bare(Ctl::Unpause),
        "remove" => bare(Ctl::Remove),
        "close-stdin" => bare(Ctl::CloseStdin),
        v => Err(ParseError::UnknownVerb(v.chars().take(40).collect())),
    }
}

/// The grace period of `stop` and `restart`: whole seconds, at most a year; Docker's 10 s by default.
fn grace(arg: Option<&str>) -> Result<Duration, ParseError> {
    let Some(s) = arg else { return Ok(DEFAULT_STOP_TIMEOUT) };
    let secs: u64 = s.parse().map_err(|_| ParseError::BadTimeout(s.into()))?;
    if secs > MAX_STOP_TIMEOUT_SECS {
        return Err(ParseError::TimeoutRange(secs));
    }
    Ok(Duration::from_secs(secs))
}

/// `9`, `KILL` or `SIGKILL` (any case).
pub fn parse_signal(s: &str) -> Result<Signal, ParseError> {
    let bad = || ParseError::BadSignal(s.chars().take(40).collect());
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse::<Signal>().map_err(|_| bad())
}
