//! `/etc/resolv.conf`: which servers to ask, which suffixes to try, how long to wait.
//!
//! Owns the file's syntax (glibc's `resolv.conf(5)`, with the deviations listed on
//! [`ResolvConf::parse`]) and the search-list rules. Only [`ResolvConf::system`] reads a
//! file; everything else is pure and never fails: a line it does not understand is skipped,
//! as the C library does.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use super::name;

/// Where [`ResolvConf::system`] reads from.
pub const RESOLV_CONF_PATH: &str = "/etc/resolv.conf";

/// The port every `nameserver` is asked on; the file has no syntax for another.
pub const DNS_PORT: u16 = 53;

/// The most `nameserver` lines used; later ones are ignored (glibc's `MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;

/// The most search domains kept; later ones are ignored (glibc's `MAXDNSRCH` before 2.26,
/// and what musl's 256-byte search buffer holds in practice). Each failing suffix costs a
/// round trip per query, so a long list only slows every lookup of a short name.
pub const MAX_SEARCH_DOMAINS: usize = 6;

/// The default of `options ndots:N`.
pub const DEFAULT_NDOTS: u8 = 1;
/// The largest `ndots` kept; larger values are clamped (glibc's `RES_MAXNDOTS`).
pub const MAX_NDOTS: u8 = 15;

/// The default of `options timeout:N`: how long to wait for one server's reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest `timeout`, in seconds; larger values are clamped (glibc's `RES_MAXRETRANS`).
pub const MAX_TIMEOUT_SECS: u64 = 30;

/// The default of `options attempts:N`: how many rounds over the server list.
pub const DEFAULT_ATTEMPTS: u8 = 2;
/// The largest `attempts`; larger values are clamped (glibc's `RES_MAXRETRY`).
pub const MAX_ATTEMPTS: u8 = 5;

/// The resolver configuration: servers, search list and the options that matter to a stub
/// resolver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvConf {
    /// The servers to ask, in order, at most [`MAX_NAMESERVERS`], all on port 53. Never empty:
    /// with no usable `nameserver` line it is `127.0.0.1:53` then `[::1]:53`, as in glibc.
    pub nameservers: Vec<SocketAddr>,
    /// The suffixes tried by [`ResolvConf::candidates`], in order, lowercase, without a
    /// trailing dot, at most [`MAX_SEARCH_DOMAINS`].
    pub search: Vec<String>,
    /// A name with at least this many dots is first tried as it is (0..=15, default 1).
    pub ndots: u8,
    /// How long to wait for one server's reply (1..=30 s, default 5 s).
    pub timeout: Duration,
    /// How many rounds over the server list before giving up (1..=5, default 2).
    pub attempts: u8,
    /// `options rotate`: spread queries over the servers round-robin instead of always
    /// asking the first one first.
    pub rotate: bool,
}

impl Default for ResolvConf {
    /// What an empty or missing file means.
    fn default() -> Self {
        ResolvConf {
            nameservers: default_nameservers(),
            search: Vec::new(),
            ndots: DEFAULT_NDOTS,
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            rotate: false,
        }
    }
}

fn default_nameservers() -> Vec<SocketAddr> {
    vec![
        SocketAddr::from(([127, 0, 0, 1], DNS_PORT)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, DNS_PORT)),
    ]
}

/// Parses `1*DIGIT` by hand (no sign, no spaces), saturating at `u64::MAX`.
fn parse_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Parses a `nameserver` address: IPv4 dotted quad, or IPv6 with an optional `%scope`. A
/// numeric scope becomes the scope ID; an interface name is dropped (looking it up is I/O),
/// which leaves a link-local server unreachable but never misdirected.
fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    if let Some((addr, scope)) = text.split_once('%') {
        let ip: Ipv6Addr = addr.parse().ok()?;
        let scope_id = parse_number(scope)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        return Some(SocketAddr::V6(SocketAddrV6::new(ip, DNS_PORT, 0, scope_id)));
    }
    let ip: IpAddr = text.parse().ok()?;
    Some(SocketAddr::new(ip, DNS_PORT))
}

