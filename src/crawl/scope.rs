//! Which URLs a crawl may follow: the part of the web its seeds stand for (same host, same
//! registrable domain, or below the seed's directory), narrowed by include and exclude
//! patterns. Owns that decision only; robots.txt, politeness and de-duplication are
//! elsewhere, and it never fetches.

use super::normalize::normalize;
use crate::polite::registrable;
use regex::RegexSet;
use std::collections::HashSet;
use std::fmt;
use url::Url;

/// How far from its seeds a crawl may go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// Anywhere (http and https): only the patterns narrow it.
    Any,
    /// The host of a seed, over http or https and on any port: `http://example.com/`
    /// allows `https://example.com:8443/x` but not `www.example.com`. wget's default.
    #[default]
    Host,
    /// The registrable domain of a seed, by the Public Suffix List: `www.example.co.uk`
    /// allows `example.co.uk` and `img.example.co.uk`. An IP address, or a host with no
    /// registrable part (`localhost`), allows only itself.
    Domain,
    /// Below a seed's directory, on its scheme, host and port: the seed
    /// `https://example.com/a/b/c.html` allows `https://example.com/a/b/` and everything
    /// under it, not `/a/` nor `/a/bc`. wget's `--no-parent`. A seed path ending in `/` is
    /// its own directory; `/a/b` (no slash) is the file `b` in `/a/`.
    Prefix,
}

/// A pattern given to [`ScopeFilter::include`] or [`ScopeFilter::exclude`] that is not a
/// valid regular expression (or is too large to compile). The caller's mistake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError(String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad url pattern: {}", self.0)
    }
}

impl std::error::Error for PatternError {}

/// Decides whether a crawl follows a URL: it must be http(s), within the [`Scope`] of at
/// least one seed, match an include pattern if any were given, and match no exclude
/// pattern.
///
/// Patterns are regular expressions (the `regex` crate's syntax: linear time, no
/// backtracking, so a pattern cannot make a check blow up) searched for anywhere in the
/// URL's normalised text (`https://example.com/a?b`), as wget's `--accept-regex` and
/// `--reject-regex` are: anchor with `^` and `$` where needed.
///
/// URLs are [`normalize`]d before they are checked, seeds too.
///
/// # Examples
/// ```
/// use parafetch::crawl::{Scope, ScopeFilter};
/// use url::Url;
/// let seed = Url::parse("https://example.com/docs/index.html")?;
/// let filter = ScopeFilter::new(Scope::Prefix, [&seed])
///     .exclude([r"\.pdf$", r"[?&]print="])?;
/// let allows = |s: &str| filter.allows(&Url::parse(s).unwrap());
/// assert!(allows("https://example.com/docs/guide/intro.html"));
/// assert!(!allows("https://example.com/blog/"));
/// assert!(!allows("https://example.com/docs/manual.pdf"));
/// assert!(!allows("http://example.com/docs/")); // another scheme
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ScopeFilter {
    scope: Scope,
    /// Host or registrable domain of each seed (`Host`, `Domain`).
    names: HashSet<String>,
    /// Scheme, host, port and directory of each seed (`Prefix`).
    prefixes: Vec<Prefix>,
    include: Patterns,
    exclude: Patterns,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Prefix {
    scheme: String,
    host: String,
    port: Option<u16>,
    dir: String,
}

/// Patterns, and the set compiled from all of them (`None` while there are none).
#[derive(Clone, Debug, Default)]
struct Patterns {
    sources: Vec<String>,
    set: Option<RegexSet>,
}

impl ScopeFilter {
    /// A filter for the URLs `scope` allows around `seeds` (http and https ones; others
    /// are ignored). With no seeds, only [`Scope::Any`] allows anything.
    pub fn new<'a>(scope: Scope, seeds: impl IntoIterator<Item = &'a Url>) -> ScopeFilter {
        let mut filter = ScopeFilter {
            scope,
            names: HashSet::new(),
            prefixes: Vec::new(),
            include: Patterns::default(),
            exclude: Patterns::default(),
        };
        for seed in seeds {
            filter.add_seed(seed);
        }
        filter
    }

    /// Widens the scope by one more seed (a start URL found later, say).
    pub fn add_seed(&mut self, seed: &Url) {
        let Some(seed) = normalize(seed) else {
            return;
        };
        match self.scope {
            Scope::Any => {}
            Scope::Host | Scope::Domain => {
                if let Some(name) = self.name_of(&seed) {
                    self.names.insert(name);
                }
            }
            Scope::Prefix => {
                let prefix = Prefix::of(&seed);
                if !self.prefixes.contains(&prefix) {
                    self.prefixes.push(prefix);
                }
            }
        }
    }

    /// Adds patterns of which a URL must match at least one (once any are given).
    ///
    /// # Errors
    /// A pattern that does not compile; the filter is then dropped.
    pub fn include<S: AsRef<str>>(
        mut self,
        patterns: impl IntoIterator<Item = S>,
    ) -> Result<ScopeFilter, PatternError> {
        self.include.add(patterns)?;
        Ok(self)
    }

    /// Adds patterns that a URL must match none of.
    ///
    /// # Errors
    /// A pattern that does not compile; the filter is then dropped.
    pub fn exclude<S: AsRef<str>>(
        mut self,
        patterns: impl IntoIterator<Item = S>,
    ) -> Result<ScopeFilter, PatternError> {
        self.exclude.add(patterns)?;
        Ok(self)
    }

    /// Whether the crawl may follow `url`: in scope and passing the patterns.
    pub fn allows(&self, url: &Url) -> bool {
        let Some(url) = normalize(url) else {
            return false;
        };
        self.scope_allows(&url)
            && self
                .include
                .set
                .as_ref()
                .is_none_or(|s| s.is_match(url.as_str()))
            && !self
                .exclude
                .set
                .as_ref()
                .is_some_and(|s| s.is_match(url.as_str()))
    }

    /// Whether `url` is within the scope of a seed, whatever the patterns say.
    pub fn in_scope(&self, url: &Url) -> bool {
        normalize(url).is_some_and(|url| self.scope_allows(&url))
    }

    /// The scope it was built with.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    fn scope_allows(&self, url: &Url) -> bool {
        match self.scope {
            Scope::Any => true,
            Scope::Host | Scope::Domain => {
                self.name_of(url).is_some_and(|n| self.names.contains(&n))
            }
            Scope::Prefix => self.prefixes.iter().any(|p| p.allows(url)),
        }
    }

    /// The host (`Host`) or registrable domain (`Domain`) of a normalised URL, without a
    /// trailing dot.
    fn name_of(&self, url: &Url) -> Option<String> {
        let host = url.host_str()?;
        let host = host.strip_suffix('.').unwrap_or(host).to_owned();
        Some(match self.scope {
            Scope::Domain => registrable(url, host),
            _ => host,
        })
    }
}

