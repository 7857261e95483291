//! The line level of a Dockerfile, read ahead of `parse-dockerfile`: the parser directives, where
//! each instruction's logical line begins and ends (line continuations, and the comment and blank
//! lines BuildKit skips between them), and here-documents. BuildKit finds a `<<EOF` anywhere in a
//! RUN, COPY or ADD line (parse-dockerfile only at the start of RUN and one per line), so the bodies
//! are read here, and the text handed to parse-dockerfile has them blanked out (same byte offsets,
//! same line numbers) and each marker's first `<` turned into `_`.

use super::Heredoc;

/// Bytes parse-dockerfile counts as blanks within a line.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

/// Where the line holding `pos` ends, past its `\n`.
fn after_line(b: &[u8], pos: usize) -> usize {
    b.get(pos..).and_then(|rest| rest.iter().position(|&c| c == b'\n')).map_or(b.len(), |i| pos + i + 1)
}

/// The escape character the Dockerfile's `# escape=` directive chose, and where its instructions
/// begin (past the directives and the first comment line that is not one).
pub(super) struct Directives {
    pub escape: char,
    pub body: usize,
}

/// Reads the parser directives as parse-dockerfile does: `#` lines at the very top naming `syntax`,
/// `check` or `escape`; a repeated one resets them all and ends the directives.
pub(super) fn directives(text: &str) -> Directives {
    let b = text.as_bytes();
    let mut pos = 0;
    let mut escape = '\\';
    let mut seen = [false; 3];
    while b.get(pos) == Some(&b'#') {
        let next = after_line(b, pos);
        let mut i = pos + 1;
        while b.get(i).copied().is_some_and(is_blank) {
            i += 1;
        }
        let key = ["syntax", "check", "escape"]
            .iter()
            .position(|key| b.get(i..i + key.len()).is_some_and(|word| word.eq_ignore_ascii_case(key.as_bytes())));
        let Some(key) = key else {
            pos = next;
            break;
        };
        i += ["syntax", "check", "escape"][key].len();
        while b.get(i).copied().is_some_and(is_blank) {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            pos = next;
            break;
        }
        if seen[key] {
            escape = '\\';
            pos = next;
            break;
        }
        seen[key] = true;
        i += 1;
        while b.get(i).copied().is_some_and(is_blank) {
            i += 1;
        }
        let value_end = (i..b.len()).find(|&j| b.get(j).is_some_and(|&c| is_blank(c) || c == b'\n')).unwrap_or(b.len());
        if key == 2 {
            // Anything else is an error parse-dockerfile reports.
            escape = match b.get(i..value_end) {
                Some(b"`") => '`',
                _ => '\\',
            };
        }
        pos = next;
    }
    Directives { escape, body: pos }
}

/// Where a line continuation that starts with the escape at `i` ends: the escape, optional blanks
/// (at least a space or tab before any other), then a newline.
fn continuation(b: &[u8], i: usize, esc: u8) -> Option<usize> {
    if b.get(i) != Some(&esc) {
        return None;
    }
    match b.get(i + 1) {
        Some(b'\n') => Some(i + 2),
        Some(b'\r') if b.get(i + 2) == Some(&b'\n') => Some(i + 3),
        Some(b' ' | b'\t') => {
            let mut j = i + 2;
            while b.get(j).copied().is_some_and(is_blank) {
                j += 1;
            }
            (b.get(j) == Some(&b'\n')).then_some(j + 1)
        }
        _ => None,
    }
}

/// Past the empty and comment lines that follow a continuation.
fn skip_continued(b: &[u8], mut pos: usize) -> usize {
    loop {
        match b.get(pos) {
            Some(b'\n') => pos += 1,
            Some(b'#') => pos = after_line(b, pos),
            Some(&c) if is_blank(c) => {
                let mut j = pos + 1;
                while b.get(j).copied().is_some_and(is_blank) {
                    j += 1;
                }
                match b.get(j) {
                    Some(b'\n') => pos = j + 1,
                    Some(b'#') => pos = after_line(b, j),
                    _ => return pos,
                }
            }
            _ => return pos,
        }
    }
}

/// Past blanks, empty lines, comment lines and lone continuations between instructions.
fn skip_between(b: &[u8], mut pos: usize, esc: u8) -> usize {
    loop {
        match b.get(pos) {
            Some(&c) if is_blank(c) || c == b'\n' => pos += 1,
            Some(b'#') => pos = after_line(b, pos),
            Some(_) => match continuation(b, pos, esc) {
                Some(next) => pos = skip_continued(b, next),
                None => return pos,
            },
            None => return pos,
        }
    }
}

