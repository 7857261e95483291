//! Value files take what the shell and the editors write: several writes on one open file, `>>`, and a
//! file saved through a temporary file and a rename (`sed -i`, Python's `tempfile` + `os.replace`, vim's
//! `:w`); a failure on each of these paths leaves the old value and says why. Command files still take one
//! command per write.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::process::{Command, Output};
use std::time::Duration;

use common::Bocker;

/// Runs `script` with `bash -c` (whose messages name the errno), in the directory `dir` of the mount.
fn sh(b: &Bocker, dir: &str, script: &str) -> Output {
    Command::new("bash").arg("-c").arg(script).current_dir(b.path(dir)).output().expect("sh")
}

fn ok(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The last line of `errors` about `path`.
fn last_error(b: &Bocker, path: &str) -> String {
    let errors = b.read("errors");
    errors.lines().rev().find(|l| l.contains(&format!(" {path} "))).unwrap_or_default().to_string()
}

/// What `ls -a` shows of a container's directory: scratch files are never among it.
fn listing(b: &Bocker, dir: &str) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(b.path(dir)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn a_shell_block_of_echos_sets_env_volumes_and_ports() {
    let b = Bocker::start("values-block");
    fs::create_dir(b.path("containers/ed")).unwrap();
    let (src1, src2) = (b.dir.join("src1"), b.dir.join("src2"));
    fs::create_dir_all(&src1).unwrap();
    fs::create_dir_all(&src2).unwrap();

    ok(&sh(&b, "containers/ed", "{ echo A=1; echo B=2; echo C=3; } > env"));
    assert_eq!(b.read("containers/ed/env"), "A=1\nB=2\nC=3\n");
    // Each program of the block closes the open file it inherited: still one value.
    ok(&sh(&b, "containers/ed", "{ /bin/echo A=1; /bin/echo B=2; printf 'C=3\\n'; } > env"));
    assert_eq!(b.read("containers/ed/env"), "A=1\nB=2\nC=3\n");
    let script = format!("{{ echo {}:/one; echo {}:/two:ro; }} > volumes", src1.display(), src2.display());
    ok(&sh(&b, "containers/ed", &script));
    assert_eq!(b.read("containers/ed/volumes"), format!("{}:/one\n{}:/two:ro\n", src1.display(), src2.display()));
    ok(&sh(&b, "containers/ed", "{ echo 18080:80; echo 127.0.0.1:18081:81/udp; } > ports"));
    assert_eq!(b.read("containers/ed/ports"), "18080:80/tcp\n127.0.0.1:18081:81/udp\n");
    // A heredoc and a loop, the other ways a script writes lines.
    ok(&sh(&b, "containers/ed", "for k in X Y Z; do echo $k=v; done > env"));
    assert_eq!(b.read("containers/ed/env"), "X=v\nY=v\nZ=v\n");
    ok(&sh(&b, "containers/ed", "cat > cap_add <<EOF\nNET_ADMIN\nSYS_TIME\nEOF"));
    assert_eq!(b.read("containers/ed/cap_add"), "CAP_NET_ADMIN\nCAP_SYS_TIME\n");
    assert_eq!(b.read("containers/ed/error"), "");
}

/// 2000 env lines, about 45 KiB: more than a pipe, a `dd` block or stdio's buffer holds at once.
fn big_env() -> String {
    (0..2000).map(|i| format!("KEY_{i}=value_{i}_{}\n", "x".repeat(i % 7))).collect()
}

#[test]
fn a_40_kib_env_written_in_pieces_is_one_value() {
    let b = Bocker::start("values-big");
    fs::create_dir(b.path("containers/ed")).unwrap();
    let env = big_env();
    assert!(env.len() > 40 * 1024 && env.len() < 64 * 1024, "{}", env.len());
    let file = b.dir.join("big.env");
    fs::write(&file, &env).unwrap();

    // dd writes 4 KiB blocks, so lines are cut at every block boundary.
    ok(&sh(&b, "containers/ed", &format!("dd if={} of=env bs=4k 2>/dev/null", file.display())));
    assert_eq!(b.read("containers/ed/env"), env);
    // Through a pipe, cat gets (and writes) what the pipe holds at a time.
    ok(&sh(&b, "containers/ed", "echo OLD=1 > env"));
    ok(&sh(&b, "containers/ed", &format!("dd if={} bs=1k 2>/dev/null | cat > env", file.display())));
    assert_eq!(b.read("containers/ed/env"), env);
    // A C program's stdio writes st_blksize (4 KiB) blocks: awk rewriting every line.
    ok(&sh(&b, "containers/ed", &format!("awk '{{ print }}' {} > env", file.display())));
    assert_eq!(b.read("containers/ed/env"), env);

    // 64 KiB is the bound of one open file, not of one write: past it EFBIG, and that write adds nothing.
    let more: String = (2000..3000).map(|i| format!("KEY_{i}=value_{i}\n")).collect();
    fs::write(&file, format!("{env}{more}")).unwrap();
    let out = sh(&b, "containers/ed", &format!("dd if={} of=env bs=4k 2>&1", file.display()));
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stdout).contains("File too large"), "{out:?}");
    let kept = b.read("containers/ed/env");
    assert!(kept.len() <= 64 * 1024 && kept.starts_with("KEY_0=") && !kept.contains("KEY_2999="), "{}", kept.len());
    // (Its last line, cut by the refused block, is refused at the close.)
    assert!(b.read("errors").contains(" containers/ed/env EFBIG "), "{}", b.read("errors"));
}

