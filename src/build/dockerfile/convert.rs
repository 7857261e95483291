//! From parse-dockerfile's borrowed instructions to the owned [`Instruction`]s, checking flags and
//! arguments as BuildKit's instruction parser does (`frontend/dockerfile/instructions/parse.go`).

use super::duration::go_duration;
use super::lines::{self, LineIndex, Logical};
use super::{
    ArgDecl, CommandForm, CopySource, CopySpec, DockerfileError, Healthcheck, Heredoc, Instruction, RunSpec, Stage,
    Step,
};
use parse_dockerfile as pd;

/// The original text and what was learnt of it, for positions, display text and here-documents.
pub(super) struct Ctx<'a> {
    text: &'a str,
    escape: char,
    index: LineIndex,
    logicals: &'a [Logical],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Text,
    List,
}

/// The flags an instruction was given, checked.
struct Flags {
    /// Name, value (`true`/`false` for booleans) and where the flag starts.
    given: Vec<(&'static str, String, usize)>,
}

impl Flags {
    fn text(&self, name: &str) -> Option<(String, usize)> {
        self.given.iter().rev().find(|(n, _, _)| *n == name).map(|(_, value, at)| (value.clone(), *at))
    }

    /// A text flag, `--x=` counting as not given (as BuildKit's empty default).
    fn value(&self, name: &str) -> Option<String> {
        self.text(name).map(|(value, _)| value).filter(|value| !value.is_empty())
    }

    fn bool(&self, name: &str) -> bool {
        self.value(name).is_some_and(|value| value == "true")
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.given.iter().filter(|(n, _, _)| *n == name).map(|(_, value, _)| value.clone()).collect()
    }
}

/// The keyword of an instruction, for its position.
fn keyword(instruction: &pd::Instruction<'_>) -> Option<usize> {
    use pd::Instruction as I;
    Some(match instruction {
        I::Add(i) => i.add.span.start,
        I::Arg(i) => i.arg.span.start,
        I::Cmd(i) => i.cmd.span.start,
        I::Copy(i) => i.copy.span.start,
        I::Entrypoint(i) => i.entrypoint.span.start,
        I::Env(i) => i.env.span.start,
        I::Expose(i) => i.expose.span.start,
        I::From(i) => i.from.span.start,
        I::Healthcheck(i) => i.healthcheck.span.start,
        I::Label(i) => i.label.span.start,
        I::Maintainer(i) => i.maintainer.span.start,
        I::Onbuild(i) => i.onbuild.span.start,
        I::Run(i) => i.run.span.start,
        I::Shell(i) => i.shell.span.start,
        I::Stopsignal(i) => i.stopsignal.span.start,
        I::User(i) => i.user.span.start,
        I::Volume(i) => i.volume.span.start,
        I::Workdir(i) => i.workdir.span.start,
        _ => return None,
    })
}

/// The first word of `text` and what follows it, blanks trimmed.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(at) => (text.get(..at).unwrap_or(text), text.get(at..).unwrap_or_default().trim_start()),
        None => (text, ""),
    }
}

/// `text` with its first word in upper case (and the second, after ONBUILD).
fn upper_keyword(text: &str) -> String {
    let (word, rest) = split_word(text);
    let word = word.to_ascii_uppercase();
    let rest = if word == "ONBUILD" { upper_keyword(rest) } else { rest.to_string() };
    if rest.is_empty() {
        word
    } else {
        format!("{word} {rest}")
    }
}

/// Docker's stage names: `[a-z][a-z0-9-_.]*`.
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

impl<'a> Ctx<'a> {
    pub fn new(text: &'a str, escape: char, logicals: &'a [Logical]) -> Self {
        Ctx { text, escape, index: LineIndex::new(text), logicals }
    }

    /// parse-dockerfile's error, its byte column made a character column.
    pub fn foreign(&self, e: &pd::Error) -> DockerfileError {
        let message = format!("{e:#}");
        if e.line() == 0 {
            return DockerfileError { line: 1, column: 1, message };
        }
        DockerfileError { line: e.line(), column: self.index.char_column(self.text, e.line(), e.column()), message }
    }

    pub fn error_at(&self, offset: usize, message: String) -> DockerfileError {
        let (line, column) = self.index.locate(self.text, offset);
        DockerfileError { line, column, message }
    }

