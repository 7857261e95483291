//! Detach keys, as Docker spells and matches them: `--detach-keys` is comma-separated keys, each one
//! character (`a`, `~`) or `ctrl-X` with X one of `a`-`z`, `@`, `[`, `\`, `]`, `^`, `_` (or `DEL`); the
//! default is `ctrl-p,ctrl-q`. The [`Matcher`] watches what is typed: the keys of the sequence are held
//! back while they match, and given back (followed by the key that broke the match) when they stop to,
//! so a lone Ctrl-P still reaches the command.

/// The default sequence: Ctrl-P, Ctrl-Q.
pub const DEFAULT: [u8; 2] = [0x10, 0x11];

/// A detach sequence: the bytes a terminal sends for its keys. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys(Vec<u8>);

impl Default for DetachKeys {
    fn default() -> DetachKeys {
        DetachKeys(DEFAULT.to_vec())
    }
}

/// A `--detach-keys` that doesn't parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown key '{0}': detach keys are comma-separated single characters or ctrl-X (X one of a-z @ [ \\ ] ^ _), \
     like ctrl-p,ctrl-q"
)]
pub struct BadKey(pub String);

impl DetachKeys {
    /// Parses Docker's syntax; an empty text is the default, as Docker takes it.
    pub fn parse(text: &str) -> Result<DetachKeys, BadKey> {
        if text.is_empty() {
            return Ok(DetachKeys::default());
        }
        let mut bytes = Vec::new();
        for key in text.split(',') {
            bytes.push(key_byte(key).ok_or_else(|| BadKey(key.to_string()))?);
        }
        Ok(DetachKeys(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The byte one key sends: a lone ASCII character is itself, `ctrl-X` is X's control code, `DEL` 127.
fn key_byte(key: &str) -> Option<u8> {
    if let [one] = key.as_bytes() {
        return one.is_ascii().then_some(*one);
    }
    if key == "DEL" {
        return Some(0x7f);
    }
    let rest = key.strip_prefix("ctrl-")?;
    match rest.as_bytes() {
        // ctrl-@ is 0, ctrl-a 1 ... ctrl-z 26, ctrl-[ 27 ... ctrl-_ 31: the key's code less 0x40.
        [c @ (b'a'..=b'z')] => Some(c - b'a' + 1),
        [c @ (b'A'..=b'Z')] => Some(c - b'A' + 1),
        [c @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_')] => Some(c - 0x40),
        _ => None,
    }
}

/// Watches typed bytes for the detach sequence.
#[derive(Debug)]
pub struct Matcher {
    keys: Vec<u8>,
    /// The start of the sequence typed so far, not yet forwarded.
    held: Vec<u8>,
}

/// What a [`Matcher`] makes of a read of the terminal.
#[derive(Debug, PartialEq, Eq)]
pub struct Fed {
    /// The bytes to send on to the command.
    pub forward: Vec<u8>,
    /// The whole sequence was typed: detach (what was typed after it in the same read is dropped).
    pub detach: bool,
}

impl Matcher {
    pub fn new(keys: &DetachKeys) -> Matcher {
        Matcher { keys: keys.0.clone(), held: Vec::new() }
    }

    /// The start of the sequence typed last and held, given back (the input has ended: it was no
    /// detach).
    pub fn take_held(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }

    /// Takes the bytes of one read.
    pub fn feed(&mut self, input: &[u8]) -> Fed {
        let mut forward = Vec::with_capacity(input.len() + self.held.len());
        for &b in input {
            self.held.push(b);
            // Give back the held bytes, oldest first, until what is left starts the sequence again
            // (`ctrl-p ctrl-p ctrl-q` detaches, the first Ctrl-P going through).
            while !self.keys.starts_with(&self.held) {
                forward.push(self.held.remove(0));
            }
            if !self.keys.is_empty() && self.held == self.keys {
                self.held.clear();
                return Fed { forward, detach: true };
            }
        }
        Fed { forward, detach: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_syntax() {
        assert_eq!(DetachKeys::parse("").unwrap().bytes(), [0x10, 0x11]);
        assert_eq!(DetachKeys::parse("ctrl-p,ctrl-q").unwrap().bytes(), [0x10, 0x11]);
        assert_eq!(DetachKeys::parse("ctrl-a").unwrap().bytes(), [1]);
        assert_eq!(
            DetachKeys::parse("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_").unwrap().bytes(),
            [0, 27, 28, 29, 30, 31]
        );
        assert_eq!(DetachKeys::parse("a,ctrl-x,~").unwrap().bytes(), [b'a', 24, b'~']);
        assert_eq!(DetachKeys::parse("DEL").unwrap().bytes(), [127]);
        assert_eq!(DetachKeys::parse("ctrl-Q").unwrap().bytes(), [17]);
        for bad in ["ctrl-", "ctrl-1", "ctrl-pq", "ab", "p,", ",", "ctrl-p,,ctrl-q", "é", "ctl-p", "ctrl-é"] {
            assert!(DetachKeys::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(DetachKeys::parse("ctrl-p,xy").unwrap_err(), BadKey("xy".into()));
    }

    fn typed(m: &mut Matcher, reads: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        for r in reads {
            let fed = m.feed(r);
            out.extend(fed.forward);
            if fed.detach {
                return (out, true);
            }
        }
        (out, false)
    }

    #[test]
    fn the_sequence_detaches_in_one_read_or_across_reads() {
        let keys = DetachKeys::default();
        assert_eq!(typed(&mut Matcher::new(&keys), &[b"ls\x10\x11"]), (b"ls".to_vec(), true));
        assert_eq!(typed(&mut Matcher::new(&keys), &[b"ls\x10", b"\x11after"]), (b"ls".to_vec(), true));
        assert_eq!(typed(&mut Matcher::new(&keys), &[b"\x10", b"\x11"]), (Vec::new(), true));
    }

    #[test]
    fn a_lone_ctrl_p_then_another_key_goes_through() {
        let keys = DetachKeys::default();
        let mut m = Matcher::new(&keys);
        // Held while it may start the sequence...
        assert_eq!(m.feed(b"\x10"), Fed { forward: Vec::new(), detach: false });
        // ...and given back, before the key that broke the match.
        assert_eq!(m.feed(b"x"), Fed { forward: b"\x10x".to_vec(), detach: false });
        assert_eq!(typed(&mut Matcher::new(&keys), &[b"a\x10b\x11c"]), (b"a\x10b\x11c".to_vec(), false));
        // Two Ctrl-P then Ctrl-Q: the first goes through, the other two detach.
        assert_eq!(typed(&mut Matcher::new(&keys), &[b"\x10\x10\x11"]), (b"\x10".to_vec(), true));
        // A lone Ctrl-Q is an ordinary key.
        assert_eq!(typed(&mut Matcher::new(&keys), &[b"\x11\x11"]), (b"\x11\x11".to_vec(), false));
    }

    #[test]
    fn longer_and_single_key_sequences() {
        let keys = DetachKeys::parse("ctrl-a,b,c").unwrap();
        assert_eq!(typed(&mut Matcher::new(&keys), &[b"\x01b", b"x"]), (b"\x01bx".to_vec(), false));
        assert_eq!(typed(&mut Matcher::new(&keys), &[b"\x01\x01bc"]), (b"\x01".to_vec(), true));
        assert_eq!(typed(&mut Matcher::new(&keys), &[b"\x01b\x01", b"bc"]), (b"\x01b".to_vec(), true));
        let one = DetachKeys::parse("ctrl-x").unwrap();
        assert_eq!(typed(&mut Matcher::new(&one), &[b"ab\x18cd"]), (b"ab".to_vec(), true));
    }

    #[test]
    fn any_bytes_never_panic() {
        let keys = DetachKeys::parse("ctrl-p,ctrl-p,ctrl-q").unwrap();
        let mut m = Matcher::new(&keys);
        let mut seed = 7u32;
        for _ in 0..10_000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let b = [(seed >> 16) as u8 % 20];
            let _ = m.feed(&b);
        }
    }
}