#[test]
fn append_adds_lines_to_the_current_value() {
    let b = Bocker::start("values-append");
    let img = b.import("ENV FROM_IMAGE=1");
    b.configure("ed", &img, "true");
    ok(&sh(&b, "containers/ed", "echo A=1 > env; echo B=2 >> env"));
    // `env` shows the image's Env with the container's laid over it; `>>` adds to what it shows.
    let env = b.read("containers/ed/env");
    assert!(env.starts_with("PATH=") && env.ends_with("\nFROM_IMAGE=1\nA=1\nB=2\n"), "{env}");
    assert_eq!(env.lines().count(), 4, "{env}");
    ok(&sh(&b, "containers/ed", "{ echo C=3; echo D=4; } >> env"));
    assert!(b.read("containers/ed/env").ends_with("A=1\nB=2\nC=3\nD=4\n"), "{}", b.read("containers/ed/env"));
    ok(&sh(&b, "containers/ed", "echo 18080:80 > ports; echo 18081:81 >> ports"));
    assert_eq!(b.read("containers/ed/ports"), "18080:80/tcp\n18081:81/tcp\n");
    // A file of one value then holds two: refused, the value stays.
    let out = sh(&b, "containers/ed", "echo none >> network");
    assert!(!out.status.success() && stderr(&out).contains("Invalid argument"), "{out:?}");
    assert_eq!(b.read("containers/ed/network"), "bridge\n");
}

#[test]
fn sed_in_place_saves_through_a_scratch_file() {
    let b = Bocker::start("values-sed");
    fs::create_dir(b.path("containers/ed")).unwrap();
    let before = listing(&b, "containers/ed");
    ok(&sh(&b, "containers/ed", "printf 'A=1\\nB=2\\n' > env && sed -i 's/A=1/A=2/' env"));
    assert_eq!(b.read("containers/ed/env"), "A=2\nB=2\n");
    ok(&sh(&b, "containers/ed", "sed -i '$a C=3' env && sed -i '/^B=/d' env"));
    assert_eq!(b.read("containers/ed/env"), "A=2\nC=3\n");
    assert_eq!(listing(&b, "containers/ed"), before, "sed's temporary file is listed to nobody");

    // An edit that makes a bad value: rename(2) fails with the value's errno, sed says so, nothing changed.
    let out = sh(&b, "containers/ed", "sed -i 's/A=2/not a line/' env");
    assert!(!out.status.success() && stderr(&out).contains("Invalid argument"), "{out:?}");
    assert_eq!(b.read("containers/ed/env"), "A=2\nC=3\n");
    assert!(b.read("containers/ed/error").contains("bad env line 'not a line'"));
    assert!(last_error(&b, "containers/ed/env").contains("EINVAL bad env line 'not a line'"));
    assert_eq!(listing(&b, "containers/ed"), before);
}

const SAVE_PY: &str = r#"
import os, sys, tempfile
path, text = sys.argv[1], sys.argv[2]
with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(path), delete=False) as f:
    f.write(text)
os.chmod(f.name, 0o644)
try:
    os.replace(f.name, path)
except OSError as e:
    os.unlink(f.name)
    sys.exit(f"errno {e.errno}")
