//! Pieces for writing a crawler on top of the fetcher (feature `crawl`): links out of HTML
//! as it streams in, URL normalisation, a compact set of URLs seen with a pause/resume
//! file, XML sitemaps, and the scope a crawl keeps to. `parafetch crawl` is built from
//! them, and so can your own crawler.
//!
//! Owns only decisions about URLs and documents, and is sans-IO like [`proto`](crate::proto):
//! bytes and URLs in, values out. It never fetches, never touches a socket, a clock or a
//! thread, and never reads robots.txt (that is [`robots`](crate::robots) and the fetcher's
//! `obey_robots`). Every input may be hostile: each reader is bounded by the caller
//! (`max_bytes`, `max_urls`, `max_out`), never panics on garbage, and reports a failure as
//! a value. Nothing here builds a document tree.
//!
//! - [`LinkExtractor`] — fed a body piece by piece (from
//!   [`Request::on_body`](crate::Request::on_body), say), gives its [`Links`]; [`is_html`]
//!   says whether a Content-Type is worth feeding.
//! - [`normalize`] — the one form of a URL used to tell whether it was seen.
//! - [`SeenSet`] — normalised URLs as 64-bit hashes, 10 to 20 bytes each, with
//!   [`SeenSet::write_to`] and [`SeenSet::read_from`] to pause and resume.
//! - [`parse_sitemap`] — page and sitemap URLs out of a sitemap or sitemap index;
//!   [`gunzip_bounded`] for `.xml.gz` files.
//! - [`Scope`] and [`ScopeFilter`] — same host, same registrable domain or below the seed's
//!   directory, with include and exclude patterns.
//!
//! # Examples
//! One page's body, as it might arrive in three pieces, to the URLs a crawl would queue:
//! ```
//! use parafetch::crawl::{LinkExtractor, Scope, ScopeFilter, SeenSet};
//! use url::Url;
//!
//! let page = Url::parse("https://example.com/blog/")?;
//! let filter = ScopeFilter::new(Scope::Prefix, [&page]);
//! let mut seen = SeenSet::new();
//! seen.insert(&page);
//!
//! let mut links = LinkExtractor::new(&page, 4 << 20);
//! for piece in [
//!     &b"<!doctype html><title>Blog</title><a href=\"2024/hello.html\">Hello</a> <a hr"[..],
//!     b"ef=\"/about\">About</a> <a href=\"https://example.com/blog/#top\">Top</a>",
//!     b" <a href='2024/hello.html#comments'>Comments</a>",
//! ] {
//!     links.feed(piece);
//! }
//! let queue: Vec<Url> = links
//!     .finish()
//!     .urls
//!     .into_iter()
//!     .filter(|url| filter.allows(url) && seen.insert(url))
//!     .collect();
//! assert_eq!(queue, [Url::parse("https://example.com/blog/2024/hello.html")?]);
//! # Ok::<(), url::ParseError>(())
//! ```

mod links;
mod normalize;
mod scope;
mod seen;
mod sitemap;

pub use links::{LinkExtractor, Links, is_html};
pub use normalize::normalize;
pub use scope::{PatternError, Scope, ScopeFilter};
pub use seen::{SEEN_FORMAT_VERSION, SeenSet};
pub use sitemap::{MAX_SITEMAP_BYTES, MAX_SITEMAP_URLS, Sitemap, gunzip_bounded, parse_sitemap};
