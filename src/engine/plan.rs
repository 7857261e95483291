//! Planning a start from the state alone (the gate, the image, the command, an address on each of its
//! networks, the port claims and the limits): pure, so it runs under the state lock, and is tested without
//! root; then the [`StartPlan`] the launch outside the lock follows.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use super::records::{ContainerRecord, DEFAULT_NETWORK};
use super::state::State;
use super::volumes::PlannedVolume;
use super::Engine;
use crate::cgroups::Limits;
use crate::error::Error;
use crate::model::Op;
use crate::network::etc::ExtraHost;
use crate::network::PortMap;
use crate::network::{Bridge, Link, NetworkError, NetworkMode, MAX_LINKS};
use crate::runtime::spec::LaunchSpec;
use crate::runtime::spec::ProcessRef;

/// What a start of a container will run with, decided under the state lock.
pub(super) struct Planned {
    /// Its record, with the addresses it starts with.
    pub(super) record: ContainerRecord,
    /// Its entrypoint and arguments over its image's.
    pub(super) argv: Vec<String>,
    /// Its address on the default network, if it joins it.
    pub(super) ip: Option<Ipv4Addr>,
    /// Its addresses on its other networks.
    pub(super) net_addresses: BTreeMap<String, Ipv4Addr>,
    /// Its interfaces, in the order of its networks (`eth0` first).
    pub(super) links: Vec<Link>,
    /// `network container:NAME`: that container's pid 1, whose network namespace it joins.
    pub(super) netns: Option<ProcessRef>,
    /// Its limits, the daemon's `defaults` for what it sets none of.
    pub(super) limits: Limits,
}

impl State {
    /// Plans a start of `name` (`default` is the default network's bridge): refused (and nothing changed)
    /// if it may not start now, has no image or command, forwards ports off the bridge or claims a host port
    /// another container that runs or starts holds, names a network that is gone or changing, or if a
    /// network has no address left.
    pub(super) fn plan_start(&self, name: &str, default: &Bridge, defaults: &Limits) -> Result<Planned, Error> {
        let c = self.container(name)?;
        c.gate(Op::Start)?;
        if c.record.image.is_none() {
            return Err(Error::NoImage(name.to_string()));
        }
        // Its rootfs and its image's config are its own: the image itself may be gone.
        let argv = c.record.argv();
        if argv.is_empty() {
            return Err(Error::Invalid(format!(
                "container '{name}' has no command and its image has no Entrypoint or Cmd: write one to cmd"
            )));
        }
        if c.record.network != NetworkMode::Bridge && !c.record.ports.is_empty() {
            return Err(NetworkError::PortsNeedBridge(name.to_string()).into());
        }
        self.check_port_claims(name, &c.record.ports)?;
        let netns = c.record.network.joined().map(|target| self.joined_process(name, target)).transpose()?;
        let mut record = c.record.clone();
        let (mut ip, mut net_addresses, mut links) = (None, BTreeMap::new(), Vec::new());
        for network in c.record.joined_networks().into_iter().take(MAX_LINKS) {
            let bridge = match network {
                DEFAULT_NETWORK => default.clone(),
                other => {
                    if let Some(doing) = self.changing_networks.get(other) {
                        return Err(Error::Changing { what: format!("network '{other}'"), doing });
                    }
                    self.network(other)?.bridge()
                }
            };
            let address = self.address_on(name, network, &bridge.subnet)?;
            match network {
                DEFAULT_NETWORK => ip = Some(address),
                other => {
                    net_addresses.insert(other.to_string(), address);
                }
            }
            links.push(Link { bridge, ip: address });
        }
        (record.ip, record.net_addresses) = (ip, net_addresses.clone());
        Ok(Planned { limits: record.limits.or(defaults), record, argv, ip, net_addresses, links, netns })
    }

    /// The pid 1 of `target`, whose network namespace `name` joins: it must be running (or paused), else
    /// ESRCH (ENOENT if there is no such container).
    fn joined_process(&self, name: &str, target: &str) -> Result<ProcessRef, Error> {
        // The namespace at the end of the chain (web joins db joins ...) must not be the host's.
        let mut end = target;
        for _ in 0..self.containers.len() {
            match &self.container(end)?.record.network {
                NetworkMode::Host => {
                    return Err(NetworkError::JoinedHost { name: name.to_string(), target: target.to_string() }.into())
                }
                NetworkMode::Container(next) => end = next,
                _ => break,
            }
        }
        let t = &self.container(target)?.record;
        let not_running = || NetworkError::JoinedNotRunning { name: name.to_string(), target: target.to_string() };
        match (t.status.has_process(), t.pid, t.pid_start) {
            (true, Some(pid), Some(start)) => Ok(ProcessRef { pid, start }),
            _ => Err(not_running().into()),
        }
    }
}

