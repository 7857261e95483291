//! bocker's command line, over the mounted files: its verbs, its output and its messages.

mod common;

use common::Bocker;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bockers_verbs_work_through_the_mount() {
    let b = Bocker::start("cli");
    let rootfs = b.rootfs();
    let init = b.cli(&["init", rootfs.to_str().unwrap()]);
    assert!(init.status.success(), "{}", stderr(&init));
    let created = stdout(&init);
    let img = created.strip_prefix("Created: ").unwrap().trim_end().to_string();
    assert!(img.starts_with("img_") && created.ends_with('\n'), "{created:?}");

    let images = b.cli(&["images"]);
    assert_eq!(stdout(&images), format!("IMAGE_ID\t\tSOURCE\n{img}\t\t{}\n", rootfs.display()));
    let images = b.cli(&["images", "--names"]);
    assert_eq!(stdout(&images), format!("IMAGE_ID\t\tSOURCE\t\tNAMES\n{img}\t\t{}\t\t<none>\n", rootfs.display()));

    // Several words: the argv exactly.
    let run = b.cli(&["run", &img, "printf", "%s|", "a   b", "$HOME"]);
    assert_eq!(stdout(&run), "a   b|$HOME|");
    assert_eq!(run.status.code(), Some(0));
    // One word holding spaces: a shell line, as bocker ran it.
    let run = b.cli(&["run", &img, "echo $((6*7)) && exit 3"]);
    assert_eq!(stdout(&run), "42\n");
    assert_eq!(run.status.code(), Some(3), "run exits with the container's code");
    // The image by its source, as `bocker init` users name it.
    let run = b.cli(&["run", rootfs.to_str().unwrap(), "hostname"]);
    assert!(stdout(&run).starts_with("ps_"), "{}", stdout(&run));

    let ps = b.cli(&["ps"]);
    let text = stdout(&ps);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("CONTAINER_ID\t\tCOMMAND"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows.iter().any(|r| r.ends_with("\t\t/bin/sh -c 'echo $((6*7)) && exit 3'")), "{text}");
    let id = rows.iter().find(|r| r.contains("printf")).unwrap().split('\t').next().unwrap().to_string();

    let logs = b.cli(&["logs", &id]);
    assert_eq!(stdout(&logs), "a   b|$HOME|");

    // As bocker's: an image goes while containers made from it exist; they keep their own rootfs.
    let rm = b.cli(&["rm", &img]);
    assert_eq!(stdout(&rm), format!("Removed: {img}\n"), "rm takes an image too");
    assert_eq!(stdout(&b.cli(&["images"])), "IMAGE_ID\t\tSOURCE\n");
    b.write(&format!("containers/{id}/ctl"), "start").unwrap();
    b.wait_status(&id, "exited");
    assert_eq!(b.read(&format!("containers/{id}/exit_code")), "0\n", "it starts again without its image");

    for row in &rows {
        let c = row.split('\t').next().unwrap();
        let rm = b.cli(&["rm", c]);
        assert_eq!(stdout(&rm), format!("Removed: {c}\n"));
    }
    assert_eq!(stdout(&b.cli(&["ps"])), "CONTAINER_ID\t\tCOMMAND\n");
    let rmi = b.cli(&["rmi", &img]);
    assert_eq!(rmi.status.code(), Some(1), "gone already");
}

#[test]
fn errors_are_in_bockers_words() {
    let b = Bocker::start("cliwords");
    let img = b.import("");
    let missing = b.dir.join("missing");
    let missing = missing.to_str().unwrap();
    // bocker's own messages on stdout, where bocker echoed them and scripts look for them; they exit 1.
    let bockers: [(&[&str], String); 6] = [
        (&["run", "img_nope", "true"], "No image named 'img_nope' exists".into()),
        (&["rmi", "img_nope"], "No image named 'img_nope' exists".into()),
        (&["logs", "ps_nope"], "No container named 'ps_nope' exists".into()),
        (&["rm", "ps_nope"], "No container named 'ps_nope' exists".into()),
        (&["exec", "ps_nope", "true"], "No container named 'ps_nope' exists".into()),
        (&["init", missing], format!("No directory named '{missing}' exists")),
    ];
    for (args, message) in bockers {
        let out = b.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stdout(&out), format!("{message}\n"), "{args:?}");
        assert_eq!(stderr(&out), "", "{args:?}");
    }
    // Ours, on stderr.
    let out = b.cli(&["run", &img, "no-such-program"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("executable 'no-such-program' not found"), "{}", stderr(&out));
    let nowhere = std::process::Command::new(common::BIN)
        .args(["ps"])
        .env("BOCKER_MOUNT", b.dir.join("not-a-mount"))
        .output()
        .unwrap();
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(stderr(&nowhere).contains("is `bocker daemon` running?"), "{}", stderr(&nowhere));
}
