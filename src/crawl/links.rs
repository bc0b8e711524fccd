//! Links out of an HTML body, found while it streams in. Owns the choice of elements and
//! attributes, `<base href>`, entity decoding and URL resolution; lol_html tokenises. It
//! never builds a document tree, never runs or reads scripts and styles, never fetches
//! anything, and never reads more than it was told to.

use super::normalize::normalize;
use lol_html::send::{HtmlRewriter, Settings};
use lol_html::{MemorySettings, element};
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::unwind::lock;
use url::Url;

/// What lol_html writes its (unchanged) output to: nowhere, we only read.
type Discard = fn(&[u8]);

/// Link attributes found so far, entity-decoded, in document order. Shared between the
/// element handlers (which the rewriter owns) and the extractor.
#[derive(Debug, Default)]
struct Found {
    hrefs: Vec<String>,
    /// The first `<base href>`: how many links came before it, and its value.
    base: Option<(usize, String)>,
}

/// Finds the links in an HTML body fed to it piece by piece, as it arrives: the streaming
/// tokenizer of Cloudflare's `lol_html` with a handler per kind of link, never a whole
/// document in memory.
///
/// Call [`LinkExtractor::feed`] with each piece of the body (split anywhere), then
/// [`LinkExtractor::finish`] (or [`LinkExtractor::finish_at`] with the URL the body really
/// came from, after redirects) for the [`Links`].
///
/// Links are taken from `<a href>`, `<area href>`, `<frame src>`, `<iframe src>`, and
/// `<link href>` whose `rel` holds `alternate`, `canonical`, `next` or `prev` (as a
/// space-separated word, any case). Tag and attribute names match in any case. Text inside
/// `<script>`, `<style>`, `<textarea>`, `<title>`, comments and the like is never read as
/// markup, and neither is `<noscript>`: it is read as a browser with scripting on reads it
/// (lol_html's view), so links only inside `<noscript>` are not found (wget and Scrapy's lxml
/// would find them; they are mostly tracking iframes).
///
/// Each value has its character references decoded by the HTML rules for attribute values
/// (`&amp;` is `&`; `&copy=2` stays as it is), is resolved against the page URL, or against
/// the first `<base href>` for links after it (the base itself resolved against the page
/// URL; links *before* it resolve against the page URL, as wget does, though a browser
/// would use the base for them too; a base that does not parse, or is a `data:` or
/// `javascript:` URL, is ignored as browsers do), and then [`normalize`]d: relative and
/// protocol-relative (`//host/x`) links become absolute, fragments go, and anything that is
/// not http or https (`javascript:`, `mailto:`, `data:`, `tel:`, `ftp:`, unparsable) is
/// dropped. An empty `href` or a bare `#top` is the page itself and is kept like any link.
/// Repeats are dropped, keeping the first, in document order.
///
/// The body is read as UTF-8 whatever its charset: in a page in another encoding, non-ASCII
/// bytes in a link read as U+FFFD (ASCII links, nearly all, are unaffected).
///
/// At most `max_bytes` of input are parsed: what was found before stands and
/// [`Links::cut`] says the rest was not read. A tag cut in the middle is lost. Memory is
/// bounded by the input read: lol_html buffers at most one unfinished tag, and the links
/// kept are pieces of the input.
///
/// `'static` and [`Send`]: it owns all it uses (its handlers share one `Arc<Mutex<_>>` with
/// it), so it can live in a [`Request::on_body`](crate::Request::on_body) callback or move
/// to another thread.
///
/// # Examples
/// ```
/// use parafetch::crawl::LinkExtractor;
/// use url::Url;
/// let page = Url::parse("https://example.com/docs/index.html")?;
/// let mut ex = LinkExtractor::new(&page, 1 << 20);
/// // Pieces as they come off the wire, split anywhere.
/// ex.feed(b"<html><head><link rel=Canonical href='/docs/'><sty");
/// ex.feed(b"le>a{background:url(/not-a-link.png)}</style></head><body>");
/// ex.feed(b"<a href=\"intro.html#top\">Intro</a> <A HREF=//cdn.example.net/x?a=1&amp;b=2>");
/// ex.feed(b"<a href='mailto:me@example.com'>mail</a><a href=intro.html>again</a>");
/// let links = ex.finish();
/// let urls: Vec<&str> = links.urls.iter().map(|u| u.as_str()).collect();
/// assert_eq!(urls, [
///     "https://example.com/docs/",
///     "https://example.com/docs/intro.html",
///     "https://cdn.example.net/x?a=1&b=2",
/// ]);
/// assert!(!links.cut && links.error.is_none());
/// # Ok::<(), url::ParseError>(())
/// ```
///
/// In a fetch, the body streams into the extractor and the links are read in the request's
/// completion callback, against the final URL:
/// ```no_run
/// use parafetch::crawl::{LinkExtractor, is_html};
/// use parafetch::{Done, Fetcher, Queue, Request};
/// use std::sync::{Arc, Mutex};
/// use url::Url;
///
/// let page = Url::parse("https://example.com/")?;
/// // Shared by the body sink and the callback; a sink is `Send`, so Arc<Mutex>.
/// let ex = Arc::new(Mutex::new(Some(LinkExtractor::new(&page, 4 << 20))));
/// let sink = Arc::clone(&ex);
/// let req = Request::get(&page).on_body(move |piece| {
///     if let Some(ex) = sink.lock().unwrap().as_mut() {
///         ex.feed(piece);
///     }
///     Ok(())
/// });
/// let mut fetcher = Fetcher::new(10);
/// let on_done = move |done: Done<()>, _queue: &mut Queue<()>| {
///     let (Ok(resp), Some(ex)) = (done.result, ex.lock().unwrap().take()) else { return };
///     if is_html(resp.headers.get("content-type")) {
///         for url in ex.finish_at(&resp.url).urls {
///             println!("{url}");
///         }
///     }
/// };
/// fetcher.start_request(req, on_done, ())?;
/// fetcher.finish_all_requests();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LinkExtractor {
    page: Url,
    /// `None` once ended: cut, failed or finished.
    rewriter: Option<HtmlRewriter<'static, Discard>>,
    found: Arc<Mutex<Found>>,
    max_bytes: usize,
    fed: usize,
    cut: bool,
    error: Option<String>,
}

