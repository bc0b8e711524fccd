//! XML sitemaps (sitemaps.org 0.9): page URLs out of a `<urlset>`, further sitemaps out of
//! a `<sitemapindex>`, and a bounded gunzip for sitemaps served as gzip files. Owns the
//! reading of those two shapes; quick-xml tokenises. It never fetches (the caller follows
//! the index), never expands a DTD or an entity other than XML's five, and never reads a
//! date, priority or change frequency.

use super::normalize::normalize;
use flate2::read::MultiGzDecoder;
use quick_xml::Reader;
use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::Event;
use std::io::{self, Read};
use url::Url;

/// The most URLs one sitemap may list, by the protocol: a sensible `max_urls`.
pub const MAX_SITEMAP_URLS: usize = 50_000;

/// The largest sitemap the protocol allows, uncompressed (50 MiB): a sensible `max_out` for
/// [`gunzip_bounded`] and body limit for a sitemap fetch.
pub const MAX_SITEMAP_BYTES: usize = 50 * 1024 * 1024;

/// What a sitemap lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sitemap {
    /// Pages: each `<url><loc>`, normalised, in document order.
    pub pages: Vec<Url>,
    /// Further sitemaps: each `<sitemap><loc>` of a sitemap index, normalised, in order.
    pub sitemaps: Vec<Url>,
    /// `<loc>`s skipped: not an absolute http(s) URL, or holding an entity XML does not
    /// define.
    pub skipped: usize,
    /// True if more URLs followed the `max_urls` kept; the rest were not read.
    pub truncated: bool,
    /// Why the XML could not be read to its end, if it could not (what came before
    /// stands).
    pub error: Option<String>,
}

/// Which list a `<loc>` goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Url,
    Sitemap,
    Loc,
    Other,
}

/// The `<loc>` being read: where it goes, how deep it is, its text so far, and whether a
/// part of it could not be decoded.
struct Loc {
    list: Tag,
    depth: usize,
    text: String,
    bad: bool,
}

