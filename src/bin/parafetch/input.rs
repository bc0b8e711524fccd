//! The URL list: command-line URLs, then the lines of `--input`, each remembering where it
//! came from so a bad URL can be reported by line number.
//!
//! Owns reading and filtering the list; it never checks URLs (the library does, at
//! `start_request`) and never fetches.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

/// Where a URL came from.
#[derive(Clone, Debug)]
pub enum Origin {
    /// The n-th URL argument (1-based).
    Arg(usize),
    /// Line n (1-based) of the input file (or stdin).
    Line(String, usize),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Arg(n) => write!(f, "argument {n}"),
            Origin::Line(file, n) => write!(f, "{file}:{n}"),
        }
    }
}

/// One URL to fetch, with its place in the input.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The URL text, trimmed.
    pub url: String,
    /// Where it came from.
    pub origin: Origin,
}

/// The URL arguments followed by the URLs of `input` (a path, or `-` for stdin).
///
/// # Errors
/// When the input cannot be opened or read: a usage error, nothing is fetched.
pub fn read(args: &[String], input: Option<&Path>) -> io::Result<Vec<Entry>> {
    let mut entries: Vec<Entry> = args
        .iter()
        .enumerate()
        .map(|(i, url)| Entry {
            url: url.trim().to_owned(),
            origin: Origin::Arg(i + 1),
        })
        .collect();
    if let Some(path) = input {
        let mut bytes = Vec::new();
        let name = if path == Path::new("-") {
            io::stdin().lock().read_to_end(&mut bytes)?;
            "<stdin>".to_owned()
        } else {
            std::fs::File::open(path)?.read_to_end(&mut bytes)?;
            path.display().to_string()
        };
        // Not UTF-8: the line still gets its number, and the URL check reports it.
        let text = String::from_utf8_lossy(&bytes);
        entries.extend(lines(&text).map(|(n, url)| Entry {
            url: url.to_owned(),
            origin: Origin::Line(name.clone(), n),
        }));
    }
    Ok(entries)
}

/// The URL lines of `text` with their 1-based numbers: trimmed, blank lines and `#`
/// comments skipped.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_blanks_and_comments_keeping_line_numbers() {
        let text = "# list\nhttp://a/\n\n  http://b/  \r\n# done\n";
        let got: Vec<_> = lines(text).collect();
        assert_eq!(got, [(2, "http://a/"), (4, "http://b/")]);
    }
}