/// The links an extractor found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Links {
    /// Absolute, normalised http(s) URLs, each once, in document order.
    pub urls: Vec<Url>,
    /// True if the body went past `max_bytes` and the rest was not parsed.
    pub cut: bool,
    /// What lol_html reported if it gave up (it stops there; the links before stand).
    pub error: Option<String>,
}

impl LinkExtractor {
    /// An extractor for the body of `page_url`, parsing at most `max_bytes` of it.
    pub fn new(page_url: &Url, max_bytes: usize) -> LinkExtractor {
        let found = Arc::new(Mutex::new(Found::default()));
        let push = |attr: &'static str| {
            let found = Arc::clone(&found);
            move |el: &mut lol_html::send::Element<'_, '_>| {
                if let Some(v) = el.get_attribute(attr) {
                    lock(&found).hrefs.push(decode(&v));
                }
                Ok(())
            }
        };
        let link = {
            let found = Arc::clone(&found);
            move |el: &mut lol_html::send::Element<'_, '_>| {
                let rel = el.get_attribute("rel").unwrap_or_default();
                let followed = decode(&rel).split_ascii_whitespace().any(|word| {
                    ["alternate", "canonical", "next", "prev"]
                        .iter()
                        .any(|r| word.eq_ignore_ascii_case(r))
                });
                if let (true, Some(v)) = (followed, el.get_attribute("href")) {
                    lock(&found).hrefs.push(decode(&v));
                }
                Ok(())
            }
        };
        let base = {
            let found = Arc::clone(&found);
            move |el: &mut lol_html::send::Element<'_, '_>| {
                let mut found = lock(&found);
                if let (None, Some(v)) = (&found.base, el.get_attribute("href")) {
                    found.base = Some((found.hrefs.len(), decode(&v)));
                }
                Ok(())
            }
        };
        let settings = Settings::new_send()
            // Never bail out on markup that a tree builder would read another way: a
            // crawler wants its best guess, not an error.
            .with_strict(false)
            .with_memory_settings(MemorySettings::new().with_preallocated_parsing_buffer_size(0))
            .append_element_content_handler(element!("base[href]", base))
            .append_element_content_handler(element!("a[href]", push("href")))
            .append_element_content_handler(element!("area[href]", push("href")))
            .append_element_content_handler(element!("frame[src]", push("src")))
            .append_element_content_handler(element!("iframe[src]", push("src")))
            .append_element_content_handler(element!("link[href]", link));
        let discard: Discard = |_| {};
        LinkExtractor {
            page: page_url.clone(),
            rewriter: Some(HtmlRewriter::new(settings, discard)),
            found,
            max_bytes,
            fed: 0,
            cut: false,
            error: None,
        }
    }

    /// Parses the next piece of the body. Past `max_bytes`, or after lol_html gave up, it
    /// reads nothing more (see [`LinkExtractor::is_done`]).
    pub fn feed(&mut self, chunk: &[u8]) {
        let Some(rewriter) = self.rewriter.as_mut() else {
            return;
        };
        let take = chunk.len().min(self.max_bytes - self.fed);
        self.fed += take;
        if take > 0 {
            if let Err(e) = rewriter.write(&chunk[..take]) {
                self.fail(e);
                return;
            }
        }
        if take < chunk.len() {
            self.cut = true;
            self.end();
        }
    }

    /// Whether it reads no more: the body went past `max_bytes` or lol_html gave up. A
    /// caller that only wants links may stop the download then.
    pub fn is_done(&self) -> bool {
        self.rewriter.is_none()
    }

    /// The links, resolved against the page URL given to [`LinkExtractor::new`].
    pub fn finish(self) -> Links {
        let page = self.page.clone();
        self.finish_at(&page)
    }

    /// The links, resolved against `page_url`: the URL the body came from, when it is not
    /// the one given to [`LinkExtractor::new`] (a redirect was followed).
    pub fn finish_at(mut self, page_url: &Url) -> Links {
        self.end();
        let found = std::mem::take(&mut *lock(&self.found));
        Links {
            urls: resolve(found, page_url),
            cut: self.cut,
            error: self.error,
        }
    }

    /// Ends the rewriter (flushing a tag it holds), once.
    fn end(&mut self) {
        if let Some(rewriter) = self.rewriter.take() {
            if let Err(e) = rewriter.end() {
                self.error.get_or_insert_with(|| e.to_string());
            }
        }
    }

    /// lol_html gave up: it must not be called again (it would panic).
    fn fail(&mut self, e: lol_html::errors::RewritingError) {
        self.rewriter = None;
        self.error = Some(e.to_string());
    }
}

