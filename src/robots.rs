//! robots.txt (RFC 9309): parse one file for one product token, then answer "may this path
//! be fetched?" and "how long between requests?".
//!
//! Owns the parsing and the matching, nothing else: it is sans-IO. It never fetches
//! `/robots.txt`, never reads the clock and never decides what an HTTP status means; the
//! caller brings the body (cut at [`MAX_ROBOTS_BYTES`]) or picks [`Robots::allow_all`] (a
//! 4xx) or [`Robots::disallow_all`] (a 5xx, or unreachable), keeps one [`Robots`] per
//! origin, and asks [`Robots::allowed`] before each request. The fetcher's `obey_robots`
//! uses it: a refused URL never reaches the network, and [`Robots::crawl_delay`] spaces the
//! requests to that host.
//!
//! Google's open-source parser (github.com/google/robotstxt) is the reference where RFC 9309
//! leaves room: its accepted misspellings of keys, its colon-less `key value` lines, a user
//! agent read up to its first character outside `[A-Za-z_-]`, lines cut at 16 663 bytes,
//! `Allow: /dir/index.html` also allowing `/dir/`, and its percent-encoding normalisation.
//! One deliberate difference: the path asked about is normalised like the patterns, so a
//! raw `/ä` and `/%C3%A4` are the same path (Google expects the caller to have escaped it).
//!
//! Only what the product token needs is kept: the rules of the groups that name it (all of
//! them, combined), else of the `*` groups, their crawl-delay, and the sitemaps. Patterns
//! are normalised and sorted once, at parse. A hostile file stays bounded: at most
//! [`MAX_ROBOTS_BYTES`] are read, lines are cut at [`MAX_LINE_BYTES`], at most [`MAX_RULES`]
//! rules and [`MAX_SITEMAPS`] sitemaps are kept, and matching a path against one rule costs
//! time linear in the two (no backtracking), so no pattern can make it blow up.
//!
//! # Examples
//! ```
//! use parafetch::robots::{Robots, agent_token};
//! let body = b"User-agent: *\nDisallow: /private/\nAllow: /private/open\nCrawl-delay: 2.5\n";
//! let robots = Robots::parse(body, agent_token("parafetch/0.1 (+https://example.com)"));
//! assert!(robots.allowed("/index.html?page=2"));
//! assert!(!robots.allowed("/private/x"));
//! assert!(robots.allowed("/private/open/y"));
//! assert_eq!(robots.crawl_delay(), Some(std::time::Duration::from_millis(2500)));
//! ```

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Duration;

/// RFC 9309's minimum a crawler must parse: 500 KiB (§2.5). [`Robots::parse`] reads no
/// more than this.
pub const MAX_ROBOTS_BYTES: usize = 500 * 1024;

/// Bytes of one line that are read; the rest of a longer line is ignored, as Google does
/// (a buffer of eight times its 2083-byte URL limit, less one for C's NUL).
pub const MAX_LINE_BYTES: usize = 2083 * 8 - 1;

/// Rules kept for the product token; later ones are ignored. Real files have hundreds.
pub const MAX_RULES: usize = 10_000;

/// Sitemaps kept; later ones are ignored.
pub const MAX_SITEMAPS: usize = 1000;

/// One `Allow` or `Disallow` line of the chosen groups.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    /// Normalised (see [`normalise`]), so ASCII only; starts with `/` or `*`. Its length in
    /// octets is its weight: the longest matching pattern wins.
    pattern: Box<str>,
    /// On equal length, allow wins (RFC 9309 §2.2.2).
    allow: bool,
}

/// The rules of one robots.txt for one user agent (only the matched groups are kept, so a
/// cache of thousands is small).
///
/// Made by [`Robots::parse`], [`Robots::allow_all`] or [`Robots::disallow_all`]; asked with
/// [`Robots::allowed`], [`Robots::crawl_delay`] and [`Robots::sitemaps`].
#[derive(Clone, Debug, PartialEq)]
pub struct Robots {
    /// Longest pattern first, allow before disallow on equal length, no duplicates: the
    /// first rule that matches decides.
    rules: Box<[Rule]>,
    crawl_delay: Option<Duration>,
    sitemaps: Box<[String]>,
}

impl Robots {
    /// Parses a whole robots.txt body (the caller has already cut it at
    /// [`MAX_ROBOTS_BYTES`]; longer input is cut here too) for the product token `agent`
    /// (e.g. "parafetch", as [`agent_token`] gives it; compared case-insensitively).
    ///
    /// Never fails: lines it cannot read are skipped, and invalid UTF-8 is just bytes.
    /// Lines end at LF, CR or CRLF; a UTF-8 BOM at the start is skipped; `#` starts a
    /// comment; keys are case-insensitive. One or more `User-agent` lines start a group,
    /// which ends at the next `User-agent` line after one of its rules; rules before any
    /// group are ignored, and so are other lines (`Sitemap`, `Crawl-delay`, unknown keys)
    /// for the purpose of ending a group. The groups whose user agent names `agent` are
    /// combined; if there are none, the `*` groups are; if there are none either, every
    /// path is allowed.
    pub fn parse(body: &[u8], agent: &str) -> Robots {
        let body = &body[..body.len().min(MAX_ROBOTS_BYTES)];
        let mut parser = Parser::new(agent);
        for line in skip_bom(body).split(|&b| b == b'\n' || b == b'\r') {
            let line = &line[..line.len().min(MAX_LINE_BYTES)];
            if let Some((key, value)) = split_line(line) {
                parser.line(key, value);
            }
        }
        parser.finish()
    }

    /// No rules: every path may be fetched. What a 4xx robots.txt means (RFC 9309 §2.3.1.3).
    pub fn allow_all() -> Robots {
        Robots {
            rules: Box::new([]),
            crawl_delay: None,
            sitemaps: Box::new([]),
        }
    }

    /// `Disallow: /`: nothing but `/robots.txt` may be fetched. What a 5xx or an
    /// unreachable robots.txt means (RFC 9309 §2.3.1.4).
    pub fn disallow_all() -> Robots {
        Robots {
            rules: Box::new([Rule {
                pattern: "/".into(),
                allow: false,
            }]),
            ..Robots::allow_all()
        }
    }

