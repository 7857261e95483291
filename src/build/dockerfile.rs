//! The Dockerfile front end: parses a Dockerfile into owned, typed stages and steps.
//!
//! `parse-dockerfile` reads the instructions; `lines` reads what it does not the way BuildKit
//! does (parser directives, logical lines, here-documents anywhere in RUN/COPY/ADD), and `convert`
//! checks flags and arguments as BuildKit's instruction parser does. Values stay raw — not
//! substituted, quotes kept — for the engine to expand with [`super::words`] as the build runs.

mod convert;
mod duration;
mod lines;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use parse_dockerfile as pd;

/// Why a Dockerfile could not be parsed, and where (1-based; the column counts characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} column {column}: {message}")]
pub struct DockerfileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`\`, or `` ` `` after `# escape=``), for [`super::words`].
    pub escape: char,
    /// The `ARG`s before the first `FROM`.
    pub global_args: Vec<ArgDecl>,
    pub stages: Vec<Stage>,
}

/// One `FROM` and the steps after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The `AS` name, lowercased as Docker does.
    pub name: Option<String>,
    /// The image, raw (it may name an ARG).
    pub base: String,
    /// `--platform`, raw.
    pub platform: Option<String>,
    pub line: usize,
    /// The `FROM` instruction as a reader would see it.
    pub text: String,
    pub steps: Vec<Step>,
}

/// One instruction of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The 1-based line the instruction starts on.
    pub line: usize,
    /// The instruction as in "Step 3/12 : RUN apk add x": keyword in upper case, continued lines
    /// joined with spaces, here-document bodies left out.
    pub text: String,
    pub instruction: Instruction,
}

/// An instruction; every string is raw (not substituted, quotes kept) unless it came from JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `ARG a=1 b` declares two.
    Arg(Vec<ArgDecl>),
    /// `ENV K=V K2="x y"` or the legacy `ENV K some value`; keys and values raw.
    Env(Vec<(String, String)>),
    /// As `Env` (a key may be quoted).
    Label(Vec<(String, String)>),
    Workdir(String),
    User(String),
    Stopsignal(String),
    Run(RunSpec),
    Copy(CopySpec),
    Add(CopySpec),
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    Shell(Vec<String>),
    /// Raw words.
    Expose(Vec<String>),
    /// From the JSON form, or raw words of the space-separated one.
    Volume(Vec<String>),
    /// `None` for `HEALTHCHECK NONE`.
    Healthcheck(Option<Healthcheck>),
    /// The trigger, parsed.
    Onbuild(Box<Step>),
    Maintainer(String),
}

/// `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// Raw.
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub command: CommandForm,
    /// The here-documents the command line opens, in order.
    pub heredocs: Vec<Heredoc>,
    /// `--network=none|default|host`.
    pub network: Option<String>,
}

/// What COPY and ADD share (ADD alone takes `--checksum`; COPY alone takes `--from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    pub sources: Vec<CopySource>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    /// `--exclude` patterns, as many as given.
    pub exclude: Vec<String>,
    pub checksum: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// Raw.
    Path(String),
    /// `COPY <<name /dest`: a file called `name` holding the body.
    Heredoc(Heredoc),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    /// The JSON form, run without a shell.
    Exec(Vec<String>),
    /// The shell form, continuations joined; for the SHELL.
    Shell(String),
}

/// A here-document: `<<EOF` (or `<<-EOF`, `<<"EOF"`) and the lines up to the one that is `EOF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word without its quotes: `EOF`, or for COPY the file name.
    pub name: String,
    /// The lines, each with its line ending, as written (see [`Heredoc::content`] for `<<-`).
    pub body: String,
    /// False when the delimiter was quoted: then `$VAR`s in the body stay as written.
    pub expand: bool,
    /// `<<-`: leading tabs come off every line.
    pub strip_tabs: bool,
}

/// `HEALTHCHECK [options] CMD ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// Docker's form: `["CMD", args...]` or `["CMD-SHELL", "command"]`.
    pub test: Vec<String>,
    /// Nanoseconds (from Go duration syntax: `30s`, `1m30s`, `500ms`).
    pub interval: Option<u64>,
    pub timeout: Option<u64>,
    pub start_period: Option<u64>,
    pub start_interval: Option<u64>,
    pub retries: Option<u32>,
}

