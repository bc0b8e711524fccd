//! Cookie jars (feature `cookies`): RFC 6265 storage and matching through the
//! `cookie_store` crate (the one reqwest and ureq use), with what a crawler needs on top:
//! public-suffix domains refused by the Public Suffix List (the `psl` crate), bounds so an
//! endless crawl cannot grow a jar without limit, the Netscape cookie-file format curl
//! and wget read and write, and a `Debug` that never shows a value.
//!
//! A [`CookieJar`] is plain data: the fetcher keeps its jars (one by default, or named
//! ones picked per request with [`Request::jar`](crate::Request::jar)), fills them from
//! every response's `Set-Cookie` (redirects included, before the next hop) and sends
//! their `Cookie` header with each attempt.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, BufRead, Write};
use std::time::{Duration, SystemTime};

use cookie_store::{CookieDomain, CookieExpiration, CookieStore, RawCookie};
use url::Url;

/// Most cookies a jar keeps for one registrable domain (Chrome's number); past it, the
/// oldest of that domain goes.
pub const MAX_COOKIES_PER_DOMAIN: usize = 180;
/// Most cookies a jar keeps in all (RFC 6265 asks for at least 3000); past it, the oldest
/// goes.
pub const MAX_COOKIES: usize = 3000;

/// A cookie as a jar holds it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cookie {
    /// The cookie's name.
    pub name: String,
    /// Its value (never shown by `Debug`).
    pub value: String,
    /// The domain it is sent to: the host that set it (`host_only`), or that domain and
    /// its subdomains.
    pub domain: String,
    /// Sent only to the setting host, not its subdomains (no `Domain` attribute).
    pub host_only: bool,
    /// Sent for this path and below.
    pub path: String,
    /// Sent only over https.
    pub secure: bool,
    /// Not for scripts (a fetcher sends it like any other).
    pub http_only: bool,
    /// When it expires; `None` for a session cookie (it lives as long as the jar).
    pub expires: Option<SystemTime>,
}

impl Cookie {
    /// A host-only session cookie for `domain`, path `/`, neither `Secure` nor
    /// `HttpOnly`; change the public fields for the rest, then
    /// [`CookieJar::insert`] it.
    pub fn new(
        name: impl Into<String>,
        value: impl Into<String>,
        domain: impl Into<String>,
    ) -> Cookie {
        Cookie {
            name: name.into(),
            value: value.into(),
            domain: domain.into(),
            host_only: true,
            path: "/".to_owned(),
            secure: false,
            http_only: false,
            expires: None,
        }
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cookie")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .field("domain", &self.domain)
            .field("host_only", &self.host_only)
            .field("path", &self.path)
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("expires", &self.expires)
            .finish()
    }
}

/// Where a cookie lives in the store: domain, path, name.
type Key = (String, String, String);

/// A cookie jar: RFC 6265 rules, bounded, public suffixes refused.
///
/// # Examples
/// ```
/// use parafetch::CookieJar;
/// use url::Url;
///
/// let mut jar = CookieJar::new();
/// let login = Url::parse("https://shop.example.com/login").unwrap();
/// assert!(jar.set_cookie(&login, "session=abc; Path=/; Secure; HttpOnly"));
/// assert!(jar.set_cookie(&login, "lang=en; Domain=example.com"));
/// // A public suffix may not set a cookie for everyone under it.
/// assert!(!jar.set_cookie(&login, "evil=1; Domain=com"));
///
/// let page = Url::parse("https://shop.example.com/cart").unwrap();
/// assert_eq!(jar.cookie_header(&page).as_deref(), Some("session=abc; lang=en"));
/// // Secure cookies never go over http; the domain cookie reaches the sibling host.
/// let other = Url::parse("http://www.example.com/").unwrap();
/// assert_eq!(jar.cookie_header(&other).as_deref(), Some("lang=en"));
/// // Debug output never shows a value.
/// assert!(!format!("{jar:?}").contains("abc"));
/// ```
#[derive(Clone, Default)]
pub struct CookieJar {
    store: CookieStore,
    /// Insertion order, for evicting the oldest: sequence number by key, and back.
    seq_of: HashMap<Key, u64>,
    by_seq: BTreeMap<u64, Key>,
    next_seq: u64,
    /// Cookies per registrable domain, for its bound.
    per_site: HashMap<String, usize>,
}

