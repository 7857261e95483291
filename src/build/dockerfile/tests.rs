//! Tests for the Dockerfile front end; here-documents and odd inputs are in `heredocs`.

mod heredocs;

use super::*;

fn ok(text: &str) -> Dockerfile {
    match parse(text) {
        Ok(dockerfile) => dockerfile,
        Err(e) => panic!("{text:?}: {e}"),
    }
}

/// The steps of the only stage.
fn steps(text: &str) -> Vec<Step> {
    let dockerfile = ok(text);
    assert_eq!(dockerfile.stages.len(), 1, "{text:?}");
    dockerfile.stages.into_iter().next().map(|stage| stage.steps).unwrap_or_default()
}

/// The one instruction after `FROM x`.
fn one(instruction: &str) -> Instruction {
    let steps = steps(&format!("FROM x\n{instruction}\n"));
    assert_eq!(steps.len(), 1, "{instruction:?}");
    steps.into_iter().next().map(|step| step.instruction).unwrap_or(Instruction::Maintainer(String::new()))
}

fn err(text: &str) -> DockerfileError {
    match parse(text) {
        Ok(dockerfile) => panic!("{text:?} parsed: {dockerfile:?}"),
        Err(e) => e,
    }
}

fn at(text: &str) -> (usize, usize) {
    let e = err(text);
    (e.line, e.column)
}

fn s(text: &str) -> String {
    text.to_string()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (s(k), s(v))).collect()
}

fn copy_spec(sources: &[&str], dest: &str) -> CopySpec {
    CopySpec {
        sources: sources.iter().map(|p| CopySource::Path(s(p))).collect(),
        dest: s(dest),
        from: None,
        chown: None,
        chmod: None,
        link: false,
        exclude: Vec::new(),
        checksum: None,
    }
}

#[test]
fn a_small_dockerfile() {
    let d = ok("FROM busybox\nRUN echo hi\n");
    assert_eq!(d.escape, '\\');
    assert!(d.global_args.is_empty());
    let stage = &d.stages[0];
    assert_eq!((stage.name.clone(), stage.base.as_str(), stage.platform.clone()), (None, "busybox", None));
    assert_eq!((stage.line, stage.text.as_str()), (1, "FROM busybox"));
    let step = &stage.steps[0];
    assert_eq!((step.line, step.text.as_str()), (2, "RUN echo hi"));
    let Instruction::Run(run) = &step.instruction else { panic!("{step:?}") };
    assert_eq!(run, &RunSpec { command: CommandForm::Shell(s("echo hi")), heredocs: vec![], network: None });
    assert_eq!(run.shell_script(), Some(s("echo hi")));
}

#[test]
fn keywords_in_any_case_are_shown_in_upper_case() {
    let d = ok("from alpine as Build\nrun   echo  hi\nonbuild run make\n");
    let stage = &d.stages[0];
    assert_eq!(stage.text, "FROM alpine as Build");
    assert_eq!(stage.name.as_deref(), Some("build"));
    assert_eq!(stage.steps[0].text, "RUN echo  hi");
    assert_eq!(stage.steps[1].text, "ONBUILD RUN make");
}

#[test]
fn env_forms() {
    assert_eq!(
        one("ENV A=1 B=\"x y\" C= D='$q'"),
        Instruction::Env(pairs(&[("A", "1"), ("B", "\"x y\""), ("C", ""), ("D", "'$q'")]))
    );
    assert_eq!(one("ENV K some  value"), Instruction::Env(pairs(&[("K", "some  value")])));
    assert_eq!(one("ENV K \"quoted value\""), Instruction::Env(pairs(&[("K", "\"quoted value\"")])));
    assert_eq!(one("ENV A=a\\ b"), Instruction::Env(pairs(&[("A", "a\\ b")])));
    assert_eq!(one("ENV A=1 \\\n    B=2"), Instruction::Env(pairs(&[("A", "1"), ("B", "2")])));
    let e = err("FROM x\nENV =oops");
    assert_eq!((e.line, e.column, e.message.as_str()), (2, 5, "ENV names can not be blank"));
    assert_eq!(err("FROM x\nENV K").message, "ENV must have two arguments");
    assert!(err("FROM x\nENV A=1 B").message.contains("can't find = in \"B\""));
    assert_eq!(at("FROM x\nENV --x=1 A=1"), (2, 5));
}

