//! The `demo` subcommand's loopback HTTP/1.1 server, so the demo runs offline: every
//! request is answered after a fixed delay with a short text body.
//!
//! A thread per connection, std only; it is for showing concurrency on one machine, not for
//! serving anything real. It never touches the fetcher's loop, and it is the tool's, not
//! the library's: no user of parafetch should depend on it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// A loopback server answering every request after `delay`.
pub struct DemoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl DemoServer {
    /// Binds 127.0.0.1 on a free port and starts serving.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub fn start(delay: Duration) -> io::Result<DemoServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        thread::Builder::new()
            .name("parafetch-demo-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let _ = thread::Builder::new()
                        .name("parafetch-demo-conn".into())
                        .spawn(move || {
                            let _ = serve(conn, delay);
                        });
                }
            })?;
        Ok(DemoServer { addr, stop })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve(conn: TcpStream, delay: Duration) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mut close = line.trim_end().ends_with("HTTP/1.0");
        let mut body_len = 0usize;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                let (name, value) = (name.trim(), value.trim());
                if name.eq_ignore_ascii_case("content-length") {
                    body_len = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
        }
        io::copy(&mut (&mut reader).take(body_len as u64), &mut io::sink())?;
        thread::sleep(delay);
        let body = format!("hello from the parafetch demo server: {path}\n");
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        writer.write_all(format!("{head}{body}").as_bytes())?;
        if close {
            return Ok(());
        }
    }
}