impl Prefix {
    fn of(seed: &Url) -> Prefix {
        let path = seed.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        Prefix {
            scheme: seed.scheme().to_owned(),
            host: seed.host_str().unwrap_or_default().to_owned(),
            port: seed.port_or_known_default(),
            dir: if dir.is_empty() {
                "/".to_owned()
            } else {
                dir.to_owned()
            },
        }
    }

    fn allows(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url.host_str() == Some(&self.host)
            && url.port_or_known_default() == self.port
            && url.path().starts_with(&self.dir)
    }
}

impl Patterns {
    fn add<S: AsRef<str>>(
        &mut self,
        patterns: impl IntoIterator<Item = S>,
    ) -> Result<(), PatternError> {
        let before = self.sources.len();
        self.sources
            .extend(patterns.into_iter().map(|p| p.as_ref().to_owned()));
        if self.sources.len() == before {
            return Ok(());
        }
        let set = RegexSet::new(&self.sources).map_err(|e| PatternError(e.to_string()))?;
        self.set = Some(set);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn filter(scope: Scope, seeds: &[&str]) -> ScopeFilter {
        let seeds: Vec<Url> = seeds.iter().map(|s| u(s)).collect();
        ScopeFilter::new(scope, &seeds)
    }

    #[test]
    fn host() {
        let f = filter(
            Scope::Host,
            &["http://Example.com/start", "https://two.example/"],
        );
        for yes in [
            "http://example.com/",
            "https://example.com/other?x",
            "http://example.com:8080/",
            "http://example.com./",
            "https://two.example/deep/path",
        ] {
            assert!(f.allows(&u(yes)), "{yes}");
        }
        for no in [
            "http://www.example.com/",
            "http://example.org/",
            "http://ample.com/",
            "ftp://example.com/",
            "mailto:x@example.com",
        ] {
            assert!(!f.allows(&u(no)), "{no}");
        }
    }

    #[test]
    fn domain() {
        let f = filter(
            Scope::Domain,
            &[
                "https://www.example.co.uk/",
                "http://127.0.0.1:8080/",
                "http://localhost/",
            ],
        );
        for yes in [
            "https://example.co.uk/",
            "http://img.cdn.example.co.uk/a.png",
            "http://WWW.EXAMPLE.CO.UK./",
            "http://127.0.0.1/",
            "http://localhost:9/",
        ] {
            assert!(f.allows(&u(yes)), "{yes}");
        }
        for no in [
            "https://other.co.uk/",
            "https://co.uk/",
            "https://example.com/",
            "http://127.0.0.2/",
            "http://x.localhost/",
        ] {
            assert!(!f.allows(&u(no)), "{no}");
        }
        // Two sites under one public suffix are two domains.
        let f = filter(Scope::Domain, &["https://alice.github.io/"]);
        assert!(f.allows(&u("https://alice.github.io/x")));
        assert!(!f.allows(&u("https://bob.github.io/")));
    }

    #[test]
    fn prefix() {
        let f = filter(Scope::Prefix, &["https://example.com/a/b/c.html"]);
        for yes in [
            "https://example.com/a/b/",
            "https://example.com/a/b/c.html",
            "https://example.com/a/b/d/e?f",
            "https://example.com:443/a/b/%7Ex",
        ] {
            assert!(f.allows(&u(yes)), "{yes}");
        }
        for no in [
            "https://example.com/a/",
            "https://example.com/a/bc",
            "https://example.com/a/b",
            "http://example.com/a/b/",
            "https://example.com:8443/a/b/",
            "https://www.example.com/a/b/",
            "https://example.com/a/b/../x",
        ] {
            assert!(!f.allows(&u(no)), "{no}");
        }
        let dir = filter(Scope::Prefix, &["http://e.com/a/b/"]);
        assert!(dir.allows(&u("http://e.com/a/b/x")) && !dir.allows(&u("http://e.com/a/x")));
        let file = filter(Scope::Prefix, &["http://e.com/a/b?x=1"]);
        assert!(file.allows(&u("http://e.com/a/x")) && !file.allows(&u("http://e.com/x")));
        let root = filter(Scope::Prefix, &["http://e.com"]);
        assert!(root.allows(&u("http://e.com/any/thing")));
    }

    #[test]
    fn any_and_no_seeds() {
        let any = filter(Scope::Any, &[]);
        assert!(any.allows(&u("https://anything.example/")));
        assert!(!any.allows(&u("ftp://anything.example/")));
        for scope in [Scope::Host, Scope::Domain, Scope::Prefix] {
            assert!(
                !filter(scope, &[]).allows(&u("https://e.com/")),
                "{scope:?}"
            );
            assert!(!filter(scope, &["mailto:a@e.com"]).allows(&u("https://e.com/")));
        }
        let mut f = filter(Scope::Host, &[]);
        f.add_seed(&u("https://e.com/"));
        assert!(f.allows(&u("https://e.com/x")));
    }

    #[test]
    fn include_and_exclude() {
        let f = filter(Scope::Host, &["https://e.com/"])
            .include(["/docs/", "/blog/"])
            .unwrap()
            .exclude([r"\.pdf$"])
            .unwrap()
            .exclude([r"(?i)[?&]print="])
            .unwrap();
        assert!(f.allows(&u("https://e.com/docs/a.html")));
        assert!(f.allows(&u("https://e.com/blog/")));
        assert!(!f.allows(&u("https://e.com/about")), "no include matches");
        assert!(!f.allows(&u("https://e.com/docs/a.pdf")));
        assert!(!f.allows(&u("https://e.com/docs/a?PRINT=1")));
        assert!(!f.allows(&u("https://other.com/docs/")), "out of scope");
        assert!(f.in_scope(&u("https://e.com/about")));
        // Matched against the normalised URL.
        assert!(!f.allows(&u("https://E.COM/docs/x.%70df#f")));
        // No patterns added: nothing changes.
        let f = filter(Scope::Host, &["https://e.com/"])
            .include(Vec::<String>::new())
            .unwrap();
        assert!(f.allows(&u("https://e.com/x")));
    }

    #[test]
    fn a_bad_pattern_is_an_error() {
        let e = filter(Scope::Any, &[]).include(["(unclosed"]).unwrap_err();
        assert!(e.to_string().starts_with("bad url pattern: "), "{e}");
        assert!(filter(Scope::Any, &[]).exclude(["a{99999999}"]).is_err());
    }
}
