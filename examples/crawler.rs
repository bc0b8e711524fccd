//! A small crawler on parafetch's library API: each page's links are extracted while its
//! body streams in, filtered by scope, de-duplicated, and started from the callback with
//! `Queue::start_request`. Politeness (robots.txt, two requests per host, backoff on
//! 429/503) is the fetcher's.
//!
//! ```text
//! cargo run --example crawler --features crawl -- https://docs.example.org/ 200
//! ```
//!
//! `parafetch crawl` is the full tool (WARC, resume, sitemaps); this is the idea in a page.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use parafetch::crawl::{LinkExtractor, Scope, ScopeFilter, SeenSet, is_html};
use parafetch::{Done, Fetcher, Queue, Request};
use url::Url;

/// What every callback shares: what was seen, what is in scope, how many pages may start.
struct Crawl {
    seen: SeenSet,
    scope: ScopeFilter,
    budget: usize,
}

type Shared = Rc<RefCell<Crawl>>;

/// Each request carries its depth as the cookie.
type Depth = u32;

/// A callback, boxed: a page's callback makes the callbacks of the pages it links to.
type Callback = Box<dyn FnOnce(Done<Depth>, &mut Queue<Depth>)>;

/// The request for `url` (a link extractor fed by the body as it arrives) and its
/// callback, while the page budget lasts.
fn page(crawl: &Shared, url: Url) -> Option<(Request, Callback)> {
    {
        let mut c = crawl.borrow_mut();
        c.budget = c.budget.checked_sub(1)?;
    }
    // Arc<Mutex>: a body sink must be Send (a request may go to another thread).
    let extractor = Arc::new(Mutex::new(Some(LinkExtractor::new(&url, 5 << 20))));
    let feeding = Arc::clone(&extractor);
    let request = Request::get(url.as_str()).on_body(move |chunk| {
        if let Some(e) = feeding.lock().unwrap().as_mut() {
            e.feed(chunk);
        }
        Ok(())
    });
    let shared = Rc::clone(crawl);
    let on_done = move |done: Done<Depth>, queue: &mut Queue<Depth>| {
        let response = match done.result {
            Ok(r) => r,
            Err(e) => return println!("{:>4} {} ({e})", "ERR", done.url),
        };
        println!(
            "{:>4} {} (depth {})",
            response.status, done.url, done.cookie
        );
        let html =
            (200..300).contains(&response.status) && is_html(response.headers.get("content-type"));
        let Some(extractor) = extractor.lock().unwrap().take().filter(|_| html) else {
            return;
        };
        for link in extractor.finish_at(&response.url).urls {
            let new = {
                let mut c = shared.borrow_mut();
                c.scope.allows(&link) && c.seen.insert(&link)
            };
            if let Some((req, cb)) = new.then(|| page(&shared, link)).flatten() {
                if let Err(e) = queue.start_request(req, cb, done.cookie + 1) {
                    eprintln!("not started: {e}");
                }
            }
        }
    };
    Some((request, Box::new(on_done)))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(seed) = args.next().and_then(|s| Url::parse(&s).ok()) else {
        eprintln!("usage: crawler SEED_URL [MAX_PAGES]");
        std::process::exit(2);
    };
    let budget = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);

    let mut seen = SeenSet::new();
    seen.insert(&seed);
    let crawl: Shared = Rc::new(RefCell::new(Crawl {
        seen,
        scope: ScopeFilter::new(Scope::Host, [&seed]),
        budget,
    }));
    let mut fetcher: Fetcher<Depth> = Fetcher::builder()
        .max_in_flight(16)
        .per_host(2)
        .obey_robots(true)
        .decompress(true)
        .build();

    if let Some((req, cb)) = page(&crawl, seed) {
        fetcher
            .start_request(req, cb, 0)
            .expect("the seed is a valid URL");
    }
    fetcher.finish_all_requests();

    let c = crawl.borrow();
    eprintln!(
        "{} URLs seen ({} bytes of seen-set)",
        c.seen.len(),
        c.seen.heap_bytes()
    );
}