/// One logical line from `start` (stopping at `limit`): the stretches of content between its
/// continuations, where the content ends and where the next line begins.
pub(super) fn walk(b: &[u8], start: usize, limit: usize, esc: u8) -> (Vec<(usize, usize)>, usize, usize) {
    let limit = limit.min(b.len());
    let mut segments = Vec::new();
    let mut from = start;
    let mut i = start;
    while i < limit {
        match b.get(i) {
            Some(b'\n') => {
                let end = if i > from && b.get(i - 1) == Some(&b'\r') { i - 1 } else { i };
                segments.push((from, end));
                return (segments, end, i + 1);
            }
            Some(&c) if c == esc => {
                if let Some(next) = continuation(b, i, esc) {
                    segments.push((from, i));
                    from = skip_continued(b, next);
                    i = from;
                    continue;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    if from < limit {
        segments.push((from, limit));
    }
    (segments, limit, limit.max(from))
}

/// The text of `start..end` with its continuations removed, lines joined as BuildKit joins them
/// (directly, leading blanks of a continued line kept).
pub(super) fn join(text: &str, start: usize, end: usize, esc: char) -> String {
    let (segments, _, _) = walk(text.as_bytes(), start, end, esc as u8);
    segments.iter().filter_map(|&(s, e)| text.get(s..e)).collect()
}

/// The text of `start..end` for a reader: continued lines trimmed and joined with one space.
pub(super) fn display(text: &str, start: usize, end: usize, esc: char) -> String {
    let (segments, _, _) = walk(text.as_bytes(), start, end, esc as u8);
    let pieces: Vec<&str> =
        segments.iter().filter_map(|&(s, e)| text.get(s..e)).map(str::trim).filter(|p| !p.is_empty()).collect();
    pieces.join(" ")
}

/// One instruction's logical line, and the here-documents that follow it.
pub(super) struct Logical {
    pub start: usize,
    pub end: usize,
    pub heredocs: Vec<Heredoc>,
}

/// A here-document that never found its closing line: where its instruction starts and where its
/// marker is.
pub(super) struct Unterminated {
    pub instruction: usize,
    pub marker: usize,
}

pub(super) struct Prepass {
    pub logicals: Vec<Logical>,
    /// The text for parse-dockerfile: bodies blanked, markers broken.
    pub masked: String,
    pub unterminated: Option<Unterminated>,
}

/// Finds the logical lines and reads the here-documents of RUN, COPY and ADD lines.
pub(super) fn prepass(text: &str, d: &Directives) -> Prepass {
    let b = text.as_bytes();
    let esc = d.escape as u8;
    let mut masked = b.to_vec();
    let mut logicals = Vec::new();
    let mut unterminated = None;
    let mut pos = skip_between(b, d.body, esc);
    'lines: while pos < b.len() {
        let start = pos;
        let (segments, end, next) = walk(b, start, b.len(), esc);
        let joined: String = segments.iter().filter_map(|&(s, e)| text.get(s..e)).collect();
        let markers = heredoc_markers(&joined);
        // Where each byte of the joined line was, for the markers to break (only if there are any).
        let offsets: Vec<usize> =
            if markers.is_empty() { Vec::new() } else { segments.iter().flat_map(|&(s, e)| s..e).collect() };
        let mut heredocs = Vec::new();
        let mut body_pos = next;
        for (at, marker) in markers {
            let marker_offset = offsets.get(at).copied().unwrap_or(start);
            if let Some(byte) = masked.get_mut(marker_offset) {
                *byte = b'_';
            }
            let Some((body, after)) = read_body(text, body_pos, &marker) else {
                unterminated = Some(Unterminated { instruction: start, marker: marker_offset });
                logicals.push(Logical { start, end, heredocs });
                break 'lines;
            };
            for byte in masked.get_mut(body_pos..after).unwrap_or_default() {
                if *byte != b'\n' {
                    *byte = b' ';
                }
            }
            heredocs.push(Heredoc { name: marker.name, body, expand: marker.expand, strip_tabs: marker.strip_tabs });
            body_pos = after;
        }
        logicals.push(Logical { start, end, heredocs });
        pos = skip_between(b, body_pos.max(next), esc);
    }
    // Only ASCII bytes were replaced, and only whole lines of other bytes, so this stays UTF-8.
    let masked = String::from_utf8(masked).unwrap_or_else(|_| text.to_string());
    Prepass { logicals, masked, unterminated }
}

/// Reads a body from `pos` up to the line that is the marker's name (less leading tabs for `<<-`).
fn read_body(text: &str, mut pos: usize, marker: &Marker) -> Option<(String, usize)> {
    let b = text.as_bytes();
    let mut body = String::new();
    while pos < b.len() {
        let next = after_line(b, pos);
        let line = text.get(pos..next).unwrap_or_default();
        let mut candidate = line.trim_end_matches(['\r', '\n']);
        if marker.strip_tabs {
            candidate = candidate.trim_start_matches('\t');
        }
        if candidate == marker.name {
            return Some((body, next));
        }
        body.push_str(line);
        pos = next;
    }
    None
}

/// A `<<EOF` word: the delimiter, whether it was quoted, whether it was `<<-`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Marker {
    pub name: String,
    pub expand: bool,
    pub strip_tabs: bool,
}

/// The markers in a joined RUN/COPY/ADD line (or ONBUILD of one), not in the JSON form: each with
/// the byte offset of its first `<` in the line.
fn heredoc_markers(line: &str) -> Vec<(usize, Marker)> {
    if !line.contains("<<") {
        return Vec::new();
    }
    let words: Vec<(usize, &str)> =
        raw_words(line).into_iter().filter_map(|(s, e)| line.get(s..e).map(|word| (s, word))).collect();
    let mut keyword = 0;
    if words.first().is_some_and(|(_, word)| word.eq_ignore_ascii_case("ONBUILD")) {
        keyword = 1;
    }
    let Some((_, name)) = words.get(keyword) else { return Vec::new() };
    if !["RUN", "COPY", "ADD"].iter().any(|kw| name.eq_ignore_ascii_case(kw)) {
        return Vec::new();
    }
    let args = words.iter().skip(keyword + 1).find(|(_, word)| !word.starts_with("--"));
    if let Some(rest) = args.and_then(|&(at, _)| line.get(at..)).map(str::trim) {
        if rest.starts_with('[') && serde_json::from_str::<Vec<String>>(rest).is_ok() {
            return Vec::new();
        }
    }
    words
        .iter()
        .skip(keyword + 1)
        .filter_map(|&(at, word)| {
            let digits = word.bytes().take_while(u8::is_ascii_digit).count();
            parse_marker(word).map(|marker| (at + digits, marker))
        })
        .collect()
}

/// A word as BuildKit reads a heredoc marker (`^(\d*)<<(-?)\s*([^<]*)$`, the rest one shell word).
pub(super) fn parse_marker(word: &str) -> Option<Marker> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let rest = word.get(digits..)?.strip_prefix("<<")?;
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\r', '\x0c']);
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let (name, quoted) = unquote_one(rest)?;
    Some(Marker { name, expand: !quoted, strip_tabs })
}

/// The one word `text` makes once quotes and `\` escapes are removed, and whether quotes were used.
fn unquote_one(text: &str) -> Option<(String, bool)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\'' => {
                quoted = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                quoted = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '$' | '\\') => word.push(c),
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    match <[String; 1]>::try_from(words) {
        Ok([name]) => Some((name, quoted)),
        Err(_) => None,
    }
}