    /// Whether the URL path (path plus `?query`, as `url::Url` gives them: e.g.
    /// "/a/b?x=1"; "" counts as "/") may be fetched.
    ///
    /// The matching rule with the longest pattern wins, allow on a tie; no match means
    /// allowed, and `/robots.txt` itself always is (RFC 9309 §2.2.2). Matching is
    /// case-sensitive, after both sides are normalised: octets outside ASCII as `%XX`, the
    /// hex digits of escapes in upper case (`/%c3%a4`, `/%C3%A4` and `/ä` are one path).
    /// Escapes are not decoded: `/%62` is not `/b`.
    pub fn allowed(&self, path_and_query: &str) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        let path = normalise_path(path_and_query);
        path == "/robots.txt"
            || self
                .rules
                .iter()
                .find(|rule| matches(&path, &rule.pattern))
                .is_none_or(|rule| rule.allow)
    }

    /// Crawl-delay of the matched group, if any and valid (non-negative finite seconds,
    /// fractional allowed: "2", "0.5"; no sign, no exponent). The first valid one in the
    /// chosen groups counts.
    pub fn crawl_delay(&self) -> Option<Duration> {
        self.crawl_delay
    }

    /// Sitemap: lines (they belong to no group), in order, deduplicated, at most
    /// [`MAX_SITEMAPS`] kept. Their values as written (not checked to be URLs).
    pub fn sitemaps(&self) -> &[String] {
        &self.sitemaps
    }

    /// [`Robots::allowed`] the slow, plain way: every rule tried with Google's position-set
    /// matcher, the longest allow and disallow compared. Tests and the fuzz target check
    /// the fast path against it.
    pub(crate) fn allowed_reference(&self, path_and_query: &str) -> bool {
        let path = normalise_path(path_and_query);
        if path == "/robots.txt" {
            return true;
        }
        let longest = |allow: bool| {
            let rules = self.rules.iter().filter(|rule| rule.allow == allow);
            rules
                .filter(|rule| matches_by_positions(path.as_bytes(), rule.pattern.as_bytes()))
                .map(|rule| rule.pattern.len())
                .max()
        };
        longest(false) <= longest(true)
    }
}

/// The product token of a User-Agent header value: "parafetch/0.1 (+http://x)" ->
/// "parafetch"; the leading run of `[A-Za-z_-]` characters (RFC 9309 §2.2.1), which may be
/// empty.
pub fn agent_token(user_agent: &str) -> &str {
    let end = token_len(user_agent.as_bytes());
    &user_agent[..end]
}

fn token_len(value: &[u8]) -> usize {
    value
        .iter()
        .position(|&b| !(b.is_ascii_alphabetic() || b == b'-' || b == b'_'))
        .unwrap_or(value.len())
}

/// Skips a UTF-8 byte order mark at the start, or as much of one as is there (as Google).
fn skip_bom(body: &[u8]) -> &[u8] {
    let n = body
        .iter()
        .zip(b"\xEF\xBB\xBF")
        .take_while(|(a, b)| a == b)
        .count();
    &body[n..]
}

