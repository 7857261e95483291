//! Tests for `.dockerignore` matching.

use super::*;

fn ignore(text: &str) -> Ignore {
    Ignore::parse(text).unwrap()
}

#[test]
fn markdown_but_readme() {
    let ig = ignore("*.md\n!README.md\n");
    assert!(ig.excludes("CHANGES.md"));
    assert!(!ig.excludes("README.md"));
    assert!(!ig.excludes("docs/CHANGES.md"), "`*` stays within one component");
    assert!(!ig.excludes("main.rs"));
    assert!(!ig.is_empty());
}

#[test]
fn double_star_any_depth() {
    let ig = ignore("**/*.tmp");
    assert!(ig.excludes("a.tmp"));
    assert!(ig.excludes("x/a.tmp"));
    assert!(ig.excludes("x/y/z/a.tmp"));
    assert!(!ig.excludes("x/a.tmpl"));
    let ig = ignore("a/**/b");
    assert!(ig.excludes("a/b"));
    assert!(ig.excludes("a/x/y/b"));
    assert!(ig.excludes("a/x/b/c"), "a matching parent excludes what is beneath");
    assert!(!ig.excludes("a/xb"));
    let ig = ignore("**");
    assert!(ig.excludes("anything/at/all"));
    let ig = ignore("build/**");
    assert!(ig.excludes("build/x"));
    assert!(!ig.excludes("build"), "a prefix match wants something after `build/`");
    assert!(!ig.excludes("builder/x"));
    let ig = ignore("**.log");
    assert!(ig.excludes("x/y.log"), "a `**`-led pattern without other wildcards is a suffix");
}

#[test]
fn a_directory_excludes_everything_beneath() {
    let ig = ignore("node_modules");
    assert!(ig.excludes("node_modules"));
    assert!(ig.excludes("node_modules/x"));
    assert!(ig.excludes("node_modules/x/y"));
    assert!(!ig.excludes("src/node_modules"), "patterns are anchored at the root");
    assert!(!ig.excludes("node_modules2"));
    assert!(!ig.may_include_below("node_modules"));
}

#[test]
fn directory_with_an_exception() {
    let ig = ignore("docs\n!docs/keep.txt\n");
    assert!(ig.excludes("docs"));
    assert!(ig.excludes("docs/other"));
    assert!(ig.excludes("docs/sub/keep.txt"));
    assert!(!ig.excludes("docs/keep.txt"));
    assert!(ig.may_include_below("docs"));
    assert!(!ig.may_include_below("docs/sub"));
    assert!(!ig.may_include_below("other"));
    assert!(ig.may_include_below(""));
}

#[test]
fn exceptions_that_could_match_below() {
    let ig = ignore("*\n!**/keep\n");
    assert!(ig.excludes("a"));
    assert!(!ig.excludes("keep"));
    assert!(!ig.excludes("a/b/keep"));
    assert!(ig.may_include_below("a"));
    assert!(ig.may_include_below("a/b"));
    let ig = ignore("*\n!*/keep\n");
    assert!(ig.may_include_below("a"));
    assert!(!ig.may_include_below("a/b"));
    let ig = ignore("src\n!src/**/*.rs\n");
    assert!(ig.may_include_below("src/deep/er"));
    assert!(!ig.excludes("src/deep/x.rs"));
    assert!(ig.excludes("src/deep/x.c"));
    let ig = ignore("*\n!*.md\n");
    assert!(!ig.may_include_below("docs"), "`*.md` only matches at the top");
}

#[test]
fn last_match_wins() {
    let ig = ignore("*.txt\n!a.txt\na.txt\n");
    assert!(ig.excludes("a.txt"));
    let ig = ignore("!a.txt\n*.txt\n");
    assert!(ig.excludes("a.txt"));
    let ig = ignore("dir\n!dir\n");
    assert!(!ig.excludes("dir/x"), "an exception for a parent re-includes what is beneath");
}

