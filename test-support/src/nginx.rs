//! nginx on loopback, for the interop tests and the benchmarks: a generated config (1 worker,
//! access log off, keep-alive requests effectively unlimited, sendfile), files written to a
//! temp dir, ephemeral ports, an optional TLS listener (TLS 1.2 and 1.3), and `stub_status`
//! on its own port so a harness can count the connections a run opened.
//!
//! Owns: the nginx master process (SIGTERM on drop, so it stops its worker) and its temp dir.
//! Must not: decide whether a missing nginx skips or fails a test: [`crate::tools`] does
//! ([`Nginx::start_for_test`]); the benchmarks fall back to their built-in server instead
//! ([`Nginx::start`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{self, free_port};

/// A running nginx; stopped, and its temp dir removed, on drop.
pub struct Nginx {
    /// The plain HTTP listener.
    pub http: SocketAddr,
    /// The TLS listener, when started with a certificate.
    pub https: Option<SocketAddr>,
    /// The `stub_status` listener (`/status`).
    pub status: SocketAddr,
    /// The first line of `nginx -V`, e.g. `nginx version: nginx/1.22.1`.
    pub version: String,
    dir: PathBuf,
    child: Child,
}

/// nginx's idle keep-alive timeout unless a test sets its own: longer than any test.
const DEFAULT_KEEPALIVE: &str = "120s";

impl Nginx {
    /// For benchmarks: starts nginx serving `files` (path, bytes); with `tls` = (certificate
    /// chain PEM, key PEM) it also listens for https. `None` when nginx is not installed,
    /// lacks `stub_status` or does not start (said on stderr), so the caller can fall back.
    pub fn start(files: &[(String, Vec<u8>)], tls: Option<(&str, &str)>) -> Option<Nginx> {
        let bin = tools::find(&tools::NGINX)?;
        Nginx::launch(&bin, files, tls, DEFAULT_KEEPALIVE)
            .map_err(|why| eprintln!("{why}: not used"))
            .ok()
    }

    /// For tests: like [`Nginx::start`], but a missing or unusable nginx goes through
    /// [`tools::require`]: the test fails when `CI` is set, and may skip (`None`) otherwise.
    pub fn start_for_test(files: &[(String, Vec<u8>)], tls: Option<(&str, &str)>) -> Option<Nginx> {
        Nginx::start_for_test_with_keepalive(files, tls, DEFAULT_KEEPALIVE)
    }

    /// Like [`Nginx::start_for_test`], with nginx's `keepalive_timeout` directive set to
    /// `keepalive` (e.g. `"1s 1s"`: close idle connections after 1 s and say so in a
    /// `Keep-Alive: timeout=1` field).
    pub fn start_for_test_with_keepalive(
        files: &[(String, Vec<u8>)],
        tls: Option<(&str, &str)>,
        keepalive: &str,
    ) -> Option<Nginx> {
        let bin = tools::require(&tools::NGINX)?;
        match Nginx::launch(&bin, files, tls, keepalive) {
            Ok(nginx) => Some(nginx),
            Err(why) => tools::unavailable(&why),
        }
    }

