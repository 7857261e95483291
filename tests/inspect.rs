//! `inspect.json` of a container and of an image, and `bocker inspect`: Docker's fields, with the values a
//! start runs, through a container's life (created, running, exited); valid JSON to `python3 -m json.tool`;
//! read-only; a stat's size the content's also after a change.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::Bocker;
use serde_json::{json, Value};

/// The file parsed by `python3 -m json.tool` (it must be JSON to it too) and by serde_json; its stat's size
/// is its length.
fn doc(b: &Bocker, rel: &str) -> Value {
    let path = b.path(rel);
    let out = Command::new("python3").arg("-m").arg("json.tool").arg(&path).output().expect("python3");
    assert!(out.status.success(), "json.tool {rel}: {}", String::from_utf8_lossy(&out.stderr));
    let text = fs::read(&path).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().size(), text.len() as u64, "{rel}: stat's size is the content's");
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

const ZERO: &str = "0001-01-01T00:00:00Z";

/// An image with every change line `images/import` takes.
fn image_with_changes(b: &Bocker) -> String {
    b.import(
        "ENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"echo from the image\"]\nENV MODE=prod\nWORKDIR /srv\nUSER 1000\n\
         STOPSIGNAL SIGQUIT\nEXPOSE 6379\nLABEL org.test.kind=redis\nVOLUME /data\n",
    )
}