#[test]
fn labels() {
    assert_eq!(
        one("LABEL \"com.example.vendor\"=\"ACME Inc\" version=1.0 desc=\"a\\\"b\""),
        Instruction::Label(pairs(&[
            ("\"com.example.vendor\"", "\"ACME Inc\""),
            ("version", "1.0"),
            ("desc", "\"a\\\"b\"")
        ]))
    );
    assert_eq!(one("LABEL maintainer someone"), Instruction::Label(pairs(&[("maintainer", "someone")])));
    assert_eq!(err("FROM x\nLABEL =x").message, "LABEL names can not be blank");
}

#[test]
fn args_global_and_in_a_stage() {
    let d = ok("ARG BASE=alpine:3\nARG V\nFROM $BASE\nARG a=1 b c=\"x y\"\n");
    assert_eq!(
        d.global_args,
        vec![ArgDecl { name: s("BASE"), default: Some(s("alpine:3")) }, ArgDecl { name: s("V"), default: None }]
    );
    assert_eq!(d.stages[0].base, "$BASE");
    assert_eq!(
        d.stages[0].steps[0].instruction,
        Instruction::Arg(vec![
            ArgDecl { name: s("a"), default: Some(s("1")) },
            ArgDecl { name: s("b"), default: None },
            ArgDecl { name: s("c"), default: Some(s("\"x y\"")) },
        ])
    );
    assert_eq!(err("FROM x\nARG =1").message, "ARG names can not be blank");
    assert_eq!(err("ARG x\nRUN y").line, 2);
}

#[test]
fn run_forms_and_flags() {
    let run = |command: CommandForm, network: Option<&str>| {
        Instruction::Run(RunSpec { command, heredocs: vec![], network: network.map(s) })
    };
    assert_eq!(
        one("RUN [\"echo\", \"a b\", \"\\u00e9\"]"),
        run(CommandForm::Exec(vec![s("echo"), s("a b"), s("é")]), None)
    );
    assert_eq!(one("RUN --network=none apk add x"), run(CommandForm::Shell(s("apk add x")), Some("none")));
    assert_eq!(one("RUN --network=host [\"true\"]"), run(CommandForm::Exec(vec![s("true")]), Some("host")));
    let Instruction::Run(spec) = one("RUN [\"a\"]") else { panic!() };
    assert_eq!(spec.shell_script(), None);
    assert_eq!(err("FROM x\nRUN --network=bridge x").message, "invalid network mode \"bridge\"");
    let e = err("FROM x\nRUN --mount=type=cache,target=/x make");
    assert_eq!((e.line, e.column, e.message.as_str()), (2, 5, "RUN --mount is not supported"));
    assert_eq!(err("FROM x\nRUN --security=insecure x").message, "RUN --security is not supported");
    assert!(err("FROM x\nRUN --foo x").message.contains("unknown flag: --foo"));
    assert!(err("FROM x\nRUN --network x").message.contains("missing a value"));
    assert!(err("FROM x\nRUN").message.contains("RUN"));
}

#[test]
fn copy_and_add_flags() {
    assert_eq!(one("COPY a b /dest/"), Instruction::Copy(copy_spec(&["a", "b"], "/dest/")));
    assert_eq!(one("COPY [\"a b\", \"/x y/\"]"), Instruction::Copy(copy_spec(&["a b"], "/x y/")));
    let mut spec = copy_spec(&["$SRC"], "/app");
    spec.from = Some(s("build"));
    spec.chown = Some(s("1000:1000"));
    spec.chmod = Some(s("0755"));
    spec.link = true;
    spec.exclude = vec![s("*.md"), s("tmp")];
    assert_eq!(
        one("COPY --from=build --chown=1000:1000 --chmod=0755 --link --exclude=*.md --exclude=tmp $SRC /app"),
        Instruction::Copy(spec)
    );
    let mut spec = copy_spec(&["https://x/y.tgz"], "/y");
    spec.checksum = Some(s("sha256:abc"));
    assert_eq!(one("ADD --checksum=sha256:abc --link=false --keep-git-dir https://x/y.tgz /y"), Instruction::Add(spec));
    let Instruction::Copy(spec) = one("COPY --link=TRUE --from= a b") else { panic!() };
    assert!(spec.link);
    assert_eq!(spec.from, None, "an empty --from is no --from");
    assert!(err("FROM x\nCOPY --link=maybe a b").message.contains("expecting boolean value"));
    assert!(err("FROM x\nCOPY --link= a b").message.contains("missing a value"));
    assert!(err("FROM x\nCOPY --chown a b").message.contains("missing a value on flag: --chown"));
    assert!(err("FROM x\nCOPY --from=a --from=b a b").message.contains("duplicate flag"));
    assert_eq!(err("FROM x\nCOPY --parents a b").message, "COPY --parents is not supported");
    assert_eq!(err("FROM x\nADD --unpack a b").message, "ADD --unpack is not supported");
    assert!(err("FROM x\nCOPY --checksum=x a b").message.contains("unknown flag: --checksum"));
    assert!(err("FROM x\nADD --from=x a b").message.contains("unknown flag: --from"));
    assert_eq!(
        one("COPY a \\\n  --foo=1 b"),
        Instruction::Copy(copy_spec(&["a", "--foo=1"], "b")),
        "flags come first; later it is a path"
    );
    assert_eq!(at("FROM x\nCOPY --foo=1 a b"), (2, 6));
}

