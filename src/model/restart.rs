//! Restart policies, as Docker's `--restart`: which exits bring a container back, and after how long.
//! Pure logic; the engine's `restart` module carries it out.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What brings a container back after its process ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never (the default).
    #[default]
    No,
    /// After an exit with a code other than 0, at most `max` times in a row if given.
    OnFailure { max: Option<u32> },
    /// After every exit, and when the daemon starts, unless a user stopped it (then only at the daemon's
    /// next start).
    Always,
    /// As `Always`, but a container a user stopped stays stopped across the daemon's restarts too.
    UnlessStopped,
}

/// The first wait before a restart, doubled at each restart in a row (Docker's).
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait before a restart.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run this long resets the wait to [`FIRST_DELAY`].
pub const RESET_AFTER: Duration = Duration::from_secs(10);

impl RestartPolicy {
    /// `no`, `on-failure`, `on-failure:MAX`, `always` or `unless-stopped`.
    pub fn parse(text: &str) -> Result<RestartPolicy, String> {
        let bad = || {
            format!(
                "'{}': give no, on-failure[:MAX], always or unless-stopped",
                text.chars().take(40).collect::<String>()
            )
        };
        Ok(match text.split_once(':') {
            None if text == "no" || text.is_empty() => RestartPolicy::No,
            None if text == "on-failure" => RestartPolicy::OnFailure { max: None },
            None if text == "always" => RestartPolicy::Always,
            None if text == "unless-stopped" => RestartPolicy::UnlessStopped,
            Some(("on-failure", max)) => {
                let max: u32 = max.parse().map_err(|_| bad())?;
                RestartPolicy::OnFailure { max: (max > 0).then_some(max) }
            }
            _ => return Err(bad()),
        })
    }

    /// Whether an exit with `exit_code` brings it back, after `count` restarts in a row; never after a
    /// user stopped or killed it.
    pub fn restarts_after(self, exit_code: i32, count: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { max } => exit_code != 0 && max.is_none_or(|m| count < m),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }

    /// Whether the daemon, starting, starts a container that is not running: `always` ones (even one a
    /// user stopped), `unless-stopped` ones nobody stopped, and `on-failure` ones whose last exit calls
    /// for a restart that didn't happen.
    pub fn starts_with_daemon(self, exit_code: Option<i32>, count: u32, stopped_by_user: bool) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::UnlessStopped => !stopped_by_user,
            _ => exit_code.is_some_and(|code| self.restarts_after(code, count, stopped_by_user)),
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => write!(f, "no"),
            RestartPolicy::OnFailure { max: None } => write!(f, "on-failure"),
            RestartPolicy::OnFailure { max: Some(m) } => write!(f, "on-failure:{m}"),
            RestartPolicy::Always => write!(f, "always"),
            RestartPolicy::UnlessStopped => write!(f, "unless-stopped"),
        }
    }
}

/// The wait before the next restart: [`FIRST_DELAY`] after a run of [`RESET_AFTER`] or more (or the
/// first time), else twice the last, up to [`MAX_DELAY`].
pub fn next_delay(last: Option<Duration>, ran_for: Duration) -> Duration {
    match last {
        Some(last) if ran_for < RESET_AFTER => (last * 2).min(MAX_DELAY),
        _ => FIRST_DELAY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print_back() {
        for text in ["no", "on-failure", "on-failure:3", "always", "unless-stopped"] {
            assert_eq!(RestartPolicy::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(RestartPolicy::parse("on-failure:0").unwrap(), RestartPolicy::OnFailure { max: None });
        for bad in ["sometimes", "on-failure:x", "always:2", "on-failure:-1", "No"] {
            assert!(RestartPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn which_exits_restart() {
        let twice = RestartPolicy::OnFailure { max: Some(2) };
        assert!(twice.restarts_after(1, 0, false) && twice.restarts_after(1, 1, false));
        assert!(!twice.restarts_after(1, 2, false), "at most twice");
        assert!(!twice.restarts_after(0, 0, false), "not after a clean exit");
        assert!(RestartPolicy::Always.restarts_after(0, 100, false));
        assert!(!RestartPolicy::Always.restarts_after(1, 0, true), "a user's stop ends it");
        assert!(!RestartPolicy::No.restarts_after(1, 0, false));
        assert!(RestartPolicy::Always.starts_with_daemon(Some(0), 0, true));
        assert!(!RestartPolicy::UnlessStopped.starts_with_daemon(Some(0), 0, true));
        assert!(RestartPolicy::UnlessStopped.starts_with_daemon(Some(0), 0, false));
        assert!(!RestartPolicy::No.starts_with_daemon(Some(1), 0, false));
    }

    #[test]
    fn delays_double_and_reset() {
        assert_eq!(next_delay(None, Duration::ZERO), FIRST_DELAY);
        assert_eq!(next_delay(Some(FIRST_DELAY), Duration::from_secs(1)), FIRST_DELAY * 2);
        assert_eq!(next_delay(Some(Duration::from_secs(50)), Duration::ZERO), MAX_DELAY);
        assert_eq!(next_delay(Some(Duration::from_secs(50)), RESET_AFTER), FIRST_DELAY);
    }
}