#[test]
fn a_containers_document_through_its_life() {
    let b = Bocker::start("inspect-ctr");
    let img = image_with_changes(&b);
    let host_dir = b.dir.join("shared");
    fs::create_dir_all(&host_dir).unwrap();
    fs::create_dir(b.path("volumes/www")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

    fs::create_dir(b.path("containers/web")).unwrap();
    let files = [
        ("image", img.clone()),
        ("cmd", "'echo hi; sleep 1; exit 3'".to_string()),
        ("env", "A=1\nB=two words\n".to_string()),
        ("user", "1234:50".to_string()),
        ("workdir", "/work".to_string()),
        ("hostname", "insp-host".to_string()),
        ("labels", "a=1\nb=two\n".to_string()),
        ("memory.max", "64M".to_string()),
        ("cpu.max", "50000 100000".to_string()),
        ("cpu.weight", "100".to_string()),
        ("pids.max", "100".to_string()),
        ("ports", format!("127.0.0.1:{port}:80\n")),
        ("volumes", format!("{}:/host:ro\nwww:/www\n", host_dir.display())),
        ("cap_add", "NET_ADMIN".to_string()),
        ("auto_remove", "false".to_string()),
    ];
    for (file, value) in &files {
        b.write(&format!("containers/web/{file}"), value).unwrap_or_else(|e| panic!("{file}: {e}"));
    }

    let d = doc(&b, "containers/web/inspect.json");
    assert_eq!(d["Id"], "web");
    assert_eq!(d["Name"], "/web");
    assert!(d["Created"].as_str().unwrap().ends_with('Z'), "{}", d["Created"]);
    assert_eq!(d["Image"], img.as_str());
    // What a start runs: the image's entrypoint, then the container's arguments.
    assert_eq!(d["Path"], "/bin/sh");
    assert_eq!(d["Args"], json!(["-c", "echo hi; sleep 1; exit 3"]));
    let state = &d["State"];
    assert_eq!(state["Status"], "created");
    for (field, want) in
        [("Running", false), ("Paused", false), ("Restarting", false), ("OOMKilled", false), ("Dead", false)]
    {
        assert_eq!(state[field], want, "State.{field}");
    }
    assert_eq!((state["Pid"].as_i64(), state["ExitCode"].as_i64()), (Some(0), Some(0)));
    assert_eq!((state["StartedAt"].as_str(), state["FinishedAt"].as_str()), (Some(ZERO), Some(ZERO)));
    assert_eq!(state["Error"], "");

    let config = &d["Config"];
    assert_eq!(config["Hostname"], "insp-host");
    assert_eq!(config["User"], "1234:50");
    assert_eq!(config["WorkingDir"], "/work");
    assert_eq!(config["Image"], img.as_str());
    assert_eq!(config["Entrypoint"], json!(["/bin/sh", "-c"]));
    assert_eq!(config["Cmd"], json!(["echo hi; sleep 1; exit 3"]));
    let env: Vec<&str> = config["Env"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for want in ["MODE=prod", "A=1", "B=two words"] {
        assert!(env.contains(&want), "Env {env:?} lacks {want}");
    }
    assert_eq!(config["Labels"], json!({"org.test.kind": "redis", "a": "1", "b": "two"}));
    assert_eq!(config["StopSignal"], "SIGQUIT");
    assert_eq!(config["ExposedPorts"], json!({"6379/tcp": {}, "80/tcp": {}}), "the image's and the forwarded");
    assert_eq!(config["Volumes"], json!({"/data": {}}));
    assert!(config.get("Healthcheck").is_none(), "the image has none");

    let host = &d["HostConfig"];
    assert_eq!(host["Memory"], 64 << 20);
    assert_eq!(host["CpuQuota"], 50000);
    assert_eq!(host["CpuPeriod"], 100000);
    assert_eq!(host["NanoCpus"], 500_000_000, "--cpus 0.5");
    assert_eq!(host["CpuShares"], 1024, "cpu.weight 100 is 1024 shares");
    assert_eq!(host["PidsLimit"], 100);
    assert_eq!(host["Privileged"], false);
    assert_eq!(host["CapAdd"], json!(["CAP_NET_ADMIN"]));
    assert_eq!(host["Binds"], json!([format!("{}:/host:ro", host_dir.display()), "www:/www"]));
    assert_eq!(host["NetworkMode"], "bridge");
    assert_eq!(host["PortBindings"], json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": port.to_string()}]}));
    assert_eq!(host["AutoRemove"], false);

    let mounts = d["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 2);
    assert_eq!(mounts[0]["Type"], "bind");
    assert_eq!(mounts[0]["Source"], host_dir.display().to_string());
    assert_eq!(mounts[0]["Destination"], "/host");
    assert_eq!(mounts[0]["RW"], false);
    assert_eq!(mounts[1]["Type"], "volume");
    assert_eq!(mounts[1]["Name"], "www");
    assert_eq!(mounts[1]["Destination"], "/www");
    assert_eq!(mounts[1]["RW"], true);
    let data = fs::read_link(b.path("volumes/www/data")).unwrap();
    assert_eq!(Path::new(mounts[1]["Source"].as_str().unwrap()), data, "the volume's content, as its data link");
    assert_eq!(d["NetworkSettings"]["IPAddress"], "", "no address before the first start");

    // Running: its pid, its start, its address and the bridge's.
    b.write("containers/web/ctl", "start").unwrap();
    let d = doc(&b, "containers/web/inspect.json");
    let state = &d["State"];
    if b.status("web") == "running" {
        assert_eq!(state["Status"], "running");
        assert_eq!(state["Running"], true);
        assert_eq!(state["Pid"].as_i64().unwrap().to_string(), b.read("containers/web/pid").trim_end());
        assert_eq!(state["FinishedAt"], ZERO);
    }
    assert_eq!(state["StartedAt"], b.read("containers/web/started_at").trim_end());
    let net = &d["NetworkSettings"];
    let ip = b.read("containers/web/ip");
    assert_eq!(net["IPAddress"], ip.trim_end());
    assert!(ip.starts_with(&format!("{}.", b.subnet_prefix)), "{ip}");
    assert_eq!(net["Gateway"], format!("{}.1", b.subnet_prefix));
    assert_eq!(net["IPPrefixLen"], 24);
    assert_eq!(net["Networks"]["bridge"]["IPAddress"], ip.trim_end());
    assert_eq!(net["Ports"]["80/tcp"], json!([{"HostIp": "127.0.0.1", "HostPort": port.to_string()}]));
    assert_eq!(net["Ports"]["6379/tcp"], Value::Null, "exposed, not published");

    // Exited: its code and end, no pid.
    b.wait_status("web", "exited");
    let d = doc(&b, "containers/web/inspect.json");
    let state = &d["State"];
    assert_eq!(state["Status"], "exited");
    assert_eq!(state["Running"], false);
    assert_eq!(state["ExitCode"], 3);
    assert_eq!(state["Pid"], 0);
    assert_eq!(state["FinishedAt"], b.read("containers/web/finished_at").trim_end());
    assert_ne!(state["FinishedAt"], ZERO);

    // A change shows at once, size and all; the file takes no writes.
    let before = fs::metadata(b.path("containers/web/inspect.json")).unwrap().size();
    b.write("containers/web/labels", "a=1\nb=two\nlonger=a label that makes the document grow\n").unwrap();
    let d = doc(&b, "containers/web/inspect.json");
    assert_eq!(d["Config"]["Labels"]["longer"], "a label that makes the document grow");
    assert!(fs::metadata(b.path("containers/web/inspect.json")).unwrap().size() > before);
    let e = b.write("containers/web/inspect.json", "{}").unwrap_err();
    assert_eq!(Bocker::errno(&e), libc::EACCES);
}

#[test]
fn an_images_document_and_a_bare_container() {
    let b = Bocker::start("inspect-img");
    let img = image_with_changes(&b);
    let d = doc(&b, &format!("images/{img}/inspect.json"));
    assert_eq!(d["Id"], img.as_str());
    assert_eq!(d["RepoTags"], json!([]), "an import has no name");
    assert_eq!(d["RepoDigests"], json!([]));
    assert_eq!(d["Created"], b.read(&format!("images/{img}/created")).trim_end());
    assert_eq!(d["Size"].as_u64().unwrap().to_string(), b.read(&format!("images/{img}/size")).trim_end());
    assert_eq!(d["Os"], "linux");
    assert!(!d["Architecture"].as_str().unwrap().is_empty());
    assert_eq!(d["RootFS"]["Type"], "layers");
    let config = &d["Config"];
    assert_eq!(config["Entrypoint"], json!(["/bin/sh", "-c"]));
    assert_eq!(config["Cmd"], json!(["echo from the image"]));
    assert!(config["Env"].as_array().unwrap().contains(&json!("MODE=prod")));
    assert_eq!(config["WorkingDir"], "/srv");
    assert_eq!(config["User"], "1000");
    assert_eq!(config["StopSignal"], "SIGQUIT");
    assert_eq!(config["ExposedPorts"], json!({"6379/tcp": {}}));
    assert_eq!(config["Labels"], json!({"org.test.kind": "redis"}));
    assert_eq!(config["Volumes"], json!({"/data": {}}));

    // A name given since shows at once, size and all (the file's attributes are cached until a notice).
    let rel = format!("images/{img}/inspect.json");
    let _ = fs::metadata(b.path(&rel)).unwrap();
    b.write("images/tag", &format!("{img} team/app:v1")).unwrap();
    let d = doc(&b, &rel);
    assert_eq!(d["RepoTags"], json!(["team/app:v1"]));
    assert_eq!(Bocker::errno(&b.write(&rel, "{}").unwrap_err()), libc::EACCES);

    // A container with nothing set: Docker's empty values, and the image's config as its own.
    fs::create_dir(b.path("containers/bare")).unwrap();
    let d = doc(&b, "containers/bare/inspect.json");
    assert_eq!(d["Image"], "");
    assert_eq!((d["Path"].as_str(), d["Args"].clone()), (Some(""), json!([])));
    assert_eq!(d["Config"]["Cmd"], Value::Null);
    assert_eq!(d["Config"]["Hostname"], "bare");
    assert_eq!(d["Config"]["WorkingDir"], "/");
    assert_eq!(d["Config"]["StopSignal"], "SIGTERM");
    assert_eq!(d["Mounts"], json!([]));
    assert_eq!(d["HostConfig"]["Binds"], Value::Null);
    b.write("containers/bare/image", &img).unwrap();
    let d = doc(&b, "containers/bare/inspect.json");
    assert_eq!(d["Path"], "/bin/sh");
    assert_eq!(d["Args"], json!(["-c", "echo from the image"]));
    assert_eq!(d["Config"]["User"], "1000");
    assert_eq!(d["Config"]["WorkingDir"], "/srv");
}

#[test]
fn bocker_inspect_prints_an_array_and_fails_on_an_unknown_name() {
    let b = Bocker::start("inspect-cli");
    let img = image_with_changes(&b);
    b.write("images/tag", &format!("{img} team/app:v1")).unwrap();
    fs::create_dir(b.path("containers/c1")).unwrap();
    b.write("containers/c1/image", &img).unwrap();

    let out = b.cli(&["inspect", "c1", "team/app:v1", &img[..7]]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = docs.as_array().unwrap().iter().map(|d| d["Id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["c1", img.as_str(), img.as_str()], "a container by name, images by name and id prefix");
    assert_eq!(docs[0]["Name"], "/c1");
    assert_eq!(docs[1]["RepoTags"], json!(["team/app:v1"]));

    // An unknown one: the others still printed, a message, exit 1 (as docker inspect).
    let out = b.cli(&["inspect", "nope", "c1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such object: nope"), "{out:?}");
    let docs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(docs.as_array().unwrap().len(), 1);
    let out = b.cli(&["inspect", "../images"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), json!([]));
    // Nothing to inspect is a bad command line.
    assert_eq!(b.cli(&["inspect"]).status.code(), Some(1));
}