#[test]
fn cmd_entrypoint_shell() {
    assert_eq!(
        one("CMD [\"nginx\", \"-g\", \"daemon off;\"]"),
        Instruction::Cmd(CommandForm::Exec(vec![s("nginx"), s("-g"), s("daemon off;")]))
    );
    assert_eq!(one("CMD []"), Instruction::Cmd(CommandForm::Exec(vec![])));
    assert_eq!(one("CMD echo \"$HOME\""), Instruction::Cmd(CommandForm::Shell(s("echo \"$HOME\""))));
    assert_eq!(one("CMD [not json"), Instruction::Cmd(CommandForm::Shell(s("[not json"))));
    assert_eq!(one("ENTRYPOINT [\"/init\"]"), Instruction::Entrypoint(CommandForm::Exec(vec![s("/init")])));
    assert_eq!(one("ENTRYPOINT exec top -b"), Instruction::Entrypoint(CommandForm::Shell(s("exec top -b"))));
    assert_eq!(
        one("SHELL [\"/bin/bash\", \"-eo\", \"pipefail\", \"-c\"]"),
        Instruction::Shell(vec![s("/bin/bash"), s("-eo"), s("pipefail"), s("-c")])
    );
    assert!(err("FROM x\nCMD --help").message.contains("takes no flags"));
    assert!(err("FROM x\nSHELL /bin/sh -c").message.contains("JSON"));
}

#[test]
fn expose_volume_user_workdir_stopsignal_maintainer() {
    assert_eq!(one("EXPOSE 80/tcp 443 ${PORT}"), Instruction::Expose(vec![s("80/tcp"), s("443"), s("${PORT}")]));
    assert_eq!(one("VOLUME [\"/data\", \"/logs\"]"), Instruction::Volume(vec![s("/data"), s("/logs")]));
    assert_eq!(one("VOLUME /data $LOGS"), Instruction::Volume(vec![s("/data"), s("$LOGS")]));
    assert!(err("FROM x\nVOLUME [\"\"]").message.contains("empty string"));
    assert_eq!(one("USER app:app"), Instruction::User(s("app:app")));
    assert_eq!(one("WORKDIR /srv/$APP dir"), Instruction::Workdir(s("/srv/$APP dir")));
    assert_eq!(one("STOPSIGNAL SIGTERM"), Instruction::Stopsignal(s("SIGTERM")));
    assert_eq!(one("MAINTAINER Jane <jane@example.com>"), Instruction::Maintainer(s("Jane <jane@example.com>")));
    assert!(err("FROM x\nUSER --x").message.contains("USER takes no flags"));
    assert!(err("FROM x\nEXPOSE --p 80").message.contains("EXPOSE takes no flags"));
}

