//! The line written to `images/build`: `CONTEXT [-f FILE] [-t NAME]... [--build-arg K=V]... [--target STAGE]
//! [--no-cache] [--network none|bridge]`, parsed into a [`BuildSpec`].

use std::path::PathBuf;

use super::{quote, split_argv, ParseError};
use crate::network::NetworkMode;
use crate::registry::normalize;

/// A build asked for: what to build from and what to call the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// The context directory, absolute.
    pub context: PathBuf,
    /// `-f`: the Dockerfile, absolute or relative to the context; `None` is `Dockerfile` (else
    /// `Containerfile`) in the context.
    pub file: Option<String>,
    /// `-t`: names the image gets, normalised (`app` is `app:latest`).
    pub tags: Vec<String>,
    /// `--build-arg K=V`, in order (a later one for the same key wins).
    pub build_args: Vec<(String, String)>,
    /// `--target`: the stage to build, by name; the last stage if none.
    pub target: Option<String>,
    pub no_cache: bool,
    /// The network of `RUN` steps: the bridge unless `--network none`.
    pub network: NetworkMode,
}

/// How a build line is written, for messages.
pub const USAGE: &str =
    "CONTEXT [-f FILE] [-t NAME]... [--build-arg K=V]... [--target STAGE] [--no-cache] [--network none|bridge]";

/// Parses the line written to `images/build`.
pub fn parse_build(text: &str) -> Result<BuildSpec, ParseError> {
    let words = split_argv(text)?.ok_or(ParseError::Empty)?;
    let bad = |why: String| ParseError::BadBuild(why);
    let mut spec = BuildSpec {
        context: PathBuf::new(),
        file: None,
        tags: Vec::new(),
        build_args: Vec::new(),
        target: None,
        no_cache: false,
        network: NetworkMode::Bridge,
    };
    let mut context = None;
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        // `--flag=value` and `--flag value` alike.
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f.to_string(), Some(v.to_string())),
            _ => (word.clone(), None),
        };
        let mut value =
            |name: &str| inline.clone().or_else(|| words.next()).ok_or_else(|| bad(format!("{name} needs a value")));
        match flag.as_str() {
            "-f" | "--file" => spec.file = Some(nonempty(value("-f")?, "-f")?),
            "-t" | "--tag" => {
                let name = value("-t")?;
                let normal = normalize(&name).map_err(|e| bad(format!("bad name '{}': {e}", quote(&name))))?;
                if !spec.tags.contains(&normal) {
                    spec.tags.push(normal);
                }
            }
            "--build-arg" => {
                let kv = value("--build-arg")?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| bad(format!("bad --build-arg '{}': use KEY=VALUE", quote(&kv))))?;
                if !valid_arg_name(k) {
                    return Err(bad(format!("bad --build-arg name '{}'", quote(k))));
                }
                spec.build_args.push((k.to_string(), v.to_string()));
            }
            "--target" => spec.target = Some(nonempty(value("--target")?, "--target")?.to_ascii_lowercase()),
            "--no-cache" => match inline.as_deref() {
                None | Some("true") => spec.no_cache = true,
                Some("false") => spec.no_cache = false,
                Some(other) => return Err(ParseError::BadBool(other.to_string())),
            },
            "--network" => {
                spec.network = match value("--network")?.as_str() {
                    "none" => NetworkMode::None,
                    "bridge" | "default" => NetworkMode::Bridge,
                    other => return Err(bad(format!("bad --network '{}': use none or bridge", quote(other)))),
                }
            }
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(bad(format!("unknown option '{}' (use {USAGE})", quote(f))));
            }
            _ => {
                if context.is_some() {
                    return Err(bad(format!("two contexts: '{}' too (use {USAGE})", quote(&word))));
                }
                if !word.starts_with('/') {
                    return Err(ParseError::NotAbsolute(word));
                }
                context = Some(PathBuf::from(word));
            }
        }
    }
    spec.context = context.ok_or_else(|| bad(format!("no context directory (use {USAGE})")))?;
    Ok(spec)
}

fn nonempty(value: String, flag: &str) -> Result<String, ParseError> {
    if value.is_empty() {
        return Err(ParseError::BadBuild(format!("{flag} needs a value")));
    }
    Ok(value)
}

/// A build argument's name: what a shell variable may be called.
pub fn valid_arg_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_line_takes_dockers_flags() {
        let spec = parse_build(
            "/src/app -f build/Dockerfile -t app -t reg.io/x/y:2 --build-arg V=1 --build-arg=W='a b' \
             --target=Final --no-cache --network none",
        )
        .unwrap();
        assert_eq!(spec.context, PathBuf::from("/src/app"));
        assert_eq!(spec.file.as_deref(), Some("build/Dockerfile"));
        assert_eq!(spec.tags, ["docker.io/library/app:latest", "reg.io/x/y:2"]);
        assert_eq!(spec.build_args, [("V".to_string(), "1".to_string()), ("W".to_string(), "a b".to_string())]);
        assert_eq!(spec.target.as_deref(), Some("final"));
        assert!(spec.no_cache);
        assert_eq!(spec.network, NetworkMode::None);
        let plain = parse_build("/ctx\n").unwrap();
        assert_eq!((plain.network, plain.no_cache, plain.file), (NetworkMode::Bridge, false, None));
    }

    #[test]
    fn a_bad_build_line_says_what_is_wrong() {
        for (line, says) in [
            ("", "empty"),
            ("rel/dir", "absolute"),
            ("/a /b", "two contexts"),
            ("-t app", "no context"),
            ("/a -t", "needs a value"),
            ("/a --squash", "unknown option"),
            ("/a --build-arg NOVALUE", "KEY=VALUE"),
            ("/a --build-arg 1X=2", "name"),
            ("/a --network host", "none or bridge"),
            ("/a -t UPPER:case", "bad name"),
            ("/a 'unterminated", "command line"),
        ] {
            let e = parse_build(line).unwrap_err();
            assert!(e.to_string().contains(says), "{line}: {e}");
        }
    }
}
