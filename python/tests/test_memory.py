"""Flat memory: 10,000 requests through Fetcher, fetch_all and AsyncFetcher against
nginx (keep-alive, 1 KiB bodies, 20 in flight) must not grow the process once warm, must
call back every request exactly once, and must leave no thread behind. Fetcher and
fetch_all run with the default `threads=1` (where the loop runs is the binding's
business) and with `threads=2`, whose loops are threads of their own: seen while it
runs, gone after. AsyncFetcher runs with 20 tasks awaiting `fetch` and with its
`fetch_all`, each woken by the bell (add_reader) and by call_soon_threadsafe, and must
also leave its event loop watching no more file descriptors than before.

The bound: RSS may grow by less than LEAK_BOUND from the 2,000th request to the end.
Warm, a run holds 20 requests' buffers, 20 connections and the interpreter's free lists,
all reused; nothing should be kept per request. 8,000 requests after the mark, a leak of
LEAK_BOUND / 8,000 = 131 bytes per request crosses it: any leaked 1 KiB body, Response,
Headers, pending-table entry or URL string does. Measured growth on the 2-vCPU dev VM:
0 to 32 KiB (glibc and pymalloc hand freed memory back to their free lists, which RSS
still counts, so the working set is flat once warm). The test keeps nothing per request
itself: a preallocated bytearray counts callbacks.
"""

import asyncio
import time

import pytest

import parafetch
from test_threads import loop_threads  # the loops are threads named parafetch-N

REQUESTS = 10_000
WARM_UP = 2_000
SAMPLE_EVERY = 1_000
IN_FLIGHT = 20
LEAK_BOUND = 1 << 20  # bytes; see the module's comment
THREADS_LIMIT = 5.0  # seconds for an ended thread to leave /proc/self/task


def rss():
    """Resident set size in bytes, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def loop_threads_down_to(n):
    """The count of loop threads once it is at most `n`, or what it is after
    THREADS_LIMIT: a joined thread leaves /proc/self/task a moment after its joiner
    returns. Loop threads by name, not every thread: one of an earlier test (or of the
    test servers) still leaving when this one starts must not count as ours."""
    deadline = time.monotonic() + THREADS_LIMIT
    while loop_threads() > n and time.monotonic() < deadline:
        time.sleep(0.01)
    return loop_threads()


def check_flat(samples):
    """`samples`: {requests started: RSS}. Growth after the warm-up is under the bound."""
    assert WARM_UP in samples and "end" in samples
    growth = samples["end"] - samples[WARM_UP]
    shown = {k: (v - samples[WARM_UP]) // 1024 for k, v in samples.items()}
    assert growth < LEAK_BOUND, f"RSS grew {growth // 1024} KiB after warm-up (KiB: {shown})"


@pytest.mark.parametrize("loops", [1, 2])
def test_fetcher_memory_is_flat_and_every_request_is_called_back_once(nginx, loops):
    url = nginx.url("/1k")
    body = nginx.files["/1k"]
    calls = bytearray(REQUESTS)  # callbacks per request (a 2nd call makes it 2)
    wrong = bytearray(REQUESTS)

    def on_done(result, _url, i):
        calls[i] += 1
        if not isinstance(result, parafetch.Response) or result.body != body:
            wrong[i] = 1

    before = loop_threads()
    fetcher = parafetch.Fetcher(max_in_flight=IN_FLIGHT, threads=loops)
    samples = {}
    for i in range(REQUESTS):
        if i % SAMPLE_EVERY == 0:
            samples[i] = rss()
        fetcher.start_request(url, on_done, i)
    during = loop_threads()
    fetcher.finish_all_requests()
    samples["end"] = rss()
    fetcher.close()

    assert calls == bytearray([1]) * REQUESTS
    assert wrong == bytearray(REQUESTS)
    check_flat(samples)
    if loops > 1:
        assert during >= loops
    assert loop_threads_down_to(before) <= before


@pytest.mark.parametrize("loops", [1, 2])
def test_fetch_all_memory_is_flat_and_every_url_is_yielded_once(nginx, loops):
    # One URL per request, so each result can be told apart; made lazily (a list of
    # 10,000 URLs would be memory the test itself holds).
    base = nginx.url("/1k?memory=")
    body = nginx.files["/1k"]
    seen = bytearray(REQUESTS)
    wrong = bytearray(REQUESTS)

    before = loop_threads()
    urls = (f"{base}{i}" for i in range(REQUESTS))
    results = parafetch.fetch_all(urls, IN_FLIGHT, threads=loops)
    samples = {}
    for n, (url, result) in enumerate(results):
        if n % SAMPLE_EVERY == 0:
            samples[n] = rss()
        if n == REQUESTS // 2:
            during = loop_threads()
        i = int(url[len(base) :])
        seen[i] += 1
        if not isinstance(result, parafetch.Response) or result.body != body:
            wrong[i] = 1
    samples["end"] = rss()
    del results

    assert seen == bytearray([1]) * REQUESTS
    assert wrong == bytearray(REQUESTS)
    check_flat(samples)
    if loops > 1:
        assert during >= loops
    assert loop_threads_down_to(before) <= before


class NoReaderLoop(asyncio.SelectorEventLoop):
    """An event loop that cannot watch file descriptors: AsyncFetcher falls back to
    call_soon_threadsafe."""

    def add_reader(self, fd, callback, *args):
        raise NotImplementedError


@pytest.mark.parametrize("wake", ["bell", "call"])
@pytest.mark.parametrize("how", ["tasks", "fetch_all"])
def test_async_fetcher_memory_is_flat_and_every_request_resolves_once(nginx, how, wake):
    base = nginx.url("/1k?memory=")
    body = nginx.files["/1k"]
    seen = bytearray(REQUESTS)
    wrong = bytearray(REQUESTS)
    samples = {}

    def record(n, url, result):
        if n % SAMPLE_EVERY == 0:
            samples[n] = rss()
        i = int(url[len(base) :])
        seen[i] += 1
        if not isinstance(result, parafetch.Response) or result.body != body:
            wrong[i] = 1

    async def main():
        loop = asyncio.get_running_loop()
        watched = set(loop._selector.get_map())
        async with parafetch.AsyncFetcher(max_in_flight=IN_FLIGHT) as f:
            if how == "fetch_all":
                urls = (f"{base}{i}" for i in range(REQUESTS))
                n = 0
                async for url, result in f.fetch_all(urls):
                    record(n, url, result)
                    n += 1
            else:
                started = iter(range(REQUESTS))
                done = [0]

                async def worker():
                    for i in started:
                        url = f"{base}{i}"
                        try:
                            result = await f.fetch(url)
                        except parafetch.Error as e:
                            result = e
                        record(done[0], url, result)
                        done[0] += 1

                await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
            samples["end"] = rss()
        assert f.pending == 0
        assert set(loop._selector.get_map()) == watched

    before = loop_threads()
    loop = asyncio.SelectorEventLoop() if wake == "bell" else NoReaderLoop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 60))
    finally:
        loop.close()

    assert seen == bytearray([1]) * REQUESTS
    assert wrong == bytearray(REQUESTS)
    check_flat(samples)
    assert loop_threads_down_to(before) <= before
