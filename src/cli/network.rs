//! `bocker network create|rm|ls|inspect`, over `networks/`: `mkdir networks/NAME` (then a write of its
//! `subnet` for `--subnet`), `rmdir`, a listing with each one's files, and `docker network inspect`'s
//! fields read from them.

use std::fs;

use super::{io_err, Cli, CliError};

/// `bocker network`'s verbs.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum NetworkCommand {
    /// Make a network: its own bridge and a subnet from the daemon's pool (or --subnet), a DNS server on
    /// its gateway resolving its containers' names (mkdir networks/NAME).
    Create {
        /// Its subnet instead of the pool's next free one (written to networks/NAME/subnet).
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
        name: String,
    },
    /// Remove networks no container lists (rmdir networks/NAME).
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List networks: NAME, SUBNET, GATEWAY, BRIDGE.
    Ls,
    /// Print networks as JSON (docker network inspect's Name, Subnet, Gateway, Bridge, Containers).
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

impl Cli {
    pub fn network(&self, command: &NetworkCommand) -> Result<i32, CliError> {
        match command {
            NetworkCommand::Create { subnet, name } => self.network_create(name, subnet.as_deref()),
            NetworkCommand::Rm { names } => {
                for name in names {
                    let rel = format!("networks/{name}");
                    fs::remove_dir(self.path(&rel)).map_err(|e| CliError::Failed(self.why(&rel, &e)))?;
                    say!("{name}");
                }
                Ok(0)
            }
            NetworkCommand::Ls => {
                say!("{:<20} {:<18} {:<15} BRIDGE", "NAME", "SUBNET", "GATEWAY");
                for name in self.list("networks")? {
                    let file = |f: &str| self.read(&format!("networks/{name}/{f}"));
                    say!("{name:<20} {:<18} {:<15} {}", file("subnet"), file("gateway"), file("bridge"));
                }
                Ok(0)
            }
            NetworkCommand::Inspect { names } => {
                let mut all = Vec::new();
                for name in names {
                    let dir = format!("networks/{name}");
                    let _ = fs::read_dir(self.path(&dir)).map_err(io_err(format!("no network '{name}'")))?;
                    let file = |f: &str| self.read(&format!("{dir}/{f}"));
                    let containers: Vec<String> = file("containers").lines().map(str::to_string).collect();
                    all.push(serde_json::json!({
                        "Name": name,
                        "Driver": "bridge",
                        "IPAM": {"Config": [{"Subnet": file("subnet"), "Gateway": file("gateway")}]},
                        "Options": {"com.docker.network.bridge.name": file("bridge")},
                        "Containers": containers,
                    }));
                }
                say!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
                Ok(0)
            }
        }
    }

    /// `mkdir networks/NAME`, then its subnet if one is given (the network goes again if that is refused).
    fn network_create(&self, name: &str, subnet: Option<&str>) -> Result<i32, CliError> {
        let rel = format!("networks/{name}");
        fs::create_dir(self.path(&rel)).map_err(|e| CliError::Failed(self.why(&rel, &e)))?;
        if let Some(subnet) = subnet {
            let file = format!("{rel}/subnet");
            if let Err(e) = fs::write(self.path(&file), subnet) {
                let why = self.why(&file, &e);
                let _ = fs::remove_dir(self.path(&rel));
                return Err(CliError::Failed(why));
            }
        }
        say!("{name}");
        Ok(0)
    }
}
