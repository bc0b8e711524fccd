"""The Python comparison benchmark: the same workload through parafetch (the `Fetcher`
callback API and `fetch_all`), pycurl's CurlMulti, aiohttp, httpx and requests, against the
same loopback nginx, reported as requests per second and CPU per request, with ratios
measured in the same run.

    python/bench/run.sh [--quick] [--runs N] [--scale F] [--clients a,b] [--cells TEXT]
                        [--json FILE] [--quiet-wait S] [--max-other SHARE]

run.sh makes the virtualenv; this file runs in it. Without `--child` it orchestrates: it
starts nginx (python/tests/nginx.py, as the tests do; access log off), then runs every
(cell, run, client) as a child process of itself, the clients interleaved within each run
(their order rotated from run to run), so each measurement is one process whose
getrusage(RUSAGE_SELF) is the client's own CPU: parafetch's loop threads, requests' worker
threads and any resolver threads are threads of that process, so they are counted too.
CPU and wall time are taken around the fetch phase only (after imports and building the
client, before closing it). Connections opened are counted on nginx's side (stub_status)
before and after each child.

Every response is checked (status 200, the exact 1 KiB body); a client that fails
requests is reported as failed, never counted fast.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BODY_SIZE = 1024
CHILD_LIMIT = 600.0  # seconds one child may take before it is killed and counted failed

# name -> what it is, for the table's notes.
CLIENTS = {
    "parafetch": "parafetch.Fetcher, start_request + callback",
    "parafetch fetch_all": "parafetch.fetch_all iterator",
    "parafetch backlog": "parafetch.Fetcher(backlog=N): start_request returns at once "
    "until 2N are pending, so requests and results cross threads in batches",
    "parafetch async": "parafetch.AsyncFetcher(max_in_flight=N), N worker tasks awaiting fetch",
    "pycurl": "pycurl CurlMulti, N easy handles reused, select + perform",
    "aiohttp": "aiohttp ClientSession, TCPConnector(limit=N), N worker tasks",
    "httpx": "httpx AsyncClient, Limits(max_connections=N), N worker tasks",
    "requests": "requests, ThreadPoolExecutor(N), a Session per thread",
}
PARAFETCH = ("parafetch", "parafetch fetch_all", "parafetch async", "parafetch backlog")
# Run unless --clients names them: the clients the targets are about and the peers.
DEFAULT_CLIENTS = [
    "parafetch",
    "parafetch fetch_all",
    "parafetch async",
    "pycurl",
    "aiohttp",
    "httpx",
    "requests",
]
PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "HTTP_PROXY",
)


def expected_body():
    # The same bytes nginx.file_bytes makes; here without importing the tests' module.
    return bytes(b"abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(BODY_SIZE))


# ---------------------------------------------------------------------------------------
# The child: one client, one run.


class Clock:
    """Wall time and this process's CPU (all its threads, plus any waited-for children)
    between `start()` and `stop()`."""

    def start(self):
        self.r0 = resource.getrusage(resource.RUSAGE_SELF)
        self.c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.t0 = time.perf_counter()

    def stop(self):
        self.elapsed = time.perf_counter() - self.t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.user = (r1.ru_utime - self.r0.ru_utime) + (c1.ru_utime - self.c0.ru_utime)
        self.sys = (r1.ru_stime - self.r0.ru_stime) + (c1.ru_stime - self.c0.ru_stime)
        # Context switches of all this process's threads: a thread that waits and is
        # woken (voluntary), or is preempted (involuntary).
        self.switches = (r1.ru_nvcsw - self.r0.ru_nvcsw) + (r1.ru_nivcsw - self.r0.ru_nivcsw)


class Tally:
    """Checks each response: status 200 and exactly the expected body."""

    def __init__(self):
        self.body = expected_body()
        self.ok = 0
        self.failed = 0
        self.first_error = None

    def check(self, status, body):
        if status == 200 and body == self.body:
            self.ok += 1
        else:
            self.fail(f"status {status}, {len(body)} bytes")

    def fail(self, what):
        self.failed += 1
        if self.first_error is None:
            self.first_error = str(what)[:300]


def parafetch_version(parafetch):
    """The version and a hash of the extension module: builds of one version differ."""
    import hashlib

    # In chunks: reading the 7 MB file at once would show in the child's peak RSS.
    h = hashlib.sha256()
    with open(parafetch._native.__file__, "rb") as f:
        while chunk := f.read(1 << 16):
            h.update(chunk)
    digest = h.hexdigest()
    return f"parafetch {parafetch.__version__} (_native sha256 {digest[:12]})"


def run_parafetch(url, n, count, clock, t, **options):
    import parafetch

    Response = parafetch.Response

    def on_done(result, _url, _cookie):
        if type(result) is Response:
            t.check(result.status, result.body)
        else:
            t.fail(repr(result))

    f = parafetch.Fetcher(max_in_flight=n, **options)
    clock.start()
    for _ in range(count):
        f.start_request(url, on_done)
    f.finish_all_requests()
    clock.stop()
    f.close()
    return parafetch_version(parafetch)


def run_parafetch_backlog(url, n, count, clock, t):
    return run_parafetch(url, n, count, clock, t, backlog=n)


def run_parafetch_fetch_all(url, n, count, clock, t):
    import itertools

    import parafetch

    Response = parafetch.Response
    clock.start()
    for _url, result in parafetch.fetch_all(itertools.repeat(url, count), max_in_flight=n):
        if type(result) is Response:
            t.check(result.status, result.body)
        else:
            t.fail(repr(result))
    clock.stop()
    return parafetch_version(parafetch)


def run_parafetch_async(url, n, count, clock, t):
    import asyncio

    import parafetch

    async def main():
        async with parafetch.AsyncFetcher(max_in_flight=n) as f:
            left = count

            async def worker():
                nonlocal left
                while left > 0:
                    left -= 1
                    try:
                        r = await f.fetch(url)
                        t.check(r.status, r.body)
                    except parafetch.Error as e:
                        t.fail(repr(e))

            clock.start()
            await asyncio.gather(*(worker() for _ in range(n)))
            clock.stop()

    asyncio.run(main())
    return parafetch_version(parafetch)


def run_pycurl(url, n, count, clock, t):
    from io import BytesIO

    import pycurl

    m = pycurl.CurlMulti()
    m.setopt(pycurl.M_MAXCONNECTS, 4 * n)
    free = []
    for _ in range(n):
        c = pycurl.Curl()
        c.buf = BytesIO()
        c.setopt(pycurl.URL, url)
        c.setopt(pycurl.WRITEDATA, c.buf)
        c.setopt(pycurl.NOSIGNAL, 1)
        c.setopt(pycurl.PROXY, "")
        c.setopt(pycurl.TCP_NODELAY, 1)
        c.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        free.append(c)
    started = done = 0
    clock.start()
    while done < count:
        # Each free handle takes the next request: removed and re-added, an easy handle
        # reuses its connection from the multi's cache.
        while free and started < count:
            c = free.pop()
            c.buf.seek(0)
            c.buf.truncate()
            m.add_handle(c)
            started += 1
        while True:
            ret, _active = m.perform()
            if ret != pycurl.E_CALL_MULTI_PERFORM:
                break
        while True:
            queued, ok_list, err_list = m.info_read()
            for c in ok_list:
                t.check(c.getinfo(pycurl.RESPONSE_CODE), c.buf.getvalue())
                m.remove_handle(c)
                free.append(c)
                done += 1
            for c, _errno, msg in err_list:
                t.fail(msg)
                m.remove_handle(c)
                free.append(c)
                done += 1
            if queued == 0:
                break
        if done < count and not (free and started < count):
            m.select(1.0)
    clock.stop()
    for c in free:
        c.close()
    m.close()
    return pycurl.version


def run_aiohttp(url, n, count, clock, t):
    import asyncio

    import aiohttp

    async def main():
        connector = aiohttp.TCPConnector(limit=n)
        async with aiohttp.ClientSession(connector=connector) as session:
            left = count

            async def worker():
                nonlocal left
                while left > 0:
                    left -= 1
                    try:
                        async with session.get(url) as r:
                            t.check(r.status, await r.read())
                    except Exception as e:  # noqa: BLE001 - counted, not raised
                        t.fail(repr(e))

            clock.start()
            await asyncio.gather(*(worker() for _ in range(n)))
            clock.stop()

    asyncio.run(main())
    return f"aiohttp {aiohttp.__version__}"


def run_httpx(url, n, count, clock, t):
    import asyncio

    import httpx

    async def main():
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
            left = count

            async def worker():
                nonlocal left
                while left > 0:
                    left -= 1
                    try:
                        r = await client.get(url)
                        t.check(r.status_code, r.content)
                    except Exception as e:  # noqa: BLE001
                        t.fail(repr(e))

            clock.start()
            await asyncio.gather(*(worker() for _ in range(n)))
            clock.stop()

    asyncio.run(main())
    return f"httpx {httpx.__version__}"


def run_requests(url, n, count, clock, t):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    local = threading.local()
    body = t.body

    def fetch(_):
        # Returns None or what went wrong: the tally is counted on the main thread.
        s = getattr(local, "session", None)
        if s is None:
            s = local.session = requests.Session()
            s.trust_env = False
        try:
            r = s.get(url)
            if r.status_code == 200 and r.content == body:
                return None
            return f"status {r.status_code}, {len(r.content)} bytes"
        except Exception as e:  # noqa: BLE001
            return repr(e)

    with ThreadPoolExecutor(n) as pool:
        clock.start()
        for err in pool.map(fetch, range(count)):
            if err is None:
                t.ok += 1
            else:
                t.fail(err)
        clock.stop()
    return f"requests {requests.__version__}"


RUNNERS = {
    "parafetch": run_parafetch,
    "parafetch fetch_all": run_parafetch_fetch_all,
    "parafetch backlog": run_parafetch_backlog,
    "parafetch async": run_parafetch_async,
    "pycurl": run_pycurl,
    "aiohttp": run_aiohttp,
    "httpx": run_httpx,
    "requests": run_requests,
}


def child(client, url, n, count):
    clock, t = Clock(), Tally()
    version = RUNNERS[client](url, n, count, clock, t)
    print(
        json.dumps(
            {
                "elapsed": clock.elapsed,
                "user": clock.user,
                "sys": clock.sys,
                "switches": clock.switches,
                "ok": t.ok,
                "failed": t.failed,
                "first_error": t.first_error,
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "version": version,
            }
        )
    )


# ---------------------------------------------------------------------------------------
# The orchestrator.


def cells(args):
    def scaled(c):
        return max(1, round(c * args.scale))

    v = [
        {"name": "keep-alive 1 KiB N=20", "listener": "keep-alive", "n": 20, "count": 5000},
        {"name": "close 1 KiB N=20", "listener": "close", "n": 20, "count": 2000},
    ]
    for c in v:
        c["count"] = scaled(c["count"])
    if args.cells:
        v = [c for c in v if any(s in c["name"] for s in args.cells)]
    return v


def child_env():
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


TICK = os.sysconf("SC_CLK_TCK")


def machine_seconds():
    """(busy, steal): CPU time all CPUs spent running something so far, and the time
    the hypervisor gave this VM's CPUs to others (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


