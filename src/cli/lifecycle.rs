//! `bocker restart`, `pause`, `unpause` and `rm -f`: one verb written to a container's `ctl` each, as a
//! shell would (`echo pause > containers/NAME/ctl`), printed as Docker prints them.

use std::fs::OpenOptions;
use std::io::Write;

use super::{Cli, CliError};

impl Cli {
    /// Writes `verb` to container `name`'s `ctl` in one write: ESRCH is bocker's "not running".
    fn ctl(&self, name: &str, verb: &str) -> Result<(), CliError> {
        let dir = format!("containers/{name}");
        if name.is_empty() || name.contains('/') || name == "." || name == ".." || !self.path(&dir).is_dir() {
            return Err(CliError::NoContainer(name.to_string()));
        }
        let rel = format!("{dir}/ctl");
        let written =
            OpenOptions::new().write(true).open(self.path(&rel)).and_then(|mut f| f.write_all(verb.as_bytes()));
        written.map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => CliError::NotRunning(name.to_string()),
            Some(libc::ENOENT) if !self.path(&dir).is_dir() => CliError::NoContainer(name.to_string()),
            _ => CliError::Failed(self.why(&rel, &e)),
        })
    }

    /// `bocker restart [-t SECONDS] NAME`: stopped with that grace (Docker's 10 s by default) if it runs,
    /// then started; prints its name.
    pub fn restart(&self, name: &str, grace_secs: u64) -> Result<i32, CliError> {
        self.ctl(name, &format!("restart {grace_secs}"))?;
        say!("{name}");
        Ok(0)
    }

    /// `bocker pause NAME`: its processes frozen; prints its name.
    pub fn pause(&self, name: &str) -> Result<i32, CliError> {
        self.ctl(name, "pause")?;
        say!("{name}");
        Ok(0)
    }

    /// `bocker unpause NAME`: its processes thawed; prints its name.
    pub fn unpause(&self, name: &str) -> Result<i32, CliError> {
        self.ctl(name, "unpause")?;
        say!("{name}");
        Ok(0)
    }

    /// `bocker rm -f ID`: a container is killed if it runs (paused too), then removed (`ctl` remove); an
    /// image is removed as by `bocker rm`. Prints bocker's `Removed: ID`.
    pub fn rm_force(&self, id: &str) -> Result<i32, CliError> {
        let container = !id.is_empty() && !id.contains('/') && self.path(&format!("containers/{id}")).is_dir();
        if !container {
            return self.rm(id);
        }
        self.ctl(id, "remove")?;
        say!("Removed: {id}");
        Ok(0)
    }
}
