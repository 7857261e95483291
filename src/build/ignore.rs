//! `.dockerignore`: which paths of a build context stay out of it, by Docker's rules (moby's
//! `patternmatcher` and its `ignorefile` reader).
//!
//! Each line is a pattern; `#` at the start of a line makes it a comment; lines are trimmed, blank
//! ones skipped; a leading `/` is dropped and the pattern is cleaned like Go's `filepath.Clean`
//! (`./a/../b` is `b`). `!` makes an exception. `*` and `?` match within one path component, `[...]`
//! one character, `**` any number of directories, `\` escapes. The last pattern that matches a path
//! or one of its parent directories decides.

/// Why a `.dockerignore` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    /// A line that is only `!`.
    #[error(".dockerignore line {line}: illegal exclusion pattern: \"!\"")]
    LoneExclusion { line: usize },
    /// A pattern Go's `filepath.Match` would reject (an unclosed `[`, a trailing `\`...).
    #[error(".dockerignore line {line}: bad pattern {pattern:?}: {reason}")]
    BadPattern { line: usize, pattern: String, reason: String },
    /// More than [`MAX_PATTERNS`] patterns: each path of the context is matched against them all.
    #[error(".dockerignore has more than {MAX_PATTERNS} patterns")]
    TooMany,
}

/// The most patterns a `.dockerignore` may hold.
pub const MAX_PATTERNS: usize = 4096;

/// The patterns of one `.dockerignore`, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    exclusion: bool,
    kind: Kind,
}

