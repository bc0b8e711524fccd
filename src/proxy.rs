//! Proxies: what a proxy URL says ([`Proxy`]), which proxy a request goes through (one for
//! the whole fetcher, a rotating list, one per request, or the environment the way curl
//! reads it), and `NO_PROXY` matching.
//!
//! Owns the choice only. It never opens a connection (the driver does) and never reads the
//! environment except in [`ProxyConfig::from_env`]. Credentials never leave this module in
//! text form except as the `Proxy-Authorization` value and the SOCKS handshake's fields:
//! `Debug` and `Display` print `***` in their place.

use std::cell::Cell;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use url::Url;

use crate::error::{Error, ErrorKind, Phase};

/// How a request reaches a proxy, and what the proxy does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// An HTTP proxy: `http://` URLs go in absolute form, `https://` ones through CONNECT.
    Http,
    /// An HTTP proxy spoken to over TLS.
    Https,
    /// SOCKS4a: the proxy resolves names.
    Socks4a,
    /// SOCKS5, names resolved here (by parafetch's resolver).
    Socks5,
    /// SOCKS5, names resolved by the proxy.
    Socks5h,
}

impl ProxyKind {
    /// The URL scheme, e.g. `"socks5h"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Https => "https",
            ProxyKind::Socks4a => "socks4a",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks5h => "socks5h",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            // curl's defaults: 1080 for every proxy but an https one.
            ProxyKind::Https => 443,
            _ => 1080,
        }
    }
}

/// A proxy: its kind, address and (optional) credentials.
///
/// Parsed from a URL such as `http://proxy:3128`, `socks5h://user:secret@127.0.0.1:1080` or
/// a bare `host:port` (an HTTP proxy, as in curl). The userinfo is percent-decoded. Neither
/// `Debug` nor `Display` ever shows the password.
///
/// # Examples
/// ```
/// let p = parafetch::Proxy::parse("socks5h://me:s%40cret@127.0.0.1:1080")?;
/// assert_eq!(p.kind(), parafetch::ProxyKind::Socks5h);
/// assert_eq!(p.to_string(), "socks5h://127.0.0.1:1080");
/// assert_eq!(format!("{p:?}"), "Proxy(socks5h://me:***@127.0.0.1:1080)");
/// # Ok::<(), parafetch::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    auth: Option<(String, String)>,
}

