//! redis-server on loopback, for the queue tests: a generated config in a temp dir (bound
//! to 127.0.0.1, an ephemeral port), an optional password, and a [`Redis::restart`] on the
//! same port (for "Redis restarted mid-run"). Also [`Conn`], a small RESP2 client of its
//! own, so tests can look into Redis without going through the client parafetch uses.
//!
//! Two kinds, by persistence:
//! - [`Redis::start_for_test`]: persistence off (`save ""`, `appendonly no`), so a restart
//!   comes back empty, as a Redis run without persistence does after a crash;
//! - [`Redis::start_durable_for_test`]: the append-only file on and synced before each
//!   reply (`appendonly yes`, `appendfsync always`; still no RDB snapshots), so a restart,
//!   even after SIGKILL, comes back with every write it acknowledged. This is how a queue's
//!   Redis should run in production (docs/queue.md).
//!
//! Owns: the redis-server process (SIGKILL on stop and drop: a kill is what a crash looks
//! like, and a durable one has nothing unsynced to lose by it) and its temp dir (where a
//! durable one keeps its append-only file across restarts).
//! Must not: touch a system Redis or its config, bind fixed ports, or decide whether a
//! missing redis-server skips or fails a test: [`crate::tools`] does.
//!
//! Readiness is not polled: redis-server logs to its stdout, which a thread reads, and
//! the launch waits (bounded) for its "Ready to accept connections" line (logged after a
//! durable one has loaded its append-only file), then checks that it answers `PING`.
//!
//! ```no_run
//! use parafetch_test_support::redis::Redis;
//!
//! let Some(mut redis) = Redis::start_durable_for_test(None) else { return }; // skipped
//! let mut conn = redis.connect();
//! assert_eq!(conn.cmd(&["SET", "k", "v"]).unwrap().text(), Some("OK"));
//! redis.restart().unwrap(); // SIGKILL, then the same port again
//! let mut conn = redis.connect();
//! assert_eq!(conn.cmd(&["GET", "k"]).unwrap().text(), Some("v"));
//! ```

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::tools::{self, free_port};

/// How long redis-server may take to say it is ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a [`Conn`] waits for a reply before the test fails.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running redis-server; killed, and its temp dir removed, on drop.
pub struct Redis {
    /// Where it listens (127.0.0.1 and an ephemeral port; the same after a restart).
    pub addr: SocketAddr,
    /// `redis-server --version`'s line, e.g. `Redis server v=7.0.15 sha=...`.
    pub version: String,
    /// Whether it persists every write (append-only file, synced before each reply), so a
    /// restart comes back with its data.
    pub durable: bool,
    /// Its TLS port, when it also listens with TLS ([`Redis::start_tls_for_test`]).
    pub tls_port: Option<u16>,
    password: Option<String>,
    bin: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    /// What it logged since it was last started.
    log: Arc<Mutex<String>>,
}

/// Why a launch failed; `exited`: it quit before it was ready, usually because another
/// socket took its port in between ([`free_port`]), worth another port.
struct Failure {
    why: String,
    exited: bool,
}

impl Redis {
    /// Starts redis-server for a test, with `password` (`requirepass`) if given. A missing
    /// or unusable redis-server goes through [`tools`]: the test fails when `CI` is set,
    /// and may skip (`None`) otherwise.
    pub fn start_for_test(password: Option<&str>) -> Option<Redis> {
        Redis::start_kind_for_test(password, false)
    }

    /// Like [`Redis::start_for_test`], but durable: `appendonly yes` with `appendfsync
    /// always`, so [`Redis::restart`] (SIGKILL, then start again) comes back with every
    /// write it acknowledged.
    pub fn start_durable_for_test(password: Option<&str>) -> Option<Redis> {
        Redis::start_kind_for_test(password, true)
    }

