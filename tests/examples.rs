//! The shell scripts in mount-examples/ run against a real mount and say what they should.

mod common;

use std::process::Command;

use common::Bocker;

fn script(b: &Bocker, name: &str, args: &[&str]) -> String {
    let path = format!("{}/mount-examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("sh").arg(&path).args(args).env("BOCKER_MOUNT", &b.mount).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{name}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

#[test]
fn the_mount_examples_work() {
    let b = Bocker::start("examples");
    let rootfs = b.rootfs();
    let out = script(&b, "01-import-and-run.sh", &[rootfs.to_str().unwrap()]);
    let img = out.lines().next().unwrap().split(' ').nth(1).unwrap().to_string();
    assert!(img.starts_with("img_"), "{out}");
    assert!(out.ends_with("status: exited\nexit_code: 7\nlogs:\nhello from hello\n"), "{out}");

    let out = script(&b, "02-inspect.sh", &[]);
    assert!(out.contains(&format!("image {img}: source={}", rootfs.display())), "{out}");
    assert!(out.contains("container hello: exited exit=7 cmd=sh -c 'echo hello from $(hostname); exit 7'"), "{out}");

    let out = script(&b, "03-run-and-clean-up.sh", &[&img]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ps_") && lines[0].ends_with(" said: one shot"), "{out}");
    assert_eq!(&lines[1..], ["service is running", "service is exited", "hello", "run"]);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let out = script(&b, "04-web-and-client.sh", &[&img, &port]);
    let lines: Vec<&str> = out.lines().collect();
    let subnet = format!("running at {}.", b.subnet_prefix);
    assert!(lines[0].starts_with("web is ") && lines[0].contains(&subnet), "{out}");
    assert!(lines[0].ends_with(&format!("forwarding {port}:80/tcp")), "{out}");
    assert_eq!(&lines[1..], ["hello from web", "hello from web"], "{out}");

    // A heredoc, a block of echos, `>>` and `sed -i` each set a whole multi-line value.
    let out = script(&b, "05-multi-line-values.sh", &[&img]);
    let env_lines = 1 + 4; // the image's PATH and the four written
    let want = format!("env: {env_lines} lines, volumes: 2 lines\nhello world test 2\nx\n/b is read-only\n");
    assert_eq!(out, want);
}