impl fmt::Debug for LinkExtractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkExtractor")
            .field("page", &self.page.as_str())
            .field("fed", &self.fed)
            .field("max_bytes", &self.max_bytes)
            .field("cut", &self.cut)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Whether a response with this `Content-Type` is HTML worth extracting links from:
/// `text/html` or `application/xhtml+xml`, in any case, whatever its parameters.
///
/// A missing Content-Type is not HTML: this does not sniff (wget and Scrapy do),
/// because a server that leaves it out serves files far more often than pages, and reading
/// a binary as HTML finds only noise. A caller that wants sniffing can look for `<html` in
/// the first bytes itself.
///
/// # Examples
/// ```
/// use parafetch::crawl::is_html;
/// assert!(is_html(Some("text/html; charset=UTF-8")));
/// assert!(is_html(Some(" Application/XHTML+XML")));
/// assert!(!is_html(Some("text/plain")));
/// assert!(!is_html(None));
/// ```
pub fn is_html(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("text/html")
        || essence.eq_ignore_ascii_case("application/xhtml+xml")
}

/// Resolves and normalises `found` against `page`, keeping each URL once.
fn resolve(found: Found, page: &Url) -> Vec<Url> {
    let base = found.base.and_then(|(at, href)| {
        let url = page.join(&href).ok()?;
        (!matches!(url.scheme(), "data" | "javascript")).then_some((at, url))
    });
    let mut seen = HashSet::new();
    let mut urls = Vec::new();
    for (i, href) in found.hrefs.iter().enumerate() {
        let against = match &base {
            Some((at, base)) if i >= *at => base,
            _ => page,
        };
        let Some(url) = against.join(href).ok().as_ref().and_then(normalize) else {
            continue;
        };
        if seen.insert(url.clone()) {
            urls.push(url);
        }
    }
    urls
}

