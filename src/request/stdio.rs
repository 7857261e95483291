//! The requests of interactive use: the options a line written to `exec` may start with (`-i`, `-t`, as
//! `docker exec` takes them), and the bytes written to a container's `stdin`.

use super::{split_argv, ParseError};

/// How an exec's stdio is made: `-t` a terminal, `-i` stdin open to writes (see docs/attach.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub tty: bool,
    pub interactive: bool,
}

/// A line written to `exec`: Docker's `-i`, `-t`, `-it` (`-ti`), `--interactive`, `--tty` before the
/// command's words, then the command (`--` ends the options, for a command that starts with `-`).
pub fn parse_exec(text: &str) -> Result<(ExecOptions, Vec<String>), ParseError> {
    let mut words = split_argv(text)?.ok_or(ParseError::Empty)?;
    let mut options = ExecOptions::default();
    let mut taken = 0;
    for word in &words {
        match word.as_str() {
            "--" => {
                taken += 1;
                break;
            }
            "--interactive" => options.interactive = true,
            "--tty" => options.tty = true,
            w if w.len() > 1 && w.starts_with('-') && !w.starts_with("--") => {
                for flag in w[1..].chars() {
                    match flag {
                        'i' => options.interactive = true,
                        't' => options.tty = true,
                        _ => return Err(ParseError::BadExecOption(w.chars().take(40).collect())),
                    }
                }
            }
            w if w.starts_with("--") => return Err(ParseError::BadExecOption(w.chars().take(40).collect())),
            _ => break,
        }
        taken += 1;
    }
    words.drain(..taken);
    if words.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok((options, words))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(ExecOptions, Vec<String>), ParseError> {
        parse_exec(text)
    }

    #[test]
    fn options_come_before_the_command() {
        let it = ExecOptions { tty: true, interactive: true };
        assert_eq!(parse("-it sh").unwrap(), (it, vec!["sh".to_string()]));
        assert_eq!(parse("-t -i sh -i").unwrap(), (it, vec!["sh".into(), "-i".into()]));
        assert_eq!(parse("--tty --interactive sh").unwrap(), (it, vec!["sh".into()]));
        let none = ExecOptions::default();
        assert_eq!(parse("ls -l").unwrap(), (none, vec!["ls".into(), "-l".into()]));
        assert_eq!(parse("-- -weird").unwrap(), (none, vec!["-weird".into()]));
        assert_eq!(parse(r#"["-i", "sh"]"#).unwrap().0, ExecOptions { tty: false, interactive: true });
    }

    #[test]
    fn bad_options_and_no_command_are_refused() {
        for text in ["-x sh", "--detach sh", "-it", "-i --", ""] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }
}