impl Proxy {
    /// Parses a proxy URL.
    ///
    /// # Errors
    /// Kind `proxy`, phase `prepare`: not a URL, an unknown scheme, no host, or userinfo
    /// that is not valid percent-encoded UTF-8. The message never holds the password.
    pub fn parse(text: &str) -> Result<Proxy, Error> {
        let text = text.trim();
        let with_scheme = if text.contains("://") {
            text.to_owned()
        } else {
            format!("http://{text}")
        };
        let fail = |why: &str| {
            Error::new(
                ErrorKind::Proxy,
                Phase::Prepare,
                format!("bad proxy {}: {why}", redact(&with_scheme)),
            )
        };
        let url = Url::parse(&with_scheme).map_err(|_| fail("not a url"))?;
        let kind = match url.scheme() {
            "http" => ProxyKind::Http,
            "https" => ProxyKind::Https,
            "socks4a" => ProxyKind::Socks4a,
            "socks5" => ProxyKind::Socks5,
            "socks5h" => ProxyKind::Socks5h,
            _ => {
                return Err(fail(
                    "scheme must be http, https, socks4a, socks5 or socks5h",
                ));
            }
        };
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => return Err(fail("no host")),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|d| d.into_owned())
                .map_err(|_| fail("credentials are not valid utf-8"))
        };
        let auth = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            Some((
                decode(url.username())?,
                decode(url.password().unwrap_or(""))?,
            ))
        };
        Ok(Proxy {
            kind,
            host: host.to_ascii_lowercase(),
            port: url.port().unwrap_or(kind.default_port()),
            auth,
        })
    }

    /// How the proxy is spoken to.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host name or IP address (an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the proxy URL carried credentials.
    pub fn has_credentials(&self) -> bool {
        self.auth.is_some()
    }

    /// The user name and password, for the handshake that sends them.
    pub(crate) fn credentials(&self) -> Option<(&str, &str)> {
        self.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The `Proxy-Authorization` value for an HTTP proxy with credentials (RFC 7617).
    pub(crate) fn basic_auth(&self) -> Option<String> {
        let (user, pass) = self.credentials()?;
        Some(format!(
            "Basic {}",
            base64(format!("{user}:{pass}").as_bytes())
        ))
    }

    /// Replaces the credentials (the CLI's `--proxy-user`).
    pub fn with_credentials(mut self, user: &str, password: &str) -> Proxy {
        self.auth = Some((user.to_owned(), password.to_owned()));
        self
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, show_user: bool) -> fmt::Result {
        write!(f, "{}://", self.kind.as_str())?;
        if let (true, Some((user, _))) = (show_user, &self.auth) {
            write!(f, "{user}:***@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The proxy URL without credentials, e.g. `http://127.0.0.1:3128`.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

/// `Proxy(http://user:***@host:port)`: the password is never shown.
impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Proxy(")?;
        self.write(f, true)?;
        f.write_str(")")
    }
}

/// A URL (a proxy's, a request's) as text with any password replaced by `***`, for error
/// messages and Debug output.
///
/// Cuts at the *last* `@` anywhere in the text: a password holding an unencoded `/`, `?`
/// or `#` would otherwise end the userinfo early (the URL does not parse as its writer
/// meant, and the error would quote the password).
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let scheme = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    if !userinfo.contains(':') {
        // A user name alone is often a token (`https://TOKEN@host/`): hidden whole.
        return format!("{scheme}***@{}", &rest[at + 1..]);
    }
    let user = userinfo.split([':', '/', '?', '#']).next().unwrap_or("");
    format!("{scheme}{user}:***@{}", &rest[at + 1..])
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// How a list of proxies is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// Each request takes the next proxy of the list.
    RoundRobin,
    /// Every request to one host goes through the same proxy (chosen by the host's hash).
    StickyPerHost,
}

/// `NO_PROXY`: hosts reached directly. Entries are separated by commas (or spaces): `*` (no
/// proxy at all), a domain (`example.com` or `.example.com`: that name and every name
/// under it), an IP address, or a CIDR block (`10.0.0.0/8`, `fd00::/8`). Case-insensitive;
/// a trailing dot is ignored.
#[derive(Clone, Debug, Default)]
pub(crate) struct NoProxy {
    all: bool,
    domains: Vec<String>,
    nets: Vec<(IpAddr, u8)>,
}

impl NoProxy {
    pub(crate) fn parse(list: &str) -> NoProxy {
        let mut n = NoProxy::default();
        for entry in list.split([',', ' ', '\t']).map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            // curl honours `*` only as the whole value; inside a list it is no wildcard.
            if entry == "*" && list.trim() == "*" {
                n.all = true;
                continue;
            }
            if let Some((ip, bits)) = entry.split_once('/') {
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                if let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    n.nets.push((ip, bits.min(max)));
                }
                continue;
            }
            let entry = entry.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = entry.parse::<IpAddr>() {
                let bits = if ip.is_ipv4() { 32 } else { 128 };
                n.nets.push((ip, bits));
                continue;
            }
            let domain = entry.trim_start_matches('.').trim_end_matches('.');
            if !domain.is_empty() {
                n.domains.push(domain.to_ascii_lowercase());
            }
        }
        n
    }

    /// Whether `host` (a name or an IP literal, brackets allowed) is reached directly.
    pub(crate) fn matches(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.nets.iter().any(|&(net, bits)| in_net(ip, net, bits));
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.domains.iter().any(|d| {
            host == *d
                || (host.len() > d.len() && host.ends_with(d.as_str()) && {
                    host.as_bytes()[host.len() - d.len() - 1] == b'.'
                })
        })
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Where requests' proxies come from.
#[derive(Clone, Debug)]
pub(crate) enum ProxyRule {
    /// No proxy.
    Direct,
    /// One proxy for every request.
    One(Arc<Proxy>),
    /// A list, used per `Rotation`.
    List(Vec<Arc<Proxy>>, Rotation),
    /// The environment, read when the fetcher was built, the way curl reads it.
    Env {
        http: Option<Result<Arc<Proxy>, Error>>,
        https: Option<Result<Arc<Proxy>, Error>>,
        all: Option<Result<Arc<Proxy>, Error>>,
    },
}

/// The fetcher's proxy choice: a rule, and the hosts reached directly whatever it says.
#[derive(Clone, Debug)]
pub(crate) struct ProxyConfig {
    pub rule: ProxyRule,
    pub no_proxy: NoProxy,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            rule: ProxyRule::Direct,
            no_proxy: NoProxy::default(),
        }
    }
}