/// What a start decided under the state lock, for the steps outside it.
pub(super) struct StartPlan {
    pub(super) spec: LaunchSpec,
    /// Its interfaces, `eth0` first.
    pub(super) links: Vec<Link>,
    /// The nameserver of its `/etc/resolv.conf`: the gateway of its first network with a DNS server.
    pub(super) nameserver: Option<Ipv4Addr>,
    pub(super) volumes: Vec<PlannedVolume>,
    pub(super) privileged: bool,
    pub(super) ports: Vec<PortMap>,
    pub(super) limits: Limits,
    /// Its `extra_hosts` and `dns`, for its `/etc` files.
    pub(super) extra_hosts: Vec<ExtraHost>,
    pub(super) dns: Vec<IpAddr>,
}

/// A start's plan and the addresses it holds from its reserve on (given back if it fails).
pub(super) struct Addressed {
    pub(super) plan: StartPlan,
    pub(super) ip: Option<Ipv4Addr>,
    pub(super) net_addresses: std::collections::BTreeMap<String, Ipv4Addr>,
}

impl Engine {
    /// What a start of `name` needs, decided from the state alone: refused if it may not start now.
    pub(super) fn plan_start(&self, st: &State, name: &str) -> Result<Addressed, Error> {
        let default = self.network.default_bridge();
        let Planned { record, argv, ip, net_addresses, links, limits, netns } =
            st.plan_start(name, &default, &self.defaults)?;
        let nameserver = links.iter().find(|l| l.bridge.name != default.name).map(|l| l.bridge.subnet.gateway());
        let plan = StartPlan {
            spec: LaunchSpec { netns, ..self.launch_spec(&record, argv) },
            links,
            nameserver,
            volumes: self.volume_plan(st, &record)?,
            privileged: record.security.privileged,
            ports: record.ports,
            limits,
            extra_hosts: record.extra_hosts,
            dns: record.dns,
        };
        Ok(Addressed { plan, ip, net_addresses })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use oci_spec::image::ImageConfiguration;

    use std::sync::Arc;

    use super::*;
    use crate::cgroups::{Limit, LimitKind, Max};
    use crate::engine::records::{new_record, ImageRecord};
    use crate::engine::state::Container;
    use crate::engine::state::Image;
    use crate::model::ContainerStatus;
    use crate::model::ImageConfig;
    use crate::network::{parse_ports, PortMap, Subnet};

    fn ports(text: &str) -> Vec<PortMap> {
        parse_ports(text).unwrap()
    }

    fn image(id: &str, cmd: &[&str]) -> Arc<Image> {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":{}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#,
            serde_json::to_string(cmd).unwrap()
        );
        let record = ImageRecord {
            id: id.into(),
            source: format!("/srv/{id}"),
            names: Vec::new(),
            created: "2026-01-01T00:00:00Z".into(),
            size: 0,
            digest: None,
            layers: Vec::new(),
            chain: Vec::new(),
            steps: Vec::new(),
        };
        let config_raw = config.into_bytes();
        Arc::new(Image { record, config: ImageConfiguration::from_reader(config_raw.as_slice()).unwrap(), config_raw })
    }

    fn bridge() -> Bridge {
        Bridge { name: "bk9".into(), subnet: Subnet::from_str("10.9.0.0/24").unwrap() }
    }

