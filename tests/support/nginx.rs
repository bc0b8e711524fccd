//! A real nginx on loopback, configured and started by the test (plain and TLS listeners),
//! serving files the test writes. `None` when nginx is not installed (CI installs it).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub root: PathBuf,
    dir: PathBuf,
    child: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn find_nginx() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Nginx {
    /// Starts nginx with `cert_pem`/`key_pem` for its TLS listener; `files` are written
    /// under its root first.
    pub fn start(cert_pem: &str, key_pem: &str, files: &[(&str, &[u8])]) -> Option<Nginx> {
        let bin = find_nginx()?;
        let dir = std::env::temp_dir().join(format!(
            "parafetch-nginx-{}-{}",
            std::process::id(),
            free_port()
        ));
        let root = dir.join("www");
        std::fs::create_dir_all(&root).unwrap();
        for (name, bytes) in files {
            let path = root.join(name.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::File::create(path)
                .unwrap()
                .write_all(bytes)
                .unwrap();
        }
        std::fs::write(dir.join("cert.pem"), cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), key_pem).unwrap();
        let (http, https) = (free_port(), free_port());
        let d = dir.display().to_string();
        let conf = format!(
            "worker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n access_log off;\n keepalive_requests 1000000;\n keepalive_timeout 60s;\n\
             client_body_temp_path {d}/tmp_body;\n proxy_temp_path {d}/tmp_proxy;\n\
             fastcgi_temp_path {d}/tmp_fcgi;\n uwsgi_temp_path {d}/tmp_uwsgi;\n scgi_temp_path {d}/tmp_scgi;\n\
             gzip on; gzip_types *; gzip_min_length 1;\n\
             server {{\n  listen 127.0.0.1:{http};\n  listen 127.0.0.1:{https} ssl;\n\
             ssl_certificate {d}/cert.pem;\n  ssl_certificate_key {d}/key.pem;\n  root {d}/www;\n }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(bin)
            .args(["-p", &dir.display().to_string(), "-c"])
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .ok()?;
        let nginx = Nginx {
            http: ([127, 0, 0, 1], http).into(),
            https: ([127, 0, 0, 1], https).into(),
            root,
            dir,
            child,
        };
        // nginx says nothing when it is ready: wait (bounded) until both ports accept.
        let deadline = Instant::now() + Duration::from_secs(10);
        for addr in [nginx.http, nginx.https] {
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "nginx did not start: see {d}/error.log"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(nginx)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https.port())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its worker too (a killed master
        // leaves the worker running, orphaned).
        let stopped = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
