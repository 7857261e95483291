//! Tests for Docker's word substitution.

use super::*;

fn vars(name: &str) -> Option<String> {
    match name {
        "A" => Some("alpha".into()),
        "B" => Some("bee".into()),
        "EMPTY" => Some(String::new()),
        "SPACED" => Some("one two  three".into()),
        "QUOTED" => Some("\"q\" '$A'".into()),
        "PATH_" => Some("/usr/local/bin:/usr/bin".into()),
        "FILE" => Some("archive.tar.gz".into()),
        "U" => Some("ünï".into()),
        _ => None,
    }
}

fn x(word: &str) -> String {
    expand(word, &vars, '\\').unwrap()
}

fn xs(text: &str) -> Vec<String> {
    expand_words(text, &vars, '\\').unwrap()
}

fn err(word: &str) -> WordsError {
    expand(word, &vars, '\\').unwrap_err()
}

#[test]
fn plain_and_braced_variables() {
    assert_eq!(x("$A"), "alpha");
    assert_eq!(x("${A}"), "alpha");
    assert_eq!(x("x${A}y"), "xalphay");
    assert_eq!(x("$A/$B"), "alpha/bee");
    assert_eq!(x("$A_x"), "", "A_x is one (unset) name");
    assert_eq!(x("$NOPE"), "");
    assert_eq!(x("${NOPE}"), "");
    assert_eq!(x("${U}"), "ünï");
    assert_eq!(x("plain"), "plain");
    assert_eq!(x(""), "");
}

#[test]
fn dollar_without_a_name_is_literal() {
    assert_eq!(x("$"), "$");
    assert_eq!(x("a$"), "a$");
    assert_eq!(x("$/x"), "$/x");
    assert_eq!(x("$ A"), "$ A");
}

#[test]
fn default_and_alternative_forms() {
    assert_eq!(x("${A:-d}"), "alpha");
    assert_eq!(x("${NOPE:-d}"), "d");
    assert_eq!(x("${EMPTY:-d}"), "d");
    assert_eq!(x("${EMPTY-d}"), "");
    assert_eq!(x("${NOPE-d}"), "d");
    assert_eq!(x("${A-d}"), "alpha");
    assert_eq!(x("${A:+alt}"), "alt");
    assert_eq!(x("${A+alt}"), "alt");
    assert_eq!(x("${EMPTY:+alt}"), "");
    assert_eq!(x("${EMPTY+alt}"), "alt");
    assert_eq!(x("${NOPE+alt}"), "");
    assert_eq!(x("${NOPE:-}"), "");
    assert_eq!(x("${NOPE:-a b}"), "a b");
}

#[test]
fn nested_defaults() {
    assert_eq!(x("${NOPE:-${B:-x}}"), "bee");
    assert_eq!(x("${NOPE:-${NADA:-x}}"), "x");
    assert_eq!(x("${A:+<${B}>}"), "<bee>");
    assert_eq!(x("${NOPE:-\"${A}\" z}"), "alpha z");
}

#[test]
fn required_variables() {
    assert_eq!(x("${A?boom}"), "alpha");
    assert_eq!(x("${A:?boom}"), "alpha");
    assert_eq!(x("${EMPTY?boom}"), "");
    assert_eq!(err("${NOPE?boom}"), WordsError::Required { name: "NOPE".into(), message: "boom".into() });
    assert_eq!(
        err("${NOPE?}"),
        WordsError::Required { name: "NOPE".into(), message: "is not allowed to be unset".into() }
    );
    assert_eq!(
        err("${EMPTY:?}"),
        WordsError::Required { name: "EMPTY".into(), message: "is not allowed to be empty".into() }
    );
    assert_eq!(err("${EMPTY:?must set}").to_string(), "EMPTY: must set");
}

#[test]
fn prefix_and_suffix_removal() {
    assert_eq!(x("${FILE#*.}"), "tar.gz");
    assert_eq!(x("${FILE##*.}"), "gz");
    assert_eq!(x("${FILE%.*}"), "archive.tar");
    assert_eq!(x("${FILE%%.*}"), "archive");
    assert_eq!(x("${FILE#nomatch}"), "archive.tar.gz");
    assert_eq!(x("${FILE#arch}"), "ive.tar.gz");
    assert_eq!(x("${FILE%?z}"), "archive.tar.");
    assert_eq!(x("${PATH_#*:}"), "/usr/bin");
    assert_eq!(x("${PATH_%%:*}"), "/usr/local/bin");
    assert_eq!(x("${NOPE#x}"), "");
    assert_eq!(x("${FILE#\\*}"), "archive.tar.gz");
    assert_eq!(x("${FILE#*}"), "archive.tar.gz");
    assert_eq!(x("${FILE##*}"), "");
    assert!(matches!(err("${FILE:#x}"), WordsError::UnsupportedModifier(m) if m == ":#"));
    assert!(matches!(err("${FILE#\\q}"), WordsError::InvalidPattern { .. }));
}