impl ResolvConf {
    /// Parses the text of a `resolv.conf` file. Never fails: unknown keywords, bad addresses
    /// and bad option values are skipped.
    ///
    /// - `nameserver ADDR`: IPv4 or IPv6 (see below for `%scope`), port 53; the first
    ///   [`MAX_NAMESERVERS`] are kept. With none, `127.0.0.1` and `::1` are used.
    /// - `search NAME...` and `domain NAME`: each replaces the search list, so the last such
    ///   line wins. Names are lowercased and lose one trailing dot; names that could not be
    ///   queried (and `.`, which means "no search") are dropped; at most
    ///   [`MAX_SEARCH_DOMAINS`] are kept. Unlike glibc, with no such line the search list is
    ///   empty rather than derived from the host name (that would need I/O).
    /// - `options`: `ndots:N` (clamped to 15), `timeout:N` (clamped to 1..=30 seconds),
    ///   `attempts:N` (clamped to 1..=5), `rotate`; others are ignored. `N` must be plain
    ///   digits; glibc's `atoi` would also take `3x` or `-1`. Unlike glibc, 0 is raised to 1
    ///   for `timeout` and `attempts`, since a resolver that never waits or never asks is
    ///   never what a file meant.
    /// - Comments start with `#` or `;` anywhere on a line (glibc only honours them at the
    ///   start, and would read `search a # b` as three domains). Keywords may be indented.
    ///
    /// The `LOCALDOMAIN` and `RES_OPTIONS` environment variables are not consulted.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            ..ResolvConf::default()
        };
        for line in text.lines() {
            let line = match line.find(['#', ';']) {
                Some(i) => &line[..i],
                None => line,
            };
            let mut words = line.split_ascii_whitespace();
            match words.next() {
                Some("nameserver") => {
                    let addr = words.next().and_then(parse_nameserver);
                    if let Some(addr) = addr {
                        if conf.nameservers.len() < MAX_NAMESERVERS {
                            conf.nameservers.push(addr);
                        }
                    }
                }
                Some(keyword @ ("search" | "domain")) => {
                    let mut names: Vec<&str> = words.collect();
                    if names.is_empty() {
                        continue;
                    }
                    if keyword == "domain" {
                        names.truncate(1);
                    }
                    conf.search.clear();
                    for n in names {
                        let n = name::strip_root(n).to_ascii_lowercase();
                        let fresh = !conf.search.contains(&n);
                        if fresh && name::validate(&n).is_ok() {
                            conf.search.push(n);
                        }
                    }
                    conf.search.truncate(MAX_SEARCH_DOMAINS);
                }
                Some("options") => words.for_each(|option| conf.set_option(option)),
                _ => {}
            }
        }
        if conf.nameservers.is_empty() {
            conf.nameservers = default_nameservers();
        }
        conf
    }

    fn set_option(&mut self, option: &str) {
        let (key, value) = match option.split_once(':') {
            Some((key, value)) => (key, parse_number(value)),
            None => (option, None),
        };
        match (key, value) {
            ("ndots", Some(n)) => self.ndots = n.min(u64::from(MAX_NDOTS)) as u8,
            ("timeout", Some(n)) => {
                self.timeout = Duration::from_secs(n.clamp(1, MAX_TIMEOUT_SECS));
            }
            ("attempts", Some(n)) => {
                self.attempts = n.clamp(1, u64::from(MAX_ATTEMPTS)) as u8;
            }
            ("rotate", None) if !option.contains(':') => self.rotate = true,
            _ => {}
        }
    }

    /// Reads and parses [`RESOLV_CONF_PATH`]. A missing or unreadable file gives the
    /// defaults, as in glibc. This is blocking file I/O on a small local file: call it once,
    /// when the resolver is built, not per lookup.
    pub fn system() -> ResolvConf {
        match std::fs::read(RESOLV_CONF_PATH) {
            Ok(bytes) => ResolvConf::parse(&String::from_utf8_lossy(&bytes)),
            Err(_) => ResolvConf::default(),
        }
    }

    /// The names to query for `name`, in order, each written without a trailing dot
    /// (glibc's `res_search` rules):
    ///
    /// - a name ending in `.` is absolute: only the name itself;
    /// - a name with at least `ndots` dots: itself first, then itself plus each search suffix;
    /// - otherwise: itself plus each search suffix first, then itself.
    ///
    /// The name itself is always included, even if it could not be queried (so the caller
    /// gets [`encode_query`](super::message::encode_query)'s error for it); a suffixed name
    /// that could not be queried (too long, say) is left out. An empty name (or `.`) gives no candidates.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        let bare = name::strip_root(name);
        if bare.is_empty() {
            return Vec::new();
        }
        if bare.len() < name.len() {
            return vec![bare.to_string()];
        }
        let dots = bare.bytes().filter(|&b| b == b'.').count();
        let as_is_first = dots >= usize::from(self.ndots);
        let mut out = Vec::with_capacity(self.search.len() + 1);
        if as_is_first {
            out.push(bare.to_string());
        }
        for suffix in &self.search {
            let full = format!("{bare}.{suffix}");
            if name::validate(&full).is_ok() {
                out.push(full);
            }
        }
        if !as_is_first {
            out.push(bare.to_string());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn empty_text_gives_the_glibc_defaults() {
        for text in ["", "\n\n", "# nothing here\n; nor here\n", "bogus line\n"] {
            let conf = ResolvConf::parse(text);
            assert_eq!(conf, ResolvConf::default(), "{text:?}");
        }
        let conf = ResolvConf::default();
        assert_eq!(conf.nameservers, [ns("127.0.0.1:53"), ns("[::1]:53")]);
        assert_eq!(conf.search, Vec::<String>::new());
        assert_eq!((conf.ndots, conf.attempts, conf.rotate), (1, 2, false));
        assert_eq!(conf.timeout, Duration::from_secs(5));
    }

    #[test]
    fn a_typical_file() {
        let conf = ResolvConf::parse(
            "# Generated by NetworkManager\n\
             search corp.example.com example.com\n\
             nameserver 10.0.0.2\n\
             nameserver 2001:db8::53\n\
             options edns0 ndots:2 timeout:3 attempts:4 rotate trust-ad\n",
        );
        assert_eq!(
            conf.nameservers,
            [ns("10.0.0.2:53"), ns("[2001:db8::53]:53")]
        );
        assert_eq!(conf.search, ["corp.example.com", "example.com"]);
        assert_eq!((conf.ndots, conf.attempts, conf.rotate), (2, 4, true));
        assert_eq!(conf.timeout, Duration::from_secs(3));
    }

    #[test]
    fn odd_whitespace_and_comments() {
        let conf = ResolvConf::parse(
            "  nameserver\t192.0.2.1   # primary\r\n\
             nameserver 192.0.2.2;secondary\n\
             \t search  a.example\t\tb.example ; c.example\n\
             #nameserver 192.0.2.9\n\
             ;search z.example\n\
             options   ndots:3\t\n",
        );
        assert_eq!(conf.nameservers, [ns("192.0.2.1:53"), ns("192.0.2.2:53")]);
        assert_eq!(conf.search, ["a.example", "b.example"]);
        assert_eq!(conf.ndots, 3);
    }

    #[test]
    fn bad_lines_are_skipped() {
        let conf = ResolvConf::parse(
            "nameserver\n\
             nameserver not-an-ip\n\
             nameserver 192.0.2.300\n\
             nameserver 192.0.2.1:5353\n\
             nameserver [2001:db8::1]\n\
             nameserverx 192.0.2.7\n\
             nameserver 192.0.2.1\n\
             search\n\
             options ndots timeout:x attempts:+3 ndots:-1 rotate:1 unknown:4\n",
        );
        assert_eq!(conf.nameservers, [ns("192.0.2.1:53")]);
        assert!(conf.search.is_empty());
        assert_eq!(conf.ndots, DEFAULT_NDOTS);
        assert_eq!(conf.timeout, DEFAULT_TIMEOUT);
        assert_eq!(conf.attempts, DEFAULT_ATTEMPTS);
        assert!(!conf.rotate);
    }

    #[test]
    fn ipv6_servers_with_and_without_scope() {
        let conf = ResolvConf::parse(
            "nameserver ::1\nnameserver fe80::1%2\nnameserver fe80::2%eth0\nnameserver 1.1.1.1\n",
        );
        assert_eq!(
            conf.nameservers,
            [
                ns("[::1]:53"),
                SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 2)),
                SocketAddr::V6(SocketAddrV6::new("fe80::2".parse().unwrap(), 53, 0, 0)),
            ],
            "three servers at most; a named scope is dropped"
        );
        // A scope on an IPv4 address is not an address.
        let conf = ResolvConf::parse("nameserver 192.0.2.1%1\n");
        assert_eq!(conf.nameservers, ResolvConf::default().nameservers);
    }

    #[test]
    fn at_most_three_nameservers() {
        let text: String = (1..=5)
            .map(|i| format!("nameserver 192.0.2.{i}\n"))
            .collect();
        let conf = ResolvConf::parse(&text);
        assert_eq!(conf.nameservers.len(), MAX_NAMESERVERS);
        assert_eq!(conf.nameservers[2], ns("192.0.2.3:53"));
    }

    #[test]
    fn the_last_search_or_domain_line_wins() {
        let conf = ResolvConf::parse("search a.example b.example\ndomain c.example\n");
        assert_eq!(conf.search, ["c.example"]);
        let conf = ResolvConf::parse("domain c.example d.example\nsearch A.Example. b.example\n");
        assert_eq!(conf.search, ["a.example", "b.example"]);
        // `search .` means no search list at all.
        let conf = ResolvConf::parse("search a.example\nsearch .\n");
        assert!(conf.search.is_empty());
    }

    #[test]
    fn search_list_is_capped_deduplicated_and_validated() {
        let conf = ResolvConf::parse("search a b a c..d e f g h i\n");
        assert_eq!(conf.search, ["a", "b", "e", "f", "g", "h"]);
        let long = "x".repeat(64);
        let conf = ResolvConf::parse(&format!("search {long} ok\n"));
        assert_eq!(conf.search, ["ok"]);
    }

    #[test]
    fn options_are_clamped_like_glibc() {
        let conf =
            ResolvConf::parse("options ndots:99 timeout:600 attempts:99999999999999999999\n");
        assert_eq!(conf.ndots, MAX_NDOTS);
        assert_eq!(conf.timeout, Duration::from_secs(MAX_TIMEOUT_SECS));
        assert_eq!(conf.attempts, MAX_ATTEMPTS);
        let conf = ResolvConf::parse("options ndots:0 timeout:0 attempts:0\n");
        assert_eq!((conf.ndots, conf.attempts), (0, 1));
        assert_eq!(conf.timeout, Duration::from_secs(1));
        // Later options override earlier ones, across lines too.
        let conf = ResolvConf::parse("options ndots:4\noptions ndots:2 ndots:3\n");
        assert_eq!(conf.ndots, 3);
    }

    fn conf(ndots: u8, search: &[&str]) -> ResolvConf {
        ResolvConf {
            ndots,
            search: search.iter().map(|s| s.to_string()).collect(),
            ..ResolvConf::default()
        }
    }

    #[test]
    fn candidates_for_short_names_try_the_search_list_first() {
        let c = conf(1, &["corp.example", "example"]);
        assert_eq!(
            c.candidates("www"),
            ["www.corp.example", "www.example", "www"]
        );
        let c = conf(2, &["corp.example"]);
        assert_eq!(c.candidates("a.b"), ["a.b.corp.example", "a.b"]);
    }

    #[test]
    fn candidates_for_dotted_names_try_the_name_first() {
        let c = conf(1, &["corp.example", "example"]);
        assert_eq!(
            c.candidates("a.b"),
            ["a.b", "a.b.corp.example", "a.b.example"]
        );
        let c = conf(0, &["corp.example"]);
        assert_eq!(c.candidates("www"), ["www", "www.corp.example"]);
    }

    #[test]
    fn candidates_for_absolute_names_are_the_name_only() {
        let c = conf(5, &["corp.example"]);
        assert_eq!(c.candidates("www."), ["www"]);
        assert_eq!(c.candidates("a.b.c."), ["a.b.c"]);
        assert!(c.candidates(".").is_empty());
        assert!(c.candidates("").is_empty());
    }

    #[test]
    fn candidates_without_a_search_list_are_the_name() {
        let c = conf(1, &[]);
        assert_eq!(c.candidates("localhost"), ["localhost"]);
        assert_eq!(c.candidates("example.com"), ["example.com"]);
    }

    #[test]
    fn candidates_skip_suffixed_names_that_are_too_long() {
        let label = "a".repeat(63);
        let long = format!("{label}.{label}.{label}.{}", "b".repeat(50)); // 242 chars
        let c = conf(1, &["short", "much-longer-suffix"]);
        assert_eq!(c.candidates(&long), [long.clone(), format!("{long}.short")]);
        // An unqueryable name is still returned, for the caller to get the error.
        assert_eq!(c.candidates("bad name"), ["bad name"]);
    }
}