    /// Like [`Redis::start_for_test`], also listening with TLS on a second port
    /// ([`Redis::tls_url`]), with the test PKI's `good` certificate (names `localhost` and
    /// `127.0.0.1`; its CA is in [`Redis::ca_file`]). Clients are not asked for
    /// certificates. The plain port stays, for the test's own looks.
    pub fn start_tls_for_test(password: Option<&str>) -> Option<Redis> {
        let bin = tools::require(&tools::REDIS_SERVER)?;
        match Redis::launch_inner(&bin, password, false, true) {
            Ok(redis) => Some(redis),
            Err(why) => tools::unavailable(&why),
        }
    }

    fn start_kind_for_test(password: Option<&str>, durable: bool) -> Option<Redis> {
        let bin = tools::require(&tools::REDIS_SERVER)?;
        match Redis::launch_with(&bin, password, durable) {
            Ok(redis) => Some(redis),
            Err(why) => tools::unavailable(&why),
        }
    }

    /// Starts the redis-server at `bin` on a fresh port (another one, up to 3 times, if it
    /// exits before it is ready), or says why it could not.
    ///
    /// # Errors
    /// When its temp dir or config cannot be written, it does not start, or it does not
    /// answer `PING` within [`START_TIMEOUT`].
    pub fn launch(bin: &Path, password: Option<&str>) -> Result<Redis, String> {
        Redis::launch_with(bin, password, false)
    }

    /// Like [`Redis::launch`], durable or not (see [`Redis::start_durable_for_test`]).
    ///
    /// # Errors
    /// As [`Redis::launch`].
    pub fn launch_with(bin: &Path, password: Option<&str>, durable: bool) -> Result<Redis, String> {
        Redis::launch_inner(bin, password, durable, false)
    }

    fn launch_inner(
        bin: &Path,
        password: Option<&str>,
        durable: bool,
        tls: bool,
    ) -> Result<Redis, String> {
        if let Some(pw) = password {
            assert!(
                !pw.is_empty() && pw.bytes().all(|b| b.is_ascii_alphanumeric()),
                "a test password must be non-empty ASCII letters and digits: {pw:?}"
            );
        }
        let out = Command::new(bin)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let dir = temp_dir()?;
        let mut redis = Redis {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            version,
            durable,
            tls_port: None,
            password: password.map(str::to_owned),
            bin: bin.to_owned(),
            dir,
            child: None,
            log: Arc::default(),
        };
        let mut attempt = 1;
        loop {
            redis.addr.set_port(free_port());
            if tls {
                redis.tls_port = Some(free_port());
            }
            match redis.spawn() {
                Ok(()) => return Ok(redis),
                Err(f) if f.exited && attempt < 3 => {
                    eprintln!("redis: retrying on another port: {}", f.why);
                    attempt += 1;
                }
                Err(f) => return Err(f.why),
            }
        }
    }