def process_seconds(pid):
    """CPU time (user + sys) of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_for_quiet(limit, quiet_for=3.0, share=0.15):
    """Waits, at most `limit` seconds, until the machine's CPUs were busy less than `share`
    of one CPU for `quiet_for` seconds in a row (nginx idles meanwhile). Whether they were."""
    deadline = time.monotonic() + limit
    calm = 0.0
    while time.monotonic() < deadline:
        b0 = machine_seconds()[0]
        time.sleep(0.5)
        calm = calm + 0.5 if (machine_seconds()[0] - b0) / 0.5 < share else 0.0
        if calm >= quiet_for:
            return True
    return False


def own_seconds():
    """This process's CPU time and that of its waited-for children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_child(client, url, cell, server):
    before = server.accepts()
    cmd = [sys.executable, os.path.abspath(__file__), "--child", client, url]
    cmd += [str(cell["n"]), str(cell["count"])]
    # What else ran meanwhile: the machine's busy time less ours (this process, the
    # child's whole life) and nginx's. A build or another benchmark shows up here; the
    # hypervisor running other VMs on our CPUs shows up as steal.
    (busy0, steal0), own0 = machine_seconds(), own_seconds()
    nginx0 = process_seconds(server.proc.pid)
    wall0 = time.monotonic()
    try:
        p = subprocess.run(
            cmd, capture_output=True, text=True, env=child_env(), timeout=CHILD_LIMIT
        )
        out = p.stdout.strip().splitlines()
        if p.returncode != 0 or not out:
            raise RuntimeError(f"exit {p.returncode}: {p.stderr.strip()[-500:]}")
        s = json.loads(out[-1])
    except (subprocess.TimeoutExpired, RuntimeError, ValueError) as e:
        s = {"crashed": str(e)[:500], "ok": 0, "failed": cell["count"]}
    wall = time.monotonic() - wall0
    nginx_cpu = process_seconds(server.proc.pid) - nginx0
    busy1, steal1 = machine_seconds()
    other = busy1 - busy0 - (own_seconds() - own0) - nginx_cpu
    # As shares of one CPU over the child's life; /proc/stat counts in 1/TICK s steps.
    s["other_cpu_share"] = max(0.0, other) / wall
    s["steal_share"] = (steal1 - steal0) / wall
    s["nginx_cpu_s"] = nginx_cpu
    s["conns"] = server.opened_since(before)
    if s.get("ok", 0) + s.get("failed", 0) != cell["count"] and "crashed" not in s:
        s["failed"] = cell["count"] - s["ok"]
        s["first_error"] = s.get("first_error") or "responses missing"
    if not s.get("crashed"):
        requests = s["ok"] + s["failed"]
        s["req_per_s"] = requests / s["elapsed"]
        s["cpu_us_per_req"] = (s["user"] + s["sys"]) * 1e6 / requests
        s["user_us_per_req"] = s["user"] * 1e6 / requests
        s["sys_us_per_req"] = s["sys"] * 1e6 / requests
        s["switches_per_req"] = s["switches"] / requests
        # nginx's CPU over the child's whole life (connections opened before the timed
        # phase are few), per request: the server's side of the bargain.
        s["nginx_us_per_req"] = nginx_cpu * 1e6 / requests
    return s


