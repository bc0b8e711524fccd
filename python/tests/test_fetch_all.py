"""parafetch.fetch_all: (url, result) pairs as requests finish."""

import gc
import threading
import time
import weakref

import pytest

import parafetch


def test_yields_every_url_once(server, closed_port):
    urls = [f"{server.base}/echo/{i}" for i in range(100)]
    bad = ["not a url", f"http://127.0.0.1:{closed_port}/"]
    got = dict(parafetch.fetch_all(urls + bad, max_in_flight=8))
    assert set(got) == set(urls + bad)
    assert all(got[u].status == 200 for u in urls)
    assert isinstance(got["not a url"], parafetch.InvalidUrl)
    assert isinstance(got[bad[1]], parafetch.Connect)


def test_takes_urls_lazily_from_a_generator(server):
    taken = []

    def gen():
        for i in range(20):
            taken.append(i)
            yield f"{server.base}/echo/{i}"

    it = parafetch.fetch_all(gen(), max_in_flight=3)
    assert isinstance(it, parafetch.FetchAll)
    assert taken == []  # nothing until the first next()
    url, r = next(it)
    assert len(taken) <= 4
    rest = list(it)
    assert len(rest) == 19 and len(taken) == 20


def test_options_apply(server):
    ((url, r),) = parafetch.fetch_all([server.base + "/hold"], timeout=0.2)
    assert isinstance(r, parafetch.Timeout)
    ((url, r),) = parafetch.fetch_all([server.base + "/redirect/2"], follow_redirects=True)
    assert r.redirects == 2


def test_empty_and_bad_input():
    assert list(parafetch.fetch_all([])) == []
    with pytest.raises(TypeError, match="not one str"):
        parafetch.fetch_all("http://example.com/")
    with pytest.raises(TypeError, match="a URL must be a str"):
        list(parafetch.fetch_all([1]))
    with pytest.raises(ValueError):
        parafetch.fetch_all([], max_in_flight=0)


def test_gil_released_while_waiting(server):
    counter = {"n": 0}
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counter["n"] += 1
            if counter["n"] == 50_000:
                server.release.set()

    t = threading.Thread(target=count)
    t.start()
    try:
        ((url, r),) = parafetch.fetch_all([server.base + "/hold"])
    finally:
        stop.set()
        t.join()
    assert r.status == 200
    assert counter["n"] >= 50_000


def test_break_midway_ends(server):
    urls = [f"{server.base}/echo/{i}" for i in range(50)]
    for n, (url, r) in enumerate(parafetch.fetch_all(urls, max_in_flight=5)):
        if n == 3:
            break
    # URLs are taken only while no result waits and fewer than 5 are in flight: when the
    # fourth result is handed out, at most 3 handed before it + 5 in flight were started.
    assert 4 <= server.hits <= 8


@pytest.mark.parametrize("threads", [1, 2])
def test_dropping_early_does_not_wait_for_requests_in_flight(server, threads):
    urls = [server.base + "/echo/first"] + [server.base + "/hold"] * 4
    it = parafetch.fetch_all(urls, max_in_flight=5, threads=threads)
    url, r = next(it)
    assert url.endswith("/echo/first") and r.status == 200
    started = time.monotonic()
    del it
    gc.collect()
    assert time.monotonic() - started < 2.0  # /hold answers after HOLD_LIMIT
    server.release.set()


def test_dropped_on_another_thread(server):
    """A thread-safe iterator: made on one thread, finished on another."""
    it = parafetch.fetch_all([f"{server.base}/echo/{i}" for i in range(20)], 4)
    got = []
    t = threading.Thread(target=lambda: got.extend(it))
    t.start()
    t.join(30)
    assert len(got) == 20


@pytest.mark.parametrize("threads", [1, 2])
def test_stops_taking_urls_once_a_result_is_ready(threads):
    """Invalid URLs are results at once: the first is handed out before more are
    taken, rather than the whole input."""
    taken = []

    def gen():
        for i in range(1000):
            taken.append(i)
            yield f"not a url {i}"

    it = parafetch.fetch_all(gen(), max_in_flight=5, threads=threads)
    url, r = next(it)
    assert isinstance(r, parafetch.InvalidUrl)
    assert len(taken) == 1
    assert sum(1 for _ in it) == 999


class Box:
    pass


def test_a_generator_referring_to_its_iterator_is_collected(server):
    box = Box()

    def gen(box):
        for i in range(3):
            yield f"{server.base}/echo/{i}"
        box.it  # the generator refers to the iterator: a cycle

    box.it = parafetch.fetch_all(gen(box), max_in_flight=2)
    url, r = next(box.it)
    ref = weakref.ref(box)
    del box
    gc.collect()
    assert ref() is None
