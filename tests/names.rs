//! Images' names through the mount and the CLI: one image pulled under three references and named by each,
//! short and long forms, id prefixes, tag and untag, names moving between images on pull, tag and commit,
//! the `images/by-name/` tree, names across a daemon restart (and records older than names), `bocker rmi`
//! of a name and of the last name, and the CLI in pipelines under `pipefail`.

mod common;

use std::fs;
use std::process::Command;

use common::registry::{config, tar_of, tar_of_dir, Compression, Layer, TestRegistry};
use common::Bocker;

/// The image `reference` names, as a container's `image` file takes it: its id, or the errno.
fn resolve(b: &Bocker, reference: &str) -> Result<String, i32> {
    if !b.path("containers/probe").is_dir() {
        fs::create_dir(b.path("containers/probe")).unwrap();
    }
    b.write("containers/probe/image", reference).map_err(|e| Bocker::errno(&e))?;
    Ok(b.read("containers/probe/image").trim().to_string())
}

fn names(b: &Bocker, id: &str) -> Vec<String> {
    b.read(&format!("images/{id}/names")).lines().map(str::to_string).collect()
}

fn listing(b: &Bocker, rel: &str) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(b.path(rel)).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A busybox image whose config says `marker`, so two pushes with different markers are two images.
fn push(reg: &TestRegistry, b: &Bocker, repo_tag: &str, marker: &str) {
    let layers = [Layer::new(tar_of_dir(&b.rootfs()), Compression::Gzip), Layer::new(tar_of(&[]), Compression::None)];
    reg.push_image(repo_tag, &layers, config(&["PATH=/bin", &format!("MARKER={marker}")], &["true"], "/"));
}

#[test]
fn one_image_pulled_under_three_references_answers_to_each_and_a_pull_moves_a_name() {
    let b = Bocker::start("names-pull");
    let reg = TestRegistry::start(&b.dir);
    for repo_tag in ["team/app:v1", "team/app:latest", "other/app:v2"] {
        push(&reg, &b, repo_tag, "one");
    }
    let ids: Vec<String> = ["team/app:v1", "team/app", "other/app:v2"]
        .iter()
        .map(|r| b.submit("images/pull", &reg.reference(r)).expect("pull"))
        .collect();
    let id = ids[0].clone();
    assert!(ids.iter().all(|i| *i == id), "one config, one image: {ids:?}");
    let full = |r: &str| format!("{}/{r}", reg.addr);
    assert_eq!(names(&b, &id), vec![full("team/app:v1"), full("team/app:latest"), full("other/app:v2")]);
    for r in ["team/app:v1", "team/app", "team/app:latest", "other/app:v2"] {
        assert_eq!(resolve(&b, &reg.reference(r)), Ok(id.clone()), "{r}");
    }
    assert_eq!(resolve(&b, &reg.reference("other/app")), Err(libc::ENOENT), "other/app:latest was never pulled");
    // Run by a name, as `containers/run` takes it.
    let c = b.run_to_exit(&format!("{} sh -c 'echo $MARKER'", reg.reference("other/app:v2")));
    assert_eq!(b.read(&format!("containers/{c}/logs")), "one\n");

    // The tree of names: a directory per part, the last part a link to the image's directory.
    assert_eq!(listing(&b, "images/by-name"), vec![reg.addr.clone()]);
    assert_eq!(listing(&b, &format!("images/by-name/{}", reg.addr)), vec!["other", "team"]);
    let team = format!("images/by-name/{}/team", reg.addr);
    assert_eq!(listing(&b, &team), vec!["app:latest", "app:v1"]);
    let link = b.path(&format!("{team}/app:v1"));
    assert_eq!(fs::read_link(&link).unwrap().to_str().unwrap(), format!("../../../{id}"));
    assert_eq!(fs::read_to_string(link.join("names")).unwrap(), b.read(&format!("images/{id}/names")));
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(Bocker::errno(&fs::create_dir(b.path(&format!("{team}/x"))).unwrap_err()), libc::EPERM);
    assert!(!b.path(&format!("{team}/app:v9")).exists());

    // A new image under a name moves the name to it; the old image keeps its other names.
    push(&reg, &b, "team/app:v1", "two");
    let second = b.submit("images/pull", &reg.reference("team/app:v1")).expect("pull");
    assert_ne!(second, id);
    assert_eq!(names(&b, &second), vec![full("team/app:v1")]);
    assert_eq!(names(&b, &id), vec![full("team/app:latest"), full("other/app:v2")]);
    assert_eq!(resolve(&b, &reg.reference("team/app:v1")), Ok(second.clone()));
    assert_eq!(
        fs::read_link(b.path(&format!("{team}/app:v1"))).unwrap().to_str().unwrap(),
        format!("../../../{second}")
    );
    // Pulled again, the first image takes the name back.
    push(&reg, &b, "team/app:v1", "one");
    assert_eq!(b.submit("images/pull", &reg.reference("team/app:v1")).unwrap(), id);
    assert_eq!(names(&b, &second), Vec::<String>::new());
    assert_eq!(resolve(&b, &reg.reference("team/app:v1")), Ok(id.clone()));

    // bocker images: the names as Docker shows them.
    let out = b.cli(&["images", "--names"]);
    let text = stdout(&out);
    assert!(text.starts_with("IMAGE_ID\t\tSOURCE\t\tNAMES\n"), "{text}");
    assert!(text.contains(&format!("{second}\t\t{}\t\t<none>\n", reg.reference("team/app:v1"))), "{text}");
    assert!(text.contains(&format!("{},{},{}", full("team/app:latest"), full("other/app:v2"), full("team/app:v1"))));
}

