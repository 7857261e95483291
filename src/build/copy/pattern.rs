//! Go's `filepath.Match` for one path component, as Docker matches a `COPY` source: `*` (any run of
//! characters), `?` (one character), `[...]` and `[^...]` (classes with `a-z` ranges) and `\` escapes.
//! A malformed pattern is an error, found even when the name would not have matched.

/// A pattern that `filepath.Match` would answer `ErrBadPattern` for.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BadPattern;

/// Whether `component` holds any character `filepath.Glob` treats as special.
pub(super) fn has_meta(component: &[u8]) -> bool {
    component.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
}

/// Whether the name `name` matches `pattern` (one component each, no `/`).
pub(super) fn matches(pattern: &[u8], name: &[u8]) -> Result<bool, BadPattern> {
    let p: Vec<char> = String::from_utf8_lossy(pattern).chars().collect();
    let s: Vec<char> = String::from_utf8_lossy(name).chars().collect();
    validate(&p)?;
    let (mut pi, mut si) = (0, 0);
    // Where the last `*` stood in the pattern, and the first name position it has not yet taken.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if let Some(&c) = p.get(pi) {
            match c {
                '*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                '[' => {
                    let (hit, next) = class(&p, pi, s[si])?;
                    if hit {
                        pi = next;
                        si += 1;
                        continue;
                    }
                }
                '\\' if p.get(pi + 1) == Some(&s[si]) => {
                    pi += 2;
                    si += 1;
                    continue;
                }
                // An escaped character that differs: never the literal backslash arm below.
                '\\' => {}
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return Ok(false),
        }
    }
    Ok(p[pi.min(p.len())..].iter().all(|c| *c == '*'))
}

/// Checks every class and escape of the pattern, as Go does before it answers.
fn validate(p: &[char]) -> Result<(), BadPattern> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '[' => i = class(p, i, '\0')?.1,
            '\\' if i + 1 >= p.len() => return Err(BadPattern),
            '\\' => i += 2,
            _ => i += 1,
        }
    }
    Ok(())
}

/// Matches `c` against the class opening at `p[at]`; answers whether it matched and where the class ends.
fn class(p: &[char], at: usize, c: char) -> Result<(bool, usize), BadPattern> {
    let mut i = at + 1;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let (mut hit, mut ranges) = (false, 0);
    loop {
        if p.get(i) == Some(&']') && ranges > 0 {
            i += 1;
            break;
        }
        let lo = escaped(p, &mut i)?;
        let hi = if p.get(i) == Some(&'-') {
            i += 1;
            escaped(p, &mut i)?
        } else {
            lo
        };
        if lo <= c && c <= hi {
            hit = true;
        }
        ranges += 1;
    }
    Ok((hit != negated, i))
}

/// One character of a class, `\` escapes allowed; a bare `-` or `]` there, or the pattern's end, is bad.
fn escaped(p: &[char], i: &mut usize) -> Result<char, BadPattern> {
    let mut c = *p.get(*i).ok_or(BadPattern)?;
    if c == '-' || c == ']' {
        return Err(BadPattern);
    }
    if c == '\\' {
        *i += 1;
        c = *p.get(*i).ok_or(BadPattern)?;
    }
    *i += 1;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match_cases() {
        let m = |p: &str, s: &str| matches(p.as_bytes(), s.as_bytes());
        // From Go's own match_test.go.
        for (p, s, want) in [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*/b", "abc/b", true),
            ("a*b*c*d*e*", "axbxcxdxe", true),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("\\*", "\\", false),
            ("\\\\", "\\", true),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("[\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("*.txt", ".hidden.txt", true),
            ("*x", "xxx", true),
        ] {
            assert_eq!(m(p, s), Ok(want), "{p} {s}");
        }
        for p in ["[", "[^", "[^bc", "a[", "a\\", "[]a]", "[-]", "[x-]", "[-x]", "[a-b-c]", "*x[", "[\\"] {
            assert_eq!(m(p, "a"), Err(BadPattern), "{p}");
        }
        assert!(has_meta(b"a*") && has_meta(b"[x]") && !has_meta(b"plain.txt"));
    }
}
