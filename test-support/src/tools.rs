//! External programs some tests need (nginx, python3, the proxies, redis-server, the WARC
//! tools): where to find them, and what a test does when one is missing.
//!
//! Owns the rule: when the `CI` environment variable is set (CI services set `CI=true`, and
//! `.ci/run` installs every tool), a missing tool fails the test with a panic that names it;
//! anywhere else the test is skipped, with a notice on stderr saying how to install it.
//! Every test that needs an external program goes through [`require`] (or a launcher that
//! does, like [`crate::nginx::Nginx::start_for_test`] and [`crate::python::http_server`]).
//! Must not: install anything, or start the program.
//!
//! ```
//! use parafetch_test_support::tools::{self, Tool};
//!
//! const SH: Tool = Tool { name: "sh", paths: &["/bin/sh"], install: "it is POSIX" };
//! let Some(sh) = tools::require(&SH) else { return }; // skipped, or a panic under CI
//! assert!(sh.is_absolute());
//! ```

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// An external program, and how to get it.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    /// The program's file name, looked up in `PATH`.
    pub name: &'static str,
    /// Absolute paths tried before `PATH` (e.g. `/usr/sbin`, which is not on every user's
    /// `PATH`).
    pub paths: &'static [&'static str],
    /// How to install it, for the notice and the panic message.
    pub install: &'static str,
}

/// nginx: the real server of the interop tests (and the benchmarks' preferred server).
pub const NGINX: Tool = Tool {
    name: "nginx",
    paths: &["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"],
    install: "apt-get install nginx-light",
};

/// python3: its `http.server` is a second server no one here wrote.
pub const PYTHON3: Tool = Tool {
    name: "python3",
    paths: &[],
    install: "apt-get install python3",
};

/// tinyproxy: a real HTTP proxy (absolute-form requests and CONNECT, optional Basic auth).
pub const TINYPROXY: Tool = Tool {
    name: "tinyproxy",
    paths: &["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"],
    install: "apt-get install tinyproxy",
};

/// squid: a second real HTTP proxy (absolute-form requests and CONNECT, Basic auth through
/// its `basic_ncsa_auth` helper).
pub const SQUID: Tool = Tool {
    name: "squid",
    paths: &["/usr/sbin/squid"],
    install: "apt-get install squid",
};

/// squid's Basic auth helper, checking a htpasswd-style file; part of the squid package.
pub const SQUID_BASIC_NCSA_AUTH: Tool = Tool {
    name: "basic_ncsa_auth",
    paths: &[
        "/usr/lib/squid/basic_ncsa_auth",
        "/usr/lib64/squid/basic_ncsa_auth",
        "/usr/libexec/squid/basic_ncsa_auth",
    ],
    install: "apt-get install squid",
};

/// openssl: hashes the password of squid's password file (`openssl passwd -1`), since the
/// `htpasswd` tool (apache2-utils) is not installed everywhere.
pub const OPENSSL: Tool = Tool {
    name: "openssl",
    paths: &["/usr/bin/openssl"],
    install: "apt-get install openssl",
};

/// danted: Dante's SOCKS5 server (no auth, or username/password against system users).
pub const DANTED: Tool = Tool {
    name: "danted",
    paths: &["/usr/sbin/danted"],
    install: "apt-get install dante-server",
};

/// microsocks: a small SOCKS5 server (no auth, or `-u user -P password`).
pub const MICROSOCKS: Tool = Tool {
    name: "microsocks",
    paths: &["/usr/bin/microsocks"],
    install: "apt-get install microsocks",
};

/// gunicorn serving httpbin (the Flask application from PyPI): both installed by
/// `.ci/run` into a virtualenv whose `bin` it puts first in `PATH`.
pub const GUNICORN: Tool = Tool {
    name: "gunicorn",
    paths: &[],
    install: "pip install -r .ci/requirements-test.txt (httpbin and gunicorn) into a virtualenv on PATH",
};

/// warcio (PyPI): checks a WARC file's digests (`warcio check`), indexes it, extracts
/// payloads. Installed by `.ci/run` into the same virtualenv as [`GUNICORN`].
pub const WARCIO: Tool = Tool {
    name: "warcio",
    paths: &[],
    install: "pip install -r .ci/requirements-test.txt (warcio) into a virtualenv on PATH",
};

/// cdxj-indexer (PyPI, Webrecorder's): the CDXJ index pywb replays a WARC file from.
/// Installed with [`WARCIO`].
pub const CDXJ_INDEXER: Tool = Tool {
    name: "cdxj-indexer",
    paths: &[],
    install: "pip install -r .ci/requirements-test.txt (cdxj-indexer) into a virtualenv on PATH",
};

