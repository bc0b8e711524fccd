"""CPU time per request of parafetch.Fetcher and fetch_all against a local nginx.

    python python/bench/quick_cpu.py [--requests 5000] [--in-flight 20] [--rounds 3]

Starts nginx (/usr/sbin/nginx, or $NGINX) on an ephemeral 127.0.0.1 port with a generated
config (keep-alive, a 1 KiB file), then for each way of fetching runs the requests and
prints the process's CPU (user + system, from getrusage(RUSAGE_SELF): the loop threads
count too) per request, best and median of the rounds. nginx's own CPU is not counted (another
process). Quick, not rigorous: for "did this change make it cheaper", not for a paper.
"""

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import parafetch

CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
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


def start_nginx(tmp):
    nginx = os.environ.get("NGINX", "/usr/sbin/nginx")
    if not shutil.which(nginx):
        sys.exit(f"no nginx at {nginx} (set NGINX)")
    os.makedirs(f"{tmp}/www")
    with open(f"{tmp}/www/1k", "wb") as f:
        f.write(b"x" * 1024)
    port = free_port()
    with open(f"{tmp}/nginx.conf", "w") as f:
        f.write(CONF.format(tmp=tmp, port=port))
    proc = subprocess.Popen([nginx, "-c", f"{tmp}/nginx.conf", "-e", f"{tmp}/error.log"])
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("nginx did not start")
            time.sleep(0.02)
    return proc, f"http://127.0.0.1:{port}/1k"


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_fetcher(url, n, in_flight, threads):
    got = [0]

    def on_done(result, u, cookie):
        got[0] += len(result.body)

    with parafetch.Fetcher(in_flight, threads=threads) as f:
        for i in range(n):
            f.start_request(url, on_done, i)
    assert got[0] == n * 1024, got[0]


def run_fetch_all(url, n, in_flight, threads):
    total = 0
    for _, r in parafetch.fetch_all(
        (url for _ in range(n)), in_flight, threads=threads
    ):
        total += len(r.body)
    assert total == n * 1024, total


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--in-flight", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    # A proxy from the environment would measure the proxy.
    for var in ("http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        os.environ.pop(var, None)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_nginx(tmp)
        try:
            ways = [
                ("Fetcher threads=1", run_fetcher, 1),
                ("Fetcher threads=2", run_fetcher, 2),
                ("fetch_all threads=1", run_fetch_all, 1),
                ("fetch_all threads=2", run_fetch_all, 2),
            ]
            run_fetcher(url, 200, args.in_flight, 1)  # warm up
            print(f"{args.requests} requests of 1 KiB, {args.in_flight} in flight, "
                  f"{args.rounds} rounds")
            for name, run, threads in ways:
                rounds = []
                for _ in range(args.rounds):
                    c0, w0 = cpu(), time.perf_counter()
                    run(url, args.requests, args.in_flight, threads)
                    rounds.append((cpu() - c0, time.perf_counter() - w0))
                rounds.sort()
                (best, _), (median, wall) = rounds[0], rounds[len(rounds) // 2]
                print(f"  {name:22} {best / args.requests * 1e6:6.1f} us CPU/request best, "
                      f"{median / args.requests * 1e6:6.1f} median  "
                      f"{args.requests / wall:8.0f} requests/s")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