impl fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .cookies()
            .map(|c| format!("{}@{}{}", c.name, c.domain, c.path))
            .collect();
        f.debug_struct("CookieJar")
            .field("cookies", &names)
            .finish()
    }
}

/// The registrable domain a cookie counts against, for the per-domain bound.
fn registrable(domain: &str) -> &str {
    psl::domain_str(domain).unwrap_or(domain)
}

/// Whether `domain` is itself a public suffix (`com`, `co.uk`, `github.io`).
fn is_public_suffix(domain: &str) -> bool {
    psl::suffix_str(domain).is_some_and(|s| s.len() == domain.len())
}

impl CookieJar {
    /// An empty jar.
    pub fn new() -> CookieJar {
        CookieJar::default()
    }

    /// Takes one `Set-Cookie` header value as if `url` had sent it. Returns whether it was
    /// stored (or removed an existing cookie, for an expired one). Refused: a malformed
    /// value, a `Domain` the host is not within, a `Domain` that is a public suffix (unless
    /// it is the host itself: then the cookie is host-only), a `Secure` cookie from http.
    pub fn set_cookie(&mut self, url: &Url, set_cookie: &str) -> bool {
        let Ok(mut raw) = RawCookie::parse(set_cookie) else {
            return false;
        };
        let secure_origin = url.scheme() == "https";
        if raw.secure() == Some(true) && !secure_origin {
            // RFC 6265bis: only a secure origin may set a Secure cookie.
            return false;
        }
        // Canonicalised (the domain as ASCII, the default path) as the store will keep it:
        // the public-suffix check must see the domain the store would match against
        // (`Domain=ｃｏ.uk` is `co.uk` once converted).
        let Ok(mut cookie) = cookie_store::Cookie::try_from_raw_cookie(&raw, url) else {
            return false;
        };
        if let CookieDomain::Suffix(domain) = &cookie.domain {
            if is_public_suffix(domain) {
                let host = url.host_str().unwrap_or("");
                if !host.eq_ignore_ascii_case(domain) {
                    return false;
                }
                raw.unset_domain();
                let Ok(host_only) = cookie_store::Cookie::try_from_raw_cookie(&raw, url) else {
                    return false;
                };
                cookie = host_only;
            }
        }
        let key = key_of(&cookie);
        if !secure_origin
            && self
                .store
                .get_any(&key.0, &key.1, &key.2)
                .is_some_and(|old| old.secure() == Some(true))
        {
            // RFC 6265bis 5.7: an insecure origin may not overwrite a Secure cookie.
            return false;
        }
        match self.store.insert(cookie.into_owned(), url) {
            Ok(cookie_store::StoreAction::ExpiredExisting) => {
                self.remove_key(&key);
                true
            }
            Ok(_) => {
                self.note_inserted(key);
                true
            }
            Err(_) => false,
        }
    }

    /// Records the insertion order of what was just stored, then keeps the bounds.
    fn note_inserted(&mut self, key: Key) {
        if self.seq_of.contains_key(&key) {
            return; // replaced: it keeps the old one's creation time (RFC 6265 5.3 11.3)
        }
        self.next_seq += 1;
        let site = registrable(&key.0).to_owned();
        *self.per_site.entry(site.clone()).or_default() += 1;
        self.seq_of.insert(key.clone(), self.next_seq);
        self.by_seq.insert(self.next_seq, key);
        self.enforce_bounds(&site);
    }