#[test]
fn healthchecks() {
    assert_eq!(one("HEALTHCHECK NONE"), Instruction::Healthcheck(None));
    let expected = Healthcheck {
        test: vec![s("CMD-SHELL"), s("curl -f http://localhost/ || exit 1")],
        interval: Some(30_000_000_000),
        timeout: Some(90_000_000_000),
        start_period: Some(500_000_000),
        start_interval: Some(1_500_000_000),
        retries: Some(3),
    };
    assert_eq!(
        one("HEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms --start-interval=1.5s --retries=3 \\\n  CMD curl -f http://localhost/ || exit 1"),
        Instruction::Healthcheck(Some(expected))
    );
    let Instruction::Healthcheck(Some(h)) = one("HEALTHCHECK CMD [\"/bin/check\", \"-q\"]") else { panic!() };
    assert_eq!(h.test, vec![s("CMD"), s("/bin/check"), s("-q")]);
    assert_eq!((h.interval, h.retries), (None, None));
    let Instruction::Healthcheck(Some(h)) = one("HEALTHCHECK --interval=0 --timeout=1h2m3.5s CMD true") else {
        panic!()
    };
    assert_eq!((h.interval, h.timeout), (Some(0), Some(3_723_500_000_000)));
    assert!(err("FROM x\nHEALTHCHECK --interval=10 CMD true").message.contains("missing unit"));
    assert!(err("FROM x\nHEALTHCHECK --interval=3 days CMD true").message.contains("CMD or NONE"));
    assert!(err("FROM x\nHEALTHCHECK --interval=5q CMD true").message.contains("unknown unit"));
    assert!(err("FROM x\nHEALTHCHECK --interval=100us CMD true").message.contains("cannot be less than 1ms"));
    assert!(err("FROM x\nHEALTHCHECK --interval=-1s CMD true").message.contains("cannot be less than 1ms"));
    assert!(err("FROM x\nHEALTHCHECK --retries=-1 CMD true").message.contains("cannot be negative"));
    assert!(err("FROM x\nHEALTHCHECK --retries=x CMD true").message.contains("retries"));
    assert!(err("FROM x\nHEALTHCHECK --bogus=1 CMD true").message.contains("unknown flag"));
    assert!(err("FROM x\nHEALTHCHECK --interval=1s NONE").message.contains("NONE takes no flags"));
    assert!(err("FROM x\nHEALTHCHECK CMD").message.contains("HEALTHCHECK"));
}

#[test]
fn onbuild() {
    let steps = steps("FROM x\nONBUILD COPY --chown=1 . /app\nonbuild run make all\n");
    assert_eq!(steps[0].text, "ONBUILD COPY --chown=1 . /app");
    let Instruction::Onbuild(inner) = &steps[0].instruction else { panic!("{steps:?}") };
    assert_eq!((inner.line, inner.text.as_str()), (2, "COPY --chown=1 . /app"));
    let mut spec = copy_spec(&["."], "/app");
    spec.chown = Some(s("1"));
    assert_eq!(inner.instruction, Instruction::Copy(spec));
    let Instruction::Onbuild(inner) = &steps[1].instruction else { panic!() };
    assert_eq!(inner.text, "RUN make all");
    assert!(err("FROM x\nONBUILD FROM y").message.contains("isn't allowed as an ONBUILD trigger"));
    assert!(err("FROM x\nONBUILD MAINTAINER y").message.contains("isn't allowed"));
    assert!(err("FROM x\nONBUILD ONBUILD RUN y").message.contains("ONBUILD ONBUILD"));
    assert!(err("FROM x\nONBUILD RUN --mount=a b").message.contains("--mount is not supported"));
}