impl ProxyConfig {
    /// The environment's proxies, as curl reads them: `http_proxy` for http URLs (lowercase
    /// only: `HTTP_PROXY` can be set by a CGI request's `Proxy:` header, the "httpoxy"
    /// attack), `https_proxy` or `HTTPS_PROXY` for https URLs, `all_proxy` or `ALL_PROXY`
    /// for either when the other is unset, and `no_proxy` or `NO_PROXY`. Empty values are
    /// unset. A malformed one fails each request it would apply to, with kind `proxy`.
    pub(crate) fn from_env(get: impl Fn(&str) -> Option<String>) -> ProxyConfig {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| get(n).filter(|v| !v.trim().is_empty()))
        };
        let proxy = |names: &[&str]| {
            var(names).map(|v| {
                Proxy::parse(&v).map(Arc::new).map_err(|e| {
                    let msg = format!("in ${}: {}", names[0], e.message());
                    Error::new(ErrorKind::Proxy, Phase::Prepare, msg)
                })
            })
        };
        ProxyConfig {
            rule: ProxyRule::Env {
                http: proxy(&["http_proxy"]),
                https: proxy(&["https_proxy", "HTTPS_PROXY"]),
                all: proxy(&["all_proxy", "ALL_PROXY"]),
            },
            no_proxy: NoProxy::parse(&var(&["no_proxy", "NO_PROXY"]).unwrap_or_default()),
        }
    }

    /// The proxy for `url` (`None`: direct). `turn` counts the choices made so far, for
    /// round robin.
    ///
    /// # Errors
    /// A malformed proxy from the environment, kind `proxy`.
    pub(crate) fn pick(&self, url: &Url, turn: &Cell<u64>) -> Result<Option<Arc<Proxy>>, Error> {
        let host = url.host_str().unwrap_or("");
        if self.no_proxy.matches(host) {
            return Ok(None);
        }
        match &self.rule {
            ProxyRule::Direct => Ok(None),
            ProxyRule::One(p) => Ok(Some(Arc::clone(p))),
            ProxyRule::List(list, _) if list.is_empty() => Ok(None),
            ProxyRule::List(list, Rotation::RoundRobin) => {
                // Only requests that take a list entry advance the turn, so hosts reached
                // directly do not skew the rotation.
                let t = turn.get();
                turn.set(t.wrapping_add(1));
                Ok(Some(Arc::clone(&list[(t % list.len() as u64) as usize])))
            }
            ProxyRule::List(list, Rotation::StickyPerHost) => {
                let i = fnv1a(host.to_ascii_lowercase().as_bytes()) % list.len() as u64;
                Ok(Some(Arc::clone(&list[i as usize])))
            }
            ProxyRule::Env { http, https, all } => {
                let own = if url.scheme() == "https" { https } else { http };
                match own.as_ref().or(all.as_ref()) {
                    None => Ok(None),
                    Some(Ok(p)) => Ok(Some(Arc::clone(p))),
                    Some(Err(e)) => Err(e.clone()),
                }
            }
        }
    }

    /// Whether the rule is the environment's (chosen per URL scheme).
    pub(crate) fn is_env(&self) -> bool {
        matches!(self.rule, ProxyRule::Env { .. })
    }

    /// Whether any choice can name a proxy (so a fetcher without one skips the work).
    pub(crate) fn is_direct(&self) -> bool {
        match &self.rule {
            ProxyRule::Direct => true,
            ProxyRule::List(list, _) => list.is_empty(),
            ProxyRule::Env { http, https, all } => {
                http.is_none() && https.is_none() && all.is_none()
            }
            ProxyRule::One(_) => false,
        }
    }
}

