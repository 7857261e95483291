//! The values of config steps as Docker writes them: a command's argv from its shell or exec form, an
//! exposed port's `PORT/PROTO`, a `HEALTHCHECK`'s object, a `WORKDIR` joined onto the one before.

use serde_json::{json, Value};

use super::config::BuildConfig;
use super::dockerfile::{CommandForm, Healthcheck};

/// The argv of a `CMD` or `ENTRYPOINT`: the exec form as written, the shell form through the SHELL.
pub fn command(form: &CommandForm, config: &BuildConfig) -> Vec<String> {
    match form {
        CommandForm::Exec(argv) => argv.clone(),
        CommandForm::Shell(text) => {
            let mut argv = config.shell();
            argv.push(text.clone());
            argv
        }
    }
}

/// `80` is `80/tcp`; `53/udp` stays; a range `8000-8002/tcp` stays a range as Docker keeps it.
pub fn exposed_port(word: &str) -> Result<String, String> {
    let (port, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto '{proto}' in EXPOSE {word}"));
    }
    let number = |p: &str| p.parse::<u16>().ok().filter(|&n| n > 0);
    let valid = match port.split_once('-') {
        Some((a, b)) => matches!((number(a), number(b)), (Some(a), Some(b)) if a <= b),
        None => number(port).is_some(),
    };
    if !valid {
        return Err(format!("invalid port '{port}' in EXPOSE {word}"));
    }
    Ok(format!("{port}/{proto}"))
}

/// Docker's `Healthcheck` object; `NONE` is `{"Test": ["NONE"]}`.
pub fn healthcheck(check: Option<&Healthcheck>) -> Value {
    let Some(check) = check else { return json!({ "Test": ["NONE"] }) };
    let mut v = json!({ "Test": check.test });
    for (key, value) in [
        ("Interval", check.interval),
        ("Timeout", check.timeout),
        ("StartPeriod", check.start_period),
        ("StartInterval", check.start_interval),
    ] {
        if let Some(ns) = value {
            v[key] = json!(ns);
        }
    }
    if let Some(retries) = check.retries {
        v["Retries"] = json!(retries);
    }
    v
}

/// `WORKDIR path` after the working directory `current`: an absolute path as it is, a relative one
/// joined onto it; `.` and `..` resolved, so the result is clean and absolute.
pub fn join_dir(current: &str, path: &str) -> String {
    let joined = if path.starts_with('/') { path.to_string() } else { format!("{}/{path}", current) };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdirs_join_as_docker_joins_them() {
        assert_eq!(join_dir("", "/app"), "/app");
        assert_eq!(join_dir("/app", "src"), "/app/src");
        assert_eq!(join_dir("/app/src", "../lib/./x/"), "/app/lib/x");
        assert_eq!(join_dir("/", "../../.."), "/");
        assert_eq!(join_dir("", "rel"), "/rel");
    }

    #[test]
    fn ports_get_their_protocol() {
        assert_eq!(exposed_port("80").unwrap(), "80/tcp");
        assert_eq!(exposed_port("53/UDP").unwrap(), "53/udp");
        assert_eq!(exposed_port("8000-8002").unwrap(), "8000-8002/tcp");
        for bad in ["", "x", "0", "70000", "80/icmp", "9-3"] {
            assert!(exposed_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commands_take_the_shell_for_the_shell_form() {
        let mut c = BuildConfig::scratch();
        assert_eq!(command(&CommandForm::Shell("echo hi".into()), &c), ["/bin/sh", "-c", "echo hi"]);
        c.shell = Some(vec!["/bin/bash".into(), "-ec".into()]);
        assert_eq!(command(&CommandForm::Shell("x".into()), &c), ["/bin/bash", "-ec", "x"]);
        assert_eq!(command(&CommandForm::Exec(vec!["a".into()]), &c), ["a"]);
    }
}
