//! Tests for here-documents and for inputs that must fail cleanly.

use super::*;

fn run_spec(text: &str) -> RunSpec {
    match one(text) {
        Instruction::Run(run) => run,
        other => panic!("{other:?}"),
    }
}

fn heredoc(name: &str, body: &str, expand: bool, strip_tabs: bool) -> Heredoc {
    Heredoc { name: s(name), body: s(body), expand, strip_tabs }
}

#[test]
fn run_with_only_a_heredoc() {
    let run = run_spec("RUN <<EOF\napk add curl\necho done\nEOF");
    assert_eq!(run.command, CommandForm::Shell(s("<<EOF")));
    assert_eq!(run.heredocs, vec![heredoc("EOF", "apk add curl\necho done\n", true, false)]);
    assert_eq!(run.shell_script(), Some(s("apk add curl\necho done\n")));
    let steps = steps("FROM x\nRUN <<EOF\n  set -e\nEOF\nUSER me\n");
    assert_eq!(steps[0].text, "RUN <<EOF");
    assert_eq!((steps[1].line, steps[1].instruction.clone()), (5, Instruction::User(s("me"))));
    let run = run_spec("RUN --network=none << EOF\nx\nEOF");
    assert_eq!(run.shell_script(), Some(s("x\n")));
    assert_eq!(run.network.as_deref(), Some("none"));
}

#[test]
fn run_with_tab_stripping() {
    let run = run_spec("RUN <<-EOF\n\tif true; then\n\t\techo yes\n\tfi\n\tEOF\n");
    assert_eq!(run.heredocs, vec![heredoc("EOF", "\tif true; then\n\t\techo yes\n\tfi\n", true, true)]);
    assert_eq!(run.shell_script(), Some(s("if true; then\necho yes\nfi\n")));
    assert_eq!(run.heredocs[0].content(), "if true; then\necho yes\nfi\n");
}

#[test]
fn run_feeding_a_heredoc_to_a_command() {
    let run = run_spec("RUN python3 <<EOF\nprint('hi')\nEOF");
    assert_eq!(run.command, CommandForm::Shell(s("python3 <<EOF")));
    assert_eq!(run.shell_script(), Some(s("python3 <<EOF\nprint('hi')\nEOF")));
    let run = run_spec("RUN cat <<A >a && cat <<-'B' >b\none\nA\n\ttwo $x\n\tB\n");
    assert_eq!(run.heredocs, vec![heredoc("A", "one\n", true, false), heredoc("B", "\ttwo $x\n", false, true)]);
    assert_eq!(run.shell_script(), Some(s("cat <<A >a && cat <<-'B' >b\none\nA\n\ttwo $x\nB")));
    let run = run_spec("RUN <<EOF bash\necho $0\nEOF");
    assert_eq!(run.shell_script(), Some(s("<<EOF bash\necho $0\nEOF")));
}

#[test]
fn run_with_a_shebang() {
    let run = run_spec("RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF");
    let script = run.shell_script().unwrap_or_default();
    assert!(script.contains("<<'BOCKER_HEREDOC'\n#!/usr/bin/env python3\nprint(1)\nBOCKER_HEREDOC\n"), "{script}");
    assert!(script.contains("chmod +x \"$f\" && \"$f\""), "{script}");
    let run = run_spec("RUN <<EOF\n#!/bin/sh\nBOCKER_HEREDOC\nEOF");
    assert!(run.shell_script().unwrap_or_default().contains("<<'BOCKER_HEREDOC_1'"));
}

#[test]
fn quoted_delimiters_do_not_expand() {
    for marker in ["<<'EOF'", "<<\"EOF\"", "<<E\"O\"F", "<<-'EOF'"] {
        let run = run_spec(&format!("RUN cat {marker} > /f\n$HOME\nEOF\n"));
        assert_eq!(run.heredocs.len(), 1, "{marker}");
        assert_eq!((run.heredocs[0].name.as_str(), run.heredocs[0].expand), ("EOF", false), "{marker}");
    }
    let run = run_spec("RUN cat <<EOF\n$HOME\nEOF\n");
    assert!(run.heredocs[0].expand);
}

#[test]
fn copy_heredocs() {
    let Instruction::Copy(spec) = one("COPY <<EOF /etc/motd\nhello $USER\nEOF") else { panic!() };
    assert_eq!(spec.sources, vec![CopySource::Heredoc(heredoc("EOF", "hello $USER\n", true, false))]);
    assert_eq!(spec.dest, "/etc/motd");
    let Instruction::Copy(spec) =
        one("COPY --chmod=0755 <<run.sh <<-\"conf\" plain.txt /app/\n#!/bin/sh\nrun.sh\n\tk=v\n\tconf\n")
    else {
        panic!()
    };
    assert_eq!(spec.chmod.as_deref(), Some("0755"));
    assert_eq!(
        spec.sources,
        vec![
            CopySource::Heredoc(heredoc("run.sh", "#!/bin/sh\n", true, false)),
            CopySource::Heredoc(heredoc("conf", "\tk=v\n", false, true)),
            CopySource::Path(s("plain.txt")),
        ]
    );
    let Instruction::Add(spec) = one("ADD <<EOF /x\nEOF") else { panic!() };
    assert_eq!(spec.sources, vec![CopySource::Heredoc(heredoc("EOF", "", true, false))]);
    assert!(err("FROM x\nCOPY a <<EOF\nbody\nEOF").message.contains("cannot accept a heredoc as a destination"));
    assert_eq!(one("COPY [\"<<EOF\", \"/x\"]"), Instruction::Copy(copy_spec(&["<<EOF"], "/x")), "not in JSON");
}