def summarize(samples):
    """Median and (min, max) of each measure over runs; None if any run failed."""
    good = [s for s in samples if not s.get("crashed") and s["failed"] == 0]
    out = {
        "runs": len(samples),
        "failed": sum(s.get("failed", 0) for s in samples),
        "first_error": next(
            (s.get("first_error") or s.get("crashed") for s in samples
             if s.get("crashed") or s.get("failed")),
            None,
        ),
        "version": next((s["version"] for s in samples if "version" in s), None),
    }
    if len(good) < len(samples):
        return out
    for k in (
        "req_per_s",
        "cpu_us_per_req",
        "user_us_per_req",
        "sys_us_per_req",
        "peak_rss_kib",
        "conns",
        "elapsed",
        "nginx_us_per_req",
        "other_cpu_share",
        "steal_share",
        "switches_per_req",
    ):
        vals = [s[k] for s in good]
        out[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    return out


def fmt(m, digits=0):
    if m is None:
        return "—"
    f = f"{{:,.{digits}f}}"
    return f"{f.format(m['median'])} ({f.format(m['min'])}–{f.format(m['max'])})"


def ratio(a, b, key):
    if key not in a or key not in b:
        return None
    return a[key]["median"] / b[key]["median"]


def report(result):
    lines = []
    lines.append(
        "| cell | client | req/s | CPU µs/req | user + sys µs/req | switches/req "
        "| peak RSS MiB | conns | nginx µs/req | other CPU | steal | failed |"
    )
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cell in result["cells"]:
        for client, s in cell["clients"].items():
            if "req_per_s" not in s:
                lines.append(
                    f"| {cell['name']} | {client} | FAILED | — | — | — | — | — | — | — | — "
                    f"| {s['failed']} of {s['runs'] * cell['count']}: {s['first_error']} |"
                )
                continue
            rss = {k: v / 1024 for k, v in s["peak_rss_kib"].items()}
            lines.append(
                f"| {cell['name']} | {client} | {fmt(s['req_per_s'])} "
                f"| {fmt(s['cpu_us_per_req'], 1)} "
                f"| {s['user_us_per_req']['median']:.1f} + {s['sys_us_per_req']['median']:.1f} "
                f"| {s['switches_per_req']['median']:.2f} "
                f"| {rss['median']:.1f} | {s['conns']['median']:.0f} "
                f"| {s['nginx_us_per_req']['median']:.1f} "
                f"| {s['other_cpu_share']['max']:.0%} | {s['steal_share']['max']:.0%} | 0 |"
            )
    lines.append("")
    lines.append(
        "| cell | client | req/s ÷ aiohttp's (target ≥ 2) | CPU/req ÷ pycurl's (target ≤ 1) |"
    )
    lines.append("|---|---|---:|---:|")
    for cell in result["cells"]:
        for client, r in cell["ratios"].items():
            a = "—" if r["req_per_s_vs_aiohttp"] is None else f"{r['req_per_s_vs_aiohttp']:.2f}"
            c = "—" if r["cpu_vs_pycurl"] is None else f"{r['cpu_vs_pycurl']:.2f}"
            lines.append(f"| {cell['name']} | {client} | {a} | {c} |")
    return "\n".join(lines)


def orchestrate(args):
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    import nginx as nginx_server  # python/tests/nginx.py, shared with the tests' fixture

    clients = args.clients or DEFAULT_CLIENTS
    for c in clients:
        if c not in CLIENTS:
            sys.exit(f"unknown client {c!r}; clients: {', '.join(CLIENTS)}")
    load_before = os.getloadavg()
    try:
        server = nginx_server.start({"/1k": nginx_server.file_bytes(BODY_SIZE)})
    except nginx_server.Unavailable as e:
        sys.exit(f"compare: {e}")
    result = {
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "nginx": server.version,
            "load_before": load_before,
        },
        "runs": args.runs,
        "cells": [],
    }
    started = time.monotonic()
    try:
        for cell in cells(args):
            base = server.base if cell["listener"] == "keep-alive" else server.close_base
            url = base + "/1k"
            samples = {c: [] for c in clients}
            for run in range(args.runs):
                order = clients[run % len(clients):] + clients[: run % len(clients)]
                for client in order:
                    # On a shared machine: wait for the others to pause, and measure a
                    # run again (a few times at most) when they did not.
                    for attempt in range(1 + args.retries):
                        quiet = wait_for_quiet(args.quiet_wait) if args.quiet_wait else None
                        s = run_child(client, url, cell, server)
                        s["attempt"], s["quiet_before"] = attempt + 1, quiet
                        others = s["other_cpu_share"] + s["steal_share"]
                        if others <= args.max_other:
                            break
                        print(
                            f"{cell['name']:24} run {run + 1} {client:20} other CPU + steal "
                            f"{others:.0%}: measured again",
                            file=sys.stderr,
                        )
                    samples[client].append(s)
                    shown = (
                        f"{s['req_per_s']:9,.0f} req/s {s['cpu_us_per_req']:7.1f} µs/req "
                        f"conns {s['conns']} other CPU {s['other_cpu_share']:.0%} "
                        f"steal {s['steal_share']:.0%}"
                        if "req_per_s" in s
                        else f"FAILED {s.get('failed')}: {s.get('first_error') or s.get('crashed')}"
                    )
                    print(f"{cell['name']:24} run {run + 1} {client:20} {shown}", file=sys.stderr)
            summary = {c: summarize(samples[c]) for c in clients}
            ratios = {}
            for c in clients:
                if c in PARAFETCH:
                    aiohttp, pycurl = summary.get("aiohttp", {}), summary.get("pycurl", {})
                    ratios[c] = {
                        "req_per_s_vs_aiohttp": ratio(summary[c], aiohttp, "req_per_s"),
                        "cpu_vs_pycurl": ratio(summary[c], pycurl, "cpu_us_per_req"),
                    }
            result["cells"].append(
                {**cell, "url": url, "clients": summary, "ratios": ratios, "samples": samples}
            )
    finally:
        server.stop()
    result["machine"]["load_after"] = os.getloadavg()
    result["seconds"] = time.monotonic() - started
    table = report(result)
    print(table)
    print()
    targets = []
    for cell in result["cells"]:
        for client, r in cell["ratios"].items():
            for key, want, ok in (
                ("req_per_s_vs_aiohttp", "≥ 2× aiohttp's req/s", lambda x: x >= 2.0),
                ("cpu_vs_pycurl", "≤ pycurl's CPU/req", lambda x: x <= 1.0),
            ):
                x = r[key]
                verdict = "n/a" if x is None else ("met" if ok(x) else "MISSED")
                shown = "—" if x is None else f"{x:.2f}"
                targets.append(f"{cell['name']}: {client} {want}: {shown} ({verdict})")
    result["targets"] = targets
    print("\n".join(f"- {t}" for t in targets))
    load = result["machine"]
    versions = {
        c: s["version"]
        for cell in result["cells"]
        for c, s in cell["clients"].items()
        if s.get("version")
    }
    result["versions"] = versions
    print("\n" + "; ".join(f"{c}: {v}" for c, v in versions.items()))
    print(
        f"\n{args.runs} runs, {result['seconds']:.0f} s; load average before "
        f"{load['load_before'][0]:.2f}, after {load['load_after'][0]:.2f}; {server.version}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    failed = [
        f"{cell['name']}: {client}"
        for cell in result["cells"]
        for client, s in cell["clients"].items()
        if "req_per_s" not in s
    ]
    if failed:
        # A client that lost requests is no measurement: CI's quick pass fails on it.
        sys.exit("compare: requests failed in " + "; ".join(failed))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        client, url, n, count = sys.argv[2:6]
        child(client, url, int(n), int(count))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 run, request counts / 5")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0, help="request counts × F")
    p.add_argument("--clients", type=lambda s: s.split(","), help=", ".join(CLIENTS))
    p.add_argument("--cells", action="append", help="cells whose name contains TEXT")
    p.add_argument("--json", help="write every sample and the summary here")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each run, wait up to this many seconds for the machine to be idle",
    )
    p.add_argument(
        "--max-other",
        type=float,
        default=1e9,
        help="measure a run again when other processes (and the hypervisor's steal) took "
        "more than this share of a CPU",
    )
    p.add_argument("--retries", type=int, default=3, help="at most this many times (3)")
    args = p.parse_args()
    if args.quick:
        args.runs, args.scale = 1, args.scale / 5
    orchestrate(args)


if __name__ == "__main__":
    main()