    /// Drops the oldest cookies of `site`, then the oldest of all, while a bound is
    /// exceeded (expired cookies go first). Cheap unless a bound is exceeded.
    fn enforce_bounds(&mut self, site: &str) {
        let over_site = |jar: &CookieJar| {
            jar.per_site
                .get(site)
                .is_some_and(|&n| n > MAX_COOKIES_PER_DOMAIN)
        };
        if over_site(self) || self.seq_of.len() > MAX_COOKIES {
            self.forget_expired();
        }
        while over_site(self) {
            let oldest = self
                .by_seq
                .values()
                .find(|k| registrable(&k.0) == site)
                .cloned();
            match oldest {
                Some(k) => self.remove_key(&k),
                None => break,
            }
        }
        while self.seq_of.len() > MAX_COOKIES {
            let Some((_, k)) = self.by_seq.first_key_value() else {
                break;
            };
            let k = k.clone();
            self.remove_key(&k);
        }
    }

    fn forget_expired(&mut self) {
        let expired: Vec<Key> = self
            .store
            .iter_any()
            .filter(|c| c.is_expired())
            .map(key_of)
            .collect();
        for k in expired {
            self.remove_key(&k);
        }
    }

    fn remove_key(&mut self, k: &Key) {
        self.store.remove(&k.0, &k.1, &k.2);
        if let Some(seq) = self.seq_of.remove(k) {
            self.by_seq.remove(&seq);
            let site = registrable(&k.0);
            if let Some(n) = self.per_site.get_mut(site) {
                *n -= 1;
                if *n == 0 {
                    self.per_site.remove(site);
                }
            }
        }
    }

    /// The `Cookie` header value for a request to `url`: the unexpired cookies whose
    /// domain and path match, `Secure` ones only over https; `None` when there are none.
    /// Longer paths first, as RFC 6265 asks (then older first).
    pub fn cookie_header(&self, url: &Url) -> Option<String> {
        let mut matched = self.store.matches(url);
        if url.scheme() != "https" {
            // Strictly https: cookie_store, as browsers, also trusts http://localhost and
            // loopback addresses; a crawler's loopback is not a secure context.
            matched.retain(|c| c.secure() != Some(true));
        }
        if matched.is_empty() {
            return None;
        }
        matched.sort_by_key(|c| {
            let seq = self.seq_of.get(&key_of(c)).copied().unwrap_or(0);
            (std::cmp::Reverse(String::from(&c.path).len()), seq)
        });
        let pairs: Vec<String> = matched
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect();
        Some(pairs.join("; "))
    }

