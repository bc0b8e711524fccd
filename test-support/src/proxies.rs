//! Real proxies no one here wrote, from Debian's packages, on loopback: [`Tinyproxy`] and
//! [`Squid`] (HTTP proxies: absolute-form requests and CONNECT, optional Basic auth),
//! [`Dante`] (`danted`, SOCKS5: no auth, or username/password against a system user) and
//! [`Microsocks`] (SOCKS5: no auth, or username/password). Each gets a generated config in its
//! own temp dir and an ephemeral port, and `start` returns once the port accepts.
//!
//! Owns: the proxy's process group (SIGTERM on drop, then SIGKILL if it lingers, so helpers
//! and children go too: squid's auth helper, dante's children) and its temp dir; for
//! [`Dante`] with credentials, the system user `parafetch-*` it creates (see
//! [`ensure_system_user`]).
//! Must not: count requests (tests count on the origin's side), touch system services or
//! their configs, bind fixed ports, or decide whether a missing program skips or fails a test:
//! [`crate::tools`] does.
//!
//! ```no_run
//! use parafetch_test_support::proxies::Tinyproxy;
//!
//! let Some(proxy) = Tinyproxy::start(Some(("alice", "s3cret"))) else { return }; // skipped
//! assert!(proxy.url().starts_with("http://alice:s3cret@127.0.0.1:"));
//! ```

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::tools::{self, Tool, free_port};

/// How long a proxy may take to accept connections after it was started.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The system user [`Dante`] authenticates when no other `parafetch-*` name is given.
pub const DANTE_USER: &str = "parafetch-socks";

/// A fresh temp dir per proxy: pid and a counter, so parallel tests never share one.
fn temp_dir(name: &str) -> Result<PathBuf, String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "parafetch-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("{name}: cannot create its temp dir: {e}"))?;
    Ok(dir)
}

/// Credentials go into URLs as they are, so they must not need percent-encoding.
fn check_credentials(auth: Option<(&str, &str)>) -> Option<(String, String)> {
    auth.map(|(user, password)| {
        for s in [user, password] {
            assert!(
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
                "proxy credentials must be non-empty and URL-unreserved characters only: {s:?}"
            );
        }
        (user.to_owned(), password.to_owned())
    })
}

/// Why a launch failed. `exited`: the proxy quit before listening, usually because another
/// socket took its port between [`free_port`] and the proxy's bind; worth another port.
struct Failure {
    why: String,
    exited: bool,
}

impl From<String> for Failure {
    fn from(why: String) -> Failure {
        Failure { why, exited: false }
    }
}

/// Runs `launch` (which picks a fresh port each time) up to 3 times while the proxy exits
/// before listening.
fn retrying<T>(mut launch: impl FnMut() -> Result<T, Failure>) -> Result<T, String> {
    let mut attempt = 1;
    loop {
        match launch() {
            Err(f) if f.exited && attempt < 3 => {
                eprintln!("retrying on another port: {}", f.why);
                attempt += 1;
            }
            done => return done.map_err(|f| f.why),
        }
    }
}

/// A proxy process started by this module: its process group, temp dir and logs.
struct Running {
    name: &'static str,
    scheme: &'static str,
    addr: SocketAddr,
    auth: Option<(String, String)>,
    dir: PathBuf,
    /// The proxy's own log file, if it writes one (else its stdout and stderr say it all).
    log: Option<PathBuf>,
    child: Child,
}

