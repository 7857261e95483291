//! The `README` at the root of the mount.

pub const README: &str = "\
bockerfs: containers driven with echo and cat.

  images/pull            echo alpine:3.20 > images/pull          (any OCI registry; platform=OS/ARCH optional)
  images/pulls           the pulls under way: REFERENCE LAYER DONE TOTAL STATE, a line per layer
  images/push            echo 'IMAGE REGISTRY/REPO:TAG' > images/push
  images/import          echo /path/to/rootfs > images/import   (a read on the same open file gives the id)
                         read as the writer (EACCES), one filesystem; procfs, sysfs, FUSE, the daemon's root: EPERM
  images/build           echo '/src/app -t app:1' > images/build   (CONTEXT [-f FILE] [-t NAME]... [--build-arg K=V]...
                         [--target STAGE] [--no-cache] [--network none|bridge]; returns when the build ends, a
                         read on the same open file gives the id; EINVAL a bad Dockerfile (line and column
                         named), ENOENT no Dockerfile or base image, ECANCELED a RUN that exited non-zero)
  builds/<N>/            status (running done failed) logs (steps and output; tail -f follows) image dockerfile
                         context tags started_at finished_at error; the last 64 kept; rmdir removes a finished one
  images/tag             echo 'IMAGE NAME' > images/tag          (the name moves from the image that had it)
  images/untag           echo NAME > images/untag                (the image stays; rmdir removes it)
  images/by-name/        every name: a directory per '/' part, REPO:TAG a symlink to its image (ls -lR)
  images/<id>/           source names created size digest layers config.json inspect.json rootfs; rmdir
                         removes (its containers keep their rootfs and its config). Names are Docker's:
                         alpine = docker.io/library/alpine:latest
                         An image is named by id, unique id prefix (img_3f), any form of a name, or the
                         directory it was imported from
  containers/run         echo 'IMAGE CMD ARG...' > containers/run (a read on the same open file gives the id);
                         a reference not here is pulled first, as docker run does (never a path or img_ id);
                         '--rm IMAGE CMD...': removed once it has exited (auto_remove). run, import, build,
                         pull, push, tag and untag take writes from many opens at once, each its own
                         command, and report size 4096 (a read gives only that open's answer)
  containers/<name>/     mkdir creates (state created); rmdir removes (EBUSY while running or paused)
    image cmd env        rw: configure before start (cmd: the arguments after the entrypoint, shell words or a
                         JSON array, blank = the image's Cmd; env: KEY=VALUE lines)
    entrypoint user workdir hostname stop_signal labels
                         rw, before start, blank = the image's: entrypoint (drops the image's Cmd), user
                         (NAME UID NAME:GROUP UID:GID, from the container's /etc/passwd), workdir (absolute),
                         hostname, stop_signal (what stop sends first), labels (KEY=VALUE lines)
    exposed_ports healthcheck  r: the image's
    ctl                  echo start | stop [SECONDS] | restart [SECONDS] | kill [SIGNAL] | pause | unpause |
                         remove | close-stdin > ctl; stop of one not running: done, nothing changed; kill: ESRCH;
                         pause/unpause: the cgroup freezer (no CPU while paused; exec EBUSY); stop, kill and
                         remove of a paused one signal, then thaw; remove: kill, wait, rmdir (docker rm -f);
                         a read on the open file that wrote start or restart gives that run's exit code once
                         it has ended, also once the container is gone
    volumes              rw: SOURCE:TARGET[:ro] lines, nosuid,nodev (:ro all the way down); EPERM: a target in
                         /proc /sys /dev unless privileged, a source in the daemon's root or mount
    volumes-from         rw: another container's name: its volumes too, at the same targets
    network ports ip     rw: bridge | none | host | container:NAME (NAME's network namespace, which must run:
                         else ESRCH; no ports there); [HOSTADDR:]HOSTPORT:CTRPORT[/udp] lines (live too), to its
                         first network's address; r: its address on each network, in their order
    networks aliases     rw, before start: network names, a line each (eth0, eth1, ... up to 8; default bridge;
                         ENOENT an unknown one); more names it answers to on its networks (--network-alias)
    extra_hosts dns      rw, before start: NAME:IP lines added to /etc/hosts (--add-host); nameserver IPs for
                         /etc/resolv.conf (--dns); EINVAL names the bad line
    privileged cap_add   rw: true | false; capabilities added to Docker's 14, a line each (EBUSY while running)
    auto_remove          rw: true | false: removed by the daemon once it has exited (docker run --rm); an open
                         logs (stdout, stderr, log_index) keeps it until closed
    exec execs/N/        w: a command line run in the running container, after -i -t as docker exec's (read N
                         back); N/: cmd status exit_code pid started_at finished_at logs stdout stderr
                         log_index attach wait
    tty interactive      rw: true | false, before start: a terminal the monitor holds; stdin kept open (-t -i)
    restart              rw: no | on-failure[:MAX] | always | unless-stopped (docker run --restart: back-off
                         from 100 ms doubling; a user's stop ends it); restart_count r: restarts since a start
    init                 rw: true | false, before start: pid 1 is tini (forwards signals, reaps orphans)
    attach               symlink to the monitor's socket serving the terminal or stdin (bocker attach)
    stdin                w: bytes for its stdin (EBADF not interactive, EPIPE closed); ctl close-stdin ends it
    commit               w: IMAGE: an image of the rootfs (an id is replaced, a name makes a new image; read
                         the id back)
    cpu.weight cpu.max memory.max pids.max                   rw: limits, cgroup v2's names, before start or live;
                         a blank write to any limit: back to its default (the daemon's, else none)
    memory.high          rw: bytes or max (ENOTSUP on cgroup v1: it has none)
    memory.swap.max      rw: swap bytes or max; unset: as much as memory.max (Docker's); without swap
                         accounting: max, a write ENOTSUP (v1: memory.memsw.limit_in_bytes, memory + swap)
    io.weight            rw: 1-10000, empty until set (BFQ's weight where there is one; v1: blkio.weight
                         or blkio.bfq.weight; ENOTSUP without)
    io.max               rw: a line per whole disk: MAJ:MIN rbps= wbps= riops= wiops= (max: none; ENODEV
                         no such disk, or a partition); v1: blkio.throttle.*
    cpuset.cpus cpuset.mems   rw: lists (0-3,8; empty: all); EINVAL a CPU or node not online here
    memory.current memory.peak cpu.usage_usec pids.current events   r: stats (events: oom_kill N)
    memory.stat memory.events io.stat cpu.stat   r: the cgroup's own files, v2's form (v1: composed; its
                         memory.stat is v1's), empty while it has no cgroup
    cpu.pressure memory.pressure io.pressure   r: PSI (some/full avg10 avg60 avg300 total); empty on v1 or
                         a kernel without PSI
    wait                 r: a read blocks until it is not running (paused is), then gives its exit code (0 if it
                         never ran, as docker wait); O_NONBLOCK: EAGAIN while it runs; size 0 then, so stat
                         and previews never hang. A reader killed meanwhile is answered at once (EINTR)
    status exit_code pid created started_at finished_at logs error   r (status: created running paused
                         exited, or creating starting pausing stopping removing committing while a request is
                         under way; created: RFC 3339 time of the mkdir)
    logs                 stdout and stderr, the last --log-max-size x --log-max-files bytes; tail -f follows it
    stdout stderr        r: each stream alone, of what logs keeps (a terminal's output is stdout); read as logs
    log_index            r: a fixed 80-byte line per chunk: TIME STREAM OFFSET LENGTH (RFC 3339 UTC to the ns;
                         stdout|stderr; its offset in logs and its bytes, 20 digits each); line N at N*80.
                         A log from before indexes is all stdout. Reading what rotated away under an open
                         logs, stdout, stderr or log_index: ENODATA
    rootfs               symlink to the container's filesystem
    inspect.json         r: docker inspect's document, for jq (Id Name State Config HostConfig NetworkSettings
                         Mounts); images/<id>/inspect.json: the image's (Id RepoTags RepoDigests Config RootFS)
  volumes/<name>/        mkdir makes a named volume, rmdir removes it (EBUSY while a container lists it); data: its content;
                         anon_<hex>: made for an image's VOLUME at a container's first start, filled from the image,
                         removed with the container
  networks/<name>/       bridge: the default (--bridge, --subnet; no names resolve on it, as Docker's). mkdir
                         makes one: its own bridge, a subnet from --network-pool, and a DNS server on its gateway
                         where its running containers' names and aliases resolve for the containers on it, and
                         nowhere else (other names go to the host's resolvers); networks don't reach each other.
                         subnet (rw while no container lists it: EINVAL, EADDRINUSE an overlap, EBUSY listed)
                         gateway bridge containers; rmdir removes it (EBUSY while a container lists it)
  errors                 every failed write: time, path, errno, message (bounded: starts afresh past 1 MiB)
  events                 a line per event: TIME TYPE NAME ACTION [KEY=VALUE...] (RFC 3339 UTC to the ns;
                         container create start die exit= oom kill signal= stop restart pause unpause remove,
                         image import build pull push commit tag untag remove, volume create remove, network create
                         remove); append-only,
                         --events-max-size x --events-max-files kept; tail -f follows it (bocker events)

poll(), select() and epoll on an open status (or another read-only value), wait or events say readable
(POLLIN, POLLPRI) when a read at offset 0 would give something else than what that open file last read
(sysfs's way: then lseek to 0 and read); other files are always readable. mtimes: a container's directory,
status and wait its last status change; logs, events and errors their last write; an image's its creation.

Value files (image cmd entrypoint env user workdir hostname stop_signal labels tty interactive restart init volumes
volumes-from network networks aliases ports extra_hosts dns privileged cap_add auto_remove, a network's
subnet, the limits) take all
that is written on one open file, applied at each write: `{ echo A=1; echo B=2; } > env` sets both,
`echo C=3 >> env` adds a line; sed -i, vim and editors that save through a temporary file and a rename
work (a file made in a container's directory is a scratch file in the daemon's memory, never listed, gone
30 s after its last close unless renamed onto a value file: one with bytes is then recorded in errors, so a
misspelt name, memory_max for memory.max, says where its bytes went). At most 64 KiB a value. Command
files (ctl exec commit stdin run import build pull push tag untag) take one command per write.

A failed write returns an errno (echo prints it) and changes nothing; the reason is in the object's
error file and in errors. Names and sizes are kept by the kernel (up to 10 s) and dropped on every change:
once a write returns, or a read shows a change, every stat and cat shows it too. Only root may use this tree, or with `bocker daemon --group NAME` that group's
members too: whoever can write it is root on the host. Full reference: docs/filesystem.md and
docs/security.md in the bockerfs sources.
";

/// What a read of `ctl` shows.
pub const CTL_HELP: &str =
    "start\nstop [SECONDS]\nrestart [SECONDS]\nkill [SIGNAL]\npause\nunpause\nremove\nclose-stdin\n";
