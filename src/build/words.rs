//! Docker's variable substitution in Dockerfile words, as BuildKit's shell lexer
//! (`frontend/dockerfile/shell/lex.go`) does it: `$VAR`, `${VAR}`, the `${VAR:-word}` family, the
//! `${VAR#pattern}` / `${VAR%pattern}` / `${VAR/from/to}` edits, quote removal (`'...'` literal,
//! `"..."` with substitution) and the Dockerfile's escape character.
//!
//! [`expand`] gives one word (BuildKit's `ProcessWord`: whitespace kept, nothing split);
//! [`expand_words`] splits on unquoted whitespace after substitution (BuildKit's `ProcessWords`: a
//! variable's value outside quotes is split on its whitespace, one inside quotes is not; quotes or
//! escapes inside a value are never re-read). An unset variable is the empty string.

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordsError {
    /// A quote, `}` or `/` was opened and never closed.
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(&'static str),
    /// `${` without its `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${VAR/pattern` without the `/` before the replacement.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${:...}` or `${{...`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// A `${VAR<op>...}` this lexer does not know (e.g. `${#VAR}`, `${VAR:#x}`).
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${VAR?message}` with VAR unset, or `${VAR:?message}` with VAR unset or empty.
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    /// More than [`MAX_NESTING`] substitutions inside one another.
    #[error("substitutions nested more than {MAX_NESTING} deep")]
    TooDeep,
    /// A value longer than [`MAX_VALUE`] bytes (or than [`MAX_PATTERN_VALUE`] for a pattern to work on).
    #[error("a substituted value of more than {0} bytes")]
    TooLong(usize),
    /// A `#`, `%` or `/` pattern with a bad escape.
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern { pattern: String, reason: String },
}

/// Expands one word: substitutes variables, removes quotes and escapes, keeps whitespace.
pub fn expand(word: &str, vars: &dyn Fn(&str) -> Option<String>, escape: char) -> Result<String, WordsError> {
    Lexer::new(word, vars, escape).until(None, false).map(|(result, _)| result)
}

/// Expands a line and splits it into words on unquoted whitespace (after substitution).
pub fn expand_words(
    text: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<String>, WordsError> {
    Lexer::new(text, vars, escape).until(None, false).map(|(_, words)| words)
}

/// The words being collected while a line is expanded (BuildKit's `wordsStruct`).
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    /// A character that splits words when it is whitespace.
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    /// A variable's value outside quotes: split on its whitespace.
    fn add_split(&mut self, text: &str) {
        text.chars().for_each(|ch| self.add_char(ch));
    }

    /// Quoted text: never split.
    fn add_raw(&mut self, text: &str) {
        self.buf.push_str(text);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

/// How deep substitutions may nest (`${A:-${B:-...}}`): the lexer recurses once per level.
pub const MAX_NESTING: usize = 64;
/// The most bytes one expanded word may hold (so `ENV A=$A$A` forty times can't take the memory).
pub const MAX_VALUE: usize = 1 << 20;
/// The most bytes of a value a `#`, `%` or `/` pattern works on (its matching is quadratic).
pub const MAX_PATTERN_VALUE: usize = 64 << 10;

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    vars: &'a dyn Fn(&str) -> Option<String>,
    escape: char,
}

impl<'a> Lexer<'a> {
    fn new(text: &str, vars: &'a dyn Fn(&str) -> Option<String>, escape: char) -> Self {
        Lexer { chars: text.chars().collect(), pos: 0, depth: 0, vars, escape }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.vars)(name)
    }

    /// Reads up to `stop` (consumed) or the end, giving the expanded text and its words. `raw` keeps
    /// escape characters in the result (for `#`, `%` and `/` patterns, which read their own escapes).
    fn until(&mut self, stop: Option<char>, raw: bool) -> Result<(String, Vec<String>), WordsError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.dollar()?;
                    words.add_split(&value);
                    result.push_str(&value);
                    if result.len() > MAX_VALUE {
                        return Err(WordsError::TooLong(MAX_VALUE));
                    }
                }
                '<' => {
                    let text = self.heredoc_marker();
                    words.add_raw(&text);
                    result.push_str(&text);
                }
                '\'' => {
                    let text = self.single_quoted()?;
                    words.add_raw(&text);
                    result.push_str(&text);
                }
                '"' => {
                    let text = self.double_quoted(raw)?;
                    words.add_raw(&text);
                    result.push_str(&text);
                }
                _ => {
                    self.pos += 1;
                    if ch == self.escape {
                        if raw {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // An escape at the very end is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some('}') => Err(WordsError::Unterminated("}")),
            Some(_) => Err(WordsError::Unterminated("/")),
            None => Ok((result, words.finish())),
        }
    }

    /// `<<` and the blanks after it stay one word, as BuildKit keeps `<< EOF` together.
    fn heredoc_marker(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.pos += 1;
        let mut text = "<<".to_string();
        while let Some(ch @ (' ' | '\t' | '\r')) = self.peek() {
            text.push(ch);
            self.pos += 1;
        }
        text
    }

    fn single_quoted(&mut self) -> Result<String, WordsError> {
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.next() {
                None => return Err(WordsError::Unterminated("single-quote")),
                Some('\'') => return Ok(text),
                Some(ch) => text.push(ch),
            }
        }
    }

    fn double_quoted(&mut self, raw: bool) -> Result<String, WordsError> {
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(WordsError::Unterminated("double-quote")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(text);
                }
                Some('$') => {
                    text.push_str(&self.dollar()?);
                    if text.len() > MAX_VALUE {
                        return Err(WordsError::TooLong(MAX_VALUE));
                    }
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.escape {
                        if raw {
                            text.push(ch);
                        }
                        match self.peek() {
                            // The loop then reports the missing quote.
                            None => continue,
                            // Only these are escaped inside double quotes; otherwise the escape stays.
                            Some(next) if next == '"' || next == '$' || next == self.escape => {
                                ch = next;
                                self.pos += 1;
                            }
                            Some(_) => {}
                        }
                    }
                    text.push(ch);
                }
            }
        }
    }

    /// A variable name after `$`: digits (`$1`), one special parameter (`$@`, `$?`...), or letters,
    /// digits and `_`.
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(ch) if ch.is_ascii_digit() => {
                while let Some(digit) = self.peek().filter(char::is_ascii_digit) {
                    name.push(digit);
                    self.pos += 1;
                }
                return name;
            }
            Some(ch @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => {
                self.pos += 1;
                name.push(ch);
                return name;
            }
            _ => {}
        }
        while let Some(ch) = self.peek().filter(|ch| ch.is_alphanumeric() || *ch == '_') {
            name.push(ch);
            self.pos += 1;
        }
        name
    }

    /// A `$` substitution, at most [`MAX_NESTING`] inside one another.
    fn dollar(&mut self) -> Result<String, WordsError> {
        if self.depth >= MAX_NESTING {
            return Err(WordsError::TooDeep);
        }
        self.depth += 1;
        let value = self.dollar_at();
        self.depth -= 1;
        value
    }

    fn dollar_at(&mut self) -> Result<String, WordsError> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.var(&name).unwrap_or_default());
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(WordsError::MissingBrace),
            Some('{' | '}' | ':') => return Err(WordsError::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name();
        match self.next() {
            None => Err(WordsError::MissingBrace),
            Some('}') => Ok(self.var(&name).unwrap_or_default()),
            Some('/') => self.replace(&name),
            Some(op @ ('+' | '-' | '?' | '#' | '%')) => self.modifier(&name, op, false),
            Some(':') => match self.next() {
                None => Err(WordsError::MissingBrace),
                Some(op) => self.modifier(&name, op, true),
            },
            Some(other) => Err(WordsError::UnsupportedModifier(other.to_string())),
        }
    }

    /// The word after the operator, up to `}`.
    fn word_to_brace(&mut self, raw: bool) -> Result<String, WordsError> {
        match self.until(Some('}'), raw) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(WordsError::MissingBrace),
            Err(e) => Err(e),
        }
    }

    /// `${name<op>word}`, `colon` when written `${name:<op>word}` (an empty value then counts as unset).
    fn modifier(&mut self, name: &str, op: char, colon: bool) -> Result<String, WordsError> {
        let label = if colon { format!(":{op}") } else { op.to_string() };
        let pattern_op = op == '#' || op == '%';
        if colon && pattern_op {
            return Err(WordsError::UnsupportedModifier(label));
        }
        let word = self.word_to_brace(pattern_op)?;
        let value = self.var(name);
        let set = value.as_deref().is_some_and(|v| !(colon && v.is_empty()));
        match op {
            '-' => Ok(if set { value.unwrap_or_default() } else { word }),
            '+' => Ok(if set { word } else { String::new() }),
            '?' => {
                if set {
                    return Ok(value.unwrap_or_default());
                }
                let message = if !word.is_empty() {
                    word
                } else if value.is_none() {
                    "is not allowed to be unset".to_string()
                } else {
                    "is not allowed to be empty".to_string()
                };
                Err(WordsError::Required { name: name.to_string(), message })
            }
            '#' | '%' => {
                let (greedy, pattern) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let pattern = Pattern::parse(pattern)?;
                let value = value.unwrap_or_default();
                if value.len() > MAX_PATTERN_VALUE {
                    return Err(WordsError::TooLong(MAX_PATTERN_VALUE));
                }
                Ok(if op == '#' { pattern.trim_prefix(&value, greedy) } else { pattern.trim_suffix(&value, greedy) })
            }
            _ => Err(WordsError::UnsupportedModifier(label)),
        }
    }

    /// `${name/pattern/replacement}` (first match) or `${name//pattern/replacement}` (every match).
    fn replace(&mut self, name: &str) -> Result<String, WordsError> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let pattern = match self.until(Some('/'), true) {
            Ok((pattern, _)) => pattern,
            Err(_) if self.peek().is_none() => return Err(WordsError::MissingSlash),
            Err(e) => return Err(e),
        };
        let replacement = self.word_to_brace(true)?;
        let value = self.var(name).unwrap_or_default();
        if value.len() > MAX_PATTERN_VALUE {
            return Err(WordsError::TooLong(MAX_PATTERN_VALUE));
        }
        Ok(Pattern::parse(&pattern)?.replace(&value, &replacement, all))
    }
}

