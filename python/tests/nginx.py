"""The system nginx on loopback, for the tests (a session fixture in conftest.py) and the
Python benchmark (bench/compare.py): the Python twin of test-support/src/nginx.rs.

A generated config in a temp dir of its own (pid file, logs and temp paths all in it, so
no root is needed), one process (`master_process off`, `daemon off`), files written to
`www/`, and three listeners on 127.0.0.1, each on an ephemeral port:

  http      keep-alive (`keepalive_timeout` as given, `keepalive_requests` 100,000)
  close     the same files with `keepalive_timeout 0`: nginx answers `Connection: close`
            and closes, so every request needs a new connection
  status    `stub_status` at /status, to count the connections a run opened

Options: an access log in a format that names each request's connection
(`$connection $connection_requests $status $request_method $request_uri`), and gzip for
text/plain.

Owns the nginx process and its temp dir. Must not decide whether a missing nginx skips or
fails a test (conftest.py does, by `in_ci`), nor sleep to synchronise: readiness is
polled on real conditions (the pid file names our process, every port accepts), bounded.
"""

import errno
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

# Where nginx is looked for before PATH: /usr/sbin is not on every user's PATH.
PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx")
INSTALL = "apt-get install nginx-light"

START_LIMIT = 10.0  # seconds nginx may take to listen
STOP_LIMIT = 5.0  # seconds SIGTERM may take before SIGKILL
PORT_TRIES = 5  # a freed ephemeral port taken by someone else before nginx binds it

LOG_FORMAT = "$connection $connection_requests $status $request_method $request_uri"


class Unavailable(Exception):
    """nginx is not installed, or did not start; the message says which and why."""


def in_ci():
    """Whether this run is CI's: `CI` set to anything but empty, 0 or false (as
    test-support/src/tools.rs reads it)."""
    v = os.environ.get("CI")
    return bool(v) and v != "0" and v.lower() != "false"


def find():
    """The nginx executable, or None."""
    for p in PATHS:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return shutil.which("nginx")