    /// Every unexpired cookie, oldest first.
    pub fn cookies(&self) -> impl Iterator<Item = Cookie> + '_ {
        let mut all: Vec<&cookie_store::Cookie<'static>> = self.store.iter_unexpired().collect();
        all.sort_by_key(|c| self.seq_of.get(&key_of(c)).copied().unwrap_or(0));
        all.into_iter().map(to_public)
    }

    /// How many unexpired cookies it holds.
    pub fn len(&self) -> usize {
        self.store.iter_unexpired().count()
    }

    /// Whether it holds no unexpired cookie.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes one cookie; returns whether it was there.
    pub fn remove(&mut self, domain: &str, path: &str, name: &str) -> bool {
        let k = (
            domain.to_ascii_lowercase(),
            path.to_owned(),
            name.to_owned(),
        );
        let was = self.store.contains(&k.0, &k.1, &k.2);
        self.remove_key(&k);
        was
    }

    /// Removes every cookie.
    pub fn clear(&mut self) {
        self.store.clear();
        self.seq_of.clear();
        self.by_seq.clear();
        self.per_site.clear();
    }

    /// Reads a Netscape cookie file (curl's `-c` and wget's `--save-cookies` format: one
    /// cookie a line, tab-separated domain, include-subdomains flag, path, secure flag,
    /// expiry in Unix seconds (0: a session cookie), name, value; `#HttpOnly_` before the
    /// domain marks an HttpOnly cookie; other `#` lines and blank lines are comments).
    /// Expired and malformed lines are skipped; returns how many cookies were taken.
    ///
    /// # Errors
    /// Only an I/O error of the reader.
    pub fn read_netscape(&mut self, reader: impl BufRead) -> io::Result<usize> {
        let now = SystemTime::now();
        let mut taken = 0;
        for line in reader.lines() {
            let line = line?;
            let (http_only, line) = match line.strip_prefix("#HttpOnly_") {
                Some(rest) => (true, rest),
                None => (false, line.as_str()),
            };
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.trim_end_matches(['\r', '\n']).split('\t').collect();
            let [domain, subdomains, path, secure, expires, name, value] = fields[..] else {
                continue;
            };
            let Ok(expires) = expires.parse::<u64>() else {
                continue;
            };
            let expires = match expires {
                0 => None,
                // A hostile expiry must not overflow the clock: such a line is skipped.
                secs => match SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
                    Some(t) => Some(t),
                    None => continue,
                },
            };
            if expires.is_some_and(|t| t <= now) {
                continue;
            }
            let host = domain.trim_start_matches('.');
            let cookie = Cookie {
                name: name.to_owned(),
                value: value.to_owned(),
                domain: host.to_ascii_lowercase(),
                host_only: !subdomains.eq_ignore_ascii_case("TRUE"),
                path: path.to_owned(),
                secure: secure.eq_ignore_ascii_case("TRUE"),
                http_only,
                expires,
            };
            if self.insert(&cookie) {
                taken += 1;
            }
        }
        Ok(taken)
    }

    /// Writes every unexpired cookie (session cookies too, with expiry 0, as curl does) in
    /// the Netscape format [`read_netscape`](CookieJar::read_netscape) reads, with curl's
    /// header line.
    ///
    /// # Errors
    /// An I/O error of the writer.
    pub fn write_netscape(&self, mut w: impl Write) -> io::Result<()> {
        writeln!(w, "# Netscape HTTP Cookie File")?;
        writeln!(w, "# Written by parafetch. Edit at your own risk.")?;
        writeln!(w)?;
        for c in self.cookies() {
            let expires = c
                .expires
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs().max(1));
            let domain = if c.host_only {
                c.domain.clone()
            } else {
                format!(".{}", c.domain)
            };
            writeln!(
                w,
                "{}{}\t{}\t{}\t{}\t{}\t{}\t{}",
                if c.http_only { "#HttpOnly_" } else { "" },
                domain,
                if c.host_only { "FALSE" } else { "TRUE" },
                c.path,
                if c.secure { "TRUE" } else { "FALSE" },
                expires,
                c.name,
                c.value
            )?;
        }
        Ok(())
    }

    /// Puts a cookie in as it is (seeding a jar); returns whether it was taken (a public
    /// suffix domain, an empty name or an expired cookie are not).
    pub fn insert(&mut self, cookie: &Cookie) -> bool {
        let mut raw = RawCookie::new(cookie.name.clone(), cookie.value.clone());
        raw.set_path(cookie.path.clone());
        raw.set_secure(cookie.secure);
        raw.set_http_only(cookie.http_only);
        if !cookie.host_only {
            raw.set_domain(cookie.domain.clone());
        }
        if let Some(at) = cookie.expires {
            let secs = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let Ok(at) = cookie::time::OffsetDateTime::from_unix_timestamp(secs as i64) else {
                return false;
            };
            raw.set_expires(at);
        }
        // As if the cookie's own host had set it over https (so Secure is allowed).
        let Ok(url) = Url::parse(&format!("https://{}{}", cookie.domain, cookie.path)) else {
            return false;
        };
        self.set_cookie(&url, &raw.to_string())
    }
}

/// A store cookie's key.
fn key_of(c: &cookie_store::Cookie<'_>) -> Key {
    let domain = match &c.domain {
        CookieDomain::HostOnly(d) | CookieDomain::Suffix(d) => d.clone(),
        CookieDomain::NotPresent | CookieDomain::Empty => String::new(),
    };
    (domain, String::from(&c.path), c.name().to_owned())
}

