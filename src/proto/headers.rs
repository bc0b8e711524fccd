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
#[derive(Clone, Default)]
pub struct Headers {
    /// Every name and value, back to back: one allocation for a whole head, not two per
    /// field (a response has a dozen fields and this is the per-request hot path).
    text: String,
    /// Per field: where its name ends and its value ends in `text` (each starts where the
    /// one before ends).
    fields: Vec<Field>,
}

#[derive(Clone, Copy, Debug)]
struct Field {
    start: u32,
    name_end: u32,
    end: u32,
}

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Headers::default()
    }

    /// An empty list with room for `fields` fields holding `text` bytes of names and values.
    pub fn with_capacity(fields: usize, text: usize) -> Self {
        Headers {
            text: String::with_capacity(text),
            fields: Vec::with_capacity(fields),
        }
    }

    /// Records the field whose text starts at `start`, with its name ending at `name_end`
    /// and its value at the end of the text.
    fn push_field(&mut self, start: usize, name_end: usize) {
        // Heads are bounded far below 4 GiB; a caller piling up more text saturates.
        let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        self.fields.push(Field {
            start: at(start),
            name_end: at(name_end),
            end: at(self.text.len()),
        });
    }

    /// Adds a field at the end, keeping any earlier field of the same name.
    pub fn append(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        let start = self.text.len();
        self.text.push_str(name.as_ref());
        let name_end = self.text.len();
        self.text.push_str(value.as_ref());
        self.push_field(start, name_end);
    }

    /// Adds a received field: the value is decoded as UTF-8 when valid, else ISO-8859-1.
    pub(super) fn append_received(&mut self, name: &str, value: &[u8]) {
        let start = self.text.len();
        self.text.push_str(name);
        let name_end = self.text.len();
        push_decoded(&mut self.text, value);
        self.push_field(start, name_end);
    }

    /// Replaces every field named `name` by one field with `value` (added at the end).
    pub fn set(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) {
        self.remove(name.as_ref());
        self.append(name, value);
    }

    /// Removes every field named `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        let text = &self.text;
        self.fields
            .retain(|f| !text[f.start as usize..f.name_end as usize].eq_ignore_ascii_case(name));
        // The removed fields' text stays until the list is dropped: removal is rare.
        before - self.fields.len()
    }

    fn name_of(&self, f: &Field) -> &str {
        &self.text[f.start as usize..f.name_end as usize]
    }

    fn value_of(&self, f: &Field) -> &str {
        &self.text[f.name_end as usize..f.end as usize]
    }

    /// The value of the first field named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| self.name_of(f).eq_ignore_ascii_case(name))
            .map(|f| self.value_of(f))
    }

    /// The values of every field named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |f| self.name_of(f).eq_ignore_ascii_case(name))
            .map(|f| self.value_of(f))
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
        self.fields
            .iter()
            .map(|f| (self.name_of(f), self.value_of(f)))
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

/// Fields whose values are secrets: `Debug` never shows them.
const SECRET_FIELDS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Lists the fields in order, with the values of credentials and cookies
/// (`Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`) shown as `***`, so a
/// logged request or response never leaks them.
impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.iter().map(|(name, value)| {
            let secret = SECRET_FIELDS.iter().any(|s| name.eq_ignore_ascii_case(s));
            (name, if secret { "***" } else { value })
        });
        f.debug_list().entries(shown).finish()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut h = Headers::new();
        for (n, v) in iter {
            h.append(n, v);
        }
        h
    }
}

/// Appends a received value: UTF-8 when valid, otherwise ISO-8859-1 byte for byte.
fn push_decoded(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => out.extend(bytes.iter().map(|&b| b as char)),
    }
}

/// Decodes a received header value: UTF-8 when valid, otherwise ISO-8859-1 byte for byte.
pub(super) fn decode_value(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    push_decoded(&mut s, bytes);
    s
}

#[cfg(test)]
mod tests {

    #[test]
    fn debug_never_shows_credentials_or_cookies() {
        let mut h = Headers::new();
        h.append("Authorization", "Bearer t0ken");
        h.append("proxy-authorization", "Basic c2VjcmV0");
        h.append("Cookie", "sid=abc");
        h.append("Set-Cookie", "sid=abc; HttpOnly");
        h.append("Accept", "*/*");
        let shown = format!("{h:?}");
        for secret in ["t0ken", "c2VjcmV0", "sid=abc"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("\"*/*\""), "{shown}");
        assert_eq!(
            h.get("authorization"),
            Some("Bearer t0ken"),
            "values stay readable"
        );
    }
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
        h.append("A", "1");
        h.append("B", "2");
        assert_eq!(h.remove("a"), 1);
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [("CONNECTION", "x"), ("B", "2")]
        );
        let same: Headers = [("CONNECTION", "x"), ("B", "2")].into_iter().collect();
        assert_eq!(h, same);
    }

    #[test]
    fn non_utf8_value_decodes_as_latin1() {
        assert_eq!(decode_value(b"caf\xe9"), "café");
        assert_eq!(decode_value("café".as_bytes()), "café");
        let mut h = Headers::new();
        h.append_received("X", b"caf\xe9");
        assert_eq!(h.get("x"), Some("café"));
    }
}
