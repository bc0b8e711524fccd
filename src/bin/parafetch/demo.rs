//! `parafetch demo`: the seed's experiment, offline. A built-in loopback server answers each
//! request after a delay; the same URLs are fetched once per concurrency level and the wall
//! times compared. With 100 URLs and 100 ms: about 10 s with 1 in flight, 0.5 s with 20.
//!
//! Owns the experiment and its report; the server is [`crate::server::DemoServer`].

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use parafetch::{Done, Fetcher, Queue};

use crate::args::DemoArgs;
use crate::server::DemoServer;

/// Runs the demo; exit status 1 if the server cannot start or any request fails.
pub fn run(args: &DemoArgs) -> ExitCode {
    let delay = Duration::from_millis(args.delay_ms);
    let server = match DemoServer::start(delay) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("parafetch: cannot start the demo server: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "demo: {} URLs from a local server ({}) that answers each after {} ms",
        args.count,
        server.addr(),
        args.delay_ms
    );
    let mut first: Option<Duration> = None;
    for &n in &args.compare {
        let (wall, failed) = fetch_all(&server, args.count, n);
        if failed > 0 {
            eprintln!(
                "parafetch: demo: {failed} of {} requests failed",
                args.count
            );
            return ExitCode::FAILURE;
        }
        // The best this cap can do: ceil(count / n) rounds of one delay each.
        let ideal = delay * args.count.div_ceil(n) as u32;
        let mut line = format!(
            "{n:>5} in flight: {:>8.3} s {:>9.1} requests/s  (ideal {:.3} s)",
            wall.as_secs_f64(),
            args.count as f64 / wall.as_secs_f64().max(1e-9),
            ideal.as_secs_f64()
        );
        match first {
            None => first = Some(wall),
            Some(base) => line.push_str(&format!(
                "  speed-up {:.1}x",
                base.as_secs_f64() / wall.as_secs_f64().max(1e-9)
            )),
        }
        println!("{line}");
    }
    ExitCode::SUCCESS
}

/// Fetches `count` URLs with at most `n` in flight, through the callback API; returns the
/// wall time and how many failed (a non-200 counts as failed: the server only sends 200).
fn fetch_all(server: &DemoServer, count: usize, n: usize) -> (Duration, usize) {
    let failed = Rc::new(Cell::new(0usize));
    let start = Instant::now();
    let mut fetcher: Fetcher<usize> = Fetcher::builder().max_in_flight(n).build();
    for i in 0..count {
        let failures = Rc::clone(&failed);
        let on_done = move |done: Done<usize>, _: &mut Queue<usize>| {
            if !matches!(done.result, Ok(ref r) if r.status == 200) {
                failures.set(failures.get() + 1);
            }
        };
        if fetcher
            .start_request(server.url(&format!("/page/{i}")), on_done, i)
            .is_err()
        {
            failed.set(failed.get() + 1);
        }
    }
    fetcher.finish_all_requests();
    (start.elapsed(), failed.get())
}