fn to_public(c: &cookie_store::Cookie<'_>) -> Cookie {
    let (domain, host_only) = match &c.domain {
        CookieDomain::HostOnly(d) => (d.clone(), true),
        CookieDomain::Suffix(d) => (d.clone(), false),
        CookieDomain::NotPresent | CookieDomain::Empty => (String::new(), true),
    };
    let expires = match &c.expires {
        CookieExpiration::AtUtc(at) => {
            let secs = at.unix_timestamp().max(0) as u64;
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        }
        CookieExpiration::SessionEnd => None,
    };
    Cookie {
        name: c.name().to_owned(),
        value: c.value().to_owned(),
        domain,
        host_only,
        path: String::from(&c.path),
        secure: c.secure().unwrap_or(false),
        http_only: c.http_only().unwrap_or(false),
        expires,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn domain_and_path_matching() {
        let mut jar = CookieJar::new();
        let at = url("http://a.example.com/shop/cart");
        assert!(jar.set_cookie(&at, "host=1"));
        assert!(jar.set_cookie(&at, "dom=2; Domain=example.com; Path=/"));
        assert!(
            !jar.set_cookie(&at, "other=3; Domain=example.org"),
            "not within"
        );
        // The default path of /shop/cart is /shop.
        assert_eq!(jar.cookie_header(&at).as_deref(), Some("host=1; dom=2"));
        assert_eq!(
            jar.cookie_header(&url("http://a.example.com/")).as_deref(),
            Some("dom=2")
        );
        assert_eq!(
            jar.cookie_header(&url("http://b.example.com/shop/"))
                .as_deref(),
            Some("dom=2")
        );
        assert_eq!(jar.cookie_header(&url("http://example.org/")), None);
    }

    #[test]
    fn public_suffixes_are_refused_unless_they_are_the_host() {
        let mut jar = CookieJar::new();
        assert!(!jar.set_cookie(&url("http://a.example.co.uk/"), "x=1; Domain=co.uk"));
        assert!(!jar.set_cookie(&url("http://me.github.io/"), "x=1; Domain=github.io"));
        // A public suffix that is the host itself: kept, host-only.
        assert!(jar.set_cookie(&url("http://github.io/"), "y=2; Domain=github.io"));
        let c: Vec<Cookie> = jar.cookies().collect();
        assert_eq!(c.len(), 1);
        assert!(c[0].host_only);
        assert_eq!(jar.cookie_header(&url("http://me.github.io/")), None);
    }

    #[test]
    fn secure_cookies_only_over_https_and_only_from_https() {
        let mut jar = CookieJar::new();
        assert!(!jar.set_cookie(&url("http://example.com/"), "s=1; Secure"));
        assert!(jar.set_cookie(&url("https://example.com/"), "s=1; Secure"));
        assert_eq!(jar.cookie_header(&url("http://example.com/")), None);
        assert_eq!(
            jar.cookie_header(&url("https://example.com/")).as_deref(),
            Some("s=1")
        );
    }

    #[test]
    fn max_age_zero_removes_and_http_only_is_kept() {
        let mut jar = CookieJar::new();
        let at = url("http://example.com/");
        assert!(jar.set_cookie(&at, "a=1; HttpOnly"));
        assert!(jar.cookies().next().unwrap().http_only);
        assert_eq!(jar.cookie_header(&at).as_deref(), Some("a=1"));
        assert!(jar.set_cookie(&at, "a=gone; Max-Age=0"));
        assert_eq!(jar.cookie_header(&at), None);
        assert!(jar.is_empty());
    }

    #[test]
    fn bounded_per_domain_and_in_all_dropping_the_oldest() {
        let mut jar = CookieJar::new();
        let at = url("http://a.example.com/");
        for i in 0..MAX_COOKIES_PER_DOMAIN + 20 {
            assert!(jar.set_cookie(&at, &format!("c{i}=v")));
        }
        assert_eq!(jar.len(), MAX_COOKIES_PER_DOMAIN);
        let names: Vec<String> = jar.cookies().map(|c| c.name).collect();
        assert_eq!(names[0], "c20", "the oldest went first");
        // Sibling hosts count against their registrable domain.
        assert!(jar.set_cookie(&url("http://b.example.com/"), "sib=1"));
        assert_eq!(jar.len(), MAX_COOKIES_PER_DOMAIN);
        // In all: many domains.
        let mut jar = CookieJar::new();
        for i in 0..MAX_COOKIES + 50 {
            let at = url(&format!("http://h{}.example{}.com/", i % 7, i / 7));
            jar.set_cookie(&at, &format!("n{i}=v"));
        }
        assert_eq!(jar.len(), MAX_COOKIES);
    }

    #[test]
    fn netscape_files_round_trip() {
        let mut jar = CookieJar::new();
        let at = url("https://www.example.com/app/x");
        jar.set_cookie(&at, "sess=abc; HttpOnly; Secure; Path=/app");
        jar.set_cookie(&at, "pref=dark; Domain=example.com; Path=/; Max-Age=3600");
        let mut file = Vec::new();
        jar.write_netscape(&mut file).unwrap();
        let text = String::from_utf8(file.clone()).unwrap();
        assert!(text.starts_with("# Netscape HTTP Cookie File\n"), "{text}");
        assert!(
            text.contains("#HttpOnly_www.example.com\tFALSE\t/app\tTRUE\t0\tsess\tabc\n"),
            "{text}"
        );
        assert!(text.contains(".example.com\tTRUE\t/\tFALSE\t"), "{text}");
        let mut back = CookieJar::new();
        assert_eq!(back.read_netscape(&file[..]).unwrap(), 2);
        let mut a: Vec<Cookie> = jar.cookies().collect();
        let mut b: Vec<Cookie> = back.cookies().collect();
        a.sort_by(|x, y| x.name.cmp(&y.name));
        b.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(a, b);
    }

    #[test]
    fn curl_lines_are_read_and_junk_skipped() {
        let file = "# Netscape HTTP Cookie File\n\
                    # https://curl.se/docs/http-cookies.html\n\
                    \n\
                    127.0.0.1\tFALSE\t/\tFALSE\t0\tk\tv\n\
                    .example.org\tTRUE\t/p\tFALSE\t4102444800\tlong\tlived\n\
                    example.org\tFALSE\t/\tFALSE\t1\texpired\tx\n\
                    broken line\n";
        let mut jar = CookieJar::new();
        assert_eq!(jar.read_netscape(file.as_bytes()).unwrap(), 2);
        assert_eq!(
            jar.cookie_header(&url("http://127.0.0.1:8080/a"))
                .as_deref(),
            Some("k=v")
        );
        assert_eq!(
            jar.cookie_header(&url("http://x.example.org/p/q"))
                .as_deref(),
            Some("long=lived")
        );
    }

    #[test]
    fn hostile_input_is_refused_not_a_panic() {
        let mut jar = CookieJar::new();
        // Fullwidth letters become co.uk once converted: still a public suffix.
        assert!(!jar.set_cookie(
            &url("http://a.example.co.uk/"),
            "x=1; Domain=\u{ff43}\u{ff4f}.uk"
        ));
        let file = "example.org\tFALSE\t/\tFALSE\t18446744073709551615\tk\tv\n";
        assert_eq!(jar.read_netscape(file.as_bytes()).unwrap(), 0);
        // An http answer may not overwrite (or unsecure) a Secure cookie.
        assert!(jar.set_cookie(&url("https://example.org/"), "sid=good; Secure"));
        assert!(!jar.set_cookie(&url("http://example.org/"), "sid=evil"));
        assert_eq!(
            jar.cookie_header(&url("https://example.org/")).as_deref(),
            Some("sid=good")
        );
    }

    #[test]
    fn debug_never_shows_a_value() {
        let mut jar = CookieJar::new();
        jar.set_cookie(&url("http://example.com/"), "token=s3cr3t");
        assert!(!format!("{jar:?}").contains("s3cr3t"));
        let c = jar.cookies().next().unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