"#;

#[test]
fn python_saves_through_a_temporary_file_and_os_replace() {
    let b = Bocker::start("values-python");
    fs::create_dir(b.path("containers/ed")).unwrap();
    let save = |file: &str, text: &str| {
        Command::new("python3").args(["-c", SAVE_PY]).arg(b.path(file)).arg(text).output().expect("python3")
    };
    ok(&save("containers/ed/env", "A=1\nB=2\n"));
    assert_eq!(b.read("containers/ed/env"), "A=1\nB=2\n");
    ok(&save("containers/ed/cmd", "sleep 5\n"));
    assert_eq!(b.read("containers/ed/cmd"), "sleep 5\n");
    // An empty file saved over a value is the empty value.
    ok(&save("containers/ed/env", ""));
    assert_eq!(b.read("containers/ed/env"), "");
    ok(&save("containers/ed/env", "A=1\n"));

    // Refused: os.replace gets the errno, the old value stays, the scratch file goes with the unlink.
    let out = save("containers/ed/env", "A=1\n2BAD=x\n");
    assert!(stderr(&out).contains(&format!("errno {}", libc::EINVAL)), "{out:?}");
    assert_eq!(b.read("containers/ed/env"), "A=1\n");
    let out = save("containers/ed/memory.max", "1K\n");
    assert!(stderr(&out).contains(&format!("errno {}", libc::ERANGE)), "{out:?}");
    let out = save("containers/ed/ctl", "start\n");
    assert!(stderr(&out).contains(&format!("errno {}", libc::EPERM)), "a command file takes no rename: {out:?}");
    assert!(last_error(&b, "containers/ed/ctl").contains("only value files do"), "{}", b.read("errors"));
    let out = save("containers/ed/status", "running\n");
    assert!(stderr(&out).contains(&format!("errno {}", libc::EPERM)), "{out:?}");
    assert_eq!(b.read("containers/ed/status"), "created\n");
}

/// vim, or its tiny build, whichever is installed.
fn vim() -> &'static str {
    ["vim", "vim.tiny"]
        .into_iter()
        .find(|v| Command::new(v).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("vim is needed for the tests (apt-get install vim)")
}

/// vim's `:w` as a user without a vimrc has it (defaults.vim: 'backupcopy' auto, 'writebackup'), with the
/// backup the mount's place under /tmp would skip, the commands `ex_cmds` and then `:wq`.
fn vim_edit(b: &Bocker, file: &str, ex_cmds: &[&str]) -> Output {
    let mut cmd = Command::new(vim());
    cmd.args(["-u", "DEFAULTS", "-i", "NONE", "-es", "-c", "set backupskip="]);
    for c in ex_cmds {
        cmd.args(["-c", c]);
    }
    cmd.args(["-c", "wq"]).arg(b.path(file)).env("HOME", &b.dir);
    cmd.stdin(std::process::Stdio::null()).output().expect("vim")
}

#[test]
fn vim_saves_with_w() {
    let b = Bocker::start("values-vim");
    fs::create_dir(b.path("containers/ed")).unwrap();
    let before = listing(&b, "containers/ed");
    b.write("containers/ed/env", "A=1\nB=2\n").unwrap();
    ok(&vim_edit(&b, "containers/ed/env", &["%s/A=1/A=2/", "$put ='C=3'"]));
    assert_eq!(b.read("containers/ed/env"), "A=2\nB=2\nC=3\n");
    ok(&vim_edit(&b, "containers/ed/ports", &["1s/^/18080:80/"]));
    assert_eq!(b.read("containers/ed/ports"), "18080:80/tcp\n");
    // Its swap file went to a directory of its 'directory' outside the tree; its backup (`env~`) came and
    // went as a scratch file; neither is listed.
    assert_eq!(listing(&b, "containers/ed"), before);
    assert!(b.read("errors").is_empty(), "{}", b.read("errors"));

    // A bad value: the write fails, vim says so and exits non-zero, the old value stays.
    let out = vim_edit(&b, "containers/ed/env", &["%s/B=2/B 2/"]);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(b.read("containers/ed/env"), "A=2\nB=2\nC=3\n");
    assert!(last_error(&b, "containers/ed/env").contains("bad env line 'B 2'"), "{}", b.read("errors"));
}