/// ASCII whitespace as C's `isspace` (and so Google's trimming) knows it: with VT.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r')
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_space(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_space(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// The key and value of one line, both trimmed, comment removed; `None` for a line that
/// has none (empty, comment only, no separator, empty key).
fn split_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let line = match line.iter().position(|&b| b == b'#') {
        Some(hash) => &line[..hash],
        None => line,
    };
    let line = trim(line);
    let (key, value) = match line.iter().position(|&b| b == b':') {
        Some(colon) => (&line[..colon], &line[colon + 1..]),
        None => {
            // Google: people forget the colon, and "disallow /" is clear enough. Only with
            // exactly two words, though.
            let gap = line.iter().position(|&b| b == b' ' || b == b'\t')?;
            let value = trim(&line[gap..]);
            if value.iter().any(|&b| b == b' ' || b == b'\t') {
                return None;
            }
            (&line[..gap], value)
        }
    };
    let key = trim(key);
    (!key.is_empty()).then(|| (key, trim(value)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    UserAgent,
    Allow,
    Disallow,
    Sitemap,
    CrawlDelay,
    Other,
}

/// A key is known by its start, case-insensitively, misspellings included (Google's list;
/// the crawl-delay ones are ours, by analogy with user-agent).
fn classify(key: &[u8]) -> Key {
    let starts = |prefix: &str| {
        key.get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    let any = |prefixes: &[&str]| prefixes.iter().any(|p| starts(p));
    if any(&["user-agent", "useragent", "user agent"]) {
        Key::UserAgent
    } else if starts("allow") {
        Key::Allow
    } else if any(&[
        "disallow",
        "dissallow",
        "dissalow",
        "disalow",
        "diasllow",
        "disallaw",
    ]) {
        Key::Disallow
    } else if any(&["sitemap", "site-map"]) {
        Key::Sitemap
    } else if any(&["crawl-delay", "crawldelay", "crawl delay"]) {
        Key::CrawlDelay
    } else {
        Key::Other
    }
}

/// What the groups for one kind of user agent (ours, or `*`) gave.
#[derive(Default)]
struct Groups {
    /// A `User-agent` line named it.
    seen: bool,
    rules: Vec<Rule>,
    crawl_delay: Option<Duration>,
}

/// The state of one pass over the lines.
struct Parser<'a> {
    agent: &'a str,
    /// The `User-agent` lines of the current group named us.
    ours: bool,
    /// The `User-agent` lines of the current group named `*`.
    star: bool,
    /// A rule came after the current group's `User-agent` lines: the next one starts a new
    /// group.
    in_rules: bool,
    specific: Groups,
    global: Groups,
    sitemaps: Vec<String>,
    seen_sitemaps: HashSet<Cow<'a, str>>,
}

impl<'a> Parser<'a> {
    fn new(agent: &'a str) -> Self {
        Parser {
            agent,
            ours: false,
            star: false,
            in_rules: false,
            specific: Groups::default(),
            global: Groups::default(),
            sitemaps: Vec::new(),
            seen_sitemaps: HashSet::new(),
        }
    }

    fn line(&mut self, key: &[u8], value: &'a [u8]) {
        match classify(key) {
            Key::UserAgent => self.user_agent(value),
            Key::Allow => self.rule(value, true),
            Key::Disallow => self.rule(value, false),
            Key::Sitemap => self.sitemap(value),
            Key::CrawlDelay => self.crawl_delay(value),
            Key::Other => {}
        }
    }

    fn user_agent(&mut self, value: &[u8]) {
        if self.in_rules {
            self.ours = false;
            self.star = false;
            self.in_rules = false;
        }
        // Google: "* anything" is still the global group.
        if value.first() == Some(&b'*') && value.get(1).is_none_or(|&b| is_space(b)) {
            self.star = true;
            self.global.seen = true;
        } else {
            let token = &value[..token_len(value)];
            if !self.agent.is_empty() && token.eq_ignore_ascii_case(self.agent.as_bytes()) {
                self.ours = true;
                self.specific.seen = true;
            }
        }
    }

    /// The groups the current line belongs to, if they may still be chosen: ours, or `*`
    /// while no group has named us (a group naming both counts as ours).
    fn current(&mut self) -> Option<&mut Groups> {
        if self.ours {
            Some(&mut self.specific)
        } else if self.star && !self.specific.seen {
            Some(&mut self.global)
        } else {
            None
        }
    }

    fn rule(&mut self, value: &[u8], allow: bool) {
        if !(self.ours || self.star) {
            return; // before any group, or in a group for someone else
        }
        self.in_rules = true;
        // A path starts with `/`: a pattern that starts otherwise (or is empty, which RFC
        // 9309 says matches nothing) can never match, so it need not be kept.
        if !matches!(value.first(), Some(b'/' | b'*')) {
            return;
        }
        let Some(groups) = self.current() else {
            return;
        };
        let pattern = normalise(value).into_owned();
        // Google: allowing `/dir/index.htm...` allows `/dir/` too.
        let index = |slash: &usize| pattern[*slash..].starts_with("/index.htm");
        if let Some(slash) = pattern.rfind('/').filter(index).filter(|_| allow) {
            push(&mut groups.rules, format!("{}$", &pattern[..=slash]), true);
        }
        push(&mut groups.rules, pattern, allow);
    }

    fn crawl_delay(&mut self, value: &[u8]) {
        if let Some(groups) = self.current() {
            groups.crawl_delay = groups.crawl_delay.or_else(|| parse_seconds(value));
        }
    }

    fn sitemap(&mut self, value: &'a [u8]) {
        if value.is_empty() || self.sitemaps.len() >= MAX_SITEMAPS {
            return;
        }
        let url = String::from_utf8_lossy(value);
        if !self.seen_sitemaps.contains(&url) {
            self.sitemaps.push(url.clone().into_owned());
            self.seen_sitemaps.insert(url);
        }
    }

    fn finish(self) -> Robots {
        let groups = if self.specific.seen {
            self.specific
        } else {
            self.global
        };
        let mut rules = groups.rules;
        // Longest first, allow first on a tie; equal rules next to each other.
        rules.sort_unstable_by(|a, b| {
            (b.pattern.len(), b.allow, &b.pattern).cmp(&(a.pattern.len(), a.allow, &a.pattern))
        });
        rules.dedup();
        Robots {
            rules: rules.into_boxed_slice(),
            crawl_delay: groups.crawl_delay,
            sitemaps: self.sitemaps.into_boxed_slice(),
        }
    }
}

fn push(rules: &mut Vec<Rule>, pattern: String, allow: bool) {
    if rules.len() < MAX_RULES {
        rules.push(Rule {
            pattern: pattern.into_boxed_str(),
            allow,
        });
    }
}

/// Seconds as `digits [. digits]` (or `. digits`), parsed by hand: `str::parse::<f64>`
/// would take "+5", "1e3", "inf" and "NaN". Digits past nanoseconds are dropped; `None` for
/// anything else, or more seconds than a `u64` holds.
fn parse_seconds(value: &[u8]) -> Option<Duration> {
    let (whole, fraction) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &[][..]),
    };
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if whole.len() + fraction.len() == 0 || !digits(whole) || !digits(fraction) {
        return None;
    }
    let mut secs: u64 = 0;
    for &d in whole {
        secs = secs.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    let mut nanos: u32 = 0;
    for i in 0..9 {
        let d = fraction.get(i).map_or(0, |&d| u32::from(d - b'0'));
        nanos = nanos * 10 + d;
    }
    Some(Duration::new(secs, nanos))
}

fn is_hex(b: Option<&u8>) -> bool {
    b.is_some_and(u8::is_ascii_hexdigit)
}

/// Google's normal form of a pattern or a path: octets outside ASCII escaped as `%XX`,
/// the hex digits of existing escapes in upper case; nothing decoded. The result is ASCII.
fn normalise(s: &[u8]) -> Cow<'_, str> {
    let mut lower_escape = false;
    for (i, &b) in s.iter().enumerate() {
        if b == b'%' && is_hex(s.get(i + 1)) && is_hex(s.get(i + 2)) {
            lower_escape |= s[i + 1..i + 3].iter().any(u8::is_ascii_lowercase);
        }
    }
    if s.is_ascii() && !lower_escape {
        // ASCII, so valid UTF-8.
        return Cow::Borrowed(std::str::from_utf8(s).unwrap_or_default());
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() + 16);
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'%' && is_hex(s.get(i + 1)) && is_hex(s.get(i + 2)) {
            out.push('%');
            out.push(char::from(s[i + 1].to_ascii_uppercase()));
            out.push(char::from(s[i + 2].to_ascii_uppercase()));
            i += 3;
            continue;
        }
        if b.is_ascii() {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
        i += 1;
    }
    Cow::Owned(out)
}

/// The path asked about in normal form, starting with `/` ("" is "/", "?q" is "/?q").
fn normalise_path(path: &str) -> Cow<'_, str> {
    if path.starts_with('/') {
        normalise(path.as_bytes())
    } else {
        Cow::Owned(format!("/{}", normalise(path.as_bytes())))
    }
}

/// Whether `pattern` matches `path` from its first octet: `*` is any run of octets, `$` at
/// the very end anchors it (elsewhere it is itself). Greedy, leftmost first: between two
/// `*`s the earliest place a piece fits leaves the most room for the rest, so no choice
/// ever needs undoing. With `str::find` (two-way search) the cost is linear in the path and
/// the pattern, whatever the pattern.
fn matches(path: &str, pattern: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(pattern) => (pattern, true),
        None => (pattern, false),
    };
    let mut pieces = pattern.split('*');
    let Some(mut rest) = path.strip_prefix(pieces.next().unwrap_or_default()) else {
        return false;
    };
    let Some(mut piece) = pieces.next() else {
        return !anchored || rest.is_empty(); // no `*`: a prefix, or the whole path
    };
    for next in pieces {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
        piece = next;
    }
    if anchored {
        rest.ends_with(piece)
    } else {
        rest.contains(piece)
    }
}

