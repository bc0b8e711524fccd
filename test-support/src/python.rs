//! Python's `http.server` as a server no one here wrote: a `python3 -m http.server` child on
//! loopback, serving a directory.
//!
//! Owns: the child process (killed on drop) and the thread draining its stdout.
//! Must not: probe or guess ports (python binds port 0 and reports the real one), or look
//! for python3 itself: [`crate::tools`] finds it and decides between skipping and failing.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::http::url_for;
use crate::tools;

/// A `python3 -m http.server` child on 127.0.0.1, killed on drop.
pub struct PythonServer {
    /// The port it listens on.
    pub port: u16,
    child: Child,
}

impl PythonServer {
    /// 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port)
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        url_for(self.addr(), path)
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Python's http.server on 127.0.0.1 port 0, serving `dir`, and returns once it
/// listens. `None` when python3 is missing and the test may skip (see [`tools::require`]).
///
/// It binds port 0 itself and prints the real port after `listen()`; with `-u` that line is
/// not stuck in a pipe buffer, so reading it is both the port and the readiness signal (no
/// probe-port race, no connect polling).
///
/// # Panics
/// If python3 is missing while `CI` is set, cannot be run, or runs but does not report a
/// port within 10 s.
pub fn http_server(dir: &Path) -> Option<PythonServer> {
    let python = tools::require(&tools::PYTHON3)?;
    let mut child = Command::new(&python)
        .args([
            "-u",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir)
        .arg("0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    // Keeps draining stdout until the child dies, so python never writes into a closed pipe.
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    let line = rx.recv_timeout(Duration::from_secs(10));
    // "Serving HTTP on 127.0.0.1 port 41235 (http://127.0.0.1:41235/) ..."
    let port = match &line {
        Ok(Some(Ok(line))) => line
            .split_once(" port ")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|p| p.parse::<u16>().ok()),
        _ => None,
    };
    match port {
        Some(port) => Some(PythonServer { port, child }),
        None => {
            let _ = child.kill();
            let status = child.wait();
            panic!("python3 http.server did not report a port: {line:?}, exit {status:?}");
        }
    }
}