#[test]
fn a_failure_on_each_path_leaves_the_old_value_and_says_why() {
    let b = Bocker::start("values-errors");
    fs::create_dir(b.path("containers/ed")).unwrap();
    b.write("containers/ed/env", "OLD=1\n").unwrap();
    let env = || b.read("containers/ed/env");

    // One write, `>`: EINVAL, the old value.
    let out = sh(&b, "containers/ed", "echo 'no equals' > env");
    assert!(!out.status.success() && stderr(&out).contains("Invalid argument"), "{out:?}");
    assert_eq!(env(), "OLD=1\n");
    assert!(b.read("containers/ed/error").contains("bad env line 'no equals'"));
    // `>>`: the same.
    assert!(!sh(&b, "containers/ed", "echo 'no equals' >> env").status.success());
    assert_eq!(env(), "OLD=1\n");
    // A write of more than 64 KiB at once: EFBIG, the old value.
    let huge = format!("A={}\n", "x".repeat(70 * 1024));
    let e = b.write("containers/ed/env", &huge).unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EFBIG);
    assert_eq!(env(), "OLD=1\n");

    // In a block, the failed write is no part of the value: the writes before and after it make it.
    let out = sh(&b, "containers/ed", "{ echo A=1; echo 'no equals'; echo B=2; } > env");
    assert!(stderr(&out).contains("Invalid argument"), "{out:?}");
    assert_eq!(env(), "A=1\nB=2\n");

    // A last line without its newline that doesn't parse is held for a next write; still wrong at close,
    // close(2) says EINVAL, the message is in error and errors, and the value is what the last write that
    // was applied made.
    b.write("containers/ed/env", "OLD=1\n").unwrap();
    let mut f = fs::OpenOptions::new().write(true).truncate(true).open(b.path("containers/ed/env")).unwrap();
    f.write_all(b"A=1\nB=2\nKEY_WITHOUT").unwrap();
    assert_eq!(env(), "OLD=1\n", "held, nothing applied yet");
    f.write_all(b"_EQUALS=ok\nC=").unwrap();
    assert_eq!(env(), "A=1\nB=2\nKEY_WITHOUT_EQUALS=ok\nC=\n", "completed by the next write");
    f.write_all(b"3\nD").unwrap();
    let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
    // SAFETY: fd is the descriptor into_raw_fd just gave up; it is closed once, here.
    let closed = unsafe { libc::close(fd) };
    assert_eq!((closed, std::io::Error::last_os_error().raw_os_error()), (-1, Some(libc::EINVAL)));
    assert_eq!(env(), "A=1\nB=2\nKEY_WITHOUT_EQUALS=ok\nC=\n", "the held write applied nothing");
    assert!(b.read("containers/ed/error").contains("bad env line 'D'"));
    assert!(last_error(&b, "containers/ed/env").contains("EINVAL bad env line 'D'"));

    // An engine refusal through a rename: the errno of the write it is, the old value.
    fs::write(b.path("containers/ed/new"), "no-such-volume:/x\n").unwrap();
    let e = fs::rename(b.path("containers/ed/new"), b.path("containers/ed/volumes")).unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::ENOENT);
    assert_eq!(b.read("containers/ed/volumes"), "");
    assert!(b.read("containers/ed/error").contains("no volume named 'no-such-volume'"));
    // The scratch file is still there to rename again, and goes with an unlink.
    fs::write(b.path("containers/ed/new"), "X=1\n").unwrap();
    fs::rename(b.path("containers/ed/new"), b.path("containers/ed/env")).unwrap();
    assert_eq!(env(), "X=1\n");
    assert!(!b.path("containers/ed/new").exists(), "renamed away");

    // What stays EPERM: renaming the tree's files, unlinking them, creating outside a container's directory,
    // a scratch file over 64 KiB (EFBIG), vim's swap files.
    let e = fs::rename(b.path("containers/ed/env"), b.path("containers/ed/env~")).unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EPERM);
    assert!(last_error(&b, "containers/ed/env").contains("EPERM containers/ed/env can't be renamed"));
    assert_eq!(Bocker::errno(&fs::remove_file(b.path("containers/ed/env")).unwrap_err()), libc::EPERM);
    assert_eq!(Bocker::errno(&fs::write(b.path("containers/x"), "X=1\n").unwrap_err()), libc::EPERM);
    assert_eq!(Bocker::errno(&fs::write(b.path("images/x"), "X=1\n").unwrap_err()), libc::EPERM);
    // A name of the tree's is never a scratch file's, even while absent (`rootfs` before an image).
    assert_eq!(Bocker::errno(&fs::write(b.path("containers/ed/rootfs"), "x").unwrap_err()), libc::EPERM);
    let e = fs::write(b.path("containers/ed/big"), vec![b'a'; 65 * 1024]).unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EFBIG);
    let swap = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(b.path("containers/ed/.env.swp"));
    assert_eq!(Bocker::errno(&swap.unwrap_err()), libc::EPERM);
    assert_eq!(env(), "X=1\n");
}

