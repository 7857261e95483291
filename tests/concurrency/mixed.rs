//! A hundred concurrent mixed writes over a handful of containers, some designed to fail: every file shows
//! what a successful write wrote (the last one where one thread's writes to it were ordered), never a
//! failed write's value; a failed write changed nothing; `errors` holds a line for each failed write; and a
//! daemon killed and started again loads records that show the same.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::sync::Barrier;

use crate::common::Bocker;

/// What a write is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    /// One write(2) of the data.
    Write,
    /// A write, then a read of the answer on the same open file (`exec`, `commit`, `run`).
    Submit,
    Mkdir,
    Rmdir,
}

/// What a write must return; `Either` where the order of concurrent writes decides.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Ok,
    Fails(i32),
    Either,
}

#[derive(Clone, Debug)]
struct W {
    op: Op,
    path: String,
    data: String,
    expect: Expect,
    /// What the written file shows if this write is the one that stuck (for config files).
    shows: Option<String>,
}

fn w(path: &str, data: &str, expect: Expect, shows: Option<&str>) -> W {
    W { op: Op::Write, path: path.into(), data: data.into(), expect, shows: shows.map(String::from) }
}

fn op(op: Op, path: &str, data: &str, expect: Expect) -> W {
    W { op, path: path.into(), data: data.into(), expect, shows: None }
}

/// What a write returned: the answer read back (for `Submit`), or the errno.
type Outcome = Result<String, i32>;