/// FNV-1a: a stable hash (the same host picks the same proxy in every run and process).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn proxy_urls_parse_with_curls_defaults() {
        let p = Proxy::parse("proxy.example:3128").unwrap();
        assert_eq!(
            (p.kind(), p.host(), p.port()),
            (ProxyKind::Http, "proxy.example", 3128)
        );
        assert_eq!(Proxy::parse("http://p").unwrap().port(), 1080);
        assert_eq!(Proxy::parse("https://p").unwrap().port(), 443);
        assert_eq!(
            Proxy::parse("socks4a://p").unwrap().kind(),
            ProxyKind::Socks4a
        );
        assert_eq!(Proxy::parse("socks5://[::1]:9").unwrap().host(), "::1");
        assert_eq!(
            Proxy::parse("socks5://[::1]:9").unwrap().to_string(),
            "socks5://[::1]:9"
        );
        for bad in ["ftp://p:1", "http://", "socks5://:1", "::"] {
            let e = Proxy::parse(bad).unwrap_err();
            assert_eq!(
                (e.kind(), e.phase()),
                (ErrorKind::Proxy, Phase::Prepare),
                "{bad}"
            );
        }
    }

    #[test]
    fn credentials_are_decoded_and_never_shown() {
        let p = Proxy::parse("http://us%20er:p%40ss%3Aword@h:1").unwrap();
        assert_eq!(p.credentials(), Some(("us er", "p@ss:word")));
        assert_eq!(
            p.basic_auth().unwrap(),
            format!("Basic {}", base64(b"us er:p@ss:word"))
        );
        let shown = format!("{p} {p:?}");
        assert!(
            !shown.contains("p@ss") && !shown.contains("word"),
            "{shown}"
        );
        let e = Proxy::parse("gopher://user:secret@h:1").unwrap_err();
        assert!(!format!("{e} {e:?}").contains("secret"), "{e:?}");
    }

    #[test]
    fn a_password_that_breaks_the_url_is_never_quoted() {
        for bad in [
            "http://user:pa/ss@proxy:3128",
            "user:s?cr#t@proxy:1",
            "socks5://u:a@b/c@h:1",
        ] {
            let shown = match Proxy::parse(bad) {
                Err(e) => format!("{e:#} {e:?}"),
                Ok(p) => format!("{p} {p:?}"),
            };
            for secret in ["pa/ss", "s?cr#t", "a@b/c"] {
                assert!(!shown.contains(secret), "{bad}: {shown}");
            }
        }
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn no_proxy_matches_suffixes_ips_cidrs_and_star() {
        let n = NoProxy::parse("example.com, .internal.test 10.0.0.0/8,::1, 192.168.1.5,fd00::/8");
        for yes in [
            "example.com",
            "a.example.com",
            "EXAMPLE.com.",
            "x.internal.test",
            "internal.test",
            "10.1.2.3",
            "[::1]",
            "192.168.1.5",
            "fd00::1",
        ] {
            assert!(n.matches(yes), "{yes}");
        }
        for no in [
            "notexample.com",
            "example.org",
            "11.0.0.1",
            "::2",
            "192.168.1.6",
            "fe00::1",
        ] {
            assert!(!n.matches(no), "{no}");
        }
        assert!(NoProxy::parse("*").matches("anything"));
        assert!(
            !NoProxy::parse("*, example.com").matches("anything"),
            "only a lone *"
        );
        assert!(NoProxy::parse("[fd00::]/8").matches("[fd12::1]"));
        assert!(!NoProxy::parse("").matches("anything"));
    }

    fn env(vars: &[(&str, &str)]) -> ProxyConfig {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProxyConfig::from_env(|k| map.get(k).cloned())
    }

    fn picked(c: &ProxyConfig, url: &str) -> Option<String> {
        c.pick(&Url::parse(url).unwrap(), &Cell::new(0))
            .unwrap()
            .map(|p| p.to_string())
    }

    #[test]
    fn environment_is_read_the_way_curl_reads_it() {
        // Uppercase HTTP_PROXY is ignored (httpoxy); lowercase wins over uppercase.
        let c = env(&[
            ("HTTP_PROXY", "http://evil:1"),
            ("https_proxy", "http://s:2"),
            ("HTTPS_PROXY", "http://S:3"),
            ("ALL_PROXY", "socks5h://a:4"),
            ("NO_PROXY", "skip.test"),
        ]);
        assert_eq!(
            picked(&c, "http://x.test/").as_deref(),
            Some("socks5h://a:4")
        );
        assert_eq!(picked(&c, "https://x.test/").as_deref(), Some("http://s:2"));
        assert_eq!(picked(&c, "https://a.skip.test/"), None);
        let c = env(&[("http_proxy", "http://h:1"), ("https_proxy", "")]);
        assert_eq!(picked(&c, "http://x/").as_deref(), Some("http://h:1"));
        assert_eq!(picked(&c, "https://x/"), None, "empty is unset");
        let c = env(&[("https_proxy", "gopher://nope")]);
        let e = c
            .pick(&Url::parse("https://x/").unwrap(), &Cell::new(0))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Proxy);
        assert!(e.message().contains("https_proxy"), "{e}");
        assert!(env(&[]).is_direct());
    }

    #[test]
    fn lists_rotate_round_robin_or_stick_per_host() {
        let list: Vec<Arc<Proxy>> = ["http://a:1", "http://b:1", "http://c:1"]
            .iter()
            .map(|u| Arc::new(Proxy::parse(u).unwrap()))
            .collect();
        let rr = ProxyConfig {
            rule: ProxyRule::List(list.clone(), Rotation::RoundRobin),
            no_proxy: NoProxy::default(),
        };
        let url = Url::parse("http://x/").unwrap();
        let hosts: Vec<String> = (0..4)
            .map(|t| {
                rr.pick(&url, &Cell::new(t))
                    .unwrap()
                    .unwrap()
                    .host()
                    .to_owned()
            })
            .collect();
        assert_eq!(hosts, ["a", "b", "c", "a"]);
        let sticky = ProxyConfig {
            rule: ProxyRule::List(list, Rotation::StickyPerHost),
            no_proxy: NoProxy::default(),
        };
        let first = sticky.pick(&url, &Cell::new(0)).unwrap();
        for t in 1..10 {
            assert_eq!(
                sticky
                    .pick(&Url::parse("http://X/other").unwrap(), &Cell::new(t))
                    .unwrap(),
                first
            );
        }
        let spread: std::collections::HashSet<String> = (0..50)
            .map(|i| {
                sticky
                    .pick(
                        &Url::parse(&format!("http://h{i}/")).unwrap(),
                        &Cell::new(0),
                    )
                    .unwrap()
                    .unwrap()
                    .host()
                    .to_owned()
            })
            .collect();
        assert_eq!(spread.len(), 3, "hosts spread over the list");
    }
}
