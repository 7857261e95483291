//! The life cycle of a container and of an exec, and the one gate every operation passes: an operation
//! ([`Op`]) may run on a container only in the statuses [`ContainerStatus::allows`] names.
//!
//! Four statuses are settled and stored in a container's record: `created`, `running`, `paused` (its
//! cgroup frozen) and `exited`. The others are transitions, held in memory only while an operation is under
//! way (as youki's `Creating`): `creating` (its rootfs is being made from a new image), `starting`,
//! `stopping` (signalled, within its grace period), `pausing` (its cgroup being frozen), `removing` and
//! `committing`. A transition refuses every operation that would race it.

use serde::{Deserialize, Serialize};

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// Configured, never started.
    Created,
    /// Its rootfs is being made from the image just written to `image`.
    Creating,
    /// Its launch is under way.
    Starting,
    Running,
    /// Its cgroup is frozen (`pause`): its processes live but get no CPU until `unpause`.
    Paused,
    /// Its cgroup is being frozen, until the kernel says every process in it is.
    Pausing,
    /// Signalled by `stop`, within its grace period.
    Stopping,
    /// Its process has ended; it can start again.
    Exited,
    /// Being removed.
    Removing,
    /// An image is being made of its rootfs.
    Committing,
}

/// What a request asks of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Start,
    Stop,
    Kill,
    Exec,
    Remove,
    /// Its command, environment, volumes, network, security: fixed while it runs.
    Configure,
    /// Its image: fixed once it has started.
    ChangeImage,
    /// Its limits and ports: live while it runs.
    Tune,
    Commit,
    /// Freeze its cgroup.
    Pause,
    /// Thaw its frozen cgroup.
    Unpause,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Kill => "signal",
            Op::Exec => "run a command in",
            Op::Remove => "remove",
            Op::Configure => "configure",
            Op::ChangeImage => "change the image of",
            Op::Tune => "change the limits or ports of",
            Op::Commit => "commit",
            Op::Pause => "pause",
            Op::Unpause => "unpause",
        }
    }

    /// Ops that need a running process: refused with ESRCH (not EBUSY) when there is none.
    pub fn needs_process(self) -> bool {
        matches!(self, Op::Stop | Op::Kill | Op::Exec | Op::Pause | Op::Unpause)
    }
}

impl ContainerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Creating => "creating",
            ContainerStatus::Starting => "starting",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Pausing => "pausing",
            ContainerStatus::Stopping => "stopping",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Removing => "removing",
            ContainerStatus::Committing => "committing",
        }
    }

    /// Whether `op` may run now: the one gate.
    pub fn allows(self, op: Op) -> bool {
        use ContainerStatus::*;
        match op {
            Op::Start => matches!(self, Created | Exited),
            // A second `stop` during a first one waits for the same end; a paused one is signalled, then
            // thawed so that it takes the signal (as Docker does).
            Op::Stop | Op::Kill => matches!(self, Running | Stopping | Paused),
            // As Docker's: a paused container runs no new command until it is unpaused.
            Op::Exec => self == Running,
            Op::Remove | Op::Configure => matches!(self, Created | Exited),
            Op::ChangeImage => self == Created,
            // Limits go to the frozen cgroup as to a running one (docker update), and a commit of a paused
            // one snapshots a rootfs nothing writes to.
            Op::Tune | Op::Commit => matches!(self, Created | Running | Paused | Exited),
            Op::Pause => self == Running,
            Op::Unpause => self == Paused,
        }
    }

    /// A settled status, as stored in records (never a transition).
    pub fn is_settled(self) -> bool {
        use ContainerStatus::*;
        matches!(self, Created | Running | Paused | Exited)
    }

    /// Whether a process of the container may be alive (running or paused, or on its way in or out).
    pub fn has_process(self) -> bool {
        use ContainerStatus::*;
        matches!(self, Running | Paused | Pausing | Stopping)
    }

    /// The human words of a refusal of `op` on container `name` in this status.
    pub fn refusal(self, op: Op, name: &str) -> String {
        use ContainerStatus::*;
        match (op, self) {
            (Op::Start, Running | Stopping) => format!("container '{name}' is already running"),
            (Op::Start, Paused) => format!("container '{name}' is paused: unpause it instead"),
            (Op::Stop | Op::Kill | Op::Exec | Op::Pause | Op::Unpause, Created | Exited) => {
                format!("container '{name}' is not running")
            }
            (Op::Exec, Paused) => format!("container '{name}' is paused: unpause it before exec"),
            (Op::Pause, Paused) => format!("container '{name}' is already paused"),
            (Op::Unpause, Running) => format!("container '{name}' is not paused"),
            (Op::Remove, Running) => format!("container '{name}' is running: stop it first"),
            (Op::Remove, Paused) => {
                format!("container '{name}' is paused: unpause and stop it first (or write remove to ctl)")
            }
            (Op::Configure, Running | Paused) => {
                format!("container '{name}' is {}: its configuration is fixed until it stops", self.as_str())
            }
            (Op::ChangeImage, Running | Paused | Stopping | Exited) => {
                format!("the image of '{name}' can't change once it has started")
            }
            (_, Creating | Starting | Stopping | Pausing | Removing | Committing) => {
                format!("container '{name}' is {}: it can't be {} until that ends", self.as_str(), op.past())
            }
            _ => format!("container '{name}' is {}: it can't be {}", self.as_str(), op.past()),
        }
    }
}