    fn logical(&self, start: usize) -> Option<&'a Logical> {
        let i = self.logicals.binary_search_by_key(&start, |l| l.start).ok()?;
        self.logicals.get(i)
    }

    /// The instruction starting at `start` as a reader sees it.
    fn display(&self, start: usize) -> String {
        let end = match self.logical(start) {
            Some(logical) => logical.end,
            None => lines::walk(self.text.as_bytes(), start, self.text.len(), self.escape as u8).1,
        };
        upper_keyword(&lines::display(self.text, start, end, self.escape))
    }

    fn join(&self, span: &pd::Span) -> String {
        lines::join(self.text, span.start, span.end, self.escape)
    }

    fn flags(
        &self,
        keyword: &str,
        given: &[pd::Flag<'_>],
        known: &[(&'static str, Kind)],
    ) -> Result<Flags, DockerfileError> {
        let unsupported: &[&str] = match keyword {
            "RUN" => &["mount", "security", "device"],
            "COPY" => &["parents"],
            "ADD" => &["unpack"],
            _ => &[],
        };
        let mut flags = Flags { given: Vec::new() };
        for flag in given {
            let at = flag.flag_span().start;
            let name = flag.name.value.as_ref();
            let err = |message: String| Err(self.error_at(at, message));
            if unsupported.contains(&name) {
                return err(format!("{keyword} --{name} is not supported"));
            }
            let Some(&(name, kind)) = known.iter().find(|(known, _)| *known == name) else {
                if known.is_empty() {
                    return err(format!("{keyword} takes no flags (got --{name})"));
                }
                return err(format!("unknown flag: --{name} (on {keyword})"));
            };
            if kind != Kind::List && flags.given.iter().any(|(n, _, _)| *n == name) {
                return err(format!("duplicate flag specified: --{name}"));
            }
            let value = flag.value.as_ref().map(|value| value.value.to_string());
            let value = match (kind, value) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some(value)) => match value.to_ascii_lowercase().as_str() {
                    "" => return err(format!("missing a value on flag: --{name}")),
                    "true" => "true".to_string(),
                    "false" => "false".to_string(),
                    _ => return err(format!("expecting boolean value for flag --{name}, not: {value}")),
                },
                (_, None) => return err(format!("missing a value on flag: --{name}")),
                (_, Some(value)) => value,
            };
            flags.given.push((name, value, at));
        }
        Ok(flags)
    }

    /// BuildKit reads a leading `--word` of any instruction as a flag; these take none.
    fn no_flags(&self, keyword: &str, args: &str, at: usize) -> Result<(), DockerfileError> {
        if !args.starts_with("--") {
            return Ok(());
        }
        let (flag, _) = split_word(args);
        let name = flag.split('=').next().unwrap_or(flag);
        Err(self.error_at(at, format!("{keyword} takes no flags (got {name})")))
    }

    pub fn stage(&self, from: &pd::FromInstruction<'_>) -> Result<Stage, DockerfileError> {
        let start = from.from.span.start;
        let flags = self.flags("FROM", &from.options, &[("platform", Kind::Text)])?;
        let base = from.image.value.to_string();
        if base.trim().is_empty() {
            return Err(self.error_at(start, "FROM requires an image".into()));
        }
        let name = match &from.as_ {
            Some((_, name)) => {
                let lower = name.value.to_lowercase();
                if !valid_stage_name(&lower) {
                    return Err(self.error_at(
                        name.span.start,
                        format!(
                            "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                            name.value
                        ),
                    ));
                }
                Some(lower)
            }
            None => None,
        };
        let (line, _) = self.index.locate(self.text, start);
        Ok(Stage { name, base, platform: flags.value("platform"), line, text: self.display(start), steps: Vec::new() })
    }

    pub fn args(&self, arg: &pd::ArgInstruction<'_>) -> Result<Vec<ArgDecl>, DockerfileError> {
        let at = arg.arguments.span.start;
        self.no_flags("ARG", &arg.arguments.value, at)?;
        let mut decls = Vec::new();
        for word in lines::parse_words(&arg.arguments.value, self.escape) {
            match word.split_once('=') {
                Some(("", _)) => return Err(self.error_at(at, "ARG names can not be blank".into())),
                Some((name, default)) => decls.push(ArgDecl { name: name.into(), default: Some(default.into()) }),
                None => decls.push(ArgDecl { name: word, default: None }),
            }
        }
        if decls.is_empty() {
            return Err(self.error_at(at, "ARG requires at least one argument".into()));
        }
        Ok(decls)
    }

    /// ENV and LABEL: `k=v ...`, or the legacy `k the rest of the line`.
    fn pairs(&self, keyword: &str, args: &str, at: usize) -> Result<Vec<(String, String)>, DockerfileError> {
        self.no_flags(keyword, args, at)?;
        let words = lines::parse_words(args, self.escape);
        let Some(first) = words.first() else {
            return Err(self.error_at(at, format!("{keyword} requires at least one argument")));
        };
        if !first.contains('=') {
            let args = args.trim();
            let blank = |c: char| matches!(c, ' ' | '\t' | '\r' | '\x0b' | '\x0c');
            let Some((key, value)) = args.split_once(blank) else {
                return Err(self.error_at(at, format!("{keyword} must have two arguments")));
            };
            return Ok(vec![(key.to_string(), value.trim_start_matches(blank).to_string())]);
        }
        let mut pairs = Vec::new();
        for word in &words {
            match word.split_once('=') {
                None => {
                    return Err(self.error_at(
                        at,
                        format!("Syntax error - can't find = in {word:?}. Must be of the form: name=value"),
                    ))
                }
                Some(("", _)) => return Err(self.error_at(at, format!("{keyword} names can not be blank"))),
                Some((key, value)) => pairs.push((key.to_string(), value.to_string())),
            }
        }
        Ok(pairs)
    }

    fn command(&self, keyword: &str, command: &pd::Command<'_>, at: usize) -> Result<CommandForm, DockerfileError> {
        match command {
            pd::Command::Exec(array) => {
                Ok(CommandForm::Exec(array.value.iter().map(|s| s.value.to_string()).collect()))
            }
            pd::Command::Shell(shell) => {
                let text = self.join(&shell.span);
                if keyword == "CMD" || keyword == "ENTRYPOINT" {
                    self.no_flags(keyword, &text, shell.span.start)?;
                }
                Ok(CommandForm::Shell(text))
            }
            _ => Err(self.error_at(at, format!("{keyword}: a command form this parser does not know"))),
        }
    }

    pub fn step(&self, instruction: &pd::Instruction<'_>) -> Result<Step, DockerfileError> {
        let start = keyword(instruction).unwrap_or(0);
        let heredocs = self.logical(start).map(|l| l.heredocs.as_slice()).unwrap_or_default();
        let text = self.display(start);
        let instruction = self.instruction(instruction, start, &text, heredocs)?;
        let (line, _) = self.index.locate(self.text, start);
        Ok(Step { line, text, instruction })
    }

    fn instruction(
        &self,
        instruction: &pd::Instruction<'_>,
        start: usize,
        text: &str,
        heredocs: &[Heredoc],
    ) -> Result<Instruction, DockerfileError> {
        use pd::Instruction as I;
        Ok(match instruction {
            I::Arg(arg) => Instruction::Arg(self.args(arg)?),
            I::Env(env) => Instruction::Env(self.pairs("ENV", &env.arguments.value, env.arguments.span.start)?),
            I::Label(label) => {
                Instruction::Label(self.pairs("LABEL", &label.arguments.value, label.arguments.span.start)?)
            }
            I::Workdir(i) => Instruction::Workdir(self.single("WORKDIR", &i.arguments)?),
            I::User(i) => Instruction::User(self.single("USER", &i.arguments)?),
            I::Stopsignal(i) => Instruction::Stopsignal(self.single("STOPSIGNAL", &i.arguments)?),
            I::Maintainer(i) => Instruction::Maintainer(self.single("MAINTAINER", &i.name)?),
            I::Run(run) => Instruction::Run(self.run(run, start, heredocs)?),
            I::Copy(copy) => Instruction::Copy(self.copy("COPY", &copy.options, &copy.src, &copy.dest, heredocs)?),
            I::Add(add) => Instruction::Add(self.copy("ADD", &add.options, &add.src, &add.dest, heredocs)?),
            I::Cmd(cmd) => {
                let form = self.command("CMD", &cmd.arguments, start)?;
                if matches!(&form, CommandForm::Shell(s) if s.trim().is_empty()) {
                    return Err(self.error_at(start, "CMD requires at least one argument".into()));
                }
                Instruction::Cmd(form)
            }
            I::Entrypoint(e) => Instruction::Entrypoint(self.command("ENTRYPOINT", &e.arguments, start)?),
            I::Shell(shell) => Instruction::Shell(shell.arguments.iter().map(|s| s.value.to_string()).collect()),
            I::Expose(expose) => {
                if let Some(first) = expose.arguments.first() {
                    self.no_flags("EXPOSE", &first.value, first.span.start)?;
                }
                Instruction::Expose(expose.arguments.iter().map(|s| s.value.to_string()).collect())
            }
            I::Volume(volume) => Instruction::Volume(self.volume(&volume.arguments, start)?),
            I::Healthcheck(h) => Instruction::Healthcheck(self.healthcheck(h)?),
            I::Onbuild(onbuild) => {
                let inner = onbuild.instruction.as_ref();
                let inner_start = keyword(inner).unwrap_or(start);
                let trigger = match inner {
                    I::From(_) => Some("FROM"),
                    I::Maintainer(_) => Some("MAINTAINER"),
                    I::Onbuild(_) => Some("ONBUILD"),
                    _ => None,
                };
                if let Some(trigger) = trigger {
                    return Err(self.error_at(inner_start, format!("{trigger} isn't allowed as an ONBUILD trigger")));
                }
                let inner_text = upper_keyword(split_word(text).1);
                let instruction = self.instruction(inner, inner_start, &inner_text, heredocs)?;
                let (line, _) = self.index.locate(self.text, inner_start);
                Instruction::Onbuild(Box::new(Step { line, text: inner_text, instruction }))
            }
            _ => return Err(self.error_at(start, "an instruction this parser does not know".into())),
        })
    }

    fn single(&self, keyword: &str, value: &pd::UnescapedString<'_>) -> Result<String, DockerfileError> {
        self.no_flags(keyword, &value.value, value.span.start)?;
        Ok(value.value.to_string())
    }

    fn run(
        &self,
        run: &pd::RunInstruction<'_>,
        start: usize,
        heredocs: &[Heredoc],
    ) -> Result<RunSpec, DockerfileError> {
        let flags = self.flags("RUN", &run.options, &[("network", Kind::Text)])?;
        if !run.here_docs.is_empty() && heredocs.is_empty() {
            return Err(self.error_at(start, "RUN: a here-document this parser could not read".into()));
        }
        let command = self.command("RUN", &run.arguments, start)?;
        if matches!(&command, CommandForm::Shell(s) if s.trim().is_empty()) {
            return Err(self.error_at(start, "RUN requires at least one argument".into()));
        }
        let network = match flags.text("network") {
            Some((mode, at)) if !matches!(mode.as_str(), "default" | "none" | "host") => {
                return Err(self.error_at(at, format!("invalid network mode {mode:?}")))
            }
            Some((mode, _)) => Some(mode),
            None => None,
        };
        let heredocs = if matches!(command, CommandForm::Shell(_)) { heredocs.to_vec() } else { Vec::new() };
        Ok(RunSpec { command, heredocs, network })
    }

    fn copy(
        &self,
        keyword: &str,
        options: &[pd::Flag<'_>],
        sources: &[pd::Source<'_>],
        dest: &pd::UnescapedString<'_>,
        heredocs: &[Heredoc],
    ) -> Result<CopySpec, DockerfileError> {
        let known: &[(&'static str, Kind)] = if keyword == "ADD" {
            &[
                ("chown", Kind::Text),
                ("chmod", Kind::Text),
                ("checksum", Kind::Text),
                ("link", Kind::Bool),
                ("keep-git-dir", Kind::Bool),
                ("exclude", Kind::List),
            ]
        } else {
            &[
                ("chown", Kind::Text),
                ("from", Kind::Text),
                ("chmod", Kind::Text),
                ("link", Kind::Bool),
                ("exclude", Kind::List),
            ]
        };
        let flags = self.flags(keyword, options, known)?;
        if lines::parse_marker(&self.join(&dest.span)).is_some() {
            return Err(self.error_at(dest.span.start, format!("{keyword} cannot accept a heredoc as a destination")));
        }
        let mut copied = Vec::new();
        for source in sources {
            let pd::Source::Path(path) = source else {
                return Err(
                    self.error_at(dest.span.start, format!("{keyword}: a here-document this parser could not read"))
                );
            };
            if heredocs.is_empty() {
                // No here-documents: the text is as written (and JSON sources are decoded).
                copied.push(CopySource::Path(path.value.to_string()));
                continue;
            }
            let word = self.join(&path.span);
            let found = lines::parse_marker(&word)
                .and_then(|marker| heredocs.iter().find(|h| h.name == marker.name).map(|h| (marker, h)));
            copied.push(match found {
                Some((marker, heredoc)) => CopySource::Heredoc(Heredoc {
                    name: marker.name,
                    body: heredoc.body.clone(),
                    expand: marker.expand,
                    strip_tabs: marker.strip_tabs,
                }),
                None => CopySource::Path(word),
            });
        }
        Ok(CopySpec {
            sources: copied,
            dest: dest.value.to_string(),
            from: flags.value("from"),
            chown: flags.value("chown"),
            chmod: flags.value("chmod"),
            link: flags.bool("link"),
            exclude: flags.list("exclude"),
            checksum: flags.value("checksum"),
        })
    }

    fn volume(&self, arguments: &pd::JsonOrStringArray<'_, 1>, start: usize) -> Result<Vec<String>, DockerfileError> {
        let volumes: Vec<String> = match arguments {
            pd::JsonOrStringArray::Json(array) => {
                let volumes: Vec<String> = array.value.iter().map(|s| s.value.to_string()).collect();
                if volumes.iter().any(|v| v.trim().is_empty()) {
                    return Err(self.error_at(start, "VOLUME specified can not be an empty string".into()));
                }
                volumes
            }
            pd::JsonOrStringArray::String(words) => {
                if let Some(first) = words.first() {
                    self.no_flags("VOLUME", &first.value, first.span.start)?;
                }
                words.iter().map(|s| s.value.to_string()).collect()
            }
        };
        if volumes.is_empty() {
            return Err(self.error_at(start, "VOLUME requires at least one argument".into()));
        }
        Ok(volumes)
    }

    fn healthcheck(&self, h: &pd::HealthcheckInstruction<'_>) -> Result<Option<Healthcheck>, DockerfileError> {
        let start = h.healthcheck.span.start;
        let arguments = match &h.arguments {
            pd::HealthcheckArguments::None { .. } => {
                if let Some(flag) = h.options.first() {
                    let at = flag.flag_span().start;
                    return Err(
                        self.error_at(at, format!("HEALTHCHECK NONE takes no flags (got --{})", flag.name.value))
                    );
                }
                return Ok(None);
            }
            pd::HealthcheckArguments::Cmd { arguments, .. } => arguments,
            _ => return Err(self.error_at(start, "HEALTHCHECK: a form this parser does not know".into())),
        };
        let durations = ["interval", "timeout", "start-period", "start-interval"];
        let mut known: Vec<(&'static str, Kind)> = durations.iter().map(|&name| (name, Kind::Text)).collect();
        known.push(("retries", Kind::Text));
        let flags = self.flags("HEALTHCHECK", &h.options, &known)?;
        let test = match self.command("HEALTHCHECK", arguments, start)? {
            CommandForm::Exec(args) if args.is_empty() => {
                return Err(self.error_at(start, "Missing command after HEALTHCHECK CMD".into()))
            }
            CommandForm::Exec(args) => std::iter::once("CMD".to_string()).chain(args).collect(),
            CommandForm::Shell(command) if command.trim().is_empty() => {
                return Err(self.error_at(start, "Missing command after HEALTHCHECK CMD".into()))
            }
            CommandForm::Shell(command) => vec!["CMD-SHELL".to_string(), command],
        };
        let mut times = [None; 4];
        for (slot, name) in times.iter_mut().zip(durations) {
            if let Some((value, at)) = flags.text(name).filter(|(value, _)| !value.is_empty()) {
                *slot = Some(interval(name, &value).map_err(|message| self.error_at(at, message))?);
            }
        }
        let retries = match flags.text("retries").filter(|(value, _)| !value.is_empty()) {
            Some((value, at)) => Some(retries(&value).map_err(|message| self.error_at(at, message))?),
            None => None,
        };
        let [interval, timeout, start_period, start_interval] = times;
        Ok(Some(Healthcheck { test, interval, timeout, start_period, start_interval, retries }))
    }
}

/// A healthcheck interval: a Go duration of 0 or at least 1ms, in nanoseconds.
fn interval(name: &str, value: &str) -> Result<u64, String> {
    let nanos = go_duration(value)?;
    if nanos != 0 && nanos < 1_000_000 {
        return Err(format!("Interval {name:?} cannot be less than 1ms"));
    }
    u64::try_from(nanos).map_err(|_| format!("Interval {name:?} cannot be less than 1ms"))
}

fn retries(value: &str) -> Result<u32, String> {
    let n: i32 = value.parse().map_err(|_| format!("invalid --retries value {value:?}"))?;
    u32::try_from(n).map_err(|_| format!("--retries cannot be negative ({n})"))
}