#[test]
fn tag_untag_short_and_long_forms_and_id_prefixes() {
    let b = Bocker::start("names-tag");
    let img = b.import("");
    let other = b.import("");
    assert_eq!(names(&b, &img), Vec::<String>::new(), "an import's directory is its source, not a name");

    b.write("images/tag", &format!("{img} myapp")).unwrap();
    assert_eq!(names(&b, &img), vec!["docker.io/library/myapp:latest"]);
    for r in ["myapp", "myapp:latest", "library/myapp", "docker.io/library/myapp", "docker.io/library/myapp:latest"] {
        assert_eq!(resolve(&b, r), Ok(img.clone()), "{r}");
    }
    assert_eq!(resolve(&b, "myapp:2"), Err(libc::ENOENT));
    // Tagging by a name, and names with a registry and a port.
    b.write("images/tag", "myapp localhost:5000/team/app:v1").unwrap();
    assert_eq!(names(&b, &img), vec!["docker.io/library/myapp:latest", "localhost:5000/team/app:v1"]);
    assert_eq!(listing(&b, "images/by-name"), vec!["docker.io", "localhost:5000"]);
    assert_eq!(listing(&b, "images/by-name/docker.io/library"), vec!["myapp:latest"]);

    // A name belongs to one image: tagging another moves it.
    b.write("images/tag", &format!("{other} myapp")).unwrap();
    assert_eq!(names(&b, &img), vec!["localhost:5000/team/app:v1"]);
    assert_eq!(names(&b, &other), vec!["docker.io/library/myapp:latest"]);
    assert_eq!(resolve(&b, "myapp"), Ok(other.clone()));

    // Untag takes the name; the image stays.
    b.write("images/untag", "localhost:5000/team/app:v1").unwrap();
    assert_eq!(names(&b, &img), Vec::<String>::new());
    assert!(b.path(&format!("images/{img}")).is_dir());
    assert_eq!(listing(&b, "images/by-name"), vec!["docker.io"]);
    assert!(!b.path("images/by-name/localhost:5000").exists());
    assert_eq!(Bocker::errno(&b.write("images/untag", "localhost:5000/team/app:v1").unwrap_err()), libc::ENOENT);

    // Refusals: their errno, and their reason in errors.
    let digest = format!("alpine@sha256:{}", "a".repeat(64));
    for (line, errno) in [
        ("img_nope00000000 x".to_string(), libc::ENOENT),
        ("nothere x".into(), libc::ENOENT),
        (format!("{img} Upper"), libc::EINVAL),
        (format!("{img} {digest}"), libc::EINVAL),
        (img.clone(), libc::EINVAL),
        (format!("{img} a b"), libc::EINVAL),
    ] {
        let e = b.write("images/tag", &line).unwrap_err();
        assert_eq!(Bocker::errno(&e), errno, "{line}");
        let last = b.read("errors").lines().last().unwrap_or("").to_string();
        assert!(last.contains(" images/tag "), "{line}: {last}");
    }
    assert!(b.read("errors").contains("a tag, not a digest"));
    assert_eq!(Bocker::errno(&b.write("images/untag", "a b").unwrap_err()), libc::EINVAL);
    assert_eq!(names(&b, &other), vec!["docker.io/library/myapp:latest"], "nothing changed");

    // Id prefixes: a unique one names its image, an ambiguous one is refused with the ids it matches.
    let mut ids = vec![img.clone(), other.clone()];
    let shared = loop {
        let found = ids.iter().enumerate().find_map(|(i, a)| ids[i + 1..].iter().find(|x| x[..5] == a[..5]));
        if let Some(x) = found {
            break x[..5].to_string();
        }
        ids.push(b.import(""));
    };
    for id in &ids {
        let unique = (6..=id.len()).map(|n| &id[..n]).find(|p| ids.iter().filter(|i| i.starts_with(p)).count() == 1);
        assert_eq!(resolve(&b, unique.unwrap()), Ok(id.clone()));
    }
    assert_eq!(resolve(&b, &shared), Err(libc::EINVAL));
    assert!(
        b.read("containers/probe/error").contains("more than one image's id"),
        "{}",
        b.read("containers/probe/error")
    );
    let out = b.cli(&["rmi", &shared]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than one image's id"));
}

#[test]
fn a_commit_moves_a_name_and_names_survive_a_restart_and_old_records_get_theirs() {
    let mut b = Bocker::start("names-commit");
    let img = b.import("");
    let c1 = b.run_to_exit(&format!("{img} sh -c 'echo 1 > /v'"));
    let first = b.submit(&format!("containers/{c1}/commit"), "snap").unwrap();
    assert_eq!(names(&b, &first), vec!["docker.io/library/snap:latest"]);
    let c2 = b.run_to_exit("snap sh -c 'echo 2 > /v'");
    let second = b.submit(&format!("containers/{c2}/commit"), "library/snap:latest").unwrap();
    assert_ne!(first, second, "a name makes a new image");
    assert_eq!(names(&b, &second), vec!["docker.io/library/snap:latest"]);
    assert_eq!(names(&b, &first), Vec::<String>::new());
    // An id prefix replaces that image, as bocker's commit of an id; its names stay.
    let replaced = b.submit(&format!("containers/{c2}/commit"), &second[..10]).unwrap();
    assert_eq!(replaced, second);
    b.write("images/tag", &format!("{first} keep:1")).unwrap();

    // A record from before names: its source, when a reference, is its name; a directory stays a source.
    let state = b.root.join("state/images");
    let strip = |id: &str, source: &str| {
        let path = state.join(id).join("record.json");
        let mut rec: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let obj = rec.as_object_mut().unwrap();
        obj.remove("names");
        obj.insert("source".into(), source.into());
        fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    };
    let old = b.import("");
    let old_dir = b.import("");
    b.stop_daemon();
    strip(&old, "busybox:1.36");
    strip(&old_dir, "/srv/rootfs");
    b.spawn_daemon();
    assert_eq!(names(&b, &second), vec!["docker.io/library/snap:latest"]);
    assert_eq!(names(&b, &first), vec!["docker.io/library/keep:1"]);
    assert_eq!(names(&b, &old), vec!["docker.io/library/busybox:1.36"]);
    assert_eq!(names(&b, &old_dir), Vec::<String>::new());
    assert_eq!(resolve(&b, "busybox:1.36"), Ok(old.clone()));
    assert_eq!(resolve(&b, "snap"), Ok(second.clone()));
    let c = b.run_to_exit("snap cat /v");
    assert_eq!(b.read(&format!("containers/{c}/logs")), "2\n");
}

#[test]
fn rmi_takes_a_name_and_the_image_with_its_last_name() {
    let b = Bocker::start("names-rmi");
    let img = b.import("");
    let tag = b.cli(&["tag", &img, "web:1"]);
    assert!(tag.status.success(), "{}", String::from_utf8_lossy(&tag.stderr));
    assert!(b.cli(&["tag", "web:1", "registry.example:5000/web:2"]).status.success());
    assert_eq!(names(&b, &img), vec!["docker.io/library/web:1", "registry.example:5000/web:2"]);
    let bad = b.cli(&["tag", "nothere", "x"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("No image named 'nothere' exists"));

    let out = b.cli(&["rmi", "web:1"]);
    assert_eq!(stdout(&out), "Untagged: web:1\n");
    assert!(b.path(&format!("images/{img}")).is_dir(), "another name is left");
    let out = b.cli(&["rmi", "registry.example:5000/web:2"]);
    assert_eq!(stdout(&out), format!("Untagged: registry.example:5000/web:2\nRemoved: {img}\n"));
    assert!(!b.path(&format!("images/{img}")).exists(), "the last name took the image");
    let out = b.cli(&["rmi", "web:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("No image named 'web:1' exists"));
    // By an id prefix: the image, whatever its names.
    let img = b.import("");
    assert!(b.cli(&["tag", &img, "a"]).status.success());
    assert!(b.cli(&["tag", &img, "b"]).status.success());
    assert_eq!(stdout(&b.cli(&["rmi", &img[..12]])), format!("Removed: {img}\n"));
    assert_eq!(listing(&b, "images/by-name"), Vec::<String>::new());
}

#[test]
fn the_cli_ends_quietly_when_its_reader_goes() {
    let b = Bocker::start("names-pipe");
    let img = b.import("");
    for n in 0..3 {
        assert!(b.cli(&["tag", &img, &format!("n{n}")]).status.success());
    }
    // Enough output that the writes must meet the closed pipe.
    let c = b.run_to_exit(&format!("{img} seq 1 200000"));
    let bin = common::BIN;
    for line in [
        format!("{bin} images | head -1"),
        format!("{bin} images | grep -q IMAGE_ID"),
        format!("{bin} logs {c} | head -1"),
        format!("{bin} logs {c} | grep -q 17"),
        format!("{bin} run {img} seq 1 200000 | head -2"),
        format!("{bin} ps | head -0"),
    ] {
        let out = Command::new("bash")
            .args(["-c", &format!("set -o pipefail; {line}")])
            .env("BOCKER_MOUNT", &b.mount)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{line}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{line}");
    }
    let out = Command::new("bash")
        .args(["-c", &format!("set -o pipefail; {bin} images | head -1")])
        .env("BOCKER_MOUNT", &b.mount)
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "IMAGE_ID\t\tSOURCE\n");
    // Every error exits 1 with a message, a bad command line too.
    for args in [&["rmi"][..], &["no-such-verb"], &["tag", "x"], &["images", "--bogus"]] {
        let out = b.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    assert_eq!(b.cli(&["--help"]).status.code(), Some(0));
}