/// redis-server: the Redis the queue commands (`parafetch enqueue`, `worker`, `results`)
/// are tested against, started per test on loopback with persistence off.
pub const REDIS_SERVER: Tool = Tool {
    name: "redis-server",
    paths: &["/usr/bin/redis-server", "/usr/local/bin/redis-server"],
    install: "apt-get install redis-server",
};

/// wget: the reference recursive crawl (`wget -r --no-parent`) of the crawler tests and
/// the crawl benchmark.
pub const WGET: Tool = Tool {
    name: "wget",
    paths: &["/usr/bin/wget"],
    install: "apt-get install wget",
};

/// The Python documentation from Debian's `python3-doc`: a real site of about 500 HTML
/// pages for the crawler to crawl (served by nginx from the tests).
pub const PYTHON_DOCS: &str = "/usr/share/doc/python3/html";

/// Whether this run is CI's: `CI` is set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    is_ci_value(std::env::var_os("CI").as_deref())
}

fn is_ci_value(value: Option<&OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Where `tool` is: the first of its [`Tool::paths`], then of `PATH`'s directories, that
/// holds an executable file of that name. `None` if there is none.
pub fn find(tool: &Tool) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let in_path = std::env::split_paths(&path).map(|dir| dir.join(tool.name));
    tool.paths
        .iter()
        .map(PathBuf::from)
        .chain(in_path)
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The path of `tool` for a test that needs it. `None` when it is missing and the test may
/// skip (a notice is printed); the caller returns early.
///
/// # Panics
/// When `tool` is missing and `CI` is set ([`in_ci`]): CI installs every tool, so a missing
/// one is a broken CI, not a reason to pass without testing.
pub fn require(tool: &Tool) -> Option<PathBuf> {
    find(tool).or_else(|| {
        unavailable(&format!(
            "{} not found in {:?} or PATH ({})",
            tool.name, tool.paths, tool.install
        ))
    })
}

/// A tool a test needs cannot be used, for the reason `why`: panics under CI, otherwise
/// prints a notice and returns `None` so the test can skip.
///
/// # Panics
/// When `CI` is set ([`in_ci`]).
pub fn unavailable<T>(why: &str) -> Option<T> {
    skip_unless_ci(in_ci(), why)
}

fn skip_unless_ci<T>(ci: bool, why: &str) -> Option<T> {
    assert!(
        !ci,
        "{why}: CI is set, so this test fails instead of skipping"
    );
    eprintln!("skipping: {why}");
    None
}

/// A port free on 127.0.0.1 a moment ago, for a server that binds it itself (nginx, the
/// proxies). Another process may take it in between: launchers retry or report it.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_tool_in_path_and_not_a_missing_one() {
        let sh = Tool {
            name: "sh",
            paths: &[],
            install: "",
        };
        assert!(find(&sh).is_some_and(|p| p.ends_with("sh")));
        let missing = Tool {
            name: "parafetch-no-such-tool",
            paths: &["/nonexistent/parafetch-no-such-tool"],
            install: "",
        };
        assert_eq!(find(&missing), None);
    }

    #[test]
    fn a_listed_path_comes_before_path() {
        let sh = Tool {
            name: "sh",
            paths: &["/bin/sh"],
            install: "",
        };
        assert_eq!(find(&sh), Some(PathBuf::from("/bin/sh")));
    }

    #[test]
    fn a_directory_or_plain_file_is_not_a_tool() {
        assert!(!is_executable(Path::new("/")));
        assert!(!is_executable(Path::new("/etc/passwd")));
        assert!(is_executable(Path::new("/bin/sh")));
    }

    #[test]
    fn ci_values() {
        for (v, ci) in [
            (None, false),
            (Some(""), false),
            (Some("0"), false),
            (Some("false"), false),
            (Some("FALSE"), false),
            (Some("true"), true),
            (Some("1"), true),
            (Some("yes"), true),
        ] {
            assert_eq!(is_ci_value(v.map(OsStr::new)), ci, "{v:?}");
        }
    }

    #[test]
    fn outside_ci_a_missing_tool_skips() {
        assert_eq!(skip_unless_ci::<()>(false, "nginx not found"), None);
    }

    #[test]
    #[should_panic(expected = "nginx not found: CI is set, so this test fails instead of skipping")]
    fn under_ci_a_missing_tool_fails() {
        skip_unless_ci::<()>(true, "nginx not found");
    }
}