/// patternmatcher's match types: a literal path, a `**`-led suffix, or a general pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Exact(String),
    /// `**` first and no other wildcard: the path ends with this (or is it, less a leading `/`).
    Suffix(String),
    Tokens(Vec<Tok>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`: one character but `/`.
    One,
    /// `*`: any run of characters without `/`.
    Star,
    /// `**` followed by more: nothing, or anything ending in `/`.
    AnyDirs,
    /// A trailing `**`: anything.
    Rest,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Ignore {
    /// Reads a `.dockerignore`.
    pub fn parse(text: &str) -> Result<Ignore, IgnoreError> {
        let mut patterns = Vec::new();
        for (index, line) in text.split('\n').enumerate() {
            let number = index + 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            let line = if index == 0 { line.strip_prefix('\u{feff}').unwrap_or(line) } else { line };
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let exclusion = pattern.starts_with('!');
            if exclusion {
                pattern = pattern.get(1..).unwrap_or_default().trim();
                if pattern.is_empty() {
                    return Err(IgnoreError::LoneExclusion { line: number });
                }
            }
            let cleaned = clean(pattern);
            let cleaned = match cleaned.strip_prefix('/') {
                Some(rest) if !rest.is_empty() => rest.to_string(),
                _ => cleaned,
            };
            validate(&cleaned).map_err(|reason| IgnoreError::BadPattern {
                line: number,
                pattern: cleaned.clone(),
                reason,
            })?;
            if patterns.len() == MAX_PATTERNS {
                return Err(IgnoreError::TooMany);
            }
            patterns.push(Pattern { exclusion, kind: compile(&cleaned) });
        }
        Ok(Ignore { patterns })
    }

    /// Whether `rel` (relative to the context root, `/`-separated) is left out: the last pattern
    /// that matches it or one of its parent directories decides (patternmatcher's
    /// `MatchesOrParentMatches`). The context root itself is never left out.
    pub fn excludes(&self, rel: &str) -> bool {
        let rel = clean(rel.trim_start_matches('/'));
        if rel == "." || rel.is_empty() {
            return false;
        }
        let parents: Vec<&str> = rel.match_indices('/').filter_map(|(at, _)| rel.get(..at)).collect();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            if pattern.matches(&rel) || parents.iter().any(|parent| pattern.matches(parent)) {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether a directory that is left out must still be walked, because an exception (`!...`)
    /// could match something beneath it. (Docker's own walk only looks for exceptions that start
    /// with the directory's path; this also sees `!**/keep` and `!*/keep` style ones.)
    pub fn may_include_below(&self, dir_rel: &str) -> bool {
        let dir = clean(dir_rel.trim_start_matches('/'));
        let mut exceptions = self.patterns.iter().filter(|pattern| pattern.exclusion).peekable();
        if dir == "." || dir.is_empty() {
            return exceptions.peek().is_some();
        }
        let below = format!("{dir}/");
        exceptions.any(|pattern| pattern.may_match_below(&below))
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact(text) => path == text,
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str()) || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Tokens(toks) => Nfa::new(toks).run(path).accepts(),
        }
    }

    /// Whether some path starting with `prefix` (a directory path and `/`) could match.
    fn may_match_below(&self, prefix: &str) -> bool {
        match &self.kind {
            Kind::Exact(text) => text.starts_with(prefix),
            Kind::Suffix(_) => true,
            Kind::Tokens(toks) => Nfa::new(toks).run(prefix).alive(),
        }
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The syntax checks of Go's `filepath.Match`: a `\` needs a character after it, and `[...]` needs
/// at least one range, none starting with `-` or `]`, and its closing `]`.
fn validate(pattern: &str) -> Result<(), String> {
    let mut chars = pattern.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' if chars.next().is_none() => return Err("trailing backslash".into()),
            '[' => {
                if chars.peek() == Some(&'^') {
                    chars.next();
                }
                let mut ranges = 0;
                loop {
                    match chars.next() {
                        None => return Err("unclosed character class".into()),
                        Some(']') if ranges > 0 => break,
                        Some('-' | ']') => return Err("bad character class".into()),
                        Some('\\') => {
                            chars.next().ok_or("unclosed character class")?;
                        }
                        Some(_) => {}
                    }
                    if chars.peek() == Some(&'-') {
                        chars.next();
                        match chars.next() {
                            None => return Err("unclosed character class".into()),
                            Some('-' | ']') => return Err("bad character range".into()),
                            Some('\\') => {
                                chars.next().ok_or("unclosed character class")?;
                            }
                            Some(_) => {}
                        }
                    }
                    ranges += 1;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// patternmatcher's `compile`: the match type it picks and the pattern as tokens.
fn compile(pattern: &str) -> Kind {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let mut detected = Detected::Exact;
    let mut toks = Vec::new();
    let mut chars = pattern.chars().peekable();
    let mut first = true;
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        detected = Detected::Regexp;
                    }
                    toks.push(Tok::Rest);
                } else {
                    toks.push(Tok::AnyDirs);
                    detected = Detected::Regexp;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::Star);
                detected = Detected::Regexp;
            }
            '?' => {
                toks.push(Tok::One);
                detected = Detected::Regexp;
            }
            '\\' => match chars.next() {
                Some(escaped) => {
                    toks.push(Tok::Lit(escaped));
                    detected = Detected::Regexp;
                }
                None => toks.push(Tok::Lit('\\')),
            },
            '[' => {
                toks.push(class(&mut chars));
                detected = Detected::Regexp;
            }
            ']' => {
                toks.push(Tok::Lit(']'));
                detected = Detected::Regexp;
            }
            _ => toks.push(Tok::Lit(ch)),
        }
        first = false;
    }
    match detected {
        Detected::Exact => Kind::Exact(pattern.to_string()),
        Detected::Suffix => Kind::Suffix(pattern.get(2..).unwrap_or_default().to_string()),
        Detected::Prefix | Detected::Regexp => Kind::Tokens(toks),
    }
}

/// The rest of a `[...]` after its `[` (already checked by [`validate`]).
fn class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Tok {
    let negated = chars.peek() == Some(&'^');
    if negated {
        chars.next();
    }
    let mut ranges = Vec::new();
    let escaped = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, ch: char| {
        if ch == '\\' {
            chars.next().unwrap_or('\\')
        } else {
            ch
        }
    };
    while let Some(ch) = chars.next() {
        if ch == ']' && !ranges.is_empty() {
            break;
        }
        let lo = escaped(chars, ch);
        let mut hi = lo;
        if chars.peek() == Some(&'-') {
            chars.next();
            if let Some(next) = chars.next() {
                hi = escaped(chars, next);
            }
        }
        ranges.push((lo, hi));
    }
    Tok::Class { negated, ranges }
}

/// A set of positions in a token list, stepped one character at a time.
struct Nfa<'a> {
    toks: &'a [Tok],
    /// `at[i]`: about to match token `i` (`at[len]`: matched everything).
    at: Vec<bool>,
    /// `inside[i]`: within the `**/` of token `i`, which ends at a `/`.
    inside: Vec<bool>,
}

impl<'a> Nfa<'a> {
    fn new(toks: &'a [Tok]) -> Self {
        let mut nfa = Nfa { toks, at: vec![false; toks.len() + 1], inside: vec![false; toks.len()] };
        if let Some(start) = nfa.at.first_mut() {
            *start = true;
        }
        nfa.close();
        nfa
    }

    /// Follows the tokens that can match nothing.
    fn close(&mut self) {
        for (i, tok) in self.toks.iter().enumerate() {
            if !self.at.get(i).copied().unwrap_or(false) {
                continue;
            }
            match tok {
                Tok::Star | Tok::Rest => self.set_at(i + 1),
                Tok::AnyDirs => {
                    self.set_at(i + 1);
                    if let Some(inside) = self.inside.get_mut(i) {
                        *inside = true;
                    }
                }
                _ => {}
            }
        }
    }

    fn set_at(&mut self, i: usize) {
        if let Some(at) = self.at.get_mut(i) {
            *at = true;
        }
    }

    fn step(&mut self, ch: char) {
        let n = self.toks.len();
        let mut next = Nfa { toks: self.toks, at: vec![false; n + 1], inside: vec![false; n] };
        for (i, tok) in self.toks.iter().enumerate() {
            if self.inside.get(i).copied().unwrap_or(false) {
                if let Some(inside) = next.inside.get_mut(i) {
                    *inside = true;
                }
                if ch == '/' {
                    next.set_at(i + 1);
                }
            }
            if !self.at.get(i).copied().unwrap_or(false) {
                continue;
            }
            match tok {
                Tok::Lit(lit) if *lit == ch => next.set_at(i + 1),
                Tok::One if ch != '/' => next.set_at(i + 1),
                Tok::Star if ch != '/' => next.set_at(i),
                Tok::Rest => next.set_at(i),
                Tok::Class { negated, ranges } if ranges.iter().any(|&(lo, hi)| lo <= ch && ch <= hi) != *negated => {
                    next.set_at(i + 1)
                }
                _ => {}
            }
        }
        next.close();
        self.at = next.at;
        self.inside = next.inside;
    }

    fn run(mut self, text: &str) -> Self {
        for ch in text.chars() {
            if !self.alive() {
                break;
            }
            self.step(ch);
        }
        self
    }

    fn accepts(&self) -> bool {
        self.at.last().copied().unwrap_or(false)
    }

    fn alive(&self) -> bool {
        self.at.contains(&true) || self.inside.contains(&true)
    }
}

#[cfg(test)]
mod tests;