fn perform(b: &Bocker, w: &W) -> Outcome {
    let r: io::Result<String> = match w.op {
        Op::Write => b.write(&w.path, &w.data).map(|()| String::new()),
        Op::Submit => b.submit(&w.path, &w.data),
        Op::Mkdir => fs::create_dir(b.path(&w.path)).map(|()| String::new()),
        Op::Rmdir => fs::remove_dir(b.path(&w.path)).map(|()| String::new()),
    };
    r.map_err(|e| Bocker::errno(&e))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

fn listing(b: &Bocker, dir: &str) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(b.path(dir)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

/// The files of a container a record holds (not the live counters).
const RECORDED: [&str; 20] = [
    "image",
    "cmd",
    "env",
    "status",
    "exit_code",
    "pid",
    "started_at",
    "finished_at",
    "error",
    "cpu.weight",
    "cpu.max",
    "memory.max",
    "pids.max",
    "network",
    "ports",
    "ip",
    "volumes",
    "volumes-from",
    "privileged",
    "cap_add",
];

/// Everything the tree shows that a record holds: every container's recorded files and execs, every image's
/// files, the volumes, and `errors`.
fn tree(b: &Bocker) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in listing(b, "containers").into_iter().filter(|c| c != "run") {
        for f in RECORDED {
            let p = format!("containers/{c}/{f}");
            out.insert(p.clone(), b.read(&p));
        }
        for n in listing(b, &format!("containers/{c}/execs")) {
            for f in ["cmd", "status", "exit_code", "started_at", "finished_at"] {
                let p = format!("containers/{c}/execs/{n}/{f}");
                out.insert(p.clone(), b.read(&p));
            }
        }
    }
    for i in listing(b, "images").into_iter().filter(|i| i.starts_with("img_")) {
        for f in ["source", "created", "size", "config.json"] {
            let p = format!("images/{i}/{f}");
            out.insert(p.clone(), b.read(&p));
        }
    }
    out.insert("volumes/".into(), listing(b, "volumes").join(" "));
    out.insert("errors".into(), b.read("errors"));
    out
}

#[test]
fn a_hundred_concurrent_mixed_writes_leave_records_that_agree_with_their_results() {
    let mut b = Bocker::start_sized("conc-mixed", "2G");
    let img = b.import("ENV BASE=1");
    // Removed while the rest goes on (an image goes even while containers made from it exist).
    let spare = b.import("");
    let img2 = b.import("ENV OTHER=2");
    let host_dir = b.dir.join("shared");
    fs::create_dir(&host_dir).unwrap();
    let hd = host_dir.display().to_string();
    let state = b.root.join("state").display().to_string();
    let (h0, h1, h2, h3) = (free_port(), free_port(), free_port(), free_port());
    fs::create_dir(b.path("volumes/v1")).unwrap();
    fs::create_dir(b.path("volumes/held")).unwrap();

    for c in ["c0", "c1", "c2", "c3", "c4", "p0", "p1"] {
        b.configure(c, &img, "true");
    }
    b.write("containers/p0/ports", &format!("{h0}:80")).unwrap();
    b.write("containers/p1/cmd", "\n").unwrap();
    fs::create_dir(b.path("containers/noimg")).unwrap();
    for (c, cmd) in [("r0", "sleep 1000"), ("r1", "sleep 1000"), ("r2", "sleep 1000"), ("s1", "sleep 1000")] {
        b.configure(c, &img, cmd);
    }
    b.configure("s0", &img, r#"sh -c 'trap "" TERM; while :; do sleep 1; done'"#);
    b.configure("s2", &img, "sleep 1000");
    b.write("containers/r0/ports", &format!("{h0}:80")).unwrap();
    b.write("containers/r0/volumes", "held:/h").unwrap();
    for c in ["r0", "r1", "r2", "s0", "s1", "s2"] {
        b.write(&format!("containers/{c}/ctl"), "start").unwrap();
    }
    b.configure("e0", &img, "sleep 1000");
    for y in ["e0", "y0", "y1", "y2", "y3"] {
        if y != "e0" {
            b.configure(y, &img, "true");
        }
        b.write(&format!("containers/{y}/ctl"), "start").unwrap();
        if y == "e0" {
            b.write("containers/e0/ctl", "kill").unwrap();
        }
        b.wait_status(y, "exited");
    }
    let base_env = b.read("containers/c0/env");
    assert!(base_env.ends_with("BASE=1\n"), "{base_env}");
    let env = |extra: &str| format!("{base_env}{extra}\n");
    let (env_a, env_b, env_c, env_s3) = (env("K=a"), env("K=b"), env("K=c"), env("S=3"));

    use Expect::{Either, Fails, Ok};
    let p = |c: &str, f: &str| format!("containers/{c}/{f}");
    let one = |w: W| vec![w];
    let mut threads: Vec<Vec<W>> = vec![
        // c0: created; its configuration, and what needs it running.
        one(w(&p("c0", "env"), "K=a", Ok, Some(&env_a))),
        one(w(&p("c0", "env"), "K=b", Ok, Some(&env_b))),
        one(w(&p("c0", "env"), "K=c", Ok, Some(&env_c))),
        one(w(&p("c0", "env"), "NOEQUALS", Fails(libc::EINVAL), None)),
        one(w(&p("c0", "cmd"), "echo one", Ok, Some("echo one\n"))),
        one(w(&p("c0", "cmd"), "echo two", Ok, Some("echo two\n"))),
        one(w(&p("c0", "cmd"), "echo 'unterminated", Fails(libc::EINVAL), None)),
        one(w(&p("c0", "memory.max"), "64M", Ok, Some("67108864\n"))),
        one(w(&p("c0", "memory.max"), "128M", Ok, Some("134217728\n"))),
        one(w(&p("c0", "memory.max"), "10K", Fails(libc::ERANGE), None)),
        one(w(&p("c0", "memory.max"), "lots", Fails(libc::EINVAL), None)),
        one(w(&p("c0", "pids.max"), "64", Ok, Some("64\n"))),
        one(w(&p("c0", "pids.max"), "max", Ok, Some("max\n"))),
        one(w(&p("c0", "pids.max"), "0", Fails(libc::ERANGE), None)),
        one(op(Op::Write, &p("c0", "exec"), "true", Fails(libc::ESRCH))),
        one(w(&p("c0", "ctl"), "kill", Fails(libc::ESRCH), None)),
        one(w(&p("c0", "ctl"), "bogus", Fails(libc::EINVAL), None)),
        // c1: limits, network, security, volumes-from.
        one(w(&p("c1", "cpu.weight"), "100", Ok, Some("100\n"))),
        one(w(&p("c1", "cpu.weight"), "200", Ok, Some("200\n"))),
        one(w(&p("c1", "cpu.weight"), "20000", Fails(libc::ERANGE), None)),
        one(w(&p("c1", "cpu.max"), "50000 100000", Ok, Some("50000 100000\n"))),
        one(w(&p("c1", "cpu.max"), "max", Ok, Some("max 100000\n"))),
        one(w(&p("c1", "cpu.max"), "5 100000", Fails(libc::ERANGE), None)),
        one(w(&p("c1", "network"), "none", Ok, Some("none\n"))),
        one(w(&p("c1", "network"), "host", Ok, Some("host\n"))),
        one(w(&p("c1", "network"), "bogus", Fails(libc::EINVAL), None)),
        one(w(&p("c1", "privileged"), "true", Ok, Some("true\n"))),
        one(w(&p("c1", "privileged"), "maybe", Fails(libc::EINVAL), None)),
        one(w(&p("c1", "cap_add"), "NET_ADMIN", Ok, Some("CAP_NET_ADMIN\n"))),
        one(w(&p("c1", "cap_add"), "SYS_PTRACE", Ok, Some("CAP_SYS_PTRACE\n"))),
        one(w(&p("c1", "cap_add"), "BOGUS_CAP", Fails(libc::EINVAL), None)),
        one(w(&p("c1", "volumes-from"), "c0", Ok, Some("c0\n"))),
        one(w(&p("c1", "volumes-from"), "c1", Fails(libc::EINVAL), None)),
        one(w(&p("c1", "volumes-from"), "nosuch", Fails(libc::ENOENT), None)),
        // c4: its image, and configuration racing the new rootfs being made (refused meanwhile, EBUSY).
        one(w(&p("c4", "image"), &img2, Ok, Some(&format!("{img2}\n")))),
        one(w(&p("c4", "image"), "img_000000000000", Fails(libc::ENOENT), None)),
        one(w(&p("c4", "cmd"), "echo c4", Either, Some("echo c4\n"))),
        one(w(&p("c4", "pids.max"), "99", Either, Some("99\n"))),
        // c2: volumes, and a network mode racing port forwards (which need the bridge).
        one(w(&p("c2", "network"), "none", Either, Some("none\n"))),
        one(w(&p("c2", "network"), "bridge", Ok, Some("bridge\n"))),
        one(w(&p("c2", "ports"), &format!("{h2}:80"), Either, Some(&format!("{h2}:80/tcp\n")))),
        one(w(&p("c2", "ports"), &format!("{h2}:80\n{h2}:81"), Fails(libc::EINVAL), None)),
        one(w(&p("c2", "volumes"), &format!("{hd}:/data"), Ok, Some(&format!("{hd}:/data\n")))),
        one(w(&p("c2", "volumes"), "v1:/v:ro", Ok, Some("v1:/v:ro\n"))),
        one(w(&p("c2", "volumes"), &format!("{hd}:data"), Fails(libc::EINVAL), None)),
        one(w(&p("c2", "volumes"), "/no/such/dir:/x", Fails(libc::ENOENT), None)),
        one(w(&p("c2", "volumes"), &format!("{state}:/x"), Fails(libc::EPERM), None)),
        // c3: one thread's ordered writes to each file: the last good one stays.
        vec![
            w(&p("c3", "env"), "S=1", Ok, None),
            w(&p("c3", "env"), "BAD", Fails(libc::EINVAL), None),
            w(&p("c3", "env"), "S=2", Ok, None),
            w(&p("c3", "env"), "S=3", Ok, Some(&env_s3)),
            w(&p("c3", "env"), "ALSO BAD", Fails(libc::EINVAL), None),
        ],
        vec![
            w(&p("c3", "memory.max"), "100M", Ok, None),
            w(&p("c3", "memory.max"), "200M", Ok, Some("209715200\n")),
            w(&p("c3", "memory.max"), "1K", Fails(libc::ERANGE), None),
        ],
        vec![w(&p("c3", "cmd"), "echo x", Ok, None), w(&p("c3", "cmd"), "echo y", Ok, Some("echo y\n"))],
        // r0: running, forwarding h0: live limits; what is fixed while it runs.
        one(w(&p("r0", "pids.max"), "100", Ok, Some("100\n"))),
        one(w(&p("r0", "memory.max"), "300M", Ok, Some("314572800\n"))),
        one(w(&p("r0", "env"), "X=1", Fails(libc::EBUSY), None)),
        one(w(&p("r0", "volumes"), &format!("{hd}:/d"), Fails(libc::EBUSY), None)),
        // r1: running: live forwards, one of them clashing with r0's.
        one(w(&p("r1", "ports"), &format!("{h0}:81"), Fails(libc::EADDRINUSE), None)),
        one(w(&p("r1", "ports"), &format!("{h1}:80"), Ok, Some(&format!("{h1}:80/tcp\n")))),
        one(w(&p("r1", "ports"), &format!("127.0.0.1:{h3}:80/udp"), Ok, Some(&format!("127.0.0.1:{h3}:80/udp\n")))),
        one(w(&p("r1", "cmd"), "echo z", Fails(libc::EBUSY), None)),
        one(w(&p("r1", "image"), &img2, Fails(libc::EBUSY), None)),
        one(op(Op::Rmdir, "containers/r1", "", Fails(libc::EBUSY))),
        // r2: running: execs and commits.
        one(op(Op::Submit, &p("r2", "exec"), "true", Ok)),
        one(op(Op::Submit, &p("r2", "exec"), "echo hi", Ok)),
        one(op(Op::Submit, &p("r2", "exec"), "sh -c 'exit 3'", Ok)),
        one(op(Op::Submit, &p("r2", "exec"), "no-such-program", Fails(libc::ENOENT))),
        one(op(Op::Submit, &p("r2", "commit"), "snap-a", Ok)),
        one(op(Op::Submit, &p("r2", "commit"), "snap-b", Ok)),
        one(w(&p("r2", "ctl"), "start", Fails(libc::EBUSY), None)),
        one(w(&p("r2", "ctl"), "kill USR1", Ok, None)),
        // Stops and kills; a start of an exited one, twice; starts that must fail.
        one(w(&p("s0", "ctl"), "stop 1", Ok, None)),
        one(w(&p("s1", "ctl"), "kill", Ok, None)),
        one(w(&p("s2", "ctl"), "kill TERM", Ok, None)),
        one(w(&p("s2", "network"), "none", Fails(libc::EBUSY), None)),
        one(w(&p("e0", "ctl"), "start", Either, None)),
        one(w(&p("e0", "ctl"), "start", Either, None)),
        one(w(&p("e0", "env"), "E=1", Either, Some(&env("E=1")))),
        one(w(&p("p0", "ctl"), "start", Fails(libc::EADDRINUSE), None)),
        one(w(&p("p1", "ctl"), "start", Fails(libc::EINVAL), None)),
        one(op(Op::Submit, &p("noimg", "commit"), "snap-c", Fails(libc::EINVAL))),
        one(w(&p("noimg", "ctl"), "start", Fails(libc::EINVAL), None)),
        // Containers, volumes and images made and removed.
        one(op(Op::Submit, "containers/run", &format!("{img} true"), Ok)),
        one(op(Op::Submit, "containers/run", &format!("{img} no-such-program"), Fails(libc::ENOENT))),
        one(op(Op::Rmdir, "volumes/held", "", Fails(libc::EBUSY))),
        one(op(Op::Rmdir, &format!("images/{spare}"), "", Ok)),
        one(op(Op::Mkdir, "volumes/w0", "", Ok)),
        one(op(Op::Mkdir, "volumes/w1", "", Ok)),
    ];
    for x in 0..6 {
        threads.push(one(op(Op::Mkdir, &format!("containers/x{x}"), "", Ok)));
    }
    for y in 0..4 {
        threads.push(one(op(Op::Rmdir, &format!("containers/y{y}"), "", Ok)));
    }
    let writes = threads.iter().map(Vec::len).sum::<usize>();
    assert!(writes >= 100, "{writes} writes");

    let before = tree(&b);
    let errors_before = b.read("errors").lines().count();
    let barrier = Barrier::new(threads.len());
    let results: Vec<Vec<(W, Outcome)>> = std::thread::scope(|s| {
        let handles: Vec<_> = threads
            .iter()
            .map(|seq| {
                let (b, barrier) = (&b, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    seq.iter().map(|w| (w.clone(), perform(b, w))).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<&(W, Outcome)> = results.iter().flatten().collect();

    // Every write returned what it must.
    for (w, r) in &all {
        match (w.expect, r) {
            (Ok, Err(e)) => panic!("{} <- {:?} failed with errno {e}", w.path, w.data),
            (Fails(want), got) if *got != Err(want) => {
                panic!("{} <- {:?} returned {got:?}, wanted errno {want}", w.path, w.data)
            }
            (Either, Err(e)) => assert!([libc::EBUSY, libc::EINVAL].contains(e), "{} <- {:?}: {e}", w.path, w.data),
            _ => {}
        }
    }

    // Wait for what the writes set going to end: the stop, the kills, the execs, the run.
    b.wait_status("s0", "exited");
    b.wait_status("s1", "exited");
    let execs: Vec<String> =
        all.iter().filter(|(w, _)| w.path.ends_with("r2/exec")).filter_map(|(_, r)| r.as_ref().ok().cloned()).collect();
    for n in &execs {
        b.wait_exec("r2", n);
    }
    let run: Vec<String> =
        all.iter().filter(|(w, _)| w.path == "containers/run").filter_map(|(_, r)| r.as_ref().ok().cloned()).collect();
    assert_eq!(run.len(), 1);
    b.wait_status(&run[0], "exited");

    // Every file shows a value a successful write to it wrote, the last one of a thread's ordered writes;
    // a file no write to succeeded shows what it showed before.
    let after = tree(&b);
    let mut written: BTreeMap<&str, Vec<&(W, Outcome)>> = BTreeMap::new();
    for wr in all.iter().filter(|(w, _)| w.op == Op::Write && !w.path.ends_with("/ctl") && !w.path.ends_with("/exec")) {
        written.entry(wr.0.path.as_str()).or_default().push(wr);
    }
    for (path, ws) in &written {
        let shown = &after[*path];
        let good: Vec<&String> = ws.iter().filter(|(_, r)| r.is_ok()).filter_map(|(w, _)| w.shows.as_ref()).collect();
        let stuck_with = ws.iter().filter(|(_, r)| r.is_ok()).count();
        if stuck_with == 0 {
            assert_eq!(shown, &before[*path], "{path}: no write to it succeeded, yet it changed");
        } else {
            assert!(good.contains(&shown), "{path} shows {shown:?}, which no successful write wrote ({good:?})");
        }
    }
    // Where a file had only one thread writing it, the last good write stays.
    assert_eq!(after["containers/c3/env"], env_s3);
    assert_eq!(after["containers/c3/memory.max"], "209715200\n");
    assert_eq!(after["containers/c3/cmd"], "echo y\n");
    // Forwards need the bridge: the race of c2's network and ports leaves a consistent pair.
    assert!(
        after["containers/c2/ports"].is_empty() || after["containers/c2/network"] == "bridge\n",
        "c2 has forwards {:?} with network {:?}",
        after["containers/c2/ports"],
        after["containers/c2/network"]
    );

    // What the ctl writes did, and what the failed ones left as it was.
    for (c, status) in [("r0", "running"), ("r1", "running"), ("r2", "running"), ("s2", "running")] {
        assert_eq!(after[&p(c, "status")], format!("{status}\n"), "{c}");
        assert_eq!(after[&p(c, "pid")], before[&p(c, "pid")], "{c} is the same process");
    }
    assert_eq!(after[&p("s0", "exit_code")], "137\n", "s0 ignored TERM and was killed after its grace period");
    assert_eq!(after[&p("s1", "exit_code")], "137\n");
    let e0_starts = all.iter().filter(|(w, r)| w.path == p("e0", "ctl") && r.is_ok()).count();
    assert_eq!(e0_starts, 1, "exactly one of two starts of e0 succeeds");
    assert_eq!(after[&p("e0", "status")], "running\n");
    for c in ["p0", "p1", "noimg", "c0"] {
        for f in ["status", "exit_code", "pid", "started_at"] {
            assert_eq!(after[&p(c, f)], before[&p(c, f)], "a failed start of {c} changed its {f}");
        }
    }
    // (Their `ip` too: checked last, below, so what follows is checked also where that fails.)
    // The execs that succeeded are there, numbered as their writes were told, each its own command.
    let mut numbers: Vec<String> = execs.clone();
    numbers.sort();
    assert_eq!(listing(&b, "containers/r2/execs"), numbers, "a failed exec left nothing");
    for (w, r) in all.iter().filter(|(w, _)| w.path.ends_with("r2/exec")) {
        if let Result::Ok(n) = r {
            let cmd = &after[&format!("containers/r2/execs/{n}/cmd")];
            assert_eq!(cmd.trim_end(), shell_words::join(shell_words::split(&w.data).unwrap()), "exec {n}");
            let code = if w.data.contains("exit 3") { "3\n" } else { "0\n" };
            assert_eq!(after[&format!("containers/r2/execs/{n}/exit_code")], code, "exec {n}");
        }
    }
    // Commits made one image each, named as written; the failed one none.
    let images: Vec<String> = listing(&b, "images").into_iter().filter(|i| i.starts_with("img_")).collect();
    let sources: BTreeSet<String> = images.iter().map(|i| after[&format!("images/{i}/source")].clone()).collect();
    for snap in ["snap-a", "snap-b"] {
        assert!(sources.contains(&format!("{snap}\n")), "{snap} not among {sources:?}");
    }
    assert!(!sources.contains("snap-c\n"));
    assert_eq!(images.len(), 4, "two imported, two committed: {images:?}");
    // Made and removed: containers and volumes.
    let containers = listing(&b, "containers");
    for x in 0..6 {
        assert!(containers.contains(&format!("x{x}")), "x{x}");
        assert_eq!(after[&p(&format!("x{x}"), "status")], "created\n");
    }
    for y in 0..4 {
        assert!(!containers.contains(&format!("y{y}")), "y{y}");
        assert!(!b.root.join(format!("state/containers/y{y}")).exists());
        assert!(!b.root.join(format!("store/containers/y{y}")).exists());
    }
    let ps: Vec<&String> = containers.iter().filter(|c| c.starts_with("ps_")).collect();
    assert_eq!(ps, vec![&run[0]], "the failed run left no container");
    assert_eq!(listing(&b, "volumes"), ["held", "v1", "w0", "w1"]);

    // `errors` has one line per failed write, naming its path and errno; each container's `error` is empty
    // or the message of a write to it that failed.
    let errors = b.read("errors");
    let new_errors: Vec<&str> = errors.lines().skip(errors_before).collect();
    let failed: Vec<&(W, Outcome)> = all.iter().copied().filter(|(_, r)| r.is_err()).collect();
    assert_eq!(new_errors.len(), failed.len(), "errors:\n{}", new_errors.join("\n"));
    for (w, r) in &failed {
        let errno = format!("{:?}", nix::errno::Errno::from_raw(*r.as_ref().unwrap_err()));
        let tag = format!(" {} {errno} ", w.path);
        let n = failed.iter().filter(|(x, y)| x.path == w.path && y == r).count();
        let lines = new_errors.iter().filter(|l| l.contains(&tag)).count();
        assert_eq!(lines, n, "{tag}: {n} failed writes, {lines} lines in errors");
    }
    for c in containers.iter().filter(|c| *c != "run") {
        let error = after[&p(c, "error")].trim_end().to_string();
        if !error.is_empty() {
            let about_c =
                |l: &&&str| l.contains(&format!(" containers/{c}/")) || l.contains(&format!(" containers/{c} "));
            let ours = new_errors.iter().filter(about_c).any(|l| l.ends_with(&error));
            let older = before.get(&p(c, "error")).is_some_and(|e| e.trim_end() == error);
            assert!(ours || older, "{c}/error {error:?} is no failed write's message");
        }
    }
    eprintln!(
        "{} writes on {} threads, {} failed as designed or by losing a race",
        all.len(),
        threads.len(),
        failed.len()
    );
    // Only the designed refusals and lost races failed.
    for (w, r) in &failed {
        assert!(w.expect != Ok, "{} <- {:?}: {r:?}", w.path, w.data);
    }

    // Memory and disk agree: a daemon killed now and started again shows the same tree.
    b.crash_daemon();
    b.spawn_daemon();
    let reloaded = tree(&b);
    let differ: Vec<String> = after
        .keys()
        .chain(reloaded.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| after.get(*k) != reloaded.get(*k))
        .map(|k| format!("{k}: {:?} before the restart, {:?} after", after.get(k), reloaded.get(k)))
        .collect();
    assert!(differ.is_empty(), "the records on disk differ from what the daemon showed:\n{}", differ.join("\n"));
    for c in ["p0", "p1", "noimg", "c0"] {
        assert_eq!(after[&p(c, "ip")], before[&p(c, "ip")], "a failed start of {c} took an address");
    }
    // And the re-adopted containers are still under control.
    for c in ["r0", "r1", "r2", "s2", "e0"] {
        b.write(&p(c, "ctl"), "kill").unwrap();
        b.wait_status(c, "exited");
    }
}
