"""``python -m parafetch demo``: the seed's experiment, offline, as the Rust CLI's
``parafetch demo`` runs it.

A local server (``http.server`` on 127.0.0.1, a thread per connection) answers each request
after a fixed delay; the same URLs are fetched once per in-flight cap, through
``parafetch.Fetcher`` and its callbacks, and the wall times compared. With the defaults
(100 URLs, 100 ms, 1 then 20 in flight) that is about 10 s, then about 0.5 s::

    $ python -m parafetch demo --requests 40 --delay-ms 50
    demo: 40 URLs from a local server (127.0.0.1:40215) that answers each after 50 ms
        1 in flight:    2.057 s      19.4 requests/s  (ideal 2.000 s)
       20 in flight:    0.155 s     258.4 requests/s  (ideal 0.100 s)  speed-up 13.3x

Options: ``--requests N`` (also ``--count``, the Rust CLI's name), ``--delay-ms MS``, and
``--parallel N`` for the second run's cap (the first runs with 1), or ``--compare N,N,...``
for any list of caps (speed-ups are relative to the first). Exits 1 if the server cannot
start or any request fails: each URL must come back 200 with its own path as the body,
called back exactly once. Proxy variables are ignored: the server is on this machine.

Only ``demo`` is here; the other commands (fetching URLs, ``crawl``) are the Rust CLI's.
"""

import argparse
import http.server
import sys
import threading
import time

import parafetch


class _DelayedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server would
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        time.sleep(self.server.delay)  # the server's latency: what the demo is about
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class DemoServer(http.server.ThreadingHTTPServer):
    """A loopback server that answers every GET after `delay_ms`, with its path as body."""

    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, delay_ms):
        super().__init__(("127.0.0.1", 0), _DelayedHandler)
        self.delay = delay_ms / 1000
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def addr(self):
        host, port = self.server_address[:2]
        return f"{host}:{port}"

    def url(self, path):
        return f"http://{self.addr}{path}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self._thread.join()


def fetch_run(server, count, n):
    """Fetches `count` URLs from `server` with at most `n` in flight. Returns the wall
    time in seconds and how many came back right: 200, their own path as the body, and
    called back exactly once."""
    calls = [0] * count
    right = [False] * count

    def on_done(result, url, i):
        calls[i] += 1
        right[i] = (
            isinstance(result, parafetch.Response)
            and result.status == 200
            and result.body == f"/page/{i}".encode()
        )

    start = time.perf_counter()
    with parafetch.Fetcher(n, no_proxy="*") as fetcher:
        for i in range(count):
            fetcher.start_request(server.url(f"/page/{i}"), on_done, i)
    wall = time.perf_counter() - start
    return wall, sum(1 for i in range(count) if calls[i] == 1 and right[i])


def demo(count, delay_ms, caps, out=None, err=None):
    """Runs the demo, printing to `out` and `err` (default: sys.stdout and sys.stderr as
    they are then); the exit status (0, or 1 if the server cannot start or any request
    fails)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        server = DemoServer(delay_ms)
    except OSError as e:
        print(f"parafetch: cannot start the demo server: {e}", file=err)
        return 1
    with server:
        print(
            f"demo: {count} URLs from a local server ({server.addr}) "
            f"that answers each after {delay_ms} ms",
            file=out,
        )
        first = None
        for n in caps:
            wall, ok = fetch_run(server, count, n)
            if ok != count:
                print(f"parafetch: demo: {count - ok} of {count} requests failed", file=err)
                return 1
            # The best this cap can do: ceil(count / n) rounds of one delay each.
            ideal = delay_ms / 1000 * -(-count // n)
            line = (
                f"{n:>5} in flight: {wall:>8.3f} s {count / max(wall, 1e-9):>9.1f} requests/s"
                f"  (ideal {ideal:.3f} s)"
            )
            if first is None:
                first = wall
            else:
                line += f"  speed-up {first / max(wall, 1e-9):.1f}x"
            print(line, file=out, flush=True)
    return 0


def _positive(text):
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text} is not at least 1")
    return n


def _not_negative(text):
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return n


def _caps(text):
    return [_positive(part) for part in text.split(",")]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m parafetch",
        description="parafetch's Python command line: only the offline demo "
        "(the Rust CLI fetches URLs and crawls).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    d = commands.add_parser(
        "demo",
        help="fetch from a local server that answers each request after a delay, "
        "with 1 then N in flight, and print the times and the speed-up",
        description="Offline demo: fetch from a built-in loopback server that answers "
        "each request after a delay, once per in-flight cap, and print the times and "
        "the speed-up.",
    )
    d.add_argument(
        "--requests", "--count", type=_positive, default=100, metavar="N",
        help="how many URLs each run fetches (default 100)",
    )
    d.add_argument(
        "--delay-ms", type=_not_negative, default=100, metavar="MS",
        help="how long the server waits before answering each request (default 100)",
    )
    caps = d.add_mutually_exclusive_group()
    caps.add_argument(
        "--parallel", type=_positive, metavar="N",
        help="the in-flight cap of the second run; the first has 1 (default 20)",
    )
    caps.add_argument(
        "--compare", type=_caps, metavar="N,N,...",
        help="the in-flight caps to compare; speed-ups are relative to the first",
    )
    args = parser.parse_args(argv)
    compare = args.compare or [1, args.parallel or 20]
    return demo(args.requests, args.delay_ms, compare)


if __name__ == "__main__":
    sys.exit(main())