/// A shell pattern of `${VAR#...}` and friends: `*` any string, `?` any character, `\` escapes `*`,
/// `?` and `\` (and is dropped before `}` and `/`). No bracket expressions, as in BuildKit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    One,
    Star,
}

struct Pattern(Vec<Tok>);

impl Pattern {
    fn parse(pattern: &str) -> Result<Pattern, WordsError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while let Some(&ch) = chars.get(i) {
            i += 1;
            match ch {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::One),
                '\\' => match chars.get(i) {
                    Some('}' | '/') => {}
                    Some(&escaped @ ('*' | '?' | '\\')) => {
                        toks.push(Tok::Lit(escaped));
                        i += 1;
                    }
                    other => {
                        let shown = other.map(char::to_string).unwrap_or_default();
                        return Err(WordsError::InvalidPattern {
                            pattern: pattern.to_string(),
                            reason: format!("invalid escape '\\{shown}'"),
                        });
                    }
                },
                _ => toks.push(Tok::Lit(ch)),
            }
        }
        Ok(Pattern(toks))
    }

    /// The shortest and longest `end` such that `value[start..end]` matches the whole pattern.
    fn ends_from(&self, value: &[char], start: usize) -> Option<(usize, usize)> {
        let toks = &self.0;
        let n = toks.len();
        let close = |states: &mut Vec<bool>| {
            for i in 0..n {
                if states[i] && toks[i] == Tok::Star {
                    states[i + 1] = true;
                }
            }
        };
        let mut states = vec![false; n + 1];
        states[0] = true;
        close(&mut states);
        let mut found: Option<(usize, usize)> = None;
        let mut note = |end: usize| found = Some(found.map_or((end, end), |(first, _)| (first, end)));
        if states[n] {
            note(start);
        }
        for (k, &ch) in value.iter().enumerate().skip(start) {
            let mut next = vec![false; n + 1];
            for (i, tok) in toks.iter().enumerate() {
                if !states[i] {
                    continue;
                }
                match *tok {
                    Tok::Lit(lit) if lit == ch => next[i + 1] = true,
                    Tok::One => next[i + 1] = true,
                    Tok::Star => next[i] = true,
                    Tok::Lit(_) => {}
                }
            }
            close(&mut next);
            if !next.contains(&true) {
                break;
            }
            if next[n] {
                note(k + 1);
            }
            states = next;
        }
        found
    }

    fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        match self.ends_from(&chars, 0) {
            Some((shortest, longest)) => {
                chars.get(if greedy { longest } else { shortest }..).unwrap_or_default().iter().collect()
            }
            None => value.to_string(),
        }
    }

    /// Trims a suffix by matching the reversed pattern against the reversed value.
    fn trim_suffix(&self, value: &str, greedy: bool) -> String {
        let reversed = Pattern(self.0.iter().rev().copied().collect());
        let chars: Vec<char> = value.chars().rev().collect();
        match reversed.ends_from(&chars, 0) {
            Some((shortest, longest)) => {
                chars.get(if greedy { longest } else { shortest }..).unwrap_or_default().iter().rev().collect()
            }
            None => value.to_string(),
        }
    }

    /// Replaces the leftmost-longest match (or every such match, left to right, as Go's
    /// `ReplaceAllString` walks them).
    fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut last_end = 0;
        let mut search = 0;
        while search <= chars.len() {
            let Some((start, end)) =
                (search..=chars.len()).find_map(|s| self.ends_from(&chars, s).map(|(_, longest)| (s, longest)))
            else {
                break;
            };
            out.extend(chars.get(last_end..start).unwrap_or_default());
            if end > last_end || start == 0 {
                out.push_str(replacement);
            }
            last_end = end;
            if !all {
                break;
            }
            search = if search + 1 > end { search + 1 } else { end };
        }
        out.extend(chars.get(last_end..).unwrap_or_default());
        out
    }
}

#[cfg(test)]
mod tests;
