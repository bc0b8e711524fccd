"""Quick benchmark of parafetch.AsyncFetcher: requests/s and CPU microseconds per request.

    python bench/quick_async.py [--requests 5000] [--concurrency 20] [--rounds 3]

Fetches a 1 KiB file N times from a local keep-alive nginx (/usr/sbin/nginx, a generated
config on an ephemeral 127.0.0.1 port, ``daemon off; master_process off;``, every path
in a temporary directory; without nginx, the test suite's threaded http.server, much
slower) in these modes:

  fetch      AsyncFetcher.fetch from `concurrency` tasks, max_in_flight=concurrency
  fetch_all  AsyncFetcher.fetch_all over the N URLs, max_in_flight=concurrency
  aiohttp    aiohttp.ClientSession.get from `concurrency` tasks over one
             TCPConnector(limit=concurrency), body read (only if aiohttp imports)

CPU is this process's (every thread: the event loop, parafetch's loop thread), from
time.process_time(); nginx runs in a process of its own. Each mode runs `rounds` times;
the best round is shown.
"""

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import parafetch

NGINX = "/usr/sbin/nginx"

CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
    }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="parafetch-bench-")
        os.mkdir(os.path.join(self.tmp, "www"))
        with open(os.path.join(self.tmp, "www", "1k"), "wb") as f:
            f.write(b"x" * 1024)
        self.port = free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(CONFIG.format(tmp=self.tmp, port=self.port))
        self.proc = subprocess.Popen([NGINX, "-c", conf, "-p", self.tmp])
        deadline = time.monotonic() + 5
        while True:  # a benchmark's start-up, not a test: waiting for the port is fine
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start")
                time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}/1k"
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)


class PyServer:
    def __enter__(self):
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
        from conftest import serve

        self.srv, self.thread = serve()
        self.url = self.srv.base + "/echo"
        return self

    def __exit__(self, *exc):
        from conftest import stop

        stop(self.srv, self.thread)


async def with_fetch(url, n, conc):
    async with parafetch.AsyncFetcher(max_in_flight=conc) as f:
        left = [n]

        async def worker():
            while left[0] > 0:
                left[0] -= 1
                r = await f.fetch(url)
                assert r.status == 200

        await asyncio.gather(*(worker() for _ in range(conc)))


async def with_fetch_all(url, n, conc):
    async with parafetch.AsyncFetcher(max_in_flight=conc) as f:
        got = 0
        async for _, r in f.fetch_all(url for _ in range(n)):
            assert r.status == 200
            got += 1
        assert got == n


async def with_aiohttp(url, n, conc):
    import aiohttp

    connector = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(connector=connector) as session:
        left = [n]

        async def worker():
            while left[0] > 0:
                left[0] -= 1
                async with session.get(url) as r:
                    await r.read()
                    assert r.status == 200

        await asyncio.gather(*(worker() for _ in range(conc)))


def measure(mode, url, n, conc):
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(mode(url, n, conc))
    return time.perf_counter() - wall, time.process_time() - cpu


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    modes = {"fetch": with_fetch, "fetch_all": with_fetch_all}
    try:
        import aiohttp

        modes["aiohttp"] = with_aiohttp
        aio = f"aiohttp {aiohttp.__version__}"
    except ImportError:
        aio = "aiohttp not installed"
    server = Nginx() if os.access(NGINX, os.X_OK) else PyServer()
    with server as s:
        print(f"{type(s).__name__} {s.url}; {a.requests} requests, {a.concurrency} at "
              f"once, best of {a.rounds}; Python {sys.version.split()[0]}; {aio}")
        for name, mode in modes.items():
            measure(mode, s.url, min(500, a.requests), a.concurrency)  # warm up
            best = min(measure(mode, s.url, a.requests, a.concurrency)
                       for _ in range(a.rounds))
            wall, cpu = best
            print(f"{name:10} {a.requests / wall:9.0f} req/s  "
                  f"{cpu / a.requests * 1e6:6.1f} µs CPU/request")


if __name__ == "__main__":
    main()