impl Running {
    /// Spawns `bin args` in a process group of its own, stdout and stderr to `stdio.log` in
    /// `dir`, and waits (at most [`START_TIMEOUT`]) until 127.0.0.1:`port` accepts.
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        name: &'static str,
        scheme: &'static str,
        bin: &Path,
        args: &[OsString],
        dir: PathBuf,
        log: Option<PathBuf>,
        port: u16,
        auth: Option<(String, String)>,
    ) -> Result<Running, Failure> {
        let stdio = File::create(dir.join("stdio.log"))
            .map_err(|e| format!("{name}: cannot create stdio.log: {e}"))?;
        let stderr = stdio
            .try_clone()
            .map_err(|e| format!("{name}: cannot dup stdio.log: {e}"))?;
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdio)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("{name}: cannot run {}: {e}", bin.display()))?;
        let mut running = Running {
            name,
            scheme,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            auth,
            dir,
            log,
            child,
        };
        running.wait_until_listening()?;
        Ok(running)
    }

    /// Proxies say nothing when they are ready: connect until the port accepts. A proxy that
    /// exits (bad config) or stays silent fails with its logs in the message. Dropping `self`
    /// on the error path stops it and removes the dir.
    fn wait_until_listening(&mut self) -> Result<(), Failure> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Failure {
                    why: format!(
                        "{} exited before listening on {} ({status}); {}",
                        self.name,
                        self.addr,
                        self.logs()
                    ),
                    exited: true,
                });
            }
            if Instant::now() > deadline {
                return Err(Failure::from(format!(
                    "{} did not listen on {} within {START_TIMEOUT:?}; {}",
                    self.name,
                    self.addr,
                    self.logs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        match &self.auth {
            Some((user, password)) => format!("{}://{user}:{password}@{}", self.scheme, self.addr),
            None => format!("{}://{}", self.scheme, self.addr),
        }
    }

    /// Its log file (if any) and its stdout and stderr, for failure messages.
    fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let mut out = String::new();
        if let Some(log) = &self.log {
            out += &format!("{}: {}\n", log.display(), read(log));
        }
        out += &format!("stdout+stderr: {}", read(&self.dir.join("stdio.log")));
        out
    }
}

impl Drop for Running {
    /// SIGTERM to the whole group (the proxy and any helpers or children), a bounded wait,
    /// then SIGKILL to whatever is left; no process outlives the test.
    fn drop(&mut self) {
        let leader = self.child.id() as libc::pid_t;
        let group = -leader;
        // The leader first, so it can stop and reap its own helpers (signalled together, they
        // could outlive it as zombies nobody reaps); then the group.
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(leader, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: kill(2) on the process group our own child led. Members left after the
        // leader (or a leader that ignored SIGTERM) get SIGTERM, then SIGKILL; ESRCH when the
        // group is already empty is fine.
        let alive = |sig| unsafe { libc::kill(group, sig) } == 0;
        if alive(libc::SIGTERM) {
            while alive(0) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            alive(libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The methods every launcher shares: address, URL, logs, temp dir.
macro_rules! proxy_methods {
    ($ty:ident) => {
        impl $ty {
            /// 127.0.0.1 and the proxy's ephemeral port.
            pub fn addr(&self) -> SocketAddr {
                self.0.addr
            }

            /// The proxy URL, with the credentials it was started with (if any) as userinfo:
            /// `http://127.0.0.1:PORT`, `socks5://user:pass@127.0.0.1:PORT`, ...
            pub fn url(&self) -> String {
                self.0.url()
            }

            /// The proxy URL without credentials.
            pub fn url_without_credentials(&self) -> String {
                format!("{}://{}", self.0.scheme, self.0.addr)
            }

            /// The username and password it was started with.
            pub fn credentials(&self) -> Option<(&str, &str)> {
                self.0.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
            }

            /// What the proxy logged so far (its log file, stdout and stderr), e.g. for a
            /// failing assertion's message.
            pub fn logs(&self) -> String {
                self.0.logs()
            }

            /// The temp dir holding its config and logs (removed on drop).
            pub fn dir(&self) -> &Path {
                &self.0.dir
            }

            /// The process id of the proxy (its main process; the leader of its group).
            pub fn pid(&self) -> u32 {
                self.0.child.id()
            }
        }
    };
}

/// Starts a launcher: finds `tool` and runs `launch`, or skips (`None`) / fails under CI.
fn start_with<T>(tool: &Tool, mut launch: impl FnMut(&Path) -> Result<T, Failure>) -> Option<T> {
    let bin = tools::require(tool)?;
    match retrying(|| launch(&bin)) {
        Ok(proxy) => Some(proxy),
        Err(why) => tools::unavailable(&why),
    }
}

// ---------------------------------------------------------------------------------------------
// tinyproxy

/// tinyproxy on 127.0.0.1: HTTP proxy and CONNECT to any port, optional Basic auth
/// (`BasicAuth user password`, tinyproxy ≥ 1.10), no `Via` header. Stopped on drop.
///
/// With auth, tinyproxy 1.11 answers a request or CONNECT without credentials with `407` and
/// `Proxy-Authenticate`, but one with a wrong password with `401 Unauthorized` and
/// `WWW-Authenticate`, as if it were the origin (squid says 407 to both). It also closes the
/// client's connection after each proxied response: keep-alive through a proxy needs
/// [`Squid`].
pub struct Tinyproxy(Running);
proxy_methods!(Tinyproxy);

impl Tinyproxy {
    /// Starts tinyproxy; with `auth` = (user, password) it answers 407 without them. `None`
    /// when it is missing and the test may skip (see [`tools::require`]).
    ///
    /// # Panics
    /// When it cannot be started while `CI` is set, or `auth` needs percent-encoding.
    pub fn start(auth: Option<(&str, &str)>) -> Option<Tinyproxy> {
        let auth = check_credentials(auth);
        start_with(&tools::TINYPROXY, |bin| {
            Tinyproxy::launch(bin, auth.clone())
        })
    }

    fn launch(bin: &Path, auth: Option<(String, String)>) -> Result<Tinyproxy, Failure> {
        let dir = temp_dir("tinyproxy")?;
        let port = free_port();
        let d = dir.display();
        // No ConnectPort line: CONNECT is allowed to every port.
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 256\n\
             LogFile \"{d}/tinyproxy.log\"\nLogLevel Info\nPidFile \"{d}/tinyproxy.pid\"\n\
             Allow 127.0.0.1\nDisableViaHeader Yes\n"
        );
        if let Some((user, password)) = &auth {
            conf += &format!("BasicAuth {user} {password}\n");
        }
        let conf_path = dir.join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).map_err(|e| format!("tinyproxy: write config: {e}"))?;
        let args = ["-d".into(), "-c".into(), conf_path.into_os_string()];
        let log = Some(dir.join("tinyproxy.log"));
        Running::spawn("tinyproxy", "http", bin, &args, dir, log, port, auth).map(Tinyproxy)
    }
}

// ---------------------------------------------------------------------------------------------
// squid

/// squid on 127.0.0.1, in the foreground (`-N`), memory cache only and caching nothing:
/// HTTP proxy and CONNECT to any port from loopback, optional Basic auth through its
/// `basic_ncsa_auth` helper and a password file made here (MD5-crypt from `openssl passwd
/// -1`). Keeps client connections alive, and its own to the origin. Stopped on drop
/// (`shutdown_lifetime 0`, so at once).
pub struct Squid(Running);
proxy_methods!(Squid);

impl Squid {
    /// Starts squid; with `auth` = (user, password) it answers 407 without them. `None` when
    /// squid (or, with `auth`, its helper or openssl) is missing and the test may skip.
    ///
    /// # Panics
    /// When it cannot be started while `CI` is set, or `auth` needs percent-encoding.
    pub fn start(auth: Option<(&str, &str)>) -> Option<Squid> {
        let auth = check_credentials(auth);
        let helper = match &auth {
            Some(_) => Some((
                tools::require(&tools::SQUID_BASIC_NCSA_AUTH)?,
                tools::require(&tools::OPENSSL)?,
            )),
            None => None,
        };
        start_with(&tools::SQUID, |bin| {
            Squid::launch(bin, auth.clone(), helper.clone(), None)
        })
    }

    /// Starts squid as an https proxy: clients speak TLS to it (`chain_pem` and `key_pem`
    /// are its certificate and key), then HTTP or CONNECT inside. No credentials.
    ///
    /// # Panics
    /// When it cannot be started while `CI` is set.
    pub fn start_https(chain_pem: &str, key_pem: &str) -> Option<Squid> {
        let tls = (chain_pem.to_owned(), key_pem.to_owned());
        start_with(&tools::SQUID, |bin| {
            Squid::launch(bin, None, None, Some(tls.clone()))
        })
    }

    fn launch(
        bin: &Path,
        auth: Option<(String, String)>,
        helper: Option<(PathBuf, PathBuf)>,
        tls: Option<(String, String)>,
    ) -> Result<Squid, Failure> {
        let dir = temp_dir("squid")?;
        // squid started as root drops to its cache_effective_user (Debian: proxy), which
        // must still write its logs and pid file here.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| format!("squid: chmod its temp dir: {e}"))?;
        let port = free_port();
        let d = dir.display();
        let listen = match &tls {
            Some((chain, key)) => {
                let write = |name: &str, pem: &str| {
                    let path = dir.join(name);
                    std::fs::write(&path, pem)
                        .and_then(|()| {
                            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                        })
                        .map_err(|e| format!("squid: write its {name}: {e}"))
                };
                write("cert.pem", chain)?;
                write("key.pem", key)?;
                format!("https_port 127.0.0.1:{port} tls-cert={d}/cert.pem tls-key={d}/key.pem")
            }
            None => format!("http_port 127.0.0.1:{port}"),
        };
        let mut conf = format!(
            "{listen}\n\
             pid_filename {d}/squid.pid\ncache_log {d}/cache.log\n\
             access_log stdio:{d}/access.log\ncache_store_log none\ncoredump_dir {d}\n\
             netdb_filename none\npinger_enable off\nicp_port 0\nhtcp_port 0\n\
             cache deny all\ncache_mem 8 MB\nshutdown_lifetime 0 seconds\n\
             via off\nforwarded_for delete\nlogfile_rotate 0\n\
             acl loopback src 127.0.0.0/8\n"
        );
        match (&auth, &helper) {
            (Some((user, password)), Some((ncsa, openssl))) => {
                let hash = md5_crypt(openssl, password)?;
                let passwd = dir.join("passwd");
                std::fs::write(&passwd, format!("{user}:{hash}\n"))
                    .map_err(|e| format!("squid: write its password file: {e}"))?;
                std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| format!("squid: chmod its password file: {e}"))?;
                conf += &format!(
                    "auth_param basic program {} {}\n\
                     auth_param basic children 2 startup=1\n\
                     auth_param basic realm parafetch-test\n\
                     acl authed proxy_auth REQUIRED\n\
                     http_access deny !loopback\nhttp_access allow authed\n\
                     http_access deny all\n",
                    ncsa.display(),
                    passwd.display()
                );
            }
            _ => conf += "http_access allow loopback\nhttp_access deny all\n",
        }
        let conf_path = dir.join("squid.conf");
        std::fs::write(&conf_path, conf).map_err(|e| format!("squid: write config: {e}"))?;
        let args = ["-N".into(), "-f".into(), conf_path.into_os_string()];
        let log = Some(dir.join("cache.log"));
        let scheme = if tls.is_some() { "https" } else { "http" };
        Running::spawn("squid", scheme, bin, &args, dir, log, port, auth).map(Squid)
    }
}

/// An MD5-crypt (`$1$salt$hash`) of `password`, which squid's `basic_ncsa_auth` accepts.
fn md5_crypt(openssl: &Path, password: &str) -> Result<String, String> {
    let out = Command::new(openssl)
        .args(["passwd", "-1", "-salt", "parafetc", password])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", openssl.display()))?;
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !hash.starts_with("$1$") {
        return Err(format!(
            "openssl passwd -1 failed ({}): {hash} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(hash)
}

// ---------------------------------------------------------------------------------------------
// dante

/// Dante's `danted` on 127.0.0.1: SOCKS5 CONNECT from loopback to anywhere, to addresses or
/// names it resolves itself (socks5h), with no auth (`socksmethod: none`) or
/// username/password (`socksmethod: username`, RFC 1929). Without auth it also speaks SOCKS4,
/// but refuses SOCKS4a (a name) with 0x5B.
///
/// Dante checks usernames and passwords against the system's users (passwd/shadow), so with
/// credentials [`Dante::start`] first makes sure a system user of that name exists with that
/// password ([`ensure_system_user`]: root only, names starting with `parafetch-` only).
pub struct Dante(Running);
proxy_methods!(Dante);

impl Dante {
    /// Starts danted; with `auth` = (user, password) it only accepts that system user (made
    /// if missing, see [`ensure_system_user`]). `None` when danted is missing, or (with
    /// `auth`) this process is not root, and the test may skip.
    ///
    /// # Panics
    /// When it cannot be started while `CI` is set, or `auth` needs percent-encoding or names
    /// a user that does not start with `parafetch-`.
    pub fn start(auth: Option<(&str, &str)>) -> Option<Dante> {
        let auth = check_credentials(auth);
        let bin = tools::require(&tools::DANTED)?;
        if let Some((user, password)) = &auth {
            if let Err(why) = ensure_system_user(user, password) {
                return tools::unavailable(&why);
            }
        }
        match retrying(|| Dante::launch(&bin, auth.clone())) {
            Ok(proxy) => Some(proxy),
            Err(why) => tools::unavailable(&why),
        }
    }

    fn launch(bin: &Path, auth: Option<(String, String)>) -> Result<Dante, Failure> {
        let dir = temp_dir("danted")?;
        let port = free_port();
        let d = dir.display();
        let method = if auth.is_some() { "username" } else { "none" };
        // As root, danted needs to know whom to run as; it reads shadow as `privileged`.
        // SAFETY: geteuid has no preconditions.
        let users = if unsafe { libc::geteuid() } == 0 {
            "user.privileged: root\nuser.unprivileged: nobody\n"
        } else {
            ""
        };
        let conf = format!(
            "logoutput: {d}/danted.log\n\
             internal: 127.0.0.1 port = {port}\nexternal: 127.0.0.1\n\
             clientmethod: none\nsocksmethod: {method}\n{users}\
             client pass {{\n from: 127.0.0.0/8 to: 0.0.0.0/0\n log: error\n}}\n\
             socks pass {{\n from: 127.0.0.0/8 to: 0.0.0.0/0\n command: connect\n log: error\n}}\n"
        );
        let conf_path = dir.join("danted.conf");
        std::fs::write(&conf_path, conf).map_err(|e| format!("danted: write config: {e}"))?;
        let args = [
            "-f".into(),
            conf_path.into_os_string(),
            "-p".into(),
            dir.join("danted.pid").into_os_string(),
        ];
        let log = Some(dir.join("danted.log"));
        Running::spawn("danted", "socks5", bin, &args, dir, log, port, auth).map(Dante)
    }
}

/// Makes sure system user `user` exists (`useradd --system`, no home, no login shell) and
/// has `password` (`chpasswd`), for [`Dante`]'s username method. Changes `/etc/passwd` and
/// `/etc/shadow` of the machine the tests run on: meant for CI containers and test boxes.
///
/// # Errors
/// When this process is not root, or useradd/chpasswd fail.
///
/// # Panics
/// When `user` does not start with `parafetch-`: it never changes anybody else's password.
pub fn ensure_system_user(user: &str, password: &str) -> Result<(), String> {
    assert!(
        user.starts_with("parafetch-"),
        "only parafetch-* system users are made or changed, not {user:?}"
    );
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "creating system user {user} for dante's username auth needs root"
        ));
    }
    // Tests of one binary run in parallel; /etc/shadow takes one writer at a time.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let exists = Command::new("id")
        .args(["-u", user])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(user)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .map_err(|e| format!("cannot run useradd: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "useradd {user} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let mut chpasswd = Command::new("chpasswd")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run chpasswd: {e}"))?;
    chpasswd
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(format!("{user}:{password}\n").as_bytes())
        .map_err(|e| format!("chpasswd: {e}"))?;
    let out = chpasswd
        .wait_with_output()
        .map_err(|e| format!("chpasswd: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "chpasswd for {user} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// microsocks

/// microsocks on 127.0.0.1: SOCKS5 CONNECT to addresses or names it resolves itself
/// (socks5h), no auth or `-u user -P password` (RFC 1929).
/// It has no log file; [`Microsocks::logs`] is its stdout and stderr.
pub struct Microsocks(Running);
proxy_methods!(Microsocks);

impl Microsocks {
    /// Starts microsocks; with `auth` = (user, password) it requires them. `None` when it is
    /// missing and the test may skip.
    ///
    /// # Panics
    /// When it cannot be started while `CI` is set, or `auth` needs percent-encoding.
    pub fn start(auth: Option<(&str, &str)>) -> Option<Microsocks> {
        let auth = check_credentials(auth);
        start_with(&tools::MICROSOCKS, |bin| {
            Microsocks::launch(bin, auth.clone())
        })
    }

    fn launch(bin: &Path, auth: Option<(String, String)>) -> Result<Microsocks, Failure> {
        let dir = temp_dir("microsocks")?;
        let port = free_port();
        let mut args: Vec<OsString> = vec![
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string().into(),
        ];
        if let Some((user, password)) = &auth {
            args.extend(["-u".into(), user.into(), "-P".into(), password.into()]);
        }
        Running::spawn("microsocks", "socks5", bin, &args, dir, None, port, auth).map(Microsocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_that_exits_early_is_retried_twice_and_other_failures_not_at_all() {
        let mut calls = 0;
        let got = retrying(|| {
            calls += 1;
            match calls {
                1 | 2 => Err(Failure {
                    why: "exited".into(),
                    exited: true,
                }),
                n => Ok(n),
            }
        });
        assert_eq!(got, Ok(3));
        let mut calls = 0;
        let got: Result<(), String> = retrying(|| {
            calls += 1;
            Err(Failure {
                why: format!("exited {calls}"),
                exited: true,
            })
        });
        assert_eq!(got, Err("exited 3".into()));
        let mut calls = 0;
        let got: Result<(), String> = retrying(|| {
            calls += 1;
            Err(Failure::from("bad config".to_string()))
        });
        assert_eq!((got, calls), (Err("bad config".into()), 1));
    }

    #[test]
    fn credentials_must_not_need_percent_encoding() {
        assert_eq!(
            check_credentials(Some(("a-b.c_d~", "X9"))),
            Some(("a-b.c_d~".into(), "X9".into()))
        );
        for bad in [("a:b", "p"), ("u", "p@ss"), ("", "p"), ("u", "p w")] {
            let r = std::panic::catch_unwind(|| check_credentials(Some(bad)));
            assert!(r.is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    #[should_panic(expected = "only parafetch-* system users")]
    fn only_parafetch_users_are_touched() {
        let _ = ensure_system_user("root", "x");
    }
}