/// [`matches`] the way Google's robots.cc does it: the set of path positions the pattern so
/// far can end at, advanced one pattern octet at a time. O(path × pattern); the reference
/// the fast one is checked against.
fn matches_by_positions(path: &[u8], pattern: &[u8]) -> bool {
    let mut positions = vec![0];
    for (i, &p) in pattern.iter().enumerate() {
        if p == b'$' && i + 1 == pattern.len() {
            return positions.last() == Some(&path.len());
        }
        if p == b'*' {
            positions = (positions[0]..=path.len()).collect();
        } else {
            positions.retain(|&at| path.get(at) == Some(&p));
            positions.iter_mut().for_each(|at| *at += 1);
            if positions.is_empty() {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Google's `IsUserAgentAllowed(robotstxt, agent, url)`, with a path for the URL; also
    /// checks the fast matcher against the reference one.
    fn allowed(body: &str, agent: &str, path: &str) -> bool {
        let robots = Robots::parse(body.as_bytes(), agent);
        let fast = robots.allowed(path);
        assert_eq!(fast, robots.allowed_reference(path), "{path:?} in {body:?}");
        fast
    }

    fn patterns(robots: &Robots) -> Vec<(&str, bool)> {
        robots
            .rules
            .iter()
            .map(|r| (&*r.pattern, r.allow))
            .collect()
    }

    // Google's GoogleOnly_SystemTest.
    #[test]
    fn empty_file_agent_or_path() {
        let body = "user-agent: FooBot\ndisallow: /\n";
        assert!(allowed("", "FooBot", ""));
        assert!(allowed(body, "", ""), "an empty token names no group");
        assert!(!allowed(body, "FooBot", ""), "an empty path is /");
        assert!(allowed("", "", ""));
    }

    // ID_LineSyntax_Line.
    #[test]
    fn line_without_colon_is_accepted_with_two_words() {
        let path = "/x/y";
        assert!(!allowed(
            "user-agent: FooBot\ndisallow: /\n",
            "FooBot",
            path
        ));
        assert!(allowed("foo: FooBot\nbar: /\n", "FooBot", path));
        assert!(!allowed("user-agent FooBot\ndisallow /\n", "FooBot", path));
        assert!(!allowed(
            "user-agent \t FooBot\ndisallow\t/\n",
            "FooBot",
            path
        ));
        // Three words: not a line.
        assert!(allowed("user-agent FooBot\ndisallow / x\n", "FooBot", path));
        // One word, or an empty key: not a line either.
        assert!(allowed("user-agent FooBot\ndisallow\n:/\n", "FooBot", path));
    }

    // ID_LineSyntax_Groups.
    #[test]
    fn groups_end_at_user_agent_after_rules_and_combine_per_agent() {
        let body = "allow: /foo/bar/\n\
                    \n\
                    user-agent: FooBot\n\
                    disallow: /\n\
                    allow: /x/\n\
                    user-agent: BarBot\n\
                    disallow: /\n\
                    allow: /y/\n\
                    \n\
                    \n\
                    allow: /w/\n\
                    user-agent: BazBot\n\
                    \n\
                    user-agent: FooBot\n\
                    allow: /z/\n\
                    disallow: /\n";
        assert!(allowed(body, "FooBot", "/x/b"));
        assert!(allowed(body, "FooBot", "/z/d"));
        assert!(!allowed(body, "FooBot", "/y/c"));
        assert!(allowed(body, "BarBot", "/y/c"));
        assert!(allowed(body, "BarBot", "/w/a"));
        assert!(!allowed(body, "BarBot", "/z/d"));
        assert!(allowed(body, "BazBot", "/z/d"));
        // Rules before the first user-agent line belong to no group.
        for agent in ["FooBot", "BarBot", "BazBot"] {
            assert!(!allowed(body, agent, "/foo/bar/"), "{agent}");
        }
    }

    // ID_LineSyntax_Groups_OtherRules.
    #[test]
    fn sitemap_unknown_and_crawl_delay_lines_do_not_end_a_group() {
        for other in [
            "Sitemap: https://foo.bar/sitemap",
            "Invalid-Unknown-Line: unknown",
            "Crawl-delay: 3",
        ] {
            let body = format!("User-agent: FooBot\n{other}\nUser-agent: *\nDisallow: /\n");
            assert!(!allowed(&body, "FooBot", "/"), "{other}");
            assert!(!allowed(&body, "BarBot", "/"), "{other}");
        }
    }

    // ID_REPLineNamesCaseInsensitive.
    #[test]
    fn keys_are_case_insensitive() {
        for body in [
            "USER-AGENT: FooBot\nALLOW: /x/\nDISALLOW: /\n",
            "user-agent: FooBot\nallow: /x/\ndisallow: /\n",
            "uSeR-aGeNt: FooBot\nAlLoW: /x/\ndIsAlLoW: /\n",
        ] {
            assert!(allowed(body, "FooBot", "/x/y"), "{body}");
            assert!(!allowed(body, "FooBot", "/a/b"), "{body}");
        }
    }

    // Google's accepted typos (robots.cc: kAllowFrequentTypos), and keys known by prefix.
    #[test]
    fn misspelt_keys_are_accepted() {
        for ua in ["user-agent", "useragent", "user agent", "User-Agents"] {
            for disallow in [
                "disallow",
                "dissallow",
                "dissalow",
                "disalow",
                "diasllow",
                "disallaw",
                "Disallowed",
            ] {
                let body = format!("{ua}: FooBot\n{disallow}: /\n");
                assert!(!allowed(&body, "FooBot", "/x"), "{body}");
            }
        }
        assert!(!allowed(
            "user-agent: a\nuser-agnet: b\ndisallow: /",
            "a",
            "/"
        ));
        assert!(allowed(
            "user-agent: a\nuser-agnet: b\ndisallow: /",
            "b",
            "/"
        ));
        let robots = Robots::parse(b"site-map: /a\nSitemaps: /b\nsite map: /c", "a");
        assert_eq!(robots.sitemaps(), ["/a", "/b"]);
    }

    // ID_VerifyValidUserAgentsToObey, as what agent_token keeps.
    #[test]
    fn agent_token_is_the_leading_run_of_letters_dashes_and_underscores() {
        assert_eq!(agent_token("parafetch/0.1 (+http://x)"), "parafetch");
        for valid in ["Foobot", "Foobot-Bar", "Foo_Bar"] {
            assert_eq!(agent_token(valid), valid);
        }
        assert_eq!(agent_token(""), "");
        assert_eq!(agent_token("ツ"), "");
        assert_eq!(agent_token("Foobot*"), "Foobot");
        assert_eq!(agent_token(" Foobot "), "");
        assert_eq!(agent_token("Foobot/2.1"), "Foobot");
        assert_eq!(agent_token("Foobot Bar"), "Foobot");
        assert_eq!(agent_token("Foo2bot"), "Foo");
        assert_eq!(agent_token("Fooツ"), "Foo");
    }

    // ID_UserAgentValueCaseInsensitive.
    #[test]
    fn user_agent_values_are_case_insensitive() {
        for body in [
            "User-Agent: FOO BAR\nAllow: /x/\nDisallow: /\n",
            "User-Agent: foo bar\nAllow: /x/\nDisallow: /\n",
            "User-Agent: FoO bAr\nAllow: /x/\nDisallow: /\n",
        ] {
            for agent in ["Foo", "foo", "FOO"] {
                assert!(allowed(body, agent, "/x/y"), "{body} {agent}");
                assert!(!allowed(body, agent, "/a/b"), "{body} {agent}");
            }
        }
    }

    // GoogleOnly_AcceptUserAgentUpToFirstSpace.
    #[test]
    fn user_agent_value_counts_up_to_its_first_non_token_character() {
        let body = "User-Agent: *\nDisallow: /\nUser-Agent: Foo Bar\nAllow: /x/\nDisallow: /\n";
        assert!(allowed(body, "Foo", "/x/y"));
        assert!(
            !allowed(body, "Foo Bar", "/x/y"),
            "the agent itself is taken whole"
        );
        assert!(allowed(
            "User-agent: FooBot/2.1\nDisallow: /",
            "BarBot",
            "/"
        ));
        assert!(!allowed(
            "User-agent: FooBot/2.1\nDisallow: /",
            "foobot",
            "/"
        ));
    }

    // ID_GlobalGroups_Secondary.
    #[test]
    fn star_groups_apply_only_when_no_group_names_the_agent() {
        let global = "user-agent: *\nallow: /\nuser-agent: FooBot\ndisallow: /\n";
        let only_specific = "user-agent: FooBot\nallow: /\nuser-agent: BarBot\ndisallow: /\n\
                             user-agent: BazBot\ndisallow: /\n";
        assert!(allowed("", "FooBot", "/x/y"));
        assert!(!allowed(global, "FooBot", "/x/y"));
        assert!(allowed(global, "BarBot", "/x/y"));
        assert!(allowed(only_specific, "QuxBot", "/x/y"));
    }

    #[test]
    fn star_followed_by_space_is_still_the_global_group() {
        assert!(!allowed("User-agent: * bot\nDisallow: /", "FooBot", "/"));
        assert!(allowed("User-agent: *bot\nDisallow: /", "FooBot", "/"));
    }

    #[test]
    fn all_star_groups_are_combined() {
        let body = "User-agent: *\nDisallow: /a\nUser-agent: Other\nDisallow: /\n\
                    User-agent: *\nDisallow: /b\nAllow: /b/ok\n";
        assert!(allowed(body, "FooBot", "/c"));
        assert!(!allowed(body, "FooBot", "/a"));
        assert!(!allowed(body, "FooBot", "/b/x"));
        assert!(allowed(body, "FooBot", "/b/ok"));
    }

    #[test]
    fn a_group_naming_the_agent_and_star_counts_for_both() {
        let body = "User-agent: *\nUser-agent: FooBot\nDisallow: /x\n\
                    User-agent: BarBot\nDisallow: /\n";
        assert!(!allowed(body, "FooBot", "/x"));
        assert!(!allowed(body, "Other", "/x"));
        assert!(allowed(body, "Other", "/y"));
        assert!(!allowed(body, "BarBot", "/y"));
    }

    #[test]
    fn a_group_naming_the_agent_without_rules_allows_everything() {
        let body = "User-agent: *\nDisallow: /\nUser-agent: FooBot\n";
        assert!(allowed(body, "FooBot", "/x"));
        assert!(!allowed(body, "BarBot", "/x"));
        let body = "User-agent: *\nDisallow: /\nUser-agent: FooBot\nDisallow:\n";
        assert!(allowed(body, "FooBot", "/x"));
    }

    #[test]
    fn only_the_chosen_groups_rules_are_kept() {
        let body = "User-agent: *\nDisallow: /a\nDisallow: /b\n\
                    User-agent: FooBot\nDisallow: /c\nUser-agent: BarBot\nDisallow: /d\n";
        let robots = Robots::parse(body.as_bytes(), "foobot");
        assert_eq!(patterns(&robots), [("/c", false)]);
        let robots = Robots::parse(body.as_bytes(), "QuxBot");
        assert_eq!(patterns(&robots), [("/b", false), ("/a", false)]);
    }

    // ID_AllowDisallow_Value_CaseSensitive.
    #[test]
    fn paths_are_case_sensitive() {
        assert!(!allowed(
            "user-agent: FooBot\ndisallow: /x/\n",
            "FooBot",
            "/x/y"
        ));
        assert!(allowed(
            "user-agent: FooBot\ndisallow: /X/\n",
            "FooBot",
            "/x/y"
        ));
    }

    // ID_LongestMatch.
    #[test]
    fn longest_match_wins_and_allow_wins_a_tie() {
        let page = "/x/page.html";
        let ua = "user-agent: FooBot\n";
        let check = |rules: &str, path: &str| allowed(&format!("{ua}{rules}"), "FooBot", path);
        assert!(!check("disallow: /x/page.html\nallow: /x/\n", page));
        assert!(check("allow: /x/page.html\ndisallow: /x/\n", page));
        assert!(!check("allow: /x/page.html\ndisallow: /x/\n", "/x/"));
        assert!(check("disallow: \nallow: \n", page));
        assert!(check("disallow: /\nallow: /\n", page));
        assert!(!check("disallow: /x\nallow: /x/\n", "/x"));
        assert!(check("disallow: /x\nallow: /x/\n", "/x/"));
        assert!(check("disallow: /x/page.html\nallow: /x/page.html\n", page));
        assert!(!check("allow: /page\ndisallow: /*.html\n", "/page.html"));
        assert!(check("allow: /page\ndisallow: /*.html\n", "/page"));
        assert!(check("allow: /x/page.\ndisallow: /*.html\n", page));
        assert!(!check("allow: /x/page.\ndisallow: /*.html\n", "/x/y.html"));
        let body = "User-agent: *\nDisallow: /x/\nUser-agent: FooBot\nDisallow: /y/\n";
        assert!(allowed(body, "FooBot", "/x/page"));
        assert!(!allowed(body, "FooBot", "/y/page"));
    }

    #[test]
    fn length_counts_octets_of_the_normalised_pattern() {
        // "/ä" is "/%C3%A4" (7 octets), longer than "/%C3" (4).
        let body = "User-agent: *\nAllow: /%C3\nDisallow: /ä\n";
        assert!(!allowed(body, "a", "/%C3%A4x"));
        // `*` and `$` count too.
        let body = "User-agent: *\nDisallow: /ab\nAllow: /a*$\n";
        assert!(allowed(body, "a", "/abc"));
    }

    #[test]
    fn duplicate_rules_are_kept_once() {
        let body = "User-agent: *\nDisallow: /a\nDisallow: /a\nUser-agent: *\nDisallow: /a\n";
        assert_eq!(
            patterns(&Robots::parse(body.as_bytes(), "x")),
            [("/a", false)]
        );
    }

    // ID_Encoding.
    #[test]
    fn percent_encoding_is_normalised_not_decoded() {
        let ua = "User-agent: FooBot\nDisallow: /\n";
        let check =
            |allow: &str, path: &str| allowed(&format!("{ua}Allow: {allow}\n"), "FooBot", path);
        let url = "/foo/bar?qux=taz&baz=http://foo.bar?tar&par";
        assert!(check(url, url), "reserved characters stay as they are");
        assert!(check("/foo/bar/ツ", "/foo/bar/%E3%83%84"));
        assert!(check("/foo/bar/%E3%83%84", "/foo/bar/%E3%83%84"));
        assert!(check("/foo/bar/%e3%83%84", "/foo/bar/%E3%83%84"));
        assert!(check("/foo/bar/%E3%83%84", "/foo/bar/%e3%83%84"));
        // Unreserved ASCII escaped in the file is not decoded (as Google, unlike RFC 9309).
        assert!(!check("/foo/bar/%62%61%7A", "/foo/bar/baz"));
        assert!(check("/foo/bar/%62%61%7A", "/foo/bar/%62%61%7A"));
        // Where we differ from Google on purpose: a raw path is normalised too.
        assert!(check("/foo/bar/ツ", "/foo/bar/ツ"));
        assert!(check("/foo/bar/%E3%83%84", "/foo/bar/ツ"));
        assert!(check("/ä", "/%C3%A4"));
        assert!(check("/%C3%A4", "/ä"));
        // A `%` that starts no escape is just a character.
        assert!(check("/100%", "/100%"));
        assert!(check("/%zz%a", "/%zz%a"));
        assert!(!check("/%AA", "/%aB"));
    }

    // TestMaybeEscapePattern.
    #[test]
    fn normalise_escapes_non_ascii_and_uppercases_escapes() {
        assert_eq!(
            normalise(b"http://www.example.com"),
            "http://www.example.com"
        );
        assert_eq!(normalise(b"/a/b/c"), "/a/b/c");
        assert_eq!(normalise("á".as_bytes()), "%C3%A1");
        assert_eq!(normalise(b"%aa"), "%AA");
        assert_eq!(normalise(b"%a"), "%a");
        assert_eq!(normalise(b"\xFF%fg%0a"), "%FF%fg%0A");
        assert!(matches!(normalise(b"/plain%20"), Cow::Borrowed(_)));
        assert_eq!(normalise_path(""), "/");
        assert_eq!(normalise_path("?a=1"), "/?a=1");
    }

    // ID_SpecialCharacters.
    #[test]
    fn star_dollar_and_hash() {
        let body = "User-agent: FooBot\nDisallow: /foo/bar/quz\nAllow: /foo/*/qux\n";
        assert!(!allowed(body, "FooBot", "/foo/bar/quz"));
        assert!(allowed(body, "FooBot", "/foo/quz"));
        assert!(allowed(body, "FooBot", "/foo//quz"));
        assert!(allowed(body, "FooBot", "/foo/bax/quz"));
        let body = "User-agent: FooBot\nDisallow: /foo/bar$\nAllow: /foo/bar/qux\n";
        assert!(!allowed(body, "FooBot", "/foo/bar"));
        assert!(allowed(body, "FooBot", "/foo/bar/qux"));
        assert!(allowed(body, "FooBot", "/foo/bar/"));
        assert!(allowed(body, "FooBot", "/foo/bar/baz"));
        let body = "User-agent: FooBot\n# Disallow: /\nDisallow: /foo/quz#qux\nAllow: /\n";
        assert!(allowed(body, "FooBot", "/foo/bar"));
        assert!(!allowed(body, "FooBot", "/foo/quz"));
    }

    #[test]
    fn dollar_is_literal_except_at_the_end() {
        let body = "User-agent: *\nDisallow: /a$b\nDisallow: /c$*\nDisallow: /d*$\n";
        assert!(!allowed(body, "x", "/a$b"));
        assert!(allowed(body, "x", "/a"));
        assert!(!allowed(body, "x", "/c$x"));
        assert!(allowed(body, "x", "/c"));
        assert!(!allowed(body, "x", "/d/anything"));
    }

    // GoogleOnly_IndexHTMLisDirectory.
    #[test]
    fn allowing_index_html_allows_its_directory() {
        let body = "User-Agent: *\nAllow: /allowed-slash/index.html\nDisallow: /\n";
        assert!(allowed(body, "foobot", "/allowed-slash/"));
        assert!(!allowed(body, "foobot", "/allowed-slash/index.htm"));
        assert!(allowed(body, "foobot", "/allowed-slash/index.html"));
        assert!(!allowed(body, "foobot", "/allowed-slash/x"));
        assert!(!allowed(body, "foobot", "/anyother-url"));
    }

    // GoogleOnly_LineTooLong.
    #[test]
    fn long_lines_are_cut() {
        // Google's buffer, its NUL included, and its test's arithmetic.
        let (buffer, eol) = (MAX_LINE_BYTES + 1, 1);
        let disallow = "disallow: ";
        let mut long = "/x/".to_string();
        let max = buffer - long.len() - disallow.len() + eol;
        while long.len() < max {
            long.push('a');
        }
        let body = format!("user-agent: FooBot\n{disallow}{long}/qux\n");
        assert!(allowed(&body, "FooBot", "/fux"));
        assert!(
            !allowed(&body, "FooBot", &format!("{long}/fux")),
            "the cut rule"
        );

        let allow = "allow: ";
        let (mut long_a, mut long_b) = ("/x/".to_string(), "/x/".to_string());
        let max = buffer - long_a.len() - allow.len() + eol;
        while long_a.len() < max {
            long_a.push('a');
            long_b.push('b');
        }
        let body =
            format!("user-agent: FooBot\ndisallow: /\n{allow}{long_a}/qux\n{allow}{long_b}/qux\n");
        assert!(!allowed(&body, "FooBot", "/"));
        assert!(allowed(&body, "FooBot", &format!("{long_a}/qux")));
        assert!(
            allowed(&body, "FooBot", &format!("{long_b}/fux")),
            "the cut rule"
        );
    }

    // GoogleOnly_DocumentationChecks.
    #[test]
    fn googles_documented_examples() {
        let check = |allow: &str, path: &str| {
            allowed(
                &format!("user-agent: FooBot\ndisallow: /\nallow: {allow}\n"),
                "FooBot",
                path,
            )
        };
        for allow in ["/fish", "/fish*"] {
            assert!(!check(allow, "/bar"));
            for path in [
                "/fish",
                "/fish.html",
                "/fish/salmon.html",
                "/fishheads",
                "/fishheads/yummy.html",
                "/fish.html?id=anything",
            ] {
                assert!(check(allow, path), "{allow} {path}");
            }
            for path in ["/Fish.asp", "/catfish", "/?id=fish"] {
                assert!(!check(allow, path), "{allow} {path}");
            }
        }
        for path in [
            "/fish/",
            "/fish/salmon",
            "/fish/?salmon",
            "/fish/salmon.html",
        ] {
            assert!(check("/fish/", path), "{path}");
        }
        for path in ["/bar", "/fish", "/fish.html", "/Fish/Salmon.html"] {
            assert!(!check("/fish/", path), "{path}");
        }
        for path in [
            "/filename.php",
            "/folder/filename.php",
            "/folder/filename.php?parameters",
            "//folder/any.php.file.html",
            "/filename.php/",
            "/index?f=filename.php/",
        ] {
            assert!(check("/*.php", path), "{path}");
        }
        for path in ["/bar", "/php/", "/index?php", "/windows.PHP"] {
            assert!(!check("/*.php", path), "{path}");
        }
        for path in ["/filename.php", "/folder/filename.php"] {
            assert!(check("/*.php$", path), "{path}");
        }
        for path in [
            "/bar",
            "/filename.php?parameters",
            "/filename.php/",
            "/filename.php5",
            "/php/",
            "/filename?php",
            "/aaaphpaaa",
            "//windows.PHP",
        ] {
            assert!(!check("/*.php$", path), "{path}");
        }
        assert!(!check("/fish*.php", "/bar"));
        assert!(check("/fish*.php", "/fish.php"));
        assert!(check("/fish*.php", "/fishheads/catfish.php?parameters"));
        assert!(!check("/fish*.php", "/Fish.PHP"));

        // Order of precedence for group-member records.
        let ua = "user-agent: FooBot\n";
        assert!(allowed(
            &format!("{ua}allow: /p\ndisallow: /\n"),
            "FooBot",
            "/page"
        ));
        let body = format!("{ua}allow: /folder\ndisallow: /folder\n");
        assert!(allowed(&body, "FooBot", "/folder/page"));
        let body = format!("{ua}allow: /page\ndisallow: /*.htm\n");
        assert!(!allowed(&body, "FooBot", "/page.htm"));
        let body = format!("{ua}allow: /$\ndisallow: /\n");
        assert!(allowed(&body, "FooBot", "/"));
        assert!(!allowed(&body, "FooBot", "/page.html"));
    }

    // ID_LinesNumbersAreCountedCorrectly, by what the lines mean.
    #[test]
    fn lf_cr_and_crlf_all_end_lines() {
        let unix = "User-Agent: foo\nAllow: /some/path\nUser-Agent: bar\n\n\nDisallow: /\n";
        let want = Robots::parse(unix.as_bytes(), "bar");
        assert_eq!(patterns(&want), [("/", false)]);
        for body in [
            "User-Agent: foo\r\nAllow: /some/path\r\nUser-Agent: bar\r\n\r\n\r\nDisallow: /\r\n",
            "User-Agent: foo\rAllow: /some/path\rUser-Agent: bar\r\r\rDisallow: /\r",
            "User-Agent: foo\nAllow: /some/path\nUser-Agent: bar\n\n\nDisallow: /",
            "User-Agent: foo\nAllow: /some/path\r\nUser-Agent: bar\n\r\n\nDisallow: /",
        ] {
            assert_eq!(Robots::parse(body.as_bytes(), "bar"), want, "{body:?}");
            let foo = Robots::parse(body.as_bytes(), "foo");
            assert_eq!(patterns(&foo), [("/some/path", true)], "{body:?}");
        }
    }

    // ID_UTF8ByteOrderMarkIsSkipped.
    #[test]
    fn byte_order_mark_is_skipped_at_the_start_only() {
        let rules = |body: &[u8]| Robots::parse(body, "foo").rules.len();
        assert_eq!(rules(b"\xEF\xBB\xBFUser-Agent: foo\nAllow: /AnyValue\n"), 1);
        assert_eq!(rules(b"\xEF\xBBUser-Agent: foo\nAllow: /AnyValue\n"), 1);
        assert_eq!(rules(b"\xEFUser-Agent: foo\nAllow: /AnyValue\n"), 1);
        // A broken mark spoils the first line.
        assert_eq!(rules(b"\xEF\x11\xBFUser-Agent: foo\nAllow: /AnyValue\n"), 0);
        assert_eq!(rules(b"User-Agent: foo\n\xEF\xBB\xBFAllow: /AnyValue\n"), 0);
        assert_eq!(
            rules(b"\xEF\xBB\xBF\xEF\xBB\xBFUser-Agent: foo\nAllow: /x\n"),
            0
        );
    }

    #[test]
    fn invalid_utf8_is_just_bytes() {
        let body = b"User-agent: \xFF\nDisallow: /\nUser-agent: foo\xC3\nDisallow: /\xC3(\n\
                     Sitemap: http://a/\xFF\n";
        let robots = Robots::parse(body, "foo");
        assert_eq!(patterns(&robots), [("/%C3(", false)]);
        assert!(robots.allowed("/\u{c3}("), "U+00C3 is C3 83, not C3");
        assert!(!robots.allowed("/%c3(x"));
        assert_eq!(robots.sitemaps(), ["http://a/\u{FFFD}"]);
        assert!(Robots::parse(body, "x").allowed("/"));
    }

    #[test]
    fn robots_txt_is_always_allowed() {
        let body = "User-agent: *\nDisallow: /\nDisallow: /robots.txt$\n";
        assert!(allowed(body, "x", "/robots.txt"));
        assert!(!allowed(body, "x", "/robots.txt?x"));
        assert!(!allowed(body, "x", "/robots.txtx"));
        assert!(Robots::disallow_all().allowed("/robots.txt"));
        assert!(Robots::disallow_all().allowed_reference("/robots.txt"));
    }

    #[test]
    fn allow_all_and_disallow_all() {
        for path in ["", "/", "/a?b", "/robots.txt"] {
            assert!(Robots::allow_all().allowed(path));
        }
        for path in ["", "/", "/a?b", "?q", "x"] {
            assert!(!Robots::disallow_all().allowed(path), "{path}");
        }
        assert_eq!(Robots::parse(b"", "x"), Robots::allow_all());
        let body = b"User-agent: *\nDisallow: /\n";
        assert_eq!(Robots::parse(body, "x"), Robots::disallow_all());
        assert_eq!(Robots::allow_all().crawl_delay(), None);
        assert!(Robots::disallow_all().sitemaps().is_empty());
    }

    #[test]
    fn empty_disallow_matches_nothing() {
        assert!(allowed("User-agent: *\nDisallow:\n", "x", "/"));
        assert!(allowed("User-agent: *\nDisallow: # all of it?\n", "x", "/"));
        // Nor does a pattern that cannot match a path.
        assert!(allowed(
            "User-agent: *\nDisallow: x\nDisallow: $\n",
            "x",
            "/x"
        ));
        assert_eq!(
            Robots::parse(b"User-agent: *\nDisallow:\n", "x"),
            Robots::allow_all()
        );
    }

    #[test]
    fn crawl_delay_of_the_chosen_groups() {
        let delay = |body: &str, agent: &str| Robots::parse(body.as_bytes(), agent).crawl_delay();
        let secs = |s: f64| Some(Duration::from_secs_f64(s));
        let body = "User-agent: *\nCrawl-delay: 5\nUser-agent: FooBot\nDisallow: /x\n\
                    Crawl-delay: 1.5\nUser-agent: BarBot\nDisallow: /\n";
        assert_eq!(delay(body, "FooBot"), secs(1.5));
        assert_eq!(delay(body, "Other"), secs(5.0));
        assert_eq!(
            delay(body, "BarBot"),
            None,
            "its group has none, and * is not used"
        );
        // Before any group: nobody's.
        assert_eq!(
            delay("Crawl-delay: 3\nUser-agent: *\nDisallow: /", "x"),
            None
        );
        // The first valid one counts.
        let body = "User-agent: x\nCrawl-delay: soon\nCrawl-delay: 2\nCrawl-delay: 3\n";
        assert_eq!(delay(body, "x"), secs(2.0));
        assert_eq!(delay("User-agent: x\ncrawldelay: 4\n", "x"), secs(4.0));
        assert_eq!(delay("User-agent: x\nCRAWL-DELAY 4\n", "x"), secs(4.0));
    }

    #[test]
    fn crawl_delay_values() {
        let parse = |s: &str| parse_seconds(s.as_bytes());
        assert_eq!(parse("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse(".25"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2."), Some(Duration::from_secs(2)));
        assert_eq!(parse("007.000000001999"), Some(Duration::new(7, 1)));
        assert_eq!(
            parse("18446744073709551615"),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in [
            "",
            ".",
            "-1",
            "+5",
            "1e3",
            "inf",
            "NaN",
            "5s",
            "1.2.3",
            "1 2",
            "١",
            "18446744073709551616",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sitemaps_anywhere_in_order_deduplicated_and_capped() {
        let body = "Sitemap: http://foo.bar/a.xml\nUser-Agent: foo\nAllow: /x\n\
                    sitemap: http://foo.bar/b.xml # a comment\nSitemap:\n\
                    SITEMAP: http://foo.bar/a.xml\nUser-agent: bar\nsite-map : http://foo.bar/c.xml\n";
        for agent in ["foo", "bar", "baz"] {
            let robots = Robots::parse(body.as_bytes(), agent);
            let want = [
                "http://foo.bar/a.xml",
                "http://foo.bar/b.xml",
                "http://foo.bar/c.xml",
            ];
            assert_eq!(robots.sitemaps(), want);
        }
        let mut body = String::new();
        for i in 0..MAX_SITEMAPS + 10 {
            body.push_str(&format!("Sitemap: /s{i}\nSitemap: /s{i}\n"));
        }
        let robots = Robots::parse(body.as_bytes(), "x");
        assert_eq!(robots.sitemaps().len(), MAX_SITEMAPS);
        assert_eq!(
            robots.sitemaps().last().unwrap(),
            &format!("/s{}", MAX_SITEMAPS - 1)
        );
    }

    #[test]
    fn rules_past_the_cap_are_ignored() {
        let mut body = "User-agent: *\n".to_string();
        for i in 0..MAX_RULES + 5 {
            body.push_str(&format!("Disallow: /{i}/\n"));
        }
        let robots = Robots::parse(body.as_bytes(), "x");
        assert_eq!(robots.rules.len(), MAX_RULES);
        assert!(!robots.allowed(&format!("/{}/", MAX_RULES - 1)));
        assert!(robots.allowed(&format!("/{}/", MAX_RULES)));
    }

    #[test]
    fn input_past_max_robots_bytes_is_ignored() {
        let mut body = b"User-agent: *\n".to_vec();
        body.resize(MAX_ROBOTS_BYTES, b'\n');
        body.extend_from_slice(b"Disallow: /\n");
        assert_eq!(Robots::parse(&body, "x"), Robots::allow_all());
    }

    #[test]
    fn pathological_patterns_match_in_linear_time() {
        let stars = |piece: &str, n| format!("/{}", format!("*{piece}").repeat(n));
        let body = format!(
            "User-agent: *\nDisallow: {}*b\nAllow: {}$\n",
            stars("a", 2000),
            stars("a", 3000)
        );
        let a_robots = Robots::parse(body.as_bytes(), "x");
        let body = format!("User-agent: *\nDisallow: {}*c\n", stars("ab", 1000));
        let ab_robots = Robots::parse(body.as_bytes(), "x");
        let a = format!("/{}", "a".repeat(100_000));
        let ab = format!("/{}", "ab".repeat(50_000));
        let start = Instant::now();
        for _ in 0..10 {
            assert!(a_robots.allowed(&a));
            assert!(!a_robots.allowed(&format!("{a}b")));
            assert!(ab_robots.allowed(&ab));
            assert!(!ab_robots.allowed(&format!("{ab}c")));
        }
        let took = start.elapsed();
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }

    #[test]
    fn a_hostile_file_of_max_size_stays_bounded_and_quick() {
        let line = "Disallow: /*a*a*a*a*a*a*a*a*a*a*a*b\n";
        let mut body = "User-agent: *\n".to_string();
        while body.len() + line.len() <= MAX_ROBOTS_BYTES {
            body.push_str(line);
        }
        let start = Instant::now();
        let robots = Robots::parse(body.as_bytes(), "x");
        assert_eq!(robots.rules.len(), 1, "one rule, deduplicated");
        let path = format!("/{}", "a".repeat(2000));
        assert!(robots.allowed(&path));
        // Distinct rules: the cap holds.
        let mut body = "User-agent: *\n".to_string();
        for i in 0.. {
            let line = format!("Disallow: /*a*a*a*a*a*a*a*a*a*a*a*{i}\n");
            if body.len() + line.len() > MAX_ROBOTS_BYTES {
                break;
            }
            body.push_str(&line);
        }
        let robots = Robots::parse(body.as_bytes(), "x");
        assert_eq!(robots.rules.len(), MAX_RULES);
        let kept: usize = robots.rules.iter().map(|r| r.pattern.len()).sum();
        assert!(kept < MAX_ROBOTS_BYTES, "{kept} bytes of patterns");
        assert!(robots.allowed(&path), "10 000 rules tried, none matches");
        let took = start.elapsed();
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }

    /// Every pattern and path over a small alphabet, up to a few octets: the greedy matcher
    /// and the position sets agree.
    #[test]
    fn greedy_matcher_agrees_with_position_sets() {
        fn all(alphabet: &[u8], max: usize) -> Vec<Vec<u8>> {
            let mut out = vec![vec![]];
            let mut last = vec![vec![]];
            for _ in 0..max {
                last = last
                    .iter()
                    .flat_map(|s| alphabet.iter().map(move |&c| [&s[..], &[c]].concat()))
                    .collect();
                out.extend(last.iter().cloned());
            }
            out
        }
        let paths = all(b"ab$", 5);
        let patterns = all(b"ab*$", 5);
        for pattern in &patterns {
            let p = std::str::from_utf8(pattern).unwrap();
            for path in &paths {
                let s = std::str::from_utf8(path).unwrap();
                assert_eq!(
                    matches(s, p),
                    matches_by_positions(path, pattern),
                    "{p} on {s}"
                );
            }
        }
    }

    #[test]
    fn robots_is_small() {
        assert!(std::mem::size_of::<Robots>() <= 48 && std::mem::size_of::<Rule>() <= 24);
    }
}