#[test]
fn question_mark_and_classes() {
    let ig = ignore("temp?");
    assert!(ig.excludes("temp1"));
    assert!(ig.excludes("tempA"));
    assert!(!ig.excludes("temp"));
    assert!(!ig.excludes("temp12"));
    assert!(!ig.excludes("temp/"), "`?` never matches `/`");
    let ig = ignore("file[0-9].txt\nx[^a-c]\n");
    assert!(ig.excludes("file3.txt"));
    assert!(!ig.excludes("filea.txt"));
    assert!(ig.excludes("xd"));
    assert!(!ig.excludes("xb"));
}

#[test]
fn comments_blanks_and_whitespace() {
    let ig = ignore("# a comment\n\n   \n  spaced  \n #not-a-comment\r\n");
    assert!(ig.excludes("spaced"));
    assert!(ig.excludes("#not-a-comment"), "only a `#` at the very start makes a comment");
    assert!(!ig.excludes("# a comment"));
    assert!(ignore("# only\n\n").is_empty());
    assert!(ignore("").is_empty());
    assert!(ignore("\u{feff}x").excludes("x"), "a byte-order mark is dropped");
}

#[test]
fn leading_slash_dot_and_cleaning() {
    let ig = ignore("/abs\n./rel\na/../b\nc/\n! /neg/x\n");
    assert!(ig.excludes("abs"));
    assert!(ig.excludes("abs/inner"));
    assert!(ig.excludes("rel"));
    assert!(ig.excludes("b"));
    assert!(!ig.excludes("a"));
    assert!(ig.excludes("c/d"));
    assert!(!ig.excludes("neg/x"));
    assert!(!ig.excludes(""), "the root itself is never excluded");
    assert!(!ig.excludes("."));
    assert!(ignore("/abs").excludes("./abs/"));
}

#[test]
fn escapes() {
    let ig = ignore("\\*star\nq\\?\n");
    assert!(ig.excludes("*star"));
    assert!(!ig.excludes("xstar"));
    assert!(ig.excludes("q?"));
    assert!(!ig.excludes("qx"));
    let ig = ignore("a.b\n(x)+\n");
    assert!(ig.excludes("a.b"));
    assert!(!ig.excludes("axb"), "regex characters are literal");
    assert!(ig.excludes("(x)+"));
}

#[test]
fn dockerfile_and_dockerignore_are_just_patterns() {
    let ig = ignore("Dockerfile\n.dockerignore\n");
    assert!(ig.excludes("Dockerfile"));
    assert!(ig.excludes(".dockerignore"));
    assert!(!ig.excludes("Dockerfile.dev"));
}

#[test]
fn bad_patterns() {
    assert_eq!(Ignore::parse("ok\n!\n"), Err(IgnoreError::LoneExclusion { line: 2 }));
    assert_eq!(Ignore::parse("!  \n"), Err(IgnoreError::LoneExclusion { line: 1 }));
    for bad in ["[", "a[b", "[]", "[-a]", "[a-]", "x\\", "[\\"] {
        assert!(matches!(Ignore::parse(bad), Err(IgnoreError::BadPattern { line: 1, .. })), "{bad}");
    }
    assert!(Ignore::parse("[]a]").is_err(), "Go's filepath.Match wants `]` escaped first in a class");
    assert!(Ignore::parse("[\\]a]").is_ok());
}

#[test]
fn odd_inputs_do_not_panic() {
    let mut seed = 11u32;
    let alphabet: Vec<char> = "*?[]^-\\/!.a b#\n".chars().collect();
    let paths = ["", "a", "a/b", "a/b/c", "*", "[", "a/", "/", "..", "ü/ß"];
    for _ in 0..3000 {
        let text: String = (0..10)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                alphabet[(seed >> 16) as usize % alphabet.len()]
            })
            .collect();
        if let Ok(ig) = Ignore::parse(&text) {
            for path in paths {
                let _ = ig.excludes(path);
                let _ = ig.may_include_below(path);
            }
        }
    }
}