def file_bytes(n):
    """n bytes of a-z repeating, as the Rust bench server's files."""
    return bytes(b"abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(n))


def free_port():
    """A port free on 127.0.0.1 a moment ago (bound to port 0, then closed). Another
    process may take it before nginx binds it: `start` retries then."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LogEntry(tuple):
    """One access log line: (connection, connection_requests, status, method, uri)."""

    __slots__ = ()

    connection = property(lambda self: self[0])
    requests = property(lambda self: self[1])
    status = property(lambda self: self[2])
    method = property(lambda self: self[3])
    uri = property(lambda self: self[4])


class Nginx:
    """A running nginx. `stop()` ends it and removes its temp dir."""

    def __init__(self, proc, dir, ports, access_log, version, files):
        self.proc = proc
        self.files = files  # {"/path": bytes} as served
        self.dir = dir
        self.http_port, self.close_port, self.status_port = ports
        self.access_log = access_log
        self.version = version

    @property
    def base(self):
        """The keep-alive listener, `http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def close_base(self):
        """The listener that closes after every response."""
        return f"http://127.0.0.1:{self.close_port}"

    def url(self, path):
        return self.base + path

    def status_text(self):
        with socket.create_connection(("127.0.0.1", self.status_port), timeout=5) as s:
            s.sendall(b"GET /status HTTP/1.0\r\nHost: x\r\n\r\n")
            chunks = []
            while chunk := s.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def accepts(self):
        """Connections accepted so far (stub_status; one process, so exact). Each
        reading opens one connection itself: see `opened_since`."""
        # "server accepts handled requests\n 12 12 40 \n"
        lines = self.status_text().splitlines()
        at = next(i for i, line in enumerate(lines) if "accepts" in line)
        return int(lines[at + 1].split()[0])

    def opened_since(self, before):
        """Connections opened since the `accepts()` reading `before`, less this reading's."""
        return self.accepts() - before - 1

    def log_mark(self):
        """Where the access log ends now, for `log_since`."""
        return os.path.getsize(self.access_log)

    def log_since(self, mark, expect, limit=10.0):
        """The access log entries after `mark`, once there are at least `expect` of them.
        nginx writes a line after it sent the response, so a client can see the response
        first: this polls (bounded by `limit` seconds) and returns what there is then."""
        deadline = time.monotonic() + limit
        while True:
            with open(self.access_log, "rb") as f:
                f.seek(mark)
                text = f.read().decode()
            # Only whole lines: nginx may be in the middle of writing one.
            lines = text.split("\n")[:-1]
            if len(lines) >= expect or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        entries = []
        for line in lines:
            conn, reqs, status, method, uri = line.split(" ", 4)
            entries.append(LogEntry((int(conn), int(reqs), int(status), method, uri)))
        return entries

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """SIGTERM (a fast shutdown), SIGKILL if it lingers; then the temp dir goes."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_LIMIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def config(d, ports, keepalive, access_log, gzip):
    http, close, status = ports
    log = (
        f'log_format conn "{LOG_FORMAT}";\n access_log {d}/access.log conn;\n'
        if access_log
        else "access_log off;\n"
    )
    gz = "gzip on;\n gzip_types text/plain;\n gzip_min_length 20;\n" if gzip else ""
    return f"""\
daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 4096; multi_accept on; }}
http {{
 {log} keepalive_requests 100000;
 sendfile on;
 tcp_nopush on;
 tcp_nodelay on;
 default_type application/octet-stream;
 types {{ text/plain txt; text/html html; application/json json; }}
 {gz} client_body_temp_path {d}/tmp_body;
 proxy_temp_path {d}/tmp_proxy;
 fastcgi_temp_path {d}/tmp_fcgi;
 uwsgi_temp_path {d}/tmp_uwsgi;
 scgi_temp_path {d}/tmp_scgi;
 root {d}/www;
 server {{ listen 127.0.0.1:{http} backlog=4096; keepalive_timeout {keepalive}; }}
 server {{ listen 127.0.0.1:{close} backlog=4096; keepalive_timeout 0; }}
 server {{ listen 127.0.0.1:{status}; access_log off; location = /status {{ stub_status; }} }}
}}
"""


def _ready(proc, pid_file, ports):
    """Whether nginx wrote our pid (it does so after binding every listener) and each
    port accepts. The pid check makes sure that a port which accepts is ours, not another
    process's that took it after `free_port` let it go."""
    try:
        with open(pid_file) as f:
            if f.read().strip() != str(proc.pid):
                return False
    except OSError:
        return False
    for port in ports:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return False
    return True


def _launch(bin, d, ports, keepalive, access_log, gzip):
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(config(d, ports, keepalive, access_log, gzip))
    for name in ("error.log", "nginx.pid"):
        try:
            os.remove(os.path.join(d, name))
        except FileNotFoundError:
            pass
    if access_log:
        open(os.path.join(d, "access.log"), "w").close()
    with open(os.path.join(d, "stderr.log"), "wb") as err:
        # -e: the log for errors before the config is read (default /var/log/nginx,
        # not writable without root).
        return subprocess.Popen(
            [bin, "-p", d + "/", "-e", os.path.join(d, "error.log"), "-c", conf],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # Ctrl-C in the terminal goes to us, not to it
        )


def start(files, keepalive="120s", access_log=False, gzip=False):
    """Starts nginx serving `files` ({"/path": bytes}).

    Raises Unavailable when nginx is missing or does not start (with its error log).
    """
    bin = find()
    if bin is None:
        raise Unavailable(f"nginx not found in {PATHS} or PATH ({INSTALL})")
    about = subprocess.run([bin, "-V"], capture_output=True, text=True).stderr
    if "http_stub_status_module" not in about:
        raise Unavailable(f"nginx at {bin} has no stub_status module")
    version = about.splitlines()[0] if about else "nginx"
    d = tempfile.mkdtemp(prefix="parafetch-py-nginx-")
    try:
        www = os.path.join(d, "www")
        os.mkdir(www)
        for path, data in files.items():
            with open(os.path.join(www, path.lstrip("/")), "wb") as f:
                f.write(data)
        why = "no try"
        for _ in range(PORT_TRIES):
            ports = (free_port(), free_port(), free_port())
            if len(set(ports)) < 3:
                continue
            proc = _launch(bin, d, ports, keepalive, access_log, gzip)
            pid_file = os.path.join(d, "nginx.pid")
            deadline = time.monotonic() + START_LIMIT
            while proc.poll() is None and not _ready(proc, pid_file, ports):
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    why = f"not listening within {START_LIMIT:.0f} s"
                    break
                time.sleep(0.01)
            else:
                if proc.poll() is None:
                    access = os.path.join(d, "access.log") if access_log else None
                    return Nginx(proc, d, ports, access, version, dict(files))
                why = f"exited with {proc.returncode}"
            log = Nginx(proc, d, ports, None, version, {}).error_log()
            why = f"{why}; error.log: {log.strip()!r}"
            # Address in use: a freed port was taken before nginx bound it. Other ports.
            if f"({errno.EADDRINUSE}: " not in log:
                break
        raise Unavailable(f"nginx at {bin} did not start: {why}")
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
