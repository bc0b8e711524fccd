//! httpbin (the Flask application from PyPI) served by gunicorn on loopback: a real server
//! for cookies (`/cookies/set`, `/cookies`, `/cookies/delete`), content codings (`/gzip`,
//! `/deflate`, `/brotli`) and redirects, written by people who are not us.
//!
//! Owns: the gunicorn child (killed on drop) and the thread draining its log.
//! Must not: probe or guess ports (gunicorn binds port 0 and logs the real one), or look
//! for gunicorn itself: [`crate::tools`] finds it and decides between skipping and failing.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::http::url_for;
use crate::tools;

/// A gunicorn child serving httpbin on 127.0.0.1, killed on drop.
pub struct Httpbin {
    /// The port it listens on.
    pub port: u16,
    child: Child,
}

impl Httpbin {
    /// 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port)
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        url_for(self.addr(), path)
    }
}

impl Drop for Httpbin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts httpbin under gunicorn (one worker, four threads) on 127.0.0.1 port 0 and returns
/// once it listens. `None` when gunicorn is missing and the test may skip (see
/// [`tools::require`]).
///
/// gunicorn logs `Listening at: http://127.0.0.1:PORT` after `listen()`: that line is both
/// the port and the readiness signal.
///
/// # Panics
/// If gunicorn is missing while `CI` is set, cannot be run, or does not report a port
/// within 30 s.
pub fn start() -> Option<Httpbin> {
    let gunicorn = tools::require(&tools::GUNICORN)?;
    let mut child = Command::new(&gunicorn)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--threads",
            "4",
            // Parallel tests must not share gunicorn's control socket (~/.gunicorn).
            "--no-control-socket",
            "httpbin:app",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", gunicorn.display()));
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    // Keeps draining the log until the child dies, so gunicorn never blocks on a full pipe.
    thread::spawn(move || {
        let mut sent = false;
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(port) = listening_port(&line) {
                    let _ = tx.send(Ok(port));
                    sent = true;
                } else {
                    seen.push(line);
                }
            }
        }
        if !sent {
            let _ = tx.send(Err(seen.join("\n")));
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(port)) => Some(Httpbin { port, child }),
        other => {
            let _ = child.kill();
            let status = child.wait();
            panic!("gunicorn (httpbin) did not report a port: {other:?}, exit {status:?}");
        }
    }
}

/// The port of gunicorn's `... [INFO] Listening at: http://127.0.0.1:PORT (pid)` line.
fn listening_port(line: &str) -> Option<u16> {
    let (_, rest) = line.split_once("Listening at: http://127.0.0.1:")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_from_gunicorns_log() {
        let line = "[2026-12-01 21:22:57 +0000] [25840] [INFO] Listening at: http://127.0.0.1:40439 (25840)";
        assert_eq!(listening_port(line), Some(40439));
        assert_eq!(
            listening_port("[INFO] Booting worker with pid: 25841"),
            None
        );
    }
}