    /// Writes the config for the current port and starts redis-server on it.
    fn spawn(&mut self) -> Result<(), Failure> {
        let fail = |why: String| Failure { why, exited: false };
        // No RDB snapshots either way; a durable one logs every write to its append-only
        // file (under `dir`, so a restart reads it back) and syncs it before replying.
        let persistence = if self.durable {
            "appendonly yes\nappendfsync always\n"
        } else {
            "appendonly no\n"
        };
        let mut conf = format!(
            "bind 127.0.0.1\nport {}\ndaemonize no\nsave \"\"\n{persistence}\
             dir {}\nlogfile \"\"\nloglevel notice\n",
            self.addr.port(),
            self.dir.display()
        );
        if let Some(pw) = &self.password {
            conf += &format!("requirepass {pw}\n");
        }
        if let Some(port) = self.tls_port {
            let pki = crate::pki::pki();
            let write = |name: &str, text: &str| {
                let path = self.dir.join(name);
                std::fs::write(&path, text)
                    .map(|()| path)
                    .map_err(|e| fail(format!("redis: cannot write {name}: {e}")))
            };
            let cert = write("server.pem", &pki.good.chain_pem)?;
            let key = write("server.key", &pki.good.key_pem)?;
            let ca = write("ca.pem", &pki.ca_pem)?;
            conf += &format!(
                "tls-port {port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
                 tls-auth-clients no\n",
                cert.display(),
                key.display(),
                ca.display()
            );
        }
        let path = self.dir.join("redis.conf");
        std::fs::write(&path, conf)
            .map_err(|e| fail(format!("redis: cannot write config: {e}")))?;
        let mut child = Command::new(&self.bin)
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", self.bin.display())))?;
        self.log = Arc::default();
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        self.child = Some(child);
        let log = Arc::clone(&self.log);
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let is_ready = line.contains("Ready to accept connections");
                push_line(&log, &line);
                if is_ready {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
            }
            // EOF: it exited; a launch still waiting sees the sender dropped.
        });
        let log = Arc::clone(&self.log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                push_line(&log, &line);
            }
        });
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.as_mut().and_then(|c| c.wait().ok());
                self.child = None;
                return Err(Failure {
                    why: format!(
                        "redis-server exited before it was ready on {} ({status:?}); log: {}",
                        self.addr,
                        self.log()
                    ),
                    exited: true,
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.stop();
                return Err(fail(format!(
                    "redis-server was not ready on {} within {START_TIMEOUT:?}; log: {}",
                    self.addr,
                    self.log()
                )));
            }
        }
        let pong =
            Conn::connect(self.addr, self.password.as_deref()).and_then(|mut c| c.cmd(&["PING"]));
        match pong {
            Ok(r) if r.text() == Some("PONG") => Ok(()),
            other => {
                self.stop();
                Err(fail(format!(
                    "redis-server on {} said it was ready but answered PING with {other:?}",
                    self.addr
                )))
            }
        }
    }

    /// `redis://127.0.0.1:PORT` (with `:PASSWORD@` when it has one): the URL a client
    /// takes.
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@{}", self.addr),
            None => format!("redis://{}", self.addr),
        }
    }

    /// `rediss://localhost:TLS_PORT` (with `:PASSWORD@` when it has one), for one started
    /// by [`Redis::start_tls_for_test`].
    ///
    /// # Panics
    /// When it does not listen with TLS.
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("started with TLS");
        match &self.password {
            Some(pw) => format!("rediss://:{pw}@localhost:{port}"),
            None => format!("rediss://localhost:{port}"),
        }
    }

    /// The PEM file of the CA that signed its TLS certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A new connection, authenticated when it has a password.
    ///
    /// # Panics
    /// When it cannot connect (it is stopped, or not answering).
    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr, self.password.as_deref())
            .unwrap_or_else(|e| panic!("connect to redis-server on {}: {e}", self.addr))
    }

    /// Kills it (SIGKILL, as a crash) and waits until it is gone; its port then refuses
    /// connections. Unless it is durable nothing was persisted, so a restart starts empty.
    /// No-op when stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it runs (started and not stopped, and not exited on its own).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops it if it runs, then starts it again on the same port: empty, or, when durable,
    /// with every write it acknowledged before the stop.
    ///
    /// # Errors
    /// When it does not start again (another process may have taken the port meanwhile).
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn().map_err(|f| f.why)
    }

    /// What it logged (stdout and stderr) since it was last started.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Appends a log line (a poisoned lock still takes it: the log is only read for messages).
fn push_line(log: &Mutex<String>, line: &str) {
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    log.push_str(line);
    log.push('\n');
}