#[test]
fn replacement() {
    assert_eq!(x("${FILE/./-}"), "archive-tar.gz");
    assert_eq!(x("${FILE//./-}"), "archive-tar-gz");
    assert_eq!(x("${FILE/a*e/X}"), "X.tar.gz");
    assert_eq!(x("${FILE/#/X}"), "archive.tar.gz", "a literal # that does not match");
    assert_eq!(x("${FILE/zz/X}"), "archive.tar.gz");
    assert_eq!(x("${PATH_//\\//|}"), "|usr|local|bin:|usr|bin");
    assert_eq!(x("${A/?/}"), "lpha");
    assert_eq!(x("${A//?/.}"), ".....");
    assert_eq!(x("${NOPE/a/b}"), "");
    assert_eq!(err("${A/x}"), WordsError::MissingSlash, "the closing brace is part of the pattern");
    assert_eq!(err("${A/x"), WordsError::MissingSlash);
    assert_eq!(err("${A/x/y"), WordsError::MissingBrace);
}

#[test]
fn quotes() {
    assert_eq!(x("'$A'"), "$A");
    assert_eq!(x("\"$A\""), "alpha");
    assert_eq!(x("\"it's $A\""), "it's alpha");
    assert_eq!(x("'say \"$A\"'"), "say \"$A\"");
    assert_eq!(x("a'b c'd"), "ab cd");
    assert_eq!(x("\"a\\\"b\""), "a\"b");
    assert_eq!(x("\"a\\$A\""), "a$A");
    assert_eq!(x("\"a\\\\b\""), "a\\b");
    assert_eq!(x("\"a\\nb\""), "a\\nb", "other escapes stay inside double quotes");
    assert_eq!(x("'a\\nb'"), "a\\nb");
    assert_eq!(x("\"\""), "");
    assert_eq!(x("$QUOTED"), "\"q\" '$A'", "a value is never re-read");
}

#[test]
fn escapes() {
    assert_eq!(x("\\$A"), "$A");
    assert_eq!(x("\\${A}"), "${A}");
    assert_eq!(x("a\\ b"), "a b");
    assert_eq!(x("\\'x"), "'x");
    assert_eq!(x("\\\\"), "\\");
    assert_eq!(x("ab\\"), "ab", "an escape at the end is dropped");
    assert_eq!(x("\\"), "");
}

#[test]
fn backtick_escape() {
    let bt = |w: &str| expand(w, &vars, '`').unwrap();
    assert_eq!(bt("`$A"), "$A");
    assert_eq!(bt("C:\\dir\\$A"), "C:\\dir\\alpha");
    assert_eq!(bt("\"`\"$A`\"\""), "\"alpha\"");
    assert_eq!(bt("\"C:\\x\""), "C:\\x");
    assert_eq!(expand_words("a` b c", &vars, '`').unwrap(), vec!["a b", "c"]);
}

#[test]
fn whitespace_is_kept_by_expand() {
    assert_eq!(x("a  b"), "a  b");
    assert_eq!(x("$SPACED"), "one two  three");
    assert_eq!(x(" $A "), " alpha ");
}

#[test]
fn word_splitting() {
    assert_eq!(xs("a b  c"), vec!["a", "b", "c"]);
    assert_eq!(xs("  a\tb\n"), vec!["a", "b"]);
    assert_eq!(xs("\"a b\" c"), vec!["a b", "c"]);
    assert_eq!(xs("'a b'c d"), vec!["a bc", "d"]);
    assert_eq!(xs("a\\ b c"), vec!["a b", "c"]);
    assert_eq!(xs("$SPACED"), vec!["one", "two", "three"], "an unquoted value is split");
    assert_eq!(xs("\"$SPACED\""), vec!["one two  three"], "a quoted one is not");
    assert_eq!(xs("x$SPACED"), vec!["xone", "two", "three"]);
    assert_eq!(xs("80/tcp ${NOPE:-443} $B"), vec!["80/tcp", "443", "bee"]);
    assert_eq!(xs("\"\" a"), vec!["a"], "an empty quoted word is dropped, as in BuildKit");
    assert_eq!(xs(""), Vec::<String>::new());
    assert_eq!(xs("$QUOTED"), vec!["\"q\"", "'$A'"]);
    assert_eq!(xs("cat << EOF"), vec!["cat", "<< EOF"]);
}