impl Heredoc {
    /// The body as a file or script gets it: with `<<-`, each line's leading tabs removed.
    pub fn content(&self) -> String {
        if !self.strip_tabs {
            return self.body.clone();
        }
        self.body.split_inclusive('\n').map(|line| line.trim_start_matches('\t')).collect()
    }
}

impl RunSpec {
    /// For the shell form, the script to hand to the SHELL (`sh -c <script>`), as BuildKit builds
    /// it: when the command is only a heredoc marker (`RUN <<EOF`), the first body is the script
    /// (tabs stripped for `<<-`; a body starting `#!` is written to a temporary file and run, its
    /// interpreter chosen by the `#!` line); otherwise the command followed by each body and its
    /// delimiter, for the shell to read as its own here-documents. `None` for the exec form.
    pub fn shell_script(&self) -> Option<String> {
        let CommandForm::Shell(command) = &self.command else { return None };
        let Some(first) = self.heredocs.first() else { return Some(command.clone()) };
        if lines::parse_marker(command.trim()).is_some() {
            let body = first.content();
            if body.starts_with("#!") {
                return Some(shebang_script(&body));
            }
            return Some(body);
        }
        let mut script = command.clone();
        for heredoc in &self.heredocs {
            script.push('\n');
            script.push_str(&heredoc.body);
            script.push_str(&heredoc.name);
        }
        Some(script)
    }
}

/// A shell script that runs `body` as an executable file, so its `#!` line picks the interpreter.
fn shebang_script(body: &str) -> String {
    let mut delimiter = "BOCKER_HEREDOC".to_string();
    let mut n = 0;
    while body.lines().any(|line| line == delimiter) {
        n += 1;
        delimiter = format!("BOCKER_HEREDOC_{n}");
    }
    let newline = if body.ends_with('\n') { "" } else { "\n" };
    format!(
        "f=$(mktemp) || exit 1\ncat > \"$f\" <<'{delimiter}'\n{body}{newline}{delimiter}\n\
         chmod +x \"$f\" && \"$f\"\ns=$?\nrm -f \"$f\"\nexit $s\n"
    )
}

/// Parses a Dockerfile. The first problem in the file, in order, is the error.
pub fn parse(text: &str) -> Result<Dockerfile, DockerfileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let directives = lines::directives(text);
    let pre = lines::prepass(text, &directives);
    // With an unterminated here-document, parse only what comes before it, to find earlier errors.
    let source = match &pre.unterminated {
        Some(cut) => pre.masked.get(..cut.instruction).unwrap_or_default(),
        None => pre.masked.as_str(),
    };
    let ctx = convert::Ctx::new(text, directives.escape, &pre.logicals);
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut names = HashSet::new();
    for item in pd::parse_iter(source).map_err(|e| ctx.foreign(&e))? {
        let instruction = match item {
            Ok(instruction) => instruction,
            Err(e) if e.line() == 0 && pre.unterminated.is_some() => break,
            Err(e) => return Err(ctx.foreign(&e)),
        };
        match &instruction {
            pd::Instruction::From(from) => {
                let stage = ctx.stage(from)?;
                if let Some(name) = &stage.name {
                    if !names.insert(name.clone()) {
                        return Err(ctx.error_at(from.from.span.start, format!("duplicate stage name '{name}'")));
                    }
                }
                stages.push(stage);
            }
            pd::Instruction::Arg(arg) if stages.is_empty() => global_args.extend(ctx.args(arg)?),
            other => {
                let step = ctx.step(other)?;
                match stages.last_mut() {
                    Some(stage) => stage.steps.push(step),
                    None => {
                        return Err(DockerfileError { line: step.line, column: 1, message: "expected FROM".into() })
                    }
                }
            }
        }
    }
    if let Some(cut) = pre.unterminated {
        return Err(ctx.error_at(cut.marker, "unterminated heredoc".to_string()));
    }
    if stages.is_empty() {
        return Err(DockerfileError { line: 1, column: 1, message: "expected at least one FROM instruction".into() });
    }
    Ok(Dockerfile { escape: directives.escape, global_args, stages })
}
