"""A threaded http.server on 127.0.0.1 (port 0) for the tests, scripted by path.

Routes:
  /echo...            200, JSON of method, path, headers and body as received
  /status/N           status N, body "status N"
  /redirect/N         302 to /redirect/N-1; /redirect/0 is 200
  /multi              two X-Multi fields, a Set-Cookie, a JSON body
  /gzip               a gzip-encoded body (Content-Encoding: gzip)
  /big                100,000 bytes
  /setcookie          sets session=s3cret
  /robots.txt         disallows /private
  /hold               answers only once the server's `release` event is set (bounded);
                      `holding` counts the requests held now, `most_holding` the most at
                      once, and `hold_changed` (a Condition) is notified as they change
  /meet               answers once `meet` requests are in the server at once, or once
                      `meet_total` have come (bounded): concurrency becomes a count
  /flaky/KEY/N        503 for the first N requests of KEY, then 200
  /secrets            X-Api-Key and X-Auth-Token response headers
  anything else       404

The server counts requests (`hits`), requests inside it now (`active`) and the most at
once (`most_active`).

Nothing here sleeps to synchronise: /hold waits on an event that a test or the
fixture's teardown sets, for at most HOLD_LIMIT seconds.

Also `nginx`: the system nginx serving NGINX_FILES (nginx.py), for the session; and, for
every test, no proxy variables in the environment.
"""

import gc
import gzip
import http.server
import json
import socket
import sys
import threading

import pytest

import nginx as nginx_server

HOLD_LIMIT = 20.0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle and delayed ACKs add
    # 40 ms to each keep-alive exchange.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self):
        server = self.server
        with server.cond:
            server.hits += 1
            server.active += 1
            server.most_active = max(server.most_active, server.active)
            server.cond.notify_all()
        try:
            return self._route_counted()
        finally:
            with server.cond:
                server.active -= 1
                server.cond.notify_all()

    def _route_counted(self):
        server = self.server
        path = self.path
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if "/echo" in path:
            doc = {
                "method": self.command,
                "path": path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body": body.decode("latin-1"),
            }
            return self._send(
                200, json.dumps(doc).encode(), [("Content-Type", "application/json")]
            )
        if path.startswith("/status/"):
            n = int(path.rsplit("/", 1)[1])
            return self._send(n, f"status {n}".encode())
        if path.startswith("/redirect/"):
            n = int(path.rsplit("/", 1)[1])
            if n == 0:
                return self._send(200, b"arrived")
            return self._send(302, b"", [("Location", f"/redirect/{n - 1}")])
        if path == "/multi":
            return self._send(
                200,
                b'{"a": [1, 2], "s": "caf\\u00e9"}',
                [
                    ("X-Multi", "one"),
                    ("x-multi", "two"),
                    ("Set-Cookie", "token=s3cret"),
                    ("Content-Type", "application/json; charset=utf-8"),
                ],
            )
        if path == "/latin1":
            return self._send(
                200, "café".encode("latin-1"), [("Content-Type", "text/plain; charset=ISO-8859-1")]
            )
        if path == "/gzip":
            return self._send(
                200,
                gzip.compress(b"unzipped " * 100),
                [("Content-Encoding", "gzip")],
            )
        if path == "/big":
            return self._send(200, b"x" * 100_000)
        if path == "/setcookie":
            return self._send(200, b"set", [("Set-Cookie", "session=s3cret; Path=/")])
        if path == "/robots.txt":
            return self._send(200, b"User-agent: *\nDisallow: /private\n")
        if path == "/hold":
            with server.hold_changed:
                server.holding += 1
                server.most_holding = max(server.most_holding, server.holding)
                server.hold_changed.notify_all()
            try:
                released = server.release.wait(HOLD_LIMIT)
            finally:
                with server.hold_changed:
                    server.holding -= 1
                    server.hold_changed.notify_all()
            return self._send(200 if released else 504, b"held")
        if path == "/meet":
            with server.cond:
                server.met += 1
                met = server.cond.wait_for(
                    lambda: server.active >= server.meet or server.met >= server.meet_total,
                    HOLD_LIMIT,
                )
            return self._send(200 if met else 504, b"met")
        if path.startswith("/flaky/"):
            _, _, key, n = path.split("/")
            with server.cond:
                seen = server.flaky[key] = server.flaky.get(key, 0) + 1
            return self._send(503 if seen <= int(n) else 200, f"try {seen}".encode())
        if path == "/secrets":
            return self._send(
                200, b"", [("X-Api-Key", "k-s3cret"), ("X-Auth-Token", "t-s3cret"), ("X-Plain", "1")]
            )
        return self._send(404, b"not found")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _route


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: fifty connects at once overflow it and
    # the dropped SYNs are retried after 1 s, 3 s, 7 s...
    request_queue_size = 256

    def __init__(self, host="127.0.0.1"):
        super().__init__((host, 0), Handler)
        self.release = threading.Event()
        self.cond = threading.Condition()
        self.hits = 0
        self.hold_changed = threading.Condition()
        self.holding = 0
        self.most_holding = 0
        self.active = 0
        self.most_active = 0
        self.meet = 2
        self.meet_total = 2
        self.met = 0
        self.flaky = {}

    def wait_for(self, check, limit=HOLD_LIMIT):
        """Waits (bounded) until check(self) holds, as requests come and go."""
        with self.cond:
            return self.cond.wait_for(lambda: check(self), limit)

    def handle_error(self, request, client_address):
        # A client that gave up (a timeout, an abort) breaks the pipe: expected here.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    def wait_holding(self, n, timeout=HOLD_LIMIT):
        """Waits (bounded) until `n` requests are held at /hold; whether they were."""
        with self.hold_changed:
            return self.hold_changed.wait_for(lambda: self.holding >= n, timeout)

    @property
    def base(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
)


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch):
    """The tests talk to 127.0.0.1 directly, whatever proxy the machine has set (a
    fetcher reads these variables when it is made)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def collect_on_this_thread():
    """Collects each test's reference cycles (an exception kept by pytest.raises holds a
    frame holding a fetcher) at its end, so a fetcher left in one finishes its requests
    against this test's server, not in the middle of a later test."""
    yield
    gc.collect()