/// A fresh temp dir per instance: pid and a counter, so parallel tests never share one.
fn temp_dir() -> Result<PathBuf, String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "parafetch-redis-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("redis: cannot create its temp dir: {e}"))?;
    Ok(dir)
}

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR ...`: an error reply (not an I/O error).
    Error(String),
    /// `:42`
    Int(i64),
    /// `$3\r\nabc`; `None` for the nil bulk string `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...`; `None` for the nil array `*-1`.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// A status or a bulk string as text (`None` for anything else, or bytes not UTF-8).
    pub fn text(&self) -> Option<&str> {
        match self {
            Reply::Status(s) => Some(s),
            Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// An integer reply.
    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The items of an array reply (a nil array is empty).
    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(Some(items)) => items,
            _ => &[],
        }
    }

    /// A flat array of field/value bulk strings (a stream entry's, a hash's) as text
    /// pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.items()
            .chunks(2)
            .map(|kv| {
                let text = |r: &Reply| r.text().unwrap_or_default().to_owned();
                (text(&kv[0]), kv.get(1).map(text).unwrap_or_default())
            })
            .collect()
    }
}

/// A blocking connection speaking RESP2, one command at a time; for tests only.
pub struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    /// Connects to `addr` and authenticates with `password`.
    ///
    /// # Errors
    /// When it cannot connect, or `AUTH` is refused.
    pub fn connect(addr: SocketAddr, password: Option<&str>) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, REPLY_TIMEOUT)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream: BufReader::new(stream),
        };
        if let Some(pw) = password {
            match conn.cmd(&["AUTH", pw])? {
                Reply::Status(_) => {}
                other => {
                    return Err(io::Error::other(format!("AUTH refused: {other:?}")));
                }
            }
        }
        Ok(conn)
    }

    /// Sends one command and reads its reply (an error reply is `Ok(Reply::Error)`).
    ///
    /// # Errors
    /// I/O errors, a closed connection, or a reply that is not RESP2.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&out)?;
        read_reply(&mut self.stream)
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("not RESP2: {what}"))
}

/// Reads one reply (recursively for arrays).
pub fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "redis closed the connection",
        ));
    }
    let Some(line) = line.strip_suffix(b"\r\n") else {
        return Err(bad("a line without CRLF"));
    };
    let (kind, rest) = line.split_first().ok_or_else(|| bad("an empty line"))?;
    let text = std::str::from_utf8(rest).map_err(|_| bad("a line not UTF-8"))?;
    let number = || text.parse::<i64>().map_err(|_| bad("a bad length"));
    Ok(match kind {
        b'+' => Reply::Status(text.to_owned()),
        b'-' => Reply::Error(text.to_owned()),
        b':' => Reply::Int(number()?),
        b'$' => match number()? {
            -1 => Reply::Bulk(None),
            n if n >= 0 => {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf)?;
                if !buf.ends_with(b"\r\n") {
                    return Err(bad("a bulk string without CRLF"));
                }
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
            _ => return Err(bad("a negative length")),
        },
        b'*' => match number()? {
            -1 => Reply::Array(None),
            n if n >= 0 => Reply::Array(Some(
                (0..n).map(|_| read_reply(r)).collect::<io::Result<_>>()?,
            )),
            _ => return Err(bad("a negative length")),
        },
        _ => return Err(bad("an unknown type byte")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> io::Result<Reply> {
        read_reply(&mut &bytes[..])
    }

    #[test]
    fn replies_parse() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Reply::Status("OK".into()));
        assert_eq!(
            parse(b"-ERR no\r\n").unwrap(),
            Reply::Error("ERR no".into())
        );
        assert_eq!(parse(b":-3\r\n").unwrap(), Reply::Int(-3));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Bulk(None));
        assert_eq!(parse(b"*-1\r\n").unwrap(), Reply::Array(None));
        assert_eq!(
            parse(b"$4\r\na\r\nb\r\n").unwrap(),
            Reply::Bulk(Some(b"a\r\nb".to_vec()))
        );
        let nested = parse(b"*2\r\n*1\r\n$1\r\nx\r\n:7\r\n").unwrap();
        assert_eq!(nested.items()[0].items()[0].text(), Some("x"));
        assert_eq!(nested.items()[1].int(), Some(7));
        let pairs = parse(b"*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n").unwrap();
        let want = [("a", "1"), ("b", "2")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(pairs.pairs(), want);
    }

    #[test]
    fn broken_replies_are_errors() {
        for bytes in [
            &b""[..],
            b"+OK",
            b"?x\r\n",
            b"$5\r\nab\r\n",
            b"$2\r\nabcd",
            b":x\r\n",
            b"*-2\r\n",
        ] {
            assert!(parse(bytes).is_err(), "{bytes:?}");
        }
    }
}
