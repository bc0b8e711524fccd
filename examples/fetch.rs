//! Fetches a list of URLs with N in flight and prints one line per result.
//!
//! `cargo run --release --example fetch -- [-n N] [URL ...]`; URLs may also come on stdin
//! (`-`). With no URL it starts a tiny loopback server of its own (below) and fetches 100
//! URLs from it, so it works offline.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use parafetch::{Done, Fetcher, Queue};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut n = 10;
    if let Some(i) = args.iter().position(|a| a == "-n") {
        n = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(10);
        args.drain(i..(i + 2).min(args.len()));
    }
    let urls: Vec<String> = if args.iter().any(|a| a == "-") {
        std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.trim().is_empty())
            .collect()
    } else if args.is_empty() {
        let addr = local_server(Duration::from_millis(50)).expect("start a loopback server");
        eprintln!("no URLs given: fetching 100 from a loopback server at {addr}");
        (0..100)
            .map(|i| format!("http://{addr}/page/{i}"))
            .collect()
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

/// A loopback HTTP/1.1 server that answers every request after `delay`, a thread per
/// connection, for as long as the process runs. Just enough for this example: it reads
/// request heads only (GET), and is no model for serving anything real.
fn local_server(delay: Duration) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || serve(conn, delay));
        }
    });
    Ok(addr)
}

fn serve(conn: TcpStream, delay: Duration) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    let mut line = String::new();
    loop {
        // The request line and header fields, up to the blank line; EOF ends the connection.
        let mut path = None;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line.trim_end().is_empty() {
                break;
            }
            path.get_or_insert_with(|| line.split_whitespace().nth(1).unwrap_or("/").to_owned());
        }
        std::thread::sleep(delay);
        let body = format!(
            "hello from the example's server: {}\n",
            path.unwrap_or_default()
        );
        write!(
            writer,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
    }
}