    /// Starts the nginx at `bin`, or says why it could not.
    ///
    /// # Errors
    /// When nginx lacks `stub_status`, the config cannot be written, or nginx does not
    /// listen within 10 s.
    pub fn launch(
        bin: &Path,
        files: &[(String, Vec<u8>)],
        tls: Option<(&str, &str)>,
        keepalive: &str,
    ) -> Result<Nginx, String> {
        let out = Command::new(bin)
            .arg("-V")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let about = String::from_utf8_lossy(&out.stderr).into_owned();
        if !about.contains("http_stub_status_module") {
            return Err(format!("nginx at {} has no stub_status", bin.display()));
        }
        let version = about.lines().next().unwrap_or("nginx").to_owned();
        let dir = std::env::temp_dir().join(format!(
            "parafetch-bench-nginx-{}-{}",
            std::process::id(),
            free_port()
        ));
        let root = dir.join("www");
        let io = |what: &str, e: std::io::Error| format!("nginx: cannot {what}: {e}");
        std::fs::create_dir_all(&root).map_err(|e| io("create its temp dir", e))?;
        for (name, bytes) in files {
            std::fs::write(root.join(name.trim_start_matches('/')), bytes)
                .map_err(|e| io("write a served file", e))?;
        }
        let (http, status) = (free_port(), free_port());
        let d = dir.display().to_string();
        let mut tls_conf = String::new();
        let https = tls.map(|(cert, key)| {
            std::fs::write(dir.join("cert.pem"), cert).expect("write cert");
            std::fs::write(dir.join("key.pem"), key).expect("write key");
            let port = free_port();
            // TLS 1.3 as well: nginx enables it by default only from 1.23.4 (Debian 12 has
            // 1.22). Session tickets are on by default, so TLS 1.3 sessions resume without a
            // session cache.
            tls_conf = format!(
                "  listen 127.0.0.1:{port} ssl;\n  ssl_certificate {d}/cert.pem;\n  \
                 ssl_certificate_key {d}/key.pem;\n  ssl_protocols TLSv1.2 TLSv1.3;\n"
            );
            SocketAddr::from(([127, 0, 0, 1], port))
        });
        let conf = format!(
            "worker_processes 1;\nworker_rlimit_nofile 65536;\nerror_log {d}/error.log warn;\n\
             pid {d}/nginx.pid;\n\
             events {{ worker_connections 32768; multi_accept on; }}\n\
             http {{\n access_log off;\n keepalive_requests 100000000;\n keepalive_timeout {keepalive};\n\
             sendfile on;\n tcp_nopush on;\n tcp_nodelay on;\n\
             default_type application/octet-stream;\n\
             types {{ text/html html htm; text/css css; application/javascript js; \
             text/plain txt; application/json json; application/xml xml; image/png png; \
             image/svg+xml svg; image/jpeg jpg jpeg; image/gif gif; }}\n\
             client_body_temp_path {d}/tmp_body;\n proxy_temp_path {d}/tmp_proxy;\n\
             fastcgi_temp_path {d}/tmp_fcgi;\n uwsgi_temp_path {d}/tmp_uwsgi;\n scgi_temp_path {d}/tmp_scgi;\n\
             server {{\n  listen 127.0.0.1:{http} backlog=65535;\n{tls_conf}  root {d}/www;\n }}\n\
             server {{\n  listen 127.0.0.1:{status};\n  location = /status {{ stub_status; }}\n }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).map_err(|e| io("write its config", e))?;
        let child = Command::new(bin)
            .args(["-p", &d, "-c"])
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io("start", e))?;
        let nginx = Nginx {
            http: ([127, 0, 0, 1], http).into(),
            https,
            status: ([127, 0, 0, 1], status).into(),
            version,
            dir,
            child,
        };
        // nginx says nothing when it is ready: wait (bounded) until its ports accept.
        let deadline = Instant::now() + Duration::from_secs(10);
        for addr in [Some(nginx.http), nginx.https, Some(nginx.status)]
            .into_iter()
            .flatten()
        {
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if Instant::now() > deadline {
                    // Dropping `nginx` stops it and removes the dir: keep the log in the error.
                    let log = std::fs::read_to_string(format!("{d}/error.log")).unwrap_or_default();
                    return Err(format!("nginx did not start within 10 s; error.log: {log}"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(nginx)
    }

    /// `http://127.0.0.1:PORT/path` on the plain listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    fn stub_status(&self) -> String {
        let mut s = TcpStream::connect(self.status).expect("connect to stub_status");
        s.write_all(b"GET /status HTTP/1.0\r\nHost: x\r\n\r\n")
            .expect("ask stub_status");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read stub_status");
        text
    }

    /// Connections open now ("Active connections"), the asking one included.
    pub fn active(&self) -> u64 {
        self.stub_status()
            .lines()
            .find_map(|l| l.strip_prefix("Active connections:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("stub_status active counter")
    }

    /// Connections accepted so far, from `stub_status`. One worker, so the counter is
    /// exact; each reading opens one connection, which the caller's before/after
    /// difference must subtract (see [`Nginx::opened_since`]).
    pub fn accepts(&self) -> u64 {
        let text = self.stub_status();
        // "server accepts handled requests\n 12 12 40 \n"
        let mut lines = text.lines().skip_while(|l| !l.contains("accepts"));
        lines.next();
        lines
            .next()
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("stub_status accepts counter")
    }

    /// Connections opened between two [`Nginx::accepts`] readings, less the reading's own.
    pub fn opened_since(&self, before: u64) -> u64 {
        self.accepts().saturating_sub(before + 1)
    }

    /// The temp dir holding the config, the served files (`www/`) and `error.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Nginx {
    /// SIGTERM lets the master stop its worker; SIGKILL to the master would leave the
    /// worker running, orphaned.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
