//! The network values of the tree, parsed once: a network's name (`mkdir networks/NAME`), a container's
//! `networks` (names, one per line, in order: `eth0` first) and `aliases` (more names it answers to on its
//! networks).

use super::{quote, validate_name, ParseError};
use crate::network::MAX_LINKS;

/// How many aliases a container has at most.
pub const MAX_ALIASES: usize = 32;

/// A network's name: a container's rules (`[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`).
pub fn validate_network_name(name: &str) -> Result<(), ParseError> {
    validate_name(name)
}

/// The non-blank lines of `text`, trimmed, `#` comments skipped; each once (a repeat is refused; for
/// `fold`, in any case too: DNS names).
fn name_lines(text: &str, what: &'static str, max: usize, fold: bool) -> Result<Vec<String>, ParseError> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        validate_name(line).map_err(|_| {
            ParseError::BadSetting(what, "names [A-Za-z0-9][A-Za-z0-9_.-]{0,63}, one per line".into(), quote(line))
        })?;
        if names.iter().any(|n| n == line || (fold && n.eq_ignore_ascii_case(line))) {
            return Err(ParseError::BadSetting(what, "each name once".into(), quote(line)));
        }
        names.push(line.to_string());
    }
    if names.len() > max {
        return Err(ParseError::BadSetting(what, format!("at most {max} names"), format!("{} names", names.len())));
    }
    Ok(names)
}

/// A container's `networks`: blank is the default (`bridge`).
pub fn parse_networks(text: &str) -> Result<Vec<String>, ParseError> {
    let names = name_lines(text, "networks", MAX_LINKS, false)?;
    if let Some(mode) = names.iter().find(|n| ["none", "host"].contains(&n.as_str())) {
        return Err(ParseError::BadSetting(
            "networks",
            "network names (none and host are modes: write them to network)".into(),
            quote(mode),
        ));
    }
    Ok(names)
}

/// A container's `aliases`: blank is none.
pub fn parse_aliases(text: &str) -> Result<Vec<String>, ParseError> {
    name_lines(text, "aliases", MAX_ALIASES, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_names_in_order_each_once() {
        assert_eq!(parse_networks("front\n\nback\n").unwrap(), ["front", "back"]);
        assert_eq!(parse_networks("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_networks("bridge\n# the default\n").unwrap(), ["bridge"]);
        assert_eq!(parse_networks("Front\nfront").unwrap(), ["Front", "front"], "two networks");
        for bad in ["front\nfront\n", "a b", "-x", "none", "host", "../x", "x/y"] {
            assert!(parse_networks(bad).is_err(), "{bad:?}");
        }
        let nine: String = (0..9).map(|i| format!("n{i}\n")).collect();
        assert!(parse_networks(&nine).unwrap_err().to_string().contains("at most 8"));
        assert_eq!(parse_aliases("db\ndatabase\n").unwrap(), ["db", "database"]);
        assert!(parse_aliases("db\nDB\n").is_err());
        assert!(validate_network_name("front-1").is_ok() && validate_network_name(".x").is_err());
    }
}
