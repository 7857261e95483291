//! `COPY`, `ADD`, heredocs and the digest on real files, as root, in scratch directories under /tmp:
//! Docker's rules for sources and destinations, globs, ownership and modes, archives, and symlinks in the
//! image that must not lead a write out of the rootfs.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;

/// A scratch directory with a `from` (the context) and a `root` (the rootfs), removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("bocker-build-copy-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("from")).unwrap();
        fs::create_dir_all(d.join("root")).unwrap();
        Scratch(d)
    }
    fn from(&self) -> PathBuf {
        self.0.join("from")
    }
    fn root(&self) -> PathBuf {
        self.0.join("root")
    }
    /// Writes `body` at `rel` under `from`, with its parents.
    fn put(&self, rel: &str, body: &str) {
        put(&self.from().join(rel), body);
    }
}

fn put(path: &Path, body: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, body).unwrap();
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn run(s: &Scratch, sources: &[&str], dest: &str, opts: &CopyOptions) -> Result<u64, CopyError> {
    copy(&s.from(), &strings(sources), &s.root(), dest, "/", opts)
}

fn read(path: PathBuf) -> String {
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn mode(path: PathBuf) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn owner_of(path: PathBuf) -> (u32, u32) {
    let m = fs::symlink_metadata(path).unwrap();
    (m.uid(), m.gid())
}

#[test]
fn a_directory_gives_its_contents_and_a_file_itself() {
    let s = Scratch::new("dir");
    s.put("dir/a", "A");
    s.put("dir/sub/b", "BB");
    let opts = CopyOptions::default();
    assert_eq!(run(&s, &["dir"], "/dst", &opts).unwrap(), 3);
    assert_eq!(read(s.root().join("dst/a")), "A");
    assert_eq!(read(s.root().join("dst/sub/b")), "BB");
    assert!(!s.root().join("dst/dir").exists());
    // A trailing slash on the source changes nothing; `.` is the whole context.
    run(&s, &["dir/"], "/dst2/", &opts).unwrap();
    assert_eq!(read(s.root().join("dst2/sub/b")), "BB");
    run(&s, &["."], "/all", &opts).unwrap();
    assert_eq!(read(s.root().join("all/dir/a")), "A");
    // A file to a path without a slash becomes that path.
    run(&s, &["dir/a"], "/f", &opts).unwrap();
    assert_eq!(read(s.root().join("f")), "A");
}

#[test]
fn a_file_goes_inside_a_slash_or_an_existing_directory_else_becomes_the_destination() {
    let s = Scratch::new("slash");
    s.put("a.txt", "a");
    let opts = CopyOptions::default();
    run(&s, &["a.txt"], "/x/", &opts).unwrap();
    assert_eq!(read(s.root().join("x/a.txt")), "a");
    run(&s, &["a.txt"], "/y", &opts).unwrap();
    assert_eq!(read(s.root().join("y")), "a");
    fs::create_dir(s.root().join("d")).unwrap();
    run(&s, &["a.txt"], "/d", &opts).unwrap();
    assert_eq!(read(s.root().join("d/a.txt")), "a");
    // Relative to the workdir; `.` is the workdir itself; an absolute source is context-relative.
    copy(&s.from(), &strings(&["a.txt"]), &s.root(), "rel", "/w", &opts).unwrap();
    assert_eq!(read(s.root().join("w/rel")), "a");
    copy(&s.from(), &strings(&["/a.txt"]), &s.root(), ".", "/w2", &opts).unwrap();
    assert_eq!(read(s.root().join("w2/a.txt")), "a");
    // Missing parents are made 0755 and root's.
    run(&s, &["a.txt"], "/p/q/r/", &opts).unwrap();
    assert_eq!((mode(s.root().join("p/q")), owner_of(s.root().join("p/q"))), (0o755, (0, 0)));
    // What was at the destination is replaced.
    s.put("a.txt", "new");
    run(&s, &["a.txt"], "/y", &opts).unwrap();
    assert_eq!(read(s.root().join("y")), "new");
}

#[test]
fn globs_and_several_sources_need_a_directory() {
    let s = Scratch::new("glob");
    for f in ["a.txt", "b.txt", "c.md", "sub/d.txt"] {
        s.put(f, f);
    }
    let opts = CopyOptions::default();
    run(&s, &["*.txt"], "/g/", &opts).unwrap();
    let mut names: Vec<_> = fs::read_dir(s.root().join("g")).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["a.txt", "b.txt"]);
    run(&s, &["s*/*.txt"], "/h/", &opts).unwrap();
    assert_eq!(read(s.root().join("h/d.txt")), "sub/d.txt");
    // One match needs no slash.
    run(&s, &["[a]?txt"], "/one", &opts).unwrap();
    assert_eq!(read(s.root().join("one")), "a.txt");
    for sources in [&["*.txt"][..], &["a.txt", "c.md"]] {
        let e = run(&s, sources, "/file", &opts).unwrap_err();
        assert!(matches!(e, CopyError::MultipleToFile(_)), "{e}");
        assert_eq!(e.errno(), libc::EINVAL);
    }
    let e = run(&s, &["*.none"], "/g/", &opts).unwrap_err();
    assert!(matches!(e, CopyError::NoMatch(_)) && e.errno() == libc::ENOENT, "{e}");
    // A glob matching nothing beside a source that is there: Docker's `COPY package.json yarn.lock* ./`.
    run(&s, &["a.txt", "*.none"], "/g2/", &opts).unwrap();
    assert_eq!(read(s.root().join("g2/a.txt")), "a.txt");
    assert_eq!(run(&s, &["a[.txt"], "/g/", &opts).unwrap_err().errno(), libc::EINVAL);
    // --exclude: `*` stays within one component, `**` crosses them.
    let ex = |p: &str| CopyOptions { exclude: vec![p.into()], ..Default::default() };
    run(&s, &["."], "/e1/", &ex("*.txt")).unwrap();
    assert!(!s.root().join("e1/a.txt").exists() && s.root().join("e1/sub/d.txt").exists());
    assert!(s.root().join("e1/c.md").exists());
    run(&s, &["."], "/e2/", &ex("**/*.txt")).unwrap();
    assert!(!s.root().join("e2/sub/d.txt").exists() && s.root().join("e2/c.md").exists());
    run(&s, &["*"], "/e3/", &ex("sub")).unwrap();
    assert!(!s.root().join("e3/d.txt").exists() && s.root().join("e3/a.txt").exists());
}