#[test]
fn stages() {
    let d = ok("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build-Env\nRUN go build\n\nFROM alpine\nCOPY --from=build-env /out /\n");
    assert_eq!(d.stages.len(), 2);
    assert_eq!(d.stages[0].name.as_deref(), Some("build-env"));
    assert_eq!(d.stages[0].platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(d.stages[0].base, "golang:1.22");
    assert_eq!(d.stages[0].steps.len(), 1);
    assert_eq!((d.stages[1].line, d.stages[1].name.clone()), (4, None));
    assert_eq!(d.stages[1].steps[0].line, 5);
    assert_eq!(ok("FROM a AS x.y_z-1").stages[0].name.as_deref(), Some("x.y_z-1"));
    let e = err("FROM a AS 1st");
    assert_eq!((e.line, e.column), (1, 11));
    assert!(e.message.contains("invalid name for build stage"));
    assert!(err("FROM a AS b$c").message.contains("invalid name"));
    assert!(err("FROM a AS x\nFROM b AS X").message.contains("duplicate stage name 'x'"));
    assert!(err("FROM a AS").message.contains("AS"));
    assert!(err("FROM a b").message.contains("AS"));
    assert!(err("FROM").message.contains("FROM"));
    assert!(err("FROM --flag=1 a").message.contains("unknown flag"));
}

#[test]
fn directives() {
    let d =
        ok("# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir c:\\ `\n    && echo done\nENV P=C:\\x `\n    Q=2\n");
    assert_eq!(d.escape, '`');
    let steps = &d.stages[0].steps;
    assert_eq!(
        steps[0].instruction,
        Instruction::Run(RunSpec {
            command: CommandForm::Shell(s("dir c:\\     && echo done")),
            heredocs: vec![],
            network: None
        })
    );
    assert_eq!(steps[0].text, "RUN dir c:\\ && echo done");
    assert_eq!(steps[1].instruction, Instruction::Env(pairs(&[("P", "C:\\x"), ("Q", "2")])));
    assert_eq!(ok("# syntax=docker/dockerfile:1\n#escape = `\nFROM x").escape, '`');
    assert_eq!(ok("# syntax=docker/dockerfile:1.7\nFROM x\n").stages.len(), 1);
    assert_eq!(ok("# comment\n# escape=`\nFROM x").escape, '\\', "a directive after a comment is a comment");
    assert_eq!(ok("FROM x\n# escape=`\n").escape, '\\');
    assert_eq!(ok("# escape=`\n# escape=`\nFROM x").escape, '\\', "a repeated directive voids them");
    assert!(err("# escape=x\nFROM y").message.contains("escape"));
    assert_eq!(ok("\u{feff}# escape=`\nFROM x").escape, '`');
}

#[test]
fn continuations_and_comments() {
    let text = "FROM x\nRUN apt-get update && \\\n    apt-get install -y \\\n# a comment between\n\n      curl\nRUN echo \\   \n done\n";
    let steps = steps(text);
    assert_eq!(
        steps[0].instruction,
        Instruction::Run(RunSpec {
            command: CommandForm::Shell(s("apt-get update &&     apt-get install -y       curl")),
            heredocs: vec![],
            network: None
        })
    );
    assert_eq!(steps[0].text, "RUN apt-get update && apt-get install -y curl");
    assert_eq!(steps[0].line, 2);
    assert_eq!(steps[1].line, 7);
    assert_eq!(
        steps[1].instruction,
        Instruction::Run(RunSpec { command: CommandForm::Shell(s("echo  done")), heredocs: vec![], network: None })
    );
    assert_eq!(steps[1].text, "RUN echo done");
    let steps = self::steps("FROM x\r\nRUN a \\\r\n  b\r\nUSER me\r\n");
    assert_eq!(
        steps[0].instruction,
        Instruction::Run(RunSpec { command: CommandForm::Shell(s("a   b")), heredocs: vec![], network: None })
    );
    assert_eq!((steps[1].line, steps[1].instruction.clone()), (4, Instruction::User(s("me"))));
    assert_eq!(
        one("RUN echo a # not a comment"),
        Instruction::Run(RunSpec {
            command: CommandForm::Shell(s("echo a # not a comment")),
            heredocs: vec![],
            network: None
        })
    );
    let d = ok("# only\nFROM x\n  # indented comment\n\\\nRUN b\n");
    assert_eq!(d.stages[0].steps[0].line, 5);
}

#[test]
fn error_positions() {
    assert_eq!(at("FROM busybox\nRUNN x"), (2, 1));
    assert_eq!(err("FROM busybox\nRUNN x").message, "unknown instruction 'RUNN'");
    assert_eq!(at("FROM x\nSHELL [\"/bin/sh\", \"-c\""), (2, 7));
    assert_eq!(at("FROM ü AS b c"), (1, 13), "columns count characters");
    assert_eq!(at(""), (1, 1));
    assert_eq!(at("# just a comment\n\n"), (1, 1));
    assert_eq!(err("").message, "expected at least one FROM instruction");
    assert_eq!(at("RUN x"), (1, 1));
    assert_eq!(at("FROM x\nRUN ok\n  COPY only-one"), (3, 3));
    assert_eq!(at("FROM x\nLABEL é=1\nRUN --bad ü"), (3, 5));
    let e = err("FROM x\nRUNN y");
    assert_eq!(e.to_string(), "line 2 column 1: unknown instruction 'RUNN'");
}