    /// A state with image `img_a` (Cmd `sh`) and containers made of it by `make`.
    type Make<'a> = (&'a str, fn(&mut ContainerRecord));

    fn state(make: &[Make<'_>]) -> State {
        let mut st = State::default();
        st.images.insert("img_a".into(), image("img_a", &["sh"]));
        for (name, f) in make {
            let mut r = new_record(name);
            r.image = Some("img_a".into());
            r.image_config = Some(ImageConfig::from_raw(&st.images["img_a"].config_raw));
            f(&mut r);
            st.containers.insert(name.to_string(), Arc::new(Container::new(r)));
        }
        st
    }

    fn refused(planned: Result<Planned, Error>) -> Error {
        match planned {
            Ok(p) => panic!("{} was planned to start", p.record.name),
            Err(e) => e,
        }
    }

    fn running(r: &mut ContainerRecord) {
        r.status = ContainerStatus::Running;
    }

    fn plan(st: &State, name: &str) -> Result<Planned, Error> {
        st.plan_start(name, &bridge(), &Limits::default())
    }

    #[test]
    fn a_start_runs_its_own_command_else_its_images() {
        let st = state(&[("a", |_| {}), ("b", |r| r.cmd = Some(vec!["echo".into(), "hi".into()]))]);
        assert_eq!(plan(&st, "a").unwrap().argv, ["sh"]);
        assert_eq!(plan(&st, "b").unwrap().argv, ["echo", "hi"]);
    }

    #[test]
    fn a_start_that_cannot_run_is_refused_with_the_reason() {
        let mut st = state(&[("up", running), ("bare", |r| r.image = None)]);
        assert_eq!(refused(plan(&st, "up")).errno(), libc::EBUSY);
        assert!(refused(plan(&st, "up")).to_string().contains("already running"));
        assert_eq!(refused(plan(&st, "bare")).errno(), libc::EINVAL);
        assert_eq!(refused(plan(&st, "nobody")).errno(), libc::ENOENT);
        st.images.insert("img_e".into(), image("img_e", &[]));
        st.containers.insert("empty".into(), {
            let mut r = new_record("empty");
            r.image = Some("img_e".into());
            r.image_config = Some(ImageConfig::from_raw(&st.images["img_e"].config_raw));
            Arc::new(Container::new(r))
        });
        assert!(refused(plan(&st, "empty")).to_string().contains("has no command"));
    }

    #[test]
    fn a_transition_under_way_refuses_a_start() {
        let mut st = state(&[("c", |_| {})]);
        for t in [ContainerStatus::Starting, ContainerStatus::Removing, ContainerStatus::Committing] {
            st.container_mut("c").unwrap().transition = Some(t);
            let e = refused(plan(&st, "c"));
            assert_eq!(e.errno(), libc::EBUSY, "{t:?}");
            assert!(e.to_string().contains(&format!("is {}", t.as_str())), "{e}");
        }
    }

    #[test]
    fn a_container_starts_whatever_becomes_of_its_image() {
        // Its rootfs and its image's config are its own: an image being removed, or gone, changes nothing.
        let mut st = state(&[("c", |_| {}), ("orphan", |r| r.image = Some("img_gone".into()))]);
        st.changing_images.insert("img_a".into(), crate::engine::images::REMOVING);
        assert_eq!(plan(&st, "c").unwrap().argv, ["sh"]);
        assert_eq!(plan(&st, "orphan").unwrap().argv, ["sh"]);
    }

    #[test]
    fn addresses_are_the_lowest_free_kept_once_given_and_none_off_the_bridge() {
        let st = state(&[
            ("a", |r| r.ip = Some("10.9.0.2".parse().unwrap())),
            ("b", |_| {}),
            ("host", |r| r.network = NetworkMode::Host),
            // An address outside what the anti-spoofing table binds (an older daemon's) is replaced.
            ("old", |r| r.ip = Some("10.9.0.1".parse().unwrap())),
        ]);
        assert_eq!(plan(&st, "a").unwrap().ip, Some("10.9.0.2".parse().unwrap()));
        assert_eq!(plan(&st, "b").unwrap().ip, Some("10.9.0.3".parse().unwrap()));
        assert_eq!(plan(&st, "host").unwrap().ip, None);
        let old = plan(&st, "old").unwrap();
        assert_eq!(old.ip, Some("10.9.0.3".parse().unwrap()));
        assert_eq!(old.record.ip, old.ip);
    }

    #[test]
    fn a_full_subnet_refuses_a_start_with_enospc() {
        let small = Bridge { name: "bk9".into(), subnet: Subnet::from_str("10.9.0.0/30").unwrap() };
        let st = state(&[("a", |r| r.ip = Some("10.9.0.2".parse().unwrap())), ("b", |_| {})]);
        assert_eq!(st.plan_start("a", &small, &Limits::default()).unwrap().ip, Some("10.9.0.2".parse().unwrap()));
        let e = refused(st.plan_start("b", &small, &Limits::default()));
        assert!(e.to_string().contains("10.9.0.0/30"), "{e}");
        assert_eq!(e.errno(), libc::ENOSPC);
    }

    #[test]
    fn a_host_port_is_claimed_by_one_running_or_starting_container() {
        let mut st = state(&[
            ("web", |r| {
                r.status = ContainerStatus::Running;
                r.ip = Some("10.9.0.2".parse().unwrap());
                r.ports = ports("8080:80");
            }),
            ("again", |r| r.ports = ports("8080:81")),
            ("other", |r| r.ports = ports("8081:80")),
            ("udp", |r| r.ports = ports("8080:80/udp")),
        ]);
        let e = refused(plan(&st, "again"));
        assert_eq!(e.errno(), libc::EADDRINUSE);
        assert!(e.to_string().contains("web"), "{e}");
        assert!(plan(&st, "other").is_ok());
        assert!(plan(&st, "udp").is_ok(), "tcp and udp ports are apart");
        // Once web exits its port is free; a container that is starting holds its claim as a running one.
        st.container_mut("web").unwrap().record.status = ContainerStatus::Exited;
        assert!(plan(&st, "again").is_ok());
        let starting = st.container_mut("other").unwrap();
        starting.record.ports = ports("8080:80");
        starting.record.ip = Some("10.9.0.4".parse().unwrap());
        starting.transition = Some(ContainerStatus::Starting);
        assert_eq!(refused(plan(&st, "again")).errno(), libc::EADDRINUSE);
    }

    #[test]
    fn ports_need_the_bridge() {
        let st = state(&[("n", |r| {
            r.network = NetworkMode::None;
            r.ports = ports("8080:80");
        })]);
        assert_eq!(refused(plan(&st, "n")).errno(), libc::EINVAL);
    }

    #[test]
    fn a_joiner_starts_only_beside_its_running_target_with_no_address() {
        let mut st = state(&[
            ("web", |r| {
                r.status = ContainerStatus::Running;
                (r.pid, r.pid_start) = (Some(4242), Some(77));
            }),
            ("side", |r| r.network = NetworkMode::Container("web".into())),
            ("late", |r| r.network = NetworkMode::Container("idle".into())),
            ("idle", |_| {}),
            ("lost", |r| r.network = NetworkMode::Container("nobody".into())),
        ]);
        let side = plan(&st, "side").unwrap();
        assert_eq!((side.netns, side.ip), (Some(ProcessRef { pid: 4242, start: 77 }), None));
        let e = refused(plan(&st, "late"));
        assert_eq!(e.errno(), libc::ESRCH);
        assert!(e.to_string().contains("'idle', which is not running"), "{e}");
        assert_eq!(refused(plan(&st, "lost")).errno(), libc::ENOENT);
        // A paused target's namespace is there to join; an exited one's is not.
        st.container_mut("web").unwrap().record.status = ContainerStatus::Paused;
        assert!(plan(&st, "side").is_ok());
        st.container_mut("web").unwrap().record.status = ContainerStatus::Exited;
        assert_eq!(refused(plan(&st, "side")).errno(), libc::ESRCH);
        // A target on the host's network, or joined to one, is the host's namespace: refused.
        let mut st = state(&[
            ("hostnet", |r| {
                r.network = NetworkMode::Host;
                r.status = ContainerStatus::Running;
                (r.pid, r.pid_start) = (Some(4243), Some(78));
            }),
            ("mid", |r| {
                r.network = NetworkMode::Container("hostnet".into());
                r.status = ContainerStatus::Running;
                (r.pid, r.pid_start) = (Some(4244), Some(79));
            }),
            ("a", |r| r.network = NetworkMode::Container("hostnet".into())),
            ("b", |r| r.network = NetworkMode::Container("mid".into())),
        ]);
        for joiner in ["a", "b"] {
            let e = refused(plan(&st, joiner));
            assert_eq!(e.errno(), libc::EINVAL, "{joiner}");
            assert!(e.to_string().contains("host's network"), "{e}");
        }
        // A cycle of joins (records can say so) ends the walk: bounded by the containers there are.
        st.container_mut("hostnet").unwrap().record.network = NetworkMode::Container("b".into());
        assert!(plan(&st, "a").is_ok(), "hostnet runs, in whatever namespace it joined at its start");
    }

    #[test]
    fn limits_it_sets_win_over_the_daemons_defaults() {
        let st = state(&[("c", |r| r.limits.put(Limit::PidsMax(Max(Some(50)))))]);
        let mut defaults = Limits::default();
        defaults.put(Limit::PidsMax(Max(Some(10))));
        defaults.put(Limit::MemoryMax(Max(Some(1 << 20))));
        let limits = st.plan_start("c", &bridge(), &defaults).unwrap().limits;
        assert_eq!(limits.get(LimitKind::PidsMax), Some(Limit::PidsMax(Max(Some(50)))));
        assert_eq!(limits.get(LimitKind::MemoryMax), Some(Limit::MemoryMax(Max(Some(1 << 20)))));
    }
}