#[test]
fn a_scratch_file_is_listed_to_nobody_and_goes_unless_renamed() {
    let b = Bocker::start("values-scratch");
    fs::create_dir(b.path("containers/ed")).unwrap();
    let before = listing(&b, "containers/ed");
    fs::write(b.path("containers/ed/draft"), "A=1\n").unwrap();
    fs::write(b.path("draft-at-root"), "B=2\n").unwrap();
    assert_eq!(listing(&b, "containers/ed"), before);
    assert!(!listing(&b, "").contains(&"draft-at-root".to_string()));
    // Found by name, for the rename that follows the close; readable as written.
    assert_eq!(fs::read_to_string(b.path("containers/ed/draft")).unwrap(), "A=1\n");
    assert_eq!(fs::metadata(b.path("containers/ed/draft")).unwrap().len(), 4);
    // From the root onto a container's value file works too.
    fs::rename(b.path("draft-at-root"), b.path("containers/ed/env")).unwrap();
    assert_eq!(b.read("containers/ed/env"), "B=2\n");
    // Unlinked while open: gone by name at once, writable until closed.
    let mut open = fs::File::create(b.path("containers/ed/gone")).unwrap();
    fs::remove_file(b.path("containers/ed/gone")).unwrap();
    assert!(!b.path("containers/ed/gone").exists());
    open.write_all(b"x").unwrap();
    drop(open);
    // A misspelt name "succeeds" as a scratch file (`memory.max` is the limit's name).
    ok(&sh(&b, "containers/ed", "echo 1G > memory_max"));
    // Its inode number is no entry of the inode table, which would otherwise grow by one per scratch file.
    assert!(fs::metadata(b.path("containers/ed/memory_max")).unwrap().ino() >= 1 << 62);
    // Never renamed: gone some seconds after its last close, and one that had bytes is recorded in
    // `errors` (an unlinked one is not: it was dropped on purpose).
    std::thread::sleep(Duration::from_secs(32));
    assert!(!b.path("containers/ed/draft").exists(), "a scratch file that isn't renamed goes");
    assert!(!b.path("containers/ed/memory_max").exists());
    assert_eq!(b.read("containers/ed/env"), "B=2\n");
    let errors = b.read("errors");
    let dropped = "a file written here was never renamed onto a file of the tree: dropped";
    assert!(last_error(&b, "containers/ed/memory_max").contains(&format!("containers/ed/memory_max: {dropped}")));
    assert!(last_error(&b, "containers/ed/draft").contains(dropped), "{errors}");
    assert!(!errors.contains("containers/ed/gone"), "{errors}");
    assert_eq!(b.read("containers/ed/error"), "", "the container's error is a write's: none failed");
}

#[test]
fn a_scratch_file_reads_as_it_is_now() {
    let b = Bocker::start("values-scratch-now");
    fs::create_dir(b.path("containers/ed")).unwrap();
    let mut writer = fs::File::create(b.path("containers/ed/draft")).unwrap();
    writer.write_all(b"A=1\n").unwrap();
    let mut reader = fs::File::open(b.path("containers/ed/draft")).unwrap();
    writer.write_all(b"B=2\n").unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut reader, &mut text).unwrap();
    assert_eq!(text, "A=1\nB=2\n", "what stat's size says, not a copy taken at open");
    drop((writer, reader));
}