def serve(host="127.0.0.1"):
    """A started Server and its thread."""
    srv = Server(host)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return srv, thread


def stop(srv, thread):
    srv.release.set()  # free any handler still holding a request
    srv.shutdown()
    srv.server_close()
    thread.join(HOLD_LIMIT)


@pytest.fixture
def server():
    srv, thread = serve()
    try:
        yield srv
    finally:
        stop(srv, thread)


@pytest.fixture
def four_servers():
    """Servers on 127.0.0.1 to 127.0.0.4 (Linux routes all of 127/8 to lo): four hosts,
    as politeness and the routing to loops count them."""
    started = [serve(f"127.0.0.{i}") for i in range(1, 5)]
    try:
        yield [srv for srv, _ in started]
    finally:
        for srv, thread in started:
            stop(srv, thread)


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 nothing listens on: bound, then closed."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Results:
    """A callback that keeps what it is given, keyed by cookie."""

    def __init__(self):
        self.calls = []

    def __call__(self, result, url, cookie):
        self.calls.append((result, url, cookie))

    def by_cookie(self):
        return {cookie: result for result, _, cookie in self.calls}


@pytest.fixture
def results():
    return Results()


# What the session's nginx serves: small and mid-sized files, and text that gzip shrinks.
NGINX_FILES = {
    "/1k": nginx_server.file_bytes(1024),
    "/64k": nginx_server.file_bytes(64 * 1024),
    "/text.txt": b"parafetch gzip test line\n" * 400,
}


@pytest.fixture(scope="session")
def nginx():
    """The system nginx on loopback (see nginx.py) with an access log naming each request's
    connection, and gzip for text/plain. Missing or not starting: the test fails when `CI`
    is set (CI installs nginx, so a missing one is a broken CI), and is skipped otherwise."""
    try:
        server = nginx_server.start(NGINX_FILES, access_log=True, gzip=True)
    except nginx_server.Unavailable as why:
        if nginx_server.in_ci():
            pytest.fail(f"{why}: CI is set, so this test fails instead of skipping", pytrace=False)
        pytest.skip(f"{why}")
    try:
        yield server
    finally:
        server.stop()