/// Byte spans of the words of a line as BuildKit's lexer splits it for heredocs (quotes and `\`
/// escapes kept, `<<` glued to the blanks after it); none at all if a quote is left open.
fn raw_words(line: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start: Option<usize> = None;
    let mut chars = line.char_indices().peekable();
    while let Some((i, ch)) = chars.next() {
        if ch.is_whitespace() {
            if let Some(s) = start.take() {
                spans.push((s, i));
            }
            continue;
        }
        start.get_or_insert(i);
        match ch {
            '\'' => loop {
                match chars.next() {
                    None => return Vec::new(),
                    Some((_, '\'')) => break,
                    Some(_) => {}
                }
            },
            '"' => loop {
                match chars.next() {
                    None => return Vec::new(),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => {
                        chars.next();
                    }
                    Some(_) => {}
                }
            },
            '\\' => {
                chars.next();
            }
            '<' if chars.peek().is_some_and(|&(_, c)| c == '<') => {
                chars.next();
                while chars.next_if(|&(_, c)| matches!(c, ' ' | '\t' | '\r')).is_some() {}
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, line.len()));
    }
    spans
}

/// The words of ENV, LABEL and ARG arguments as BuildKit's `parseWords` splits them: on unquoted
/// whitespace, quotes and escapes kept for the later substitution.
pub(super) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = rest.chars().peekable();
    while let Some(mut ch) = chars.next() {
        if !in_word {
            if ch.is_whitespace() {
                continue;
            }
            in_word = true;
        }
        match quote {
            None => {
                if ch.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    in_word = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    let Some(next) = chars.next() else { continue };
                    word.push(ch);
                    ch = next;
                }
                word.push(ch);
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                }
                if ch == escape && q != '\'' {
                    let Some(next) = chars.next() else {
                        quote = None;
                        continue;
                    };
                    word.push(ch);
                    ch = next;
                }
                word.push(ch);
            }
        }
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// Line starts, to turn byte offsets into 1-based lines and character columns.
pub(super) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// The 1-based line and column (in characters) of byte `offset`.
    pub fn locate(&self, text: &str, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        (line, column(text, start, offset))
    }

    /// A 1-based byte column on a 1-based line turned into a character column.
    pub fn char_column(&self, text: &str, line: usize, byte_column: usize) -> usize {
        let Some(&start) = self.starts.get(line.saturating_sub(1)) else { return byte_column.max(1) };
        column(text, start, start + byte_column.saturating_sub(1))
    }
}

/// 1 + the characters between `start` and `offset` (stopping short of a split character).
fn column(text: &str, start: usize, offset: usize) -> usize {
    let mut end = offset.min(text.len());
    while end > start && !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(start..end).map_or(1, |s| s.chars().count() + 1)
}