impl Op {
    fn past(self) -> &'static str {
        match self {
            Op::Start => "started",
            Op::Stop => "stopped",
            Op::Kill => "signalled",
            Op::Exec => "given a command",
            Op::Remove => "removed",
            Op::Configure => "configured",
            Op::ChangeImage => "given another image",
            Op::Tune => "tuned",
            Op::Commit => "committed",
            Op::Pause => "paused",
            Op::Unpause => "unpaused",
        }
    }
}

/// Where an exec is: `starting` (its number reserved, not yet listed), `running`, `exited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecStatus {
    /// Being set up; older daemons wrote it as `created`.
    #[serde(alias = "created")]
    Starting,
    Running,
    Exited,
}

impl ExecStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Starting => "starting",
            ExecStatus::Running => "running",
            ExecStatus::Exited => "exited",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ContainerStatus::{self, *};
    use super::{ExecStatus, Op};

    const ALL: [ContainerStatus; 10] =
        [Created, Creating, Starting, Running, Paused, Pausing, Stopping, Exited, Removing, Committing];

    fn allowed(op: Op) -> Vec<ContainerStatus> {
        ALL.into_iter().filter(|s| s.allows(op)).collect()
    }

    #[test]
    fn each_operation_runs_only_from_its_statuses() {
        assert_eq!(allowed(Op::Start), [Created, Exited]);
        assert_eq!(allowed(Op::Stop), [Running, Paused, Stopping]);
        assert_eq!(allowed(Op::Kill), [Running, Paused, Stopping]);
        assert_eq!(allowed(Op::Exec), [Running]);
        assert_eq!(allowed(Op::Remove), [Created, Exited]);
        assert_eq!(allowed(Op::Configure), [Created, Exited]);
        assert_eq!(allowed(Op::ChangeImage), [Created]);
        assert_eq!(allowed(Op::Tune), [Created, Running, Paused, Exited]);
        assert_eq!(allowed(Op::Commit), [Created, Running, Paused, Exited]);
        assert_eq!(allowed(Op::Pause), [Running]);
        assert_eq!(allowed(Op::Unpause), [Paused]);
    }

    #[test]
    fn a_transition_refuses_everything_that_would_race_it() {
        for t in [Creating, Starting, Pausing, Removing, Committing] {
            for op in [
                Op::Start,
                Op::Stop,
                Op::Exec,
                Op::Remove,
                Op::Configure,
                Op::ChangeImage,
                Op::Tune,
                Op::Commit,
                Op::Pause,
                Op::Unpause,
            ] {
                assert!(!t.allows(op), "{t:?} allows {op:?}");
            }
        }
        // Stopping still takes a kill (and a second stop): the grace period is the user's to cut short.
        assert!(Stopping.allows(Op::Kill) && !Stopping.allows(Op::Remove) && !Stopping.allows(Op::Start));
    }

    #[test]
    fn only_settled_statuses_are_stored() {
        let stored: Vec<_> = ALL.into_iter().filter(|s| s.is_settled()).collect();
        assert_eq!(stored, [Created, Running, Paused, Exited]);
        for s in ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }

    #[test]
    fn refusals_say_what_the_container_is_doing() {
        assert_eq!(Running.refusal(Op::Start, "c"), "container 'c' is already running");
        assert_eq!(Exited.refusal(Op::Stop, "c"), "container 'c' is not running");
        assert_eq!(Running.refusal(Op::Remove, "c"), "container 'c' is running: stop it first");
        assert!(Starting.refusal(Op::Remove, "c").starts_with("container 'c' is starting"));
        assert!(Stopping.refusal(Op::Remove, "c").starts_with("container 'c' is stopping"));
        assert!(Running.refusal(Op::ChangeImage, "c").contains("can't change once it has started"));
        assert!(Running.refusal(Op::Configure, "c").contains("is running"));
        assert_eq!(Paused.refusal(Op::Pause, "c"), "container 'c' is already paused");
        assert_eq!(Running.refusal(Op::Unpause, "c"), "container 'c' is not paused");
        assert_eq!(Exited.refusal(Op::Pause, "c"), "container 'c' is not running");
        assert!(Paused.refusal(Op::Exec, "c").contains("unpause it before exec"));
        assert!(Paused.refusal(Op::Remove, "c").contains("is paused"));
        assert!(Paused.refusal(Op::Start, "c").contains("unpause it instead"));
        assert!(Pausing.refusal(Op::Stop, "c").starts_with("container 'c' is pausing"));
    }

    #[test]
    fn exec_records_of_older_daemons_still_load() {
        assert_eq!(serde_json::from_str::<ExecStatus>("\"created\"").unwrap(), ExecStatus::Starting);
        assert_eq!(serde_json::from_str::<ExecStatus>("\"exited\"").unwrap(), ExecStatus::Exited);
    }
}