#[test]
fn missing_sources_and_paths_out_of_the_context_are_refused() {
    let s = Scratch::new("missing");
    s.put("a.txt", "a");
    let opts = CopyOptions::default();
    let e = run(&s, &["nope"], "/x/", &opts).unwrap_err();
    assert!(matches!(e, CopyError::NotFound(_)) && e.errno() == libc::ENOENT, "{e}");
    assert_eq!(run(&s, &["a.txt/below"], "/x/", &opts).unwrap_err().errno(), libc::ENOENT);
    for outside in ["../etc/passwd", "sub/../../etc/passwd", ".."] {
        let e = run(&s, &[outside], "/x/", &opts).unwrap_err();
        assert!(matches!(e, CopyError::Outside(_)) && e.errno() == libc::EINVAL, "{outside}: {e}");
    }
    assert!(matches!(run(&s, &[], "/x/", &opts).unwrap_err(), CopyError::NoSources));
    // A symlink in the context, even absolute, resolves inside it: /etc/passwd of the host is not there.
    symlink("/etc/passwd", s.from().join("evil")).unwrap();
    assert_eq!(run(&s, &["evil"], "/x/", &opts).unwrap_err().errno(), libc::ENOENT);
    symlink("../../../../a.txt", s.from().join("climb")).unwrap();
    run(&s, &["climb"], "/x/", &opts).unwrap();
    // Followed as a source, named as the source.
    assert_eq!(read(s.root().join("x/climb")), "a");
    let add = CopyOptions { add: true, ..Default::default() };
    for url in ["https://example.com/x.tar.gz", "http://h/x", "git@github.com:a/b.git"] {
        let e = run(&s, &[url], "/x/", &add).unwrap_err();
        assert!(matches!(e, CopyError::Url(_)) && e.errno() == libc::EINVAL, "{e}");
    }
}

