//! An ordered list of header fields with case-insensitive lookup.
//!
//! Owns only storage and lookup; it knows nothing of HTTP framing or sockets.

use std::fmt;

/// Header fields in the order they were received (or added), repeated fields kept.
///
/// Names compare case-insensitively (RFC 9110 §5.1). Values are text: a received value that
/// is not UTF-8 is decoded as ISO-8859-1, byte for byte, which is what obs-text historically
/// meant (RFC 9110 §5.5), so no byte is ever lost or replaced.
///
/// # Examples
/// ```
/// let mut h = parafetch::Headers::new();
/// h.append("Set-Cookie", "a=1");
/// h.append("set-cookie", "b=2");
/// assert_eq!(h.get("SET-COOKIE"), Some("a=1"));
/// assert_eq!(h.get_all("set-cookie").collect::<Vec<_>>(), ["a=1", "b=2"]);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Headers::default()
    }

    /// Adds a field at the end, keeping any earlier field of the same name.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Replaces every field named `name` by one field with `value` (added at the end).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        self.remove(&name);
        self.entries.push((name, value.into()));
    }

    /// Removes every field named `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        before - self.entries.len()
    }

    /// The value of the first field named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The values of every field named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a field named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether the comma-separated list in the fields named `name` holds `token`
    /// (case-insensitive), e.g. `has_token("connection", "close")`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name).any(|t| t.eq_ignore_ascii_case(token))
    }

    /// The comma-separated list elements of every field named `name`, trimmed, empty
    /// elements skipped (RFC 9110 §5.6.1).
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .map(|t| t.trim_matches([' ', '\t']))
            .filter(|t| !t.is_empty())
    }

    /// Every field as `(name, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Headers {
            entries: iter
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }
}

/// Decodes a received header value: UTF-8 when valid, otherwise ISO-8859-1 byte for byte.
pub(crate) fn decode_value(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_keeps_repeats() {
        let mut h = Headers::new();
        h.append("Connection", "keep-alive, Upgrade");
        h.append("connection", "close");
        assert!(h.has_token("CONNECTION", "close"));
        assert!(h.has_token("connection", "upgrade"));
        assert_eq!(h.tokens("connection").count(), 3);
        h.set("CONNECTION", "x");
        assert_eq!(h.len(), 1);
        assert_eq!(h.get("connection"), Some("x"));
    }

    #[test]
    fn non_utf8_value_decodes_as_latin1() {
        assert_eq!(decode_value(b"caf\xe9"), "café");
        assert_eq!(decode_value("café".as_bytes()), "café");
    }
}
