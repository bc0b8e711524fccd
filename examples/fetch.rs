//! Fetches a list of URLs with N in flight and prints one line per result.
//!
//! `cargo run --release --example fetch -- [-n N] [URL ...]`; URLs may also come on stdin
//! (`-`). With no URL it starts the built-in demo server and fetches 100 URLs from it, so it
//! works offline.

use std::io::BufRead;
use std::time::{Duration, Instant};

use parafetch::{Done, Fetcher, Queue};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut n = 10;
    if let Some(i) = args.iter().position(|a| a == "-n") {
        n = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(10);
        args.drain(i..(i + 2).min(args.len()));
    }
    let mut _server = None;
    let urls: Vec<String> = if args.iter().any(|a| a == "-") {
        std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.trim().is_empty())
            .collect()
    } else if args.is_empty() {
        let server = parafetch::demo::DemoServer::start(Duration::from_millis(50))
            .expect("start the demo server");
        eprintln!(
            "no URLs given: fetching 100 from the built-in server at {}",
            server.addr()
        );
        let urls = (0..100)
            .map(|i| server.url(&format!("/page/{i}")))
            .collect();
        _server = Some(server);
        urls
    } else {
        args
    };

    let start = Instant::now();
    let mut fetcher: Fetcher<usize> = Fetcher::new(n);
    for (i, url) in urls.iter().enumerate() {
        if let Err(e) = fetcher.start_request(url.as_str(), on_done, i) {
            println!("#{i} {url}: {e}");
        }
    }
    fetcher.finish_all_requests();
    eprintln!(
        "{} URLs in {:.2?} with {n} in flight",
        urls.len(),
        start.elapsed()
    );
}

fn on_done(done: Done<usize>, _queue: &mut Queue<usize>) {
    match done.result {
        Ok(r) => println!(
            "#{} {} {} {} bytes in {:.1?}",
            done.cookie,
            r.status,
            done.url,
            r.body.len(),
            r.timings.total
        ),
        Err(e) => println!(
            "#{} ERR {} {}: {e}",
            done.cookie,
            e.kind().as_str(),
            done.url
        ),
    }
}
