//! Heap bytes per open idle connection, plain and TLS, measured with a counting global
//! allocator: open 500 keep-alive connections to a loopback server, keep them idle in the
//! pool, and compare the live heap with the same fetcher after the pool has let them go.
//!
//! `cargo bench --bench conn_memory [-- --conns N]`
//!
//! Plain goes to nginx (or the built-in server when nginx is absent); TLS goes to nginx
//! with a certificate made at run time (skipped without nginx).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parafetch::{Done, Fetcher, Queue};
use parafetch_test_support::bench_server::{Server, bench_files};
use parafetch_test_support::nginx::Nginx;
use parafetch_test_support::pki;
use parafetch_test_support::process::raise_nofile;

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; we only count.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

const POOL_IDLE: Duration = Duration::from_secs(2);

/// Fetches `url` `k` times at once (so each request opens its own connection) and drops
/// the responses.
fn fetch_at_once(fetcher: &mut Fetcher<()>, url: &str, k: usize) {
    fn on_done(done: Done<()>, _: &mut Queue<()>) {
        match done.result {
            Ok(r) => assert_eq!(r.status, 200, "{}", done.url),
            Err(e) => panic!("{}: {e}", done.url),
        }
    }
    for _ in 0..k {
        fetcher.start_request(url, on_done, ()).expect("valid url");
    }
    fetcher.finish_all_requests();
}

/// Runs the loop until the pool's idle timeout has closed every pooled connection.
fn drain_pool(fetcher: &mut Fetcher<()>) {
    let until = Instant::now() + POOL_IDLE + Duration::from_millis(500);
    while Instant::now() < until {
        fetcher.poll(Some(Duration::from_millis(100)));
    }
}

struct Measured {
    per_conn: f64,
    per_conn_vs_fresh: f64,
    server_active: Option<u64>,
}

fn measure(builder: parafetch::Builder, url: &str, k: usize, nginx: Option<&Nginx>) -> Measured {
    let mut fetcher: Fetcher<()> = builder
        .max_in_flight(k)
        .pool_max_idle(k, k)
        .pool_idle_timeout(POOL_IDLE)
        .build();
    // Warm up: whatever is made lazily (TLS config, buffers, the slab) exists once.
    fetch_at_once(&mut fetcher, url, 1);
    drain_pool(&mut fetcher);
    let fresh = live();
    fetch_at_once(&mut fetcher, url, k);
    let open = live();
    // Less the status request's own connection.
    let server_active = nginx.map(|n| n.active().saturating_sub(1));
    drain_pool(&mut fetcher);
    let closed = live();
    Measured {
        per_conn: (open as f64 - closed as f64) / k as f64,
        per_conn_vs_fresh: (open as f64 - fresh as f64) / k as f64,
        server_active,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let k = args
        .iter()
        .position(|a| a == "--conns")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(500usize);
    raise_nofile(65536);
    let pki = pki::pki();
    let files = bench_files();
    let nginx = Nginx::start(&files, Some((&pki.good.chain_pem, &pki.good.key_pem)));
    let builtin = match &nginx {
        Some(_) => None,
        None => Some(Server::start(files, Duration::ZERO).expect("built-in server")),
    };
    let plain_url = match (&nginx, &builtin) {
        (Some(n), _) => n.url("/1k"),
        (None, Some(s)) => s.url("/1k"),
        (None, None) => unreachable!(),
    };
    println!(
        "server: {}; {k} idle keep-alive connections; heap counted by a global allocator",
        nginx
            .as_ref()
            .map_or("the built-in server (no nginx)".to_owned(), |n| n
                .version
                .clone())
    );
    println!("| transport | heap bytes / connection | of which freed on close | open at server |");
    println!("|---|---:|---:|---:|");
    let show = |name: &str, m: Measured| {
        println!(
            "| {name} | {:.0} | {:.0} | {} |",
            m.per_conn_vs_fresh,
            m.per_conn,
            m.server_active.map_or("-".to_owned(), |n| n.to_string())
        );
    };
    show(
        "plain",
        measure(Fetcher::builder(), &plain_url, k, nginx.as_ref()),
    );
    match &nginx {
        Some(n) => {
            let port = n.https.expect("tls listener").port();
            let builder = Fetcher::builder()
                .tls_default_roots(false)
                .tls_roots_pem(pki.ca_pem.as_bytes());
            show(
                "TLS (rustls)",
                measure(builder, &format!("https://localhost:{port}/1k"), k, Some(n)),
            );
        }
        None => println!("| TLS (rustls) | skipped: no nginx | | |"),
    }
    println!(
        "\nheap bytes / connection = (live heap with {k} open − the same fetcher after one \
         warm-up request) / {k};\nof which freed on close = (live heap with {k} open − the \
         same fetcher after its pool closed them) / {k}; the rest stays with the fetcher \
         (slab slots, event and timer capacity) for reuse."
    );
}