/// An attribute value with its character references decoded, by the rules for attribute
/// values (WHATWG HTML §13.2.5.72).
fn decode(raw: &str) -> String {
    htmlize::unescape_attribute(raw).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "http://example.com/dir/page.html";

    fn links_of(html: &str) -> Vec<String> {
        extract(html.as_bytes(), usize::MAX, [html.len()])
            .urls
            .iter()
            .map(Url::to_string)
            .collect()
    }

    /// Feeds `html` in pieces of the given sizes (the last one takes the rest).
    fn extract(html: &[u8], max: usize, sizes: impl IntoIterator<Item = usize>) -> Links {
        let mut ex = LinkExtractor::new(&Url::parse(PAGE).unwrap(), max);
        let mut rest = html;
        for n in sizes {
            let (piece, tail) = rest.split_at(n.min(rest.len()));
            ex.feed(piece);
            rest = tail;
        }
        ex.feed(rest);
        ex.finish()
    }

    #[test]
    fn the_extractor_is_static_and_send() {
        fn check<T: Send + 'static>() {}
        check::<LinkExtractor>();
        check::<Links>();
    }

    #[test]
    fn every_kind_of_link() {
        let html = r#"<a href="a.html">a</a><area href="area.html"><frame src="frame.html">
            <iframe src="/iframe.html"></iframe><img src="img.png"><script src="s.js"></script>
            <link rel="stylesheet" href="style.css"><link rel="icon" href="i.ico">
            <link rel="canonical" href="canon.html"><link rel="Next" href="next.html">
            <link rel="prev" href="prev.html"><link rel="alternate stylesheet" href="alt.html">
            <link rel="preload next-ish" href="no.html"><link href="norel.html">
            <form action="form.html"></form><a name="anchor">no href</a>"#;
        assert_eq!(
            links_of(html),
            [
                "http://example.com/dir/a.html",
                "http://example.com/dir/area.html",
                "http://example.com/dir/frame.html",
                "http://example.com/iframe.html",
                "http://example.com/dir/canon.html",
                "http://example.com/dir/next.html",
                "http://example.com/dir/prev.html",
                "http://example.com/dir/alt.html",
            ]
        );
    }

    #[test]
    fn relative_protocol_relative_and_schemes() {
        let html = r#"<a href="../up">1</a><a href="//other.example/x">2</a>
            <a href="https://secure.example/">3</a><a href="?q=1">4</a><a href="/abs">5</a>
            <a href="javascript:void(0)">6</a><a href="mailto:a@b.c">7</a><a href="data:,x">8</a>
            <a href="tel:+1">9</a><a href="ftp://f.example/">10</a><a href="http://[bad">11</a>
            <a href="  spaced.html ">12</a><a href="JAVASCRIPT:x">13</a>"#;
        assert_eq!(
            links_of(html),
            [
                "http://example.com/up",
                "http://other.example/x",
                "https://secure.example/",
                "http://example.com/dir/page.html?q=1",
                "http://example.com/abs",
                "http://example.com/dir/spaced.html",
            ]
        );
    }

    #[test]
    fn fragments_go_and_repeats_keep_the_first() {
        let html = r##"<a href="b">b</a><a href="a#x">a</a><a href="#top">self</a>
            <a href="b#y">b again</a><a href="a">a again</a><a href="">self again</a>
            <a href="http://EXAMPLE.com:80/dir/b">b once more</a>"##;
        assert_eq!(
            links_of(html),
            [
                "http://example.com/dir/b",
                "http://example.com/dir/a",
                "http://example.com/dir/page.html",
            ]
        );
    }

    #[test]
    fn base_href_counts_from_where_it_is() {
        let html = r#"<a href="before">0</a><base href="/other/"><base href="http://ignored/">
            <a href="after">1</a><a href="/root">2</a>"#;
        assert_eq!(
            links_of(html),
            [
                "http://example.com/dir/before",
                "http://example.com/other/after",
                "http://example.com/root",
            ]
        );
        let html = r#"<base href="https://cdn.example/v2/x.html"><a href="y">1</a>"#;
        assert_eq!(links_of(html), ["https://cdn.example/v2/y"]);
        // A base that is no good is ignored, as browsers do; a base without href too.
        for base in [
            r#"<base href="javascript:alert(1)//">"#,
            r#"<base href="http://[">"#,
            "<base target=_top>",
        ] {
            let html = format!("{base}<a href=y>1</a>");
            assert_eq!(links_of(&html), ["http://example.com/dir/y"], "{base}");
        }
        // Only the first base with an href counts, even a bad one.
        let html = r#"<base target=x><base href="http://["><base href="/b/"><a href=y>1</a>"#;
        assert_eq!(links_of(html), ["http://example.com/dir/y"]);
    }

    #[test]
    fn character_references_in_attributes() {
        let html = r#"<a href="/p?a=1&amp;b=2">1</a><a href="/q?a=1&#38;b=&#x32;">2</a>
            <a href="/r?a=1&copy=2">3</a><a href="/s?x=&lt;&gt;&quot;">4</a>
            <a href="/&eacute;t&eacute;">5</a><a href="javascript&colon;alert(1)">6</a>"#;
        assert_eq!(
            links_of(html),
            [
                "http://example.com/p?a=1&b=2",
                "http://example.com/q?a=1&b=2",
                "http://example.com/r?a=1&copy=2",
                "http://example.com/s?x=%3C%3E%22",
                "http://example.com/%C3%A9t%C3%A9",
            ]
        );
    }

    #[test]
    fn case_of_tags_and_attributes_and_quoting() {
        let html = "<A HREF=one.html>1</A><AREA Href='two.html'><IFRAME SRC=three.html></IFRAME>\
                    <LINK REL=CANONICAL HREF=four.html><BASE HREF=/b/><a\nhref\n=\nfive>5</a>";
        assert_eq!(
            links_of(html),
            [
                "http://example.com/dir/one.html",
                "http://example.com/dir/two.html",
                "http://example.com/dir/three.html",
                "http://example.com/dir/four.html",
                "http://example.com/b/five",
            ]
        );
    }

    #[test]
    fn script_style_comments_and_text_are_not_links() {
        let html = r#"<script>document.write('<a href="/script">x</a>')</script>
            <style>/* <a href="/style"> */</style><!-- <a href="/comment"> -->
            <textarea><a href="/textarea"></textarea><title><a href="/title"></title>
            <noscript><a href="/noscript">n</a></noscript>
            <p>&lt;a href="/escaped"&gt;</p><a href="/real">real</a>
            <script>var s = "</scr" + "ipt><a href='/still-script'>";</script>"#;
        // <noscript> is text too, as in a browser with scripting on (lol_html's view).
        assert_eq!(links_of(html), ["http://example.com/real"]);
    }

    #[test]
    fn every_split_gives_the_same_links() {
        let html = br#"<!doctype html><html><head><base href="/b/"><link rel="next" href="n?a=1&amp;b=2">
            <script>if (a<b) { x = "<a href='/no'>" }</script></head><body>
            <a href=x.html#f>x</a><A HREF='//h.example/y'>y</A><!-- <a href=/c> -->
            <iframe src="/f"></iframe><a href="mailto:m@e">m</a><a href=x.html>x</a></body></html>"#;
        let whole = extract(html, usize::MAX, []);
        assert_eq!(whole.urls.len(), 4, "{whole:?}");
        for at in 0..=html.len() {
            assert_eq!(extract(html, usize::MAX, [at]), whole, "split at {at}");
        }
        for size in 1..8 {
            let sizes = std::iter::repeat_n(size, html.len() / size + 1);
            assert_eq!(extract(html, usize::MAX, sizes), whole, "pieces of {size}");
        }
    }

    #[test]
    fn the_size_cap_stops_reading_and_says_so() {
        let html = b"<a href=/one>1</a><a href=/two>2</a><a href=/three>3</a>";
        let first_end = b"<a href=/one>".len();
        let all = extract(html, usize::MAX, []);
        assert_eq!((all.urls.len(), all.cut), (3, false));
        // Exactly the body: not cut.
        assert_eq!(extract(html, html.len(), []), all);
        let cut = extract(html, first_end, []);
        assert_eq!(cut.urls.len(), 1);
        assert!(cut.cut);
        // A tag cut in the middle is lost, however the pieces came.
        for at in 0..html.len() {
            let a = extract(html, first_end + 4, [at]);
            assert_eq!(a, cut, "split at {at}");
        }
        assert_eq!(
            extract(html, 0, []),
            Links {
                cut: true,
                ..Links::default()
            }
        );
        let mut ex = LinkExtractor::new(&Url::parse(PAGE).unwrap(), 10);
        ex.feed(b"0123456789");
        assert!(!ex.is_done());
        ex.feed(b"a");
        assert!(ex.is_done());
    }

    #[test]
    fn finish_at_resolves_against_the_final_url() {
        let mut ex = LinkExtractor::new(&Url::parse(PAGE).unwrap(), 1000);
        ex.feed(b"<a href=x>x</a><base href=sub/><a href=y>y</a>");
        let links = ex.finish_at(&Url::parse("https://moved.example/new/").unwrap());
        let urls: Vec<&str> = links.urls.iter().map(Url::as_str).collect();
        assert_eq!(
            urls,
            [
                "https://moved.example/new/x",
                "https://moved.example/new/sub/y"
            ]
        );
    }

    #[test]
    fn malformed_documents_never_fail() {
        for html in [
            &b"<a href=\"unterminated"[..],
            b"<a href=/ok>",
            b"<<<>>><a/href=/slash>",
            b"\xff\xfe<a href=\"/\xff\xfe\">",
            b"<select><xmp><a href=/amb></xmp></select>",
            b"<svg><a href=/svg>s</a></svg><math><a href=/math>",
            b"</a></a><a href=/a1><a href=/a2></html></html>",
            b"<a href=/x\0y>",
            b"<!--",
            b"<a href",
            b"",
        ] {
            let links = extract(html, usize::MAX, []);
            assert_eq!(links.error, None, "{:?}", String::from_utf8_lossy(html));
        }
        assert_eq!(links_of("<a href=/ok>"), ["http://example.com/ok"]);
        assert_eq!(links_of("<a href=\"unterminated"), Vec::<String>::new());
    }

    #[test]
    fn html_content_types() {
        for yes in [
            "text/html",
            "TEXT/HTML",
            "text/html;charset=utf-8",
            " text/html ; q",
            "application/xhtml+xml",
        ] {
            assert!(is_html(Some(yes)), "{yes}");
        }
        for no in [
            "text/plain",
            "text/htmlx",
            "application/xml",
            "",
            "html",
            "text/html-sandboxed",
        ] {
            assert!(!is_html(Some(no)), "{no}");
        }
        assert!(!is_html(None));
    }
}