#[test]
fn symlinks_in_the_rootfs_never_lead_outside_it() {
    let s = Scratch::new("escape");
    s.put("a.txt", "a");
    s.put("tree/lib/x.so", "so");
    let opts = CopyOptions::default();
    let marker = format!("bocker-copy-escape-{}", std::process::id());
    let host = Path::new("/etc").join(&marker);
    // Positive control: a plain destination works.
    run(&s, &["a.txt"], &format!("/etc/{marker}"), &opts).unwrap();
    assert_eq!(read(s.root().join("etc").join(&marker)), "a");
    fs::remove_dir_all(s.root().join("etc")).unwrap();
    // The rootfs's /etc is a symlink to the host's /etc: resolved inside the rootfs, it loops, and
    // nothing is written on the host.
    symlink("/etc", s.root().join("etc")).unwrap();
    assert!(run(&s, &["a.txt"], &format!("/etc/{marker}"), &opts).is_err());
    assert!(run(&s, &["a.txt"], "/etc/", &opts).is_err());
    assert!(!host.exists() && !Path::new("/etc/a.txt").exists());
    fs::remove_file(s.root().join("etc")).unwrap();
    // With a real /etc in the rootfs, absolute and climbing symlinks both land in it.
    fs::create_dir(s.root().join("etc")).unwrap();
    symlink("/etc", s.root().join("hostetc")).unwrap();
    symlink("../../../../../../../etc", s.root().join("up")).unwrap();
    run(&s, &["a.txt"], &format!("/hostetc/{marker}"), &opts).unwrap();
    run(&s, &["a.txt"], "/up/", &opts).unwrap();
    assert_eq!(read(s.root().join("etc").join(&marker)), "a");
    assert_eq!(read(s.root().join("etc/a.txt")), "a");
    assert!(!host.exists() && !Path::new("/etc/a.txt").exists());
    // A symlink at the destination file itself is replaced, not written through.
    symlink(&host, s.root().join("target")).unwrap();
    run(&s, &["a.txt"], "/target", &opts).unwrap();
    assert!(fs::symlink_metadata(s.root().join("target")).unwrap().is_file() && !host.exists());
    // A directory of the tree met as a symlink in the image (merged /usr) is merged into, inside.
    fs::create_dir_all(s.root().join("usr/lib")).unwrap();
    symlink("/usr/lib", s.root().join("lib")).unwrap();
    run(&s, &["tree"], "/", &opts).unwrap();
    assert_eq!(read(s.root().join("usr/lib/x.so")), "so");
    assert!(fs::symlink_metadata(s.root().join("lib")).unwrap().file_type().is_symlink());
}

#[test]
fn modes_times_links_and_root_ownership_are_kept() {
    let s = Scratch::new("meta");
    s.put("t/run.sh", "#!/bin/sh\n");
    let script = s.from().join("t/run.sh");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o751)).unwrap();
    std::os::unix::fs::chown(&script, Some(4321), Some(4321)).unwrap();
    let when = Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: 1_000_000, tv_nsec: 0 },
        last_modification: rustix::fs::Timespec { tv_sec: 1_000_000, tv_nsec: 0 },
    };
    rustix::fs::utimensat(rustix::fs::CWD, &script, &when, rustix::fs::AtFlags::empty()).unwrap();
    symlink("/usr/bin/env", s.from().join("t/abs")).unwrap();
    fs::hard_link(&script, s.from().join("t/again.sh")).unwrap();
    fs::set_permissions(s.from().join("t"), fs::Permissions::from_mode(0o750)).unwrap();
    run(&s, &["t"], "/opt/t", &CopyOptions::default()).unwrap();
    let copied = s.root().join("opt/t/run.sh");
    assert_eq!((mode(copied.clone()), owner_of(copied.clone())), (0o751, (0, 0)));
    assert_eq!(fs::metadata(&copied).unwrap().mtime(), 1_000_000);
    assert_eq!(fs::read_link(s.root().join("opt/t/abs")).unwrap(), Path::new("/usr/bin/env"));
    assert_eq!(fs::metadata(s.root().join("opt/t/again.sh")).unwrap().ino(), fs::metadata(&copied).unwrap().ino());
    // The destination made for a directory takes that directory's mode.
    assert_eq!(mode(s.root().join("opt/t")), 0o750);
}

use rustix::fs::Timestamps;