#[test]
fn a_scratch_file_takes_no_tree_name_and_goes_with_its_container() {
    let b = Bocker::start("values-scratch-dir");
    fs::create_dir(b.path("containers/ed")).unwrap();
    fs::write(b.path("containers/ed/draft"), "A=1\n").unwrap();

    // A name of the tree's that is absent now (`rootfs` before an image) takes no scratch file by rename.
    fs::write(b.path("containers/ed/tmp"), "x").unwrap();
    let e = fs::rename(b.path("containers/ed/tmp"), b.path("containers/ed/rootfs")).unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EPERM);
    assert!(fs::symlink_metadata(b.path("containers/ed/rootfs")).is_err());

    // Removed with its container, within its grace: a new container of the name has none of them.
    fs::remove_dir(b.path("containers/ed")).unwrap();
    fs::create_dir(b.path("containers/ed")).unwrap();
    assert!(!b.path("containers/ed/draft").exists());
    assert!(!b.path("containers/ed/tmp").exists());
    fs::write(b.path("containers/ed/draft"), "C=3\n").unwrap();
    fs::rename(b.path("containers/ed/draft"), b.path("containers/ed/env")).unwrap();
    assert_eq!(b.read("containers/ed/env"), "C=3\n");
}

#[test]
fn a_failed_write_after_a_cut_line_takes_no_more_writes_until_ftruncate() {
    let b = Bocker::start("values-broken");
    fs::create_dir(b.path("containers/ed")).unwrap();
    // `B=` has no newline when the next write fails: `C=3` would have made `B=C=3`, which nobody wrote.
    let out =
        sh(&b, "containers/ed", "{ /usr/bin/printf 'A=1\\nB='; /usr/bin/printf 'x\\nno equals\\n'; echo C=3; } > env");
    assert!(stderr(&out).contains("Invalid argument"), "{out:?}");
    assert_eq!(b.read("containers/ed/env"), "A=1\nB=\n");
    assert!(
        last_error(&b, "containers/ed/env").contains("takes no more writes until ftruncate"),
        "{}",
        b.read("errors")
    );

    let mut f = fs::OpenOptions::new().write(true).open(b.path("containers/ed/env")).unwrap();
    f.write_all(b"A=1\nB=").unwrap();
    assert_eq!(Bocker::errno(&f.write_all(b"x\nbad\n").unwrap_err()), libc::EINVAL);
    assert_eq!(Bocker::errno(&f.write_all(b"C=3\n").unwrap_err()), libc::EINVAL);
    assert_eq!(b.read("containers/ed/env"), "A=1\nB=\n");
    // ftruncate(0) starts the value afresh, and the open file takes writes again.
    f.set_len(0).unwrap();
    f.write_all(b"D=4\n").unwrap();
    drop(f);
    assert_eq!(b.read("containers/ed/env"), "D=4\n");
}

#[test]
fn a_last_line_that_clashes_until_it_is_whole_is_held() {
    let b = Bocker::start("values-clash");
    fs::create_dir(b.path("containers/ed")).unwrap();
    fs::create_dir(b.path("volumes/a")).unwrap();
    fs::create_dir(b.path("volumes/b")).unwrap();
    let open = |file: &str| fs::OpenOptions::new().write(true).open(b.path(file)).unwrap();
    // `b:/d` alone parses, but names /d twice with `a:/d` until `z` makes it `b:/dz`.
    let mut f = open("containers/ed/volumes");
    f.write_all(b"a:/d\nb:/d").unwrap();
    f.write_all(b"z\n").unwrap();
    drop(f);
    assert_eq!(b.read("containers/ed/volumes"), "a:/d\nb:/dz\n");
    // Host port 18080 twice, until `/udp` makes the second another protocol's.
    let mut f = open("containers/ed/ports");
    f.write_all(b"18080:80\n18080:80").unwrap();
    f.write_all(b"/udp\n").unwrap();
    drop(f);
    assert_eq!(b.read("containers/ed/ports"), "18080:80/tcp\n18080:80/udp\n");
    // Still wrong at the close: close(2) refuses it, the value stays.
    let mut f = open("containers/ed/ports");
    f.write_all(b"18081:80\n18081:80").unwrap();
    let fd = std::os::fd::IntoRawFd::into_raw_fd(f);
    // SAFETY: fd is the descriptor into_raw_fd just gave up; it is closed once, here.
    let closed = unsafe { libc::close(fd) };
    assert_eq!((closed, std::io::Error::last_os_error().raw_os_error()), (-1, Some(libc::EINVAL)));
    assert_eq!(b.read("containers/ed/ports"), "18080:80/tcp\n18080:80/udp\n");
}