/// Reads a sitemap or a sitemap index: `<urlset><url><loc>` gives [`Sitemap::pages`],
/// `<sitemapindex><sitemap><loc>` gives [`Sitemap::sitemaps`]. Leniently: any root, any
/// namespace prefix (`<sm:loc>`), mismatched end tags and unknown elements are accepted;
/// only the nesting of `<loc>` directly in `<url>` or `<sitemap>` matters.
///
/// A `<loc>`'s text (CDATA too) has XML's five entities and character references decoded
/// and surrounding whitespace trimmed, and must then be an absolute http or https URL (the
/// protocol allows no other); it is [`normalize`]d. Anything else counts in
/// [`Sitemap::skipped`]. At most `max_urls` URLs are kept (pages and sitemaps together);
/// [`Sitemap::truncated`] says more followed. Garbage never panics: reading stops at the
/// first XML error, recorded in [`Sitemap::error`], keeping what came before.
///
/// Give it the body as served: a sitemap sent with `Content-Encoding: gzip` is decoded by
/// the fetcher; a `.xml.gz` file served as `application/gzip` goes through
/// [`gunzip_bounded`] first. Text sitemaps (one URL a line) and RSS/Atom feeds are not
/// read.
///
/// # Examples
/// ```
/// use parafetch::crawl::{parse_sitemap, MAX_SITEMAP_URLS};
/// let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
/// <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
///   <url><loc> https://example.com/?a=1&amp;b=2 </loc><lastmod>2024-01-01</lastmod></url>
///   <url><loc>not a url</loc></url>
/// </urlset>"#;
/// let map = parse_sitemap(xml, MAX_SITEMAP_URLS);
/// assert_eq!(map.pages[0].as_str(), "https://example.com/?a=1&b=2");
/// assert_eq!((map.pages.len(), map.skipped, map.truncated), (1, 1, false));
/// ```
pub fn parse_sitemap(xml: &[u8], max_urls: usize) -> Sitemap {
    let mut map = Sitemap::default();
    let mut reader = Reader::from_reader(xml);
    let config = reader.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    let mut open: Vec<Tag> = Vec::new();
    let mut loc: Option<Loc> = None;
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => {
                map.error = Some(e.to_string());
                break;
            }
        };
        // Text counts only directly inside the `<loc>`.
        let in_loc = loc.as_mut().filter(|l| l.depth == open.len());
        match event {
            Event::Start(e) => {
                let tag = Tag::of(e.local_name().as_ref());
                if let (Tag::Loc, None, Some(&list @ (Tag::Url | Tag::Sitemap))) =
                    (tag, &loc, open.last())
                {
                    let depth = open.len() + 1;
                    loc = Some(Loc {
                        list,
                        depth,
                        text: String::new(),
                        bad: false,
                    });
                }
                open.push(tag);
            }
            Event::End(_) => {
                if loc.as_ref().is_some_and(|l| l.depth == open.len()) {
                    let done = loc.take().expect("checked");
                    if !map.keep(done, max_urls) {
                        break;
                    }
                }
                open.pop();
            }
            Event::Text(t) => {
                if let Some(l) = in_loc {
                    match t.decode() {
                        Ok(s) => l.text.push_str(&s),
                        Err(_) => l.bad = true,
                    }
                }
            }
            Event::CData(t) => {
                if let Some(l) = in_loc {
                    match t.decode() {
                        Ok(s) => l.text.push_str(&s),
                        Err(_) => l.bad = true,
                    }
                }
            }
            Event::GeneralRef(r) => {
                if let Some(l) = in_loc {
                    let c = match r.resolve_char_ref() {
                        Ok(Some(c)) => Some(c.to_string()),
                        Ok(None) => r
                            .decode()
                            .ok()
                            .and_then(|name| resolve_xml_entity(&name))
                            .map(str::to_owned),
                        Err(_) => None,
                    };
                    match c {
                        Some(c) => l.text.push_str(&c),
                        None => l.bad = true,
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    map
}

impl Tag {
    fn of(local_name: &[u8]) -> Tag {
        match local_name {
            b"url" => Tag::Url,
            b"sitemap" => Tag::Sitemap,
            b"loc" => Tag::Loc,
            _ => Tag::Other,
        }
    }
}

impl Sitemap {
    /// Keeps `loc`'s URL if it is one; false once `max_urls` are kept and another came.
    fn keep(&mut self, loc: Loc, max_urls: usize) -> bool {
        let url = (!loc.bad)
            .then(|| Url::parse(loc.text.trim()).ok())
            .flatten()
            .as_ref()
            .and_then(normalize);
        let Some(url) = url else {
            self.skipped += 1;
            return true;
        };
        if self.pages.len() + self.sitemaps.len() >= max_urls {
            self.truncated = true;
            return false;
        }
        match loc.list {
            Tag::Sitemap => self.sitemaps.push(url),
            _ => self.pages.push(url),
        }
        true
    }
}

/// Decompresses a gzip file (all its members) of at most `max_out` bytes uncompressed: for
/// a `.xml.gz` sitemap served as `application/gzip` or `application/x-gzip`, which the
/// fetcher does not decode (it decodes only `Content-Encoding`). A gzip bomb stops at
/// `max_out` + 1 bytes of output.
///
/// # Errors
/// `InvalidData` if the output would pass `max_out` or the data is not gzip; the decoder's
/// error (`UnexpectedEof` and the like) if it is damaged or cut short.
///
/// # Examples
/// ```
/// use flate2::{Compression, write::GzEncoder};
/// use parafetch::crawl::gunzip_bounded;
/// use std::io::Write;
/// let mut gz = GzEncoder::new(Vec::new(), Compression::default());
/// gz.write_all(&[b'x'; 1000])?;
/// let gz = gz.finish()?;
/// assert_eq!(gunzip_bounded(&gz, 1000)?.len(), 1000);
/// assert!(gunzip_bounded(&gz, 999).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn gunzip_bounded(bytes: &[u8], max_out: usize) -> io::Result<Vec<u8>> {
    if bytes.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "empty gzip data",
        ));
    }
    let limit = u64::try_from(max_out).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .take(limit)
        .read_to_end(&mut out)?;
    if out.len() > max_out {
        let msg = format!("gzip data inflates past {max_out} bytes");
        return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn strs(urls: &[Url]) -> Vec<&str> {
        urls.iter().map(Url::as_str).collect()
    }

    #[test]
    fn a_urlset() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
            <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
              <url><loc>https://example.com/</loc><lastmod>2005-01-01</lastmod>
                <changefreq>monthly</changefreq><priority>0.8</priority></url>
              <url>
                <loc>
                  http://Example.com/catalog?item=12&amp;desc=vacation_hawaii
                </loc>
              </url>
              <url><loc><![CDATA[https://example.com/cdata?a=1&b=2]]></loc></url>
              <url><loc>https://example.com/&#x41;&#66;&apos;&quot;&lt;&gt;#frag</loc></url>
              <url><lastmod>2005-01-01</lastmod></url>
              <loc>https://example.com/loose-loc-not-in-url</loc>
            </urlset>"#;
        let map = parse_sitemap(xml, MAX_SITEMAP_URLS);
        assert_eq!(
            strs(&map.pages),
            [
                "https://example.com/",
                "http://example.com/catalog?item=12&desc=vacation_hawaii",
                "https://example.com/cdata?a=1&b=2",
                "https://example.com/AB'%22%3C%3E",
            ]
        );
        assert!(map.sitemaps.is_empty());
        assert_eq!((map.skipped, map.truncated, map.error), (0, false, None));
    }

    #[test]
    fn a_sitemap_index() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
            <sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
              <sitemap><loc>https://example.com/sitemap1.xml.gz</loc>
                <lastmod>2004-10-01T18:23:17+00:00</lastmod></sitemap>
              <sitemap><loc>https://example.com/sitemap2.xml</loc></sitemap>
            </sitemapindex>"#;
        let map = parse_sitemap(xml, MAX_SITEMAP_URLS);
        assert_eq!(
            strs(&map.sitemaps),
            [
                "https://example.com/sitemap1.xml.gz",
                "https://example.com/sitemap2.xml"
            ]
        );
        assert!(map.pages.is_empty() && map.error.is_none());
    }

    #[test]
    fn prefixes_and_leniency() {
        let xml = br#"<sm:urlset xmlns:sm="http://www.sitemaps.org/schemas/sitemap/0.9">
            <sm:url><sm:loc>https://example.com/a</sm:loc></sm:url>
            <url><loc>https://example.com/b</loc></URL></url>
            <url><loc>https://example.com/c<b>ignored</b>/d</loc></url>
            </sm:urlset>"#;
        let map = parse_sitemap(xml, 10);
        assert_eq!(
            strs(&map.pages),
            [
                "https://example.com/a",
                "https://example.com/b",
                "https://example.com/c/d"
            ]
        );
        assert_eq!(map.error, None);
    }

    #[test]
    fn invalid_urls_are_skipped() {
        let xml = b"<urlset><url><loc>/relative</loc></url><url><loc>ftp://e.com/</loc></url>\
            <url><loc>https://e.com/&nbsp;</loc></url><url><loc></loc></url>\
            <url><loc>http://[::1</loc></url><url><loc>https://e.com/ok</loc></url></urlset>";
        let map = parse_sitemap(xml, 10);
        assert_eq!(strs(&map.pages), ["https://e.com/ok"]);
        assert_eq!(map.skipped, 5);
    }

    #[test]
    fn at_most_max_urls() {
        let mut xml = String::from("<urlset>");
        for i in 0..10 {
            xml.push_str(&format!("<url><loc>https://e.com/{i}</loc></url>"));
        }
        xml.push_str("</urlset>");
        let map = parse_sitemap(xml.as_bytes(), 3);
        assert_eq!(
            strs(&map.pages),
            ["https://e.com/0", "https://e.com/1", "https://e.com/2"]
        );
        assert!(map.truncated);
        let map = parse_sitemap(xml.as_bytes(), 10);
        assert_eq!((map.pages.len(), map.truncated), (10, false));
        assert!(parse_sitemap(xml.as_bytes(), 0).truncated);
    }

    #[test]
    fn garbage_is_a_value() {
        for xml in [
            &b""[..],
            b"not xml at all",
            b"<urlset><url><loc>https://e.com/a</loc></url><url><loc>https://e.com/b",
            b"<urlset><url><loc>https://e.com/\xff</loc></url></urlset>",
            b"<<<<>>>>&&&&;;",
            b"<!DOCTYPE x [<!ENTITY a \"https://e.com/\">]><urlset><url><loc>&a;</loc></url></urlset>",
            b"<urlset><url><loc>https://e.com/&unknown;</loc></url></urlset>",
            b"<urlset><url><loc>https://e.com/&#0;&#xD800;&#99999999;</loc></url></urlset>",
            b"\xef\xbb\xbf<urlset><url><loc>https://e.com/bom</loc></url></urlset>",
            b"<?xml version='1.0' encoding='UTF-16'?><urlset/>",
            b"<a><url><loc a='>'>https://e.com/attr</loc></url></a>",
            b"</x></y><url><loc>https://e.com/z</loc></url>",
        ] {
            let map = parse_sitemap(xml, 100);
            assert!(map.pages.len() <= 1, "{map:?}");
        }
        let cut = b"<urlset><url><loc>https://e.com/a</loc></url><url><loc>https://e.com/b";
        assert_eq!(strs(&parse_sitemap(cut, 10).pages), ["https://e.com/a"]);
        let bom = b"\xef\xbb\xbf<urlset><url><loc>https://e.com/bom</loc></url></urlset>";
        assert_eq!(strs(&parse_sitemap(bom, 10).pages), ["https://e.com/bom"]);
        let ent = b"<!DOCTYPE x [<!ENTITY a \"https://e.com/\">]><urlset><url><loc>&a;</loc></url></urlset>";
        let map = parse_sitemap(ent, 10);
        assert_eq!((map.pages.len(), map.skipped), (0, 1), "no DTD entities");
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn gunzip_is_bounded() {
        let xml = b"<urlset><url><loc>https://e.com/</loc></url></urlset>";
        assert_eq!(gunzip_bounded(&gzip(xml), xml.len()).unwrap(), xml);
        // Two members, as `cat a.gz b.gz` makes.
        let two = [gzip(b"ab"), gzip(b"cd")].concat();
        assert_eq!(gunzip_bounded(&two, 4).unwrap(), b"abcd");
        // A bomb: 64 MiB of zeros in about 64 KiB, stopped at the limit.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 100 << 10);
        let e = gunzip_bounded(&bomb, 1 << 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("1048576"), "{e}");
        // Not gzip, cut short, empty.
        assert!(gunzip_bounded(xml, 1000).is_err());
        let full = gzip(xml);
        assert!(gunzip_bounded(&full[..full.len() - 4], 1000).is_err());
        assert!(gunzip_bounded(&full[..10], 1000).is_err());
        assert!(gunzip_bounded(b"", 1000).is_err());
    }
}