#[test]
fn syntax_errors() {
    assert_eq!(err("${"), WordsError::MissingBrace);
    assert_eq!(err("${A"), WordsError::MissingBrace);
    assert_eq!(err("${A:-x"), WordsError::MissingBrace);
    assert_eq!(err("${A:-'x}"), WordsError::MissingBrace);
    assert_eq!(err("${A:"), WordsError::MissingBrace);
    assert_eq!(err("${}"), WordsError::BadSubstitution);
    assert_eq!(err("${:x}"), WordsError::BadSubstitution);
    assert_eq!(err("${{A}"), WordsError::BadSubstitution);
    assert!(matches!(err("${#A}"), WordsError::UnsupportedModifier(_)));
    assert!(matches!(err("${A:x}"), WordsError::UnsupportedModifier(_)));
    assert!(matches!(err("${A x}"), WordsError::UnsupportedModifier(_)));
    assert_eq!(err("'abc"), WordsError::Unterminated("single-quote"));
    assert_eq!(err("\"abc"), WordsError::Unterminated("double-quote"));
    assert_eq!(err("\"abc\\"), WordsError::Unterminated("double-quote"));
    assert_eq!(err("\"$A"), WordsError::Unterminated("double-quote"));
    assert!(expand_words("a 'b", &vars, '\\').is_err());
}

#[test]
fn odd_inputs_do_not_panic() {
    let odd = [
        "$",
        "${",
        "${$",
        "${$}",
        "${?}",
        "${@:-x}",
        "$$",
        "$1$2",
        "${10}",
        "\\",
        "`",
        "'",
        "\"",
        "${A/",
        "${A//",
        "${A//}",
        "${A/\\",
        "${A#\\",
        "${A%%",
        "\u{0}$\u{0}",
        "${A:-${B:-${C:-${D",
        "${A/*/\\}}",
        "\"\\",
        "${FILE//*/x}",
        "${FILE//?*?/x}",
        "<<",
        "<",
        "a<<\tb",
    ];
    for word in odd {
        let _ = expand(word, &vars, '\\');
        let _ = expand_words(word, &vars, '\\');
        let _ = expand(word, &vars, '`');
    }
    let long = "${A:-".repeat(60) + &"}".repeat(60);
    assert_eq!(x(&long), "alpha");
    let mut seed = 7u32;
    let alphabet: Vec<char> = "$${}:-+?#%/\\'\"` aA*".chars().collect();
    for _ in 0..2000 {
        let word: String = (0..12)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                alphabet[(seed >> 16) as usize % alphabet.len()]
            })
            .collect();
        let _ = expand(&word, &vars, '\\');
        let _ = expand_words(&word, &vars, '`');
    }
}

#[test]
fn nesting_and_growth_are_bounded() {
    // Deeper than the bound: an error, not a stack overflow that would end the daemon.
    let deep = format!("{}x{}", "${A:-".repeat(50_000), "}".repeat(50_000));
    assert_eq!(expand(&deep, &|_| None, '\\'), Err(WordsError::TooDeep));
    let fine = format!("{}x{}", "${A:-".repeat(MAX_NESTING - 1), "}".repeat(MAX_NESTING - 1));
    assert_eq!(expand(&fine, &|_| None, '\\').unwrap(), "x");
    // A value doubled past the bound.
    let big = "a".repeat(MAX_VALUE / 2 + 1);
    let vars = |n: &str| (n == "A").then(|| big.clone());
    assert_eq!(expand("$A$A", &vars, '\\'), Err(WordsError::TooLong(MAX_VALUE)));
    assert_eq!(expand("\"$A$A\"", &vars, '\\'), Err(WordsError::TooLong(MAX_VALUE)));
    // Patterns work on short values only.
    assert_eq!(expand("${A//a*b/c}", &vars, '\\'), Err(WordsError::TooLong(MAX_PATTERN_VALUE)));
    assert_eq!(expand("${A#a}", &vars, '\\'), Err(WordsError::TooLong(MAX_PATTERN_VALUE)));
}