#[test]
fn ftruncate_to_zero_with_no_write_after_it_empties_the_value() {
    let b = Bocker::start("values-ftruncate");
    fs::create_dir(b.path("containers/ed")).unwrap();
    b.write("containers/ed/env", "A=1\n").unwrap();
    // Python's truncate(0) on an open(p, 'r+'), as an editor saving an emptied buffer does.
    let script = "import sys; f = open(sys.argv[1], 'r+'); f.truncate(0); f.close()";
    ok(&Command::new("python3").args(["-c", script]).arg(b.path("containers/ed/env")).output().unwrap());
    assert_eq!(b.read("containers/ed/env"), "");
    // With O_APPEND, an ftruncate(0) before the first write drops the value the writes add to.
    b.write("containers/ed/env", "A=1\n").unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(b.path("containers/ed/env")).unwrap();
    f.set_len(0).unwrap();
    f.write_all(b"B=2\n").unwrap();
    drop(f);
    assert_eq!(b.read("containers/ed/env"), "B=2\n");
    // open(O_TRUNC) and no write still changes nothing (`: > env`).
    ok(&sh(&b, "containers/ed", ": > env"));
    assert_eq!(b.read("containers/ed/env"), "B=2\n");
}

#[test]
fn with_group_a_descriptor_handed_to_a_non_member_neither_writes_nor_truncates() {
    let b = Bocker::start_with_env("values-access", &[("BOCKER_GROUP", "users")]);
    fs::create_dir(b.path("containers/ed")).unwrap();
    b.write("containers/ed/env", "A=1\n").unwrap();
    // A scratch file reads 0660 with --group (0600 without), owned by its maker.
    fs::write(b.path("containers/ed/draft"), "B=2\n").unwrap();
    assert_eq!(fs::metadata(b.path("containers/ed/draft")).unwrap().mode() & 0o7777, 0o660);
    // Root opens, nobody (no member) gets the descriptors: the kernel checked the open only.
    let nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups --";
    let script = format!(
        "exec 3<>draft 4<>env; \
         {nobody} sh -c 'echo x >&3' && echo wrote-scratch; \
         {nobody} python3 -c 'import os; os.ftruncate(3, 0)' && echo truncated-scratch; \
         {nobody} python3 -c 'import os; os.ftruncate(4, 0)' && echo truncated-env; true"
    );
    let out = sh(&b, "containers/ed", &script);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!text.contains("wrote-") && !text.contains("truncated-"), "{text}");
    assert_eq!(fs::read_to_string(b.path("containers/ed/draft")).unwrap(), "B=2\n");
    assert_eq!(b.read("containers/ed/env"), "A=1\n");
    assert!(last_error(&b, "containers/ed/draft").contains("EACCES uid 65534"), "{}", b.read("errors"));
}

#[test]
fn command_files_take_one_command_per_write() {
    let b = Bocker::start("values-commands");
    let img = b.import("");
    b.configure("c", &img, "sleep 1000");
    // Two writes on one open ctl are two commands: start, then stop.
    let mut ctl = fs::OpenOptions::new().write(true).open(b.path("containers/c/ctl")).unwrap();
    ctl.write_all(b"start\n").unwrap();
    assert_eq!(b.status("c"), "running");
    ctl.write_all(b"stop 1\n").unwrap();
    assert_eq!(b.status("c"), "exited");
    drop(ctl);
    // `>>` on a command file is the same: each write one command.
    ok(&sh(&b, "containers/c", "echo start >> ctl"));
    assert_eq!(b.status("c"), "running");
    // Two execs through one open exec file, one write each: two execs.
    let mut exec = fs::OpenOptions::new().write(true).open(b.path("containers/c/exec")).unwrap();
    exec.write_all(b"echo one\n").unwrap();
    exec.write_all(b"echo two\n").unwrap();
    drop(exec);
    b.wait_exec("c", "1");
    b.wait_exec("c", "2");
    assert_eq!(b.read("containers/c/execs/1/logs"), "one\n");
    assert_eq!(b.read("containers/c/execs/2/logs"), "two\n");
    // Two commands in one write are one bad command.
    let e = b.write("containers/c/ctl", "stop 1\nstart\n").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EINVAL);
    assert_eq!(b.status("c"), "running");
    ok(&sh(&b, "containers/c", "echo 'kill' > ctl"));
    b.wait_status("c", "exited");
}
