//! The parsers of every write, against good and hostile bytes.
use super::*;
use nix::sys::signal::Signal;
use std::time::Duration;

#[test]
fn quotes_are_bounded_at_a_character_boundary() {
    assert_eq!(quote("short"), "short");
    let long = "é".repeat(150); // 300 bytes
    let q = quote(&long);
    assert!(q.starts_with(&"é".repeat(100)) && q.ends_with("...[100 more bytes]"), "{q}");
    assert_eq!(prefix("aé", 2), "a");
    assert_eq!(prefix("abc", 10), "abc");
    let e = parse_ctl(&format!("{} x", "v".repeat(60_000))).unwrap_err().to_string();
    assert!(e.len() < 300, "{e}");
}

#[test]
fn ctl_verbs() {
    assert_eq!(parse_ctl("start\n"), Ok(Ctl::Start));
    assert_eq!(parse_ctl("stop"), Ok(Ctl::Stop(DEFAULT_STOP_TIMEOUT)));
    assert_eq!(parse_ctl("stop 3"), Ok(Ctl::Stop(Duration::from_secs(3))));
    assert_eq!(parse_ctl("kill"), Ok(Ctl::Kill(Signal::SIGKILL)));
    assert_eq!(parse_ctl("kill TERM"), Ok(Ctl::Kill(Signal::SIGTERM)));
    assert_eq!(parse_ctl("kill sigusr1"), Ok(Ctl::Kill(Signal::SIGUSR1)));
    assert_eq!(parse_ctl("kill 15"), Ok(Ctl::Kill(Signal::SIGTERM)));
    assert_eq!(parse_ctl("bogus"), Err(ParseError::UnknownVerb("bogus".into())));
    assert_eq!(parse_ctl(""), Err(ParseError::Empty));
    assert!(matches!(parse_ctl("stop soon"), Err(ParseError::BadTimeout(_))));
    assert!(matches!(parse_ctl("kill NOPE"), Err(ParseError::BadSignal(_))));
    assert!(matches!(parse_ctl("kill 99"), Err(ParseError::BadSignal(_))));
    assert!(matches!(parse_ctl("stop 1 2"), Err(ParseError::TooManyArgs(_))));
    assert!(matches!(parse_ctl("start now"), Err(ParseError::TooManyArgs(_))));
    assert_eq!(parse_ctl("restart"), Ok(Ctl::Restart(DEFAULT_STOP_TIMEOUT)));
    assert_eq!(parse_ctl("restart 0\n"), Ok(Ctl::Restart(Duration::ZERO)));
    assert!(matches!(parse_ctl("restart soon"), Err(ParseError::BadTimeout(_))));
    assert!(matches!(parse_ctl("restart 99999999999"), Err(ParseError::TimeoutRange(_))));
    assert_eq!(parse_ctl("pause"), Ok(Ctl::Pause));
    assert_eq!(parse_ctl("unpause\n"), Ok(Ctl::Unpause));
    assert_eq!(parse_ctl("remove"), Ok(Ctl::Remove));
    for verb in ["pause", "unpause", "remove", "close-stdin"] {
        assert_eq!(parse_ctl(&format!("{verb} now")), Err(ParseError::TooManyArgs(verb.into())), "{verb}");
    }
    let unknown = parse_ctl("frobnicate").unwrap_err().to_string();
    assert!(unknown.contains("restart [SECONDS]") && unknown.contains("unpause"), "{unknown}");
}