#[test]
fn chown_by_number_and_by_name_and_chmod() {
    let s = Scratch::new("chown");
    s.put("d/f", "f");
    put(&s.root().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n");
    put(&s.root().join("etc/group"), "root:x:0:\ngrp:x:2000:\n");
    let with = |chown: &str| CopyOptions { chown: Some(chown.into()), ..Default::default() };
    run(&s, &["d"], "/n/made/", &with("1234")).unwrap();
    assert_eq!(owner_of(s.root().join("n/made/f")), (1234, 1234));
    assert_eq!(owner_of(s.root().join("n")), (1234, 1234));
    run(&s, &["d"], "/n2/", &with("1234:99")).unwrap();
    assert_eq!(owner_of(s.root().join("n2/f")), (1234, 99));
    run(&s, &["d"], "/app/", &with("app")).unwrap();
    assert_eq!(owner_of(s.root().join("app/f")), (1000, 1001));
    run(&s, &["d/f"], "/app2", &with("app:grp")).unwrap();
    assert_eq!(owner_of(s.root().join("app2")), (1000, 2000));
    run(&s, &["d/f"], "/app3", &with("5:grp")).unwrap();
    assert_eq!(owner_of(s.root().join("app3")), (5, 2000));
    for bad in ["nobody", "app:nogroup", "4294967295"] {
        let e = run(&s, &["d"], "/bad/", &with(bad)).unwrap_err();
        assert!(matches!(e, CopyError::Chown { .. }) && e.errno() == libc::EINVAL, "{bad}: {e}");
    }
    // --chmod: files and the directories copied (the destination too, when made for a directory, as
    // BuildKit does); parents made above it stay 0755.
    let chmod = |m: &str| CopyOptions { chmod: Some(m.into()), ..Default::default() };
    s.put("d/sub/g", "g");
    run(&s, &["d"], "/p/m/", &chmod("0640")).unwrap();
    assert_eq!((mode(s.root().join("p/m/f")), mode(s.root().join("p/m/sub"))), (0o640, 0o640));
    assert_eq!((mode(s.root().join("p")), mode(s.root().join("p/m"))), (0o755, 0o640));
    for bad in ["", "9", "u+x", "77777"] {
        assert!(matches!(run(&s, &["d"], "/m/", &chmod(bad)).unwrap_err(), CopyError::Chmod(_)), "{bad}");
    }
}

/// A tar with a directory, a file in it and a symlink.
fn tarball() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, body) in [("pkg/", tar::EntryType::Directory, ""), ("pkg/f", tar::EntryType::Regular, "hello")] {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_size(body.len() as u64);
        h.set_mtime(1_000);
        h.set_cksum();
        b.append(&h, body.as_bytes()).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "pkg/l", "f").unwrap();
    b.into_inner().unwrap()
}

#[test]
fn add_unpacks_plain_gzip_and_zstd_tars_by_their_bytes_and_copies_the_rest() {
    let s = Scratch::new("add");
    let plain = tarball();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    for (name, bytes) in [("plain.bin", &plain), ("archive", &gz), ("z.tar.gz", &zst)] {
        fs::write(s.from().join(name), bytes).unwrap();
    }
    let mut not_tar = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    not_tar.write_all(b"just text, compressed").unwrap();
    fs::write(s.from().join("notes.tar.gz"), not_tar.finish().unwrap()).unwrap();
    let add = CopyOptions { add: true, ..Default::default() };
    for (name, dest) in [("plain.bin", "/p"), ("archive", "/g/"), ("z.tar.gz", "/z")] {
        assert_eq!(run(&s, &[name], dest, &add).unwrap(), 5, "{name}");
        let at = s.root().join(dest.trim_matches('/'));
        assert_eq!(read(at.join("pkg/f")), "hello", "{name}");
        assert_eq!(fs::read_link(at.join("pkg/l")).unwrap(), Path::new("f"));
    }
    run(&s, &["notes.tar.gz"], "/n/", &add).unwrap();
    assert!(s.root().join("n/notes.tar.gz").is_file());
    // COPY never unpacks.
    run(&s, &["archive"], "/c/", &CopyOptions::default()).unwrap();
    assert_eq!(fs::read(s.root().join("c/archive")).unwrap(), gz);
    // An archive reaching out of its destination is refused by the unpacker.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "out", "/").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_path("out/owned").unwrap();
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    fs::write(s.from().join("evil.tar"), b.into_inner().unwrap()).unwrap();
    assert!(run(&s, &["evil.tar"], "/ev/", &add).is_err());
    assert!(!s.root().join("owned").exists() && !Path::new("/owned").exists());
}