#[test]
fn heredocs_in_onbuild_and_between_steps() {
    let steps = steps("FROM x\nONBUILD RUN <<EOF\necho later\nEOF\nRUN echo now\n");
    assert_eq!(steps[0].text, "ONBUILD RUN <<EOF");
    let Instruction::Onbuild(inner) = &steps[0].instruction else { panic!() };
    let Instruction::Run(run) = &inner.instruction else { panic!() };
    assert_eq!(run.shell_script(), Some(s("echo later\n")));
    assert_eq!(steps[1].line, 5);
    let steps = self::steps("FROM x\nRUN <<EOF\nFROM not an instruction\nRUNN neither\nEOF\n");
    assert_eq!(steps.len(), 1);
    assert_eq!(
        one("RUN echo '<<EOF'"),
        Instruction::Run(RunSpec { command: CommandForm::Shell(s("echo '<<EOF'")), heredocs: vec![], network: None })
    );
    assert_eq!(run_spec("RUN echo a<<b").heredocs, vec![], "a marker starts a word");
    assert_eq!(run_spec("RUN [\"cat\", \"<<EOF\"]").command, CommandForm::Exec(vec![s("cat"), s("<<EOF")]));
}

#[test]
fn unterminated_heredocs() {
    let e = err("FROM x\nRUN cat <<EOF\nline\n");
    assert_eq!((e.line, e.column, e.message.as_str()), (2, 9, "unterminated heredoc"));
    assert_eq!(at("FROM x\nRUNN y\nRUN <<EOF\n"), (2, 1), "an earlier error comes first");
    assert_eq!(at("RUN <<EOF\n"), (1, 5));
    assert_eq!(at("FROM x\nCOPY <<A <<B /d\nA\n"), (2, 10));
}

#[test]
fn odd_inputs_do_not_panic() {
    let odd = [
        "",
        "#",
        "# only comments\n# here\n",
        "FROM",
        "FROM ",
        "\\",
        "FROM x\n\\",
        "FROM x\nRUN \\",
        "FROM x\nRUN a\\",
        "\u{0}",
        "FROM x\nRUN \u{0}\u{0}",
        "FROM \u{0}",
        "FROM x AS \u{0}",
        "\u{feff}",
        "FROM x\nRUN <<",
        "FROM x\nRUN <<-",
        "FROM x\nRUN <<\"",
        "FROM x\nRUN <<''\n\n",
        "FROM x\nCOPY <<",
        "FROM x\nCOPY <<EOF",
        "FROM x\nCOPY <<EOF <<EOF /\nEOF\nEOF\n",
        "FROM x\nONBUILD",
        "FROM x\nONBUILD RUN <<EOF",
        "FROM x\nHEALTHCHECK",
        "FROM x\nHEALTHCHECK --interval=99999999999999999999h CMD x",
        "FROM x\nHEALTHCHECK --timeout=.s CMD x",
        "FROM x\nHEALTHCHECK --timeout=1.5.5s CMD x",
        "FROM x\nSHELL [",
        "FROM x\nCMD [\"\\ud800\"]",
        "FROM x\nENV",
        "FROM x\nENV \"",
        "FROM x\nLABEL '",
        "FROM x\nARG \\",
        "FROM x\nRUN --=x y",
        "FROM x\nRUN -- y",
        "FROM x\nRUN --network=",
        "# escape=`\nFROM x\nRUN a `",
        "# escape=\nFROM x",
        "FROM x\r",
        "\r\n\r\nFROM x\r\nRUN a \\\r\n",
        "FROM x\nEXPOSE",
        "FROM x\nVOLUME",
        "FROM x\nVOLUME []",
        "FROM x\nUSER",
        "FROM x\nWORKDIR \\\n",
        "FROM ü\nRUN ü <<ü\nü\n",
    ];
    for text in odd {
        let _ = parse(text);
    }
    let long = format!("FROM x\nRUN {}\nENV A={}\n", "a ".repeat(50_000), "b".repeat(100_000));
    assert_eq!(steps(&long).len(), 2);
    let mut seed = 3u32;
    let alphabet: Vec<char> = "FROM RUN COPY ENV\n\\`<<-'\"EOF[]{},=#$ ü\u{0}\t\r".chars().collect();
    for _ in 0..3000 {
        let text: String = (0..40)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                alphabet[(seed >> 16) as usize % alphabet.len()]
            })
            .collect();
        let _ = parse(&text);
        let _ = parse(&format!("FROM x\n{text}"));
        if let Ok(dockerfile) = parse(&format!("FROM x\nRUN {text}")) {
            for step in dockerfile.stages.iter().flat_map(|stage| &stage.steps) {
                if let Instruction::Run(run) = &step.instruction {
                    let _ = run.shell_script();
                }
            }
        }
    }
}