#[test]
fn argv_forms() {
    assert_eq!(split_argv("sh -c 'echo a   b'\n").unwrap().unwrap(), vec!["sh", "-c", "echo a   b"]);
    assert_eq!(split_argv(r#"["echo", "a  b", "c"]"#).unwrap().unwrap(), vec!["echo", "a  b", "c"]);
    assert_eq!(split_argv("  \n").unwrap(), None);
    assert!(split_argv("echo 'unterminated").is_err());
    assert!(split_argv("[1, 2]").is_err());
    assert!(split_argv("[]").is_err());
}

#[test]
fn names() {
    assert!(validate_name("web-1.a_b").is_ok());
    assert!(validate_name(&"a".repeat(64)).is_ok());
    assert!(validate_name(&"a".repeat(65)).is_err());
    assert!(validate_name("-x").is_err());
    assert!(validate_name("a/b").is_err());
    assert!(validate_name("a b").is_err());
    assert!(validate_name("").is_err());
    assert!(validate_name("é").is_err());
}

#[test]
fn env_lines() {
    assert_eq!(parse_env("A=1\n\n# c\nB=x=y\n").unwrap(), vec!["A=1", "B=x=y"]);
    assert!(parse_env("NOEQUALS").is_err());
    assert!(parse_env("1A=2").is_err());
    assert_eq!(
        merge_env(&["PATH=/bin".into(), "A=1".into()], &["A=2".into(), "B=3".into()]),
        vec!["PATH=/bin", "A=2", "B=3"]
    );
    // A key twice in base: the first takes the override; an override twice: the last wins, in one place.
    assert_eq!(
        merge_env(&["A=1".into(), "A=9".into()], &["A=2".into(), "B=3".into(), "B=4".into()]),
        vec!["A=2", "A=9", "B=4"]
    );
    let many: Vec<String> = (0..5000).map(|i| format!("K{i}=v")).collect();
    assert_eq!(merge_env(&many, &many), many);
}

impl PartialEq for Request {
    fn eq(&self, other: &Request) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

#[test]
fn writes_become_requests() {
    assert_eq!(
        Request::from_write(WriteTarget::Run, b"img_1 echo 'a b'\n").unwrap(),
        Request::Run { image: "img_1".into(), argv: Some(vec!["echo".into(), "a b".into()]), auto_remove: false }
    );
    assert_eq!(
        Request::from_write(WriteTarget::Run, b"img_1").unwrap(),
        Request::Run { image: "img_1".into(), argv: None, auto_remove: false }
    );
    assert_eq!(Request::from_write(WriteTarget::Run, b""), Err(ParseError::Empty));
    assert_eq!(
        Request::from_write(WriteTarget::Import, b"/srv/root\n").unwrap(),
        Request::Import { dir: "/srv/root".into(), changes: vec![], caller: Caller::nobody() }
    );
    assert_eq!(
        Request::from_write(
            WriteTarget::Import,
            b"/r\nWORKDIR /srv\nENV A=b c\nCMD [\"ls\", \"-l\"]\nENTRYPOINT env\n"
        )
        .unwrap(),
        Request::Import {
            dir: "/r".into(),
            changes: vec![
                ConfigChange::WorkingDir("/srv".into()),
                ConfigChange::Env("A=b c".into()),
                ConfigChange::Cmd(vec!["ls".into(), "-l".into()]),
                ConfigChange::Entrypoint(vec!["/bin/sh".into(), "-c".into(), "env".into()]),
            ],
            caller: Caller::nobody(),
        }
    );
    for bad in ["/r\nWORKDIR rel", "/r\nFROM x", "/r\nENV novalue", "/r\nCMD", "/r\nCMD [1]"] {
        assert!(Request::from_write(WriteTarget::Import, bad.as_bytes()).is_err(), "{bad}");
    }
    assert!(matches!(Request::from_write(WriteTarget::Import, b"rel/dir"), Err(ParseError::NotAbsolute(_))));
    assert_eq!(Request::from_write(WriteTarget::Ctl("c".into()), b"st\0art"), Err(ParseError::Nul));
    assert_eq!(Request::from_write(WriteTarget::Ctl("c".into()), &[0xff, 0xfe]), Err(ParseError::NotText));
    assert!(matches!(Request::from_write(WriteTarget::Image("c".into()), b"a b"), Err(ParseError::NotOneWord(_))));
    assert!(Request::create_container("../x").is_err());
}

use crate::test_rng::Rng;

/// Random bytes, and random mixes of the characters the parsers care about, to every control file:
/// a request or a ParseError each time, never a panic. (The fuzz targets in fuzz/ go further.)
#[test]
fn random_writes_never_panic() {
    let alphabet: &[u8] = b" \t\n:/.-_=[]\"'\\0123456789abcxyzKMGmaxtcpudprofalse\x00\xff";
    let targets = all_write_targets("c");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..40_000 {
        let len = (rng.next() % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let r = rng.next();
                if i % 2 == 0 {
                    r as u8
                } else {
                    alphabet[(r % alphabet.len() as u64) as usize]
                }
            })
            .collect();
        let target = targets[(rng.next() % targets.len() as u64) as usize].clone();
        let _ = Request::from_write(target, &bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = Request::create_container(&text);
        let _ = parse_volumes(&text);
    }
}

#[test]
fn volume_lines() {
    let v = parse_volumes("/srv/data:/data\nnamed:/var/lib/x/:ro\n\n/etc/hosts:/h:rw").unwrap();
    let shown: Vec<String> = v.iter().map(|v| v.to_string()).collect();
    assert_eq!(shown, ["/srv/data:/data", "named:/var/lib/x:ro", "/etc/hosts:/h"]);
    assert_eq!(v[1].source, VolumeSource::Named("named".into()));
    assert!(parse_volumes(" \n").unwrap().is_empty());
    for bad in ["x", "/a:data", "/a:/", "/a:/b:rx", "a b:/c", "/a:/../etc", "/a:/b/./c", "../x:/y", "/a:/b:ro:x"] {
        assert!(matches!(parse_volumes(bad), Err(ParseError::BadVolume(_))), "{bad}");
    }
    assert_eq!(parse_volumes("a:/x\nb:/x/"), Err(ParseError::TargetTwice("/x".into())));
}