#[test]
fn heredocs_are_written_as_files() {
    let s = Scratch::new("heredoc");
    let opts = CopyOptions::default();
    write_file(&s.root(), "/etc/motd", "/", "EOF", b"hi\n", &opts).unwrap();
    assert_eq!((read(s.root().join("etc/motd")), mode(s.root().join("etc/motd"))), ("hi\n".into(), 0o644));
    write_file(&s.root(), "conf/", "/w", "app.conf", b"x=1", &opts).unwrap();
    assert_eq!(read(s.root().join("w/conf/app.conf")), "x=1");
    let chmod = CopyOptions { chmod: Some("755".into()), chown: Some("7:8".into()), ..Default::default() };
    write_file(&s.root(), "/run.sh", "/", "EOF", b"#!/bin/sh", &chmod).unwrap();
    assert_eq!((mode(s.root().join("run.sh")), owner_of(s.root().join("run.sh"))), (0o755, (7, 8)));
    for bad in ["", "a/b", ".."] {
        assert_eq!(write_file(&s.root(), "/d/", "/", bad, b"", &opts).unwrap_err().errno(), libc::EINVAL);
    }
}

#[test]
fn the_digest_follows_names_modes_and_content_not_times() {
    let (a, b) = (Scratch::new("digest-a"), Scratch::new("digest-b"));
    for s in [&a, &b] {
        s.put("src/one.txt", "one");
        s.put("src/sub/two.txt", "two");
        symlink("one.txt", s.from().join("src/link")).unwrap();
    }
    let opts = CopyOptions::default();
    let sources = strings(&["src"]);
    let d = |s: &Scratch| digest(&s.from(), &sources, &opts).unwrap();
    let first = d(&a);
    assert_eq!(first.len(), 64);
    assert_eq!(first, d(&b));
    // Times and owners do not count.
    let old = Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: 5, tv_nsec: 0 },
        last_modification: rustix::fs::Timespec { tv_sec: 5, tv_nsec: 0 },
    };
    rustix::fs::utimensat(rustix::fs::CWD, b.from().join("src/one.txt"), &old, rustix::fs::AtFlags::empty()).unwrap();
    std::os::unix::fs::chown(b.from().join("src/sub/two.txt"), Some(99), Some(99)).unwrap();
    assert_eq!(first, d(&b));
    // One byte, a mode, a name, a symlink's target: each changes it.
    b.put("src/one.txt", "onE");
    let byte = d(&b);
    assert_ne!(first, byte);
    b.put("src/one.txt", "one");
    assert_eq!(first, d(&b));
    fs::set_permissions(b.from().join("src/sub/two.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_ne!(first, d(&b));
    fs::set_permissions(b.from().join("src/sub/two.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(first, d(&b));
    fs::rename(b.from().join("src/sub/two.txt"), b.from().join("src/sub/too.txt")).unwrap();
    assert_ne!(first, d(&b));
    fs::rename(b.from().join("src/sub/too.txt"), b.from().join("src/sub/two.txt")).unwrap();
    fs::remove_file(b.from().join("src/link")).unwrap();
    symlink("sub", b.from().join("src/link")).unwrap();
    assert_ne!(first, d(&b));
    // Other sources, or an exclude, take other things.
    let ex = CopyOptions { exclude: vec!["sub".into()], ..Default::default() };
    assert_ne!(first, digest(&a.from(), &sources, &ex).unwrap());
    assert_ne!(first, digest(&a.from(), &strings(&["src/*"]), &opts).unwrap());
    assert_eq!(digest(&a.from(), &strings(&["nope*"]), &opts).unwrap_err().errno(), libc::ENOENT);
    // A hard link and a copy of the same bytes are copied differently, so they differ here too.
    let (l, c) = (Scratch::new("digest-link"), Scratch::new("digest-copy"));
    l.put("src/a", "same");
    fs::hard_link(l.from().join("src/a"), l.from().join("src/b")).unwrap();
    c.put("src/a", "same");
    c.put("src/b", "same");
    assert_ne!(d(&l), d(&c));
}
