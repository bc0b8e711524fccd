"""The loops run on threads of their own (`threads`); callbacks on the caller's thread."""

import collections
import gc
import os
import threading
import time

import pytest

import parafetch


def loop_threads():
    """How many of this process's threads are parafetch loops (named parafetch-N)."""
    n = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                name = f.read().strip()
        except OSError:  # ended meanwhile
            continue
        if name.startswith("parafetch-") and name[len("parafetch-"):].isdigit():
            n += 1
    return n


def wait_for(check, limit=10.0):
    """True as soon as check() is, False after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_callbacks_run_on_the_calling_thread(server):
    me = threading.get_ident()
    seen = []

    def on_done(result, url, depth):
        seen.append((threading.get_ident(), depth))
        if depth == 0:
            f.start_request(server.base + "/echo/follow-up", on_done, 1)

    f = parafetch.Fetcher(2)
    for i in range(10):
        f.start_request(f"{server.base}/echo/{i}", on_done, 0)
    f.finish_all_requests()
    assert len(seen) == 20
    assert {ident for ident, _ in seen} == {me}


def test_two_loops_fetch_from_four_hosts(four_servers):
    before = loop_threads()
    seen = collections.Counter()

    def on_done(result, url, cookie):
        assert result.status == 200, result
        seen[cookie] += 1

    f = parafetch.Fetcher(8, threads=2, per_host=2)
    assert f.threads == 2
    # A loop names its thread itself, once it runs: wait for both.
    assert wait_for(lambda: loop_threads() == before + 2)
    for i in range(200):
        srv = four_servers[i % 4]
        f.start_request(f"{srv.base}/echo/{i}", on_done, i)
    f.close()
    assert len(seen) == 200 and set(seen.values()) == {1}
    assert [srv.hits for srv in four_servers] == [50] * 4
    assert wait_for(lambda: loop_threads() == before)


def test_threads_option():
    assert parafetch.Fetcher().threads == 1
    # One per core this process may run on (taskset, cgroups): not os.cpu_count().
    auto = parafetch.Fetcher(threads="auto").threads
    assert 1 <= auto <= os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        assert auto <= len(os.sched_getaffinity(0))
    with pytest.raises(ValueError, match="option threads: must be at least 1"):
        parafetch.Fetcher(threads=0)
    with pytest.raises(TypeError, match='option threads: expected an int or "auto"'):
        parafetch.Fetcher(threads="many")


def test_fetchers_on_two_threads_at_once(server):
    """Two Python threads, each with its own fetcher, started together; each one's
    callbacks run on it; neither waits for the other."""
    start = threading.Barrier(2)
    seen = {}
    errors = []

    def work(k):
        try:
            mine = []
            start.wait(10)
            with parafetch.Fetcher(3, threads=2) as f:
                for i in range(100):
                    f.start_request(
                        f"{server.base}/echo/{k}/{i}",
                        lambda r, u, c: mine.append((threading.get_ident(), r.status)),
                    )
            seen[k] = (threading.get_ident(), mine)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "deadlocked"
    assert not errors
    for ident, mine in seen.values():
        assert mine == [(ident, 200)] * 100


def test_unclosed_fetcher_in_a_cycle_collected_on_another_thread(server, results):
    """The garbage collector, running on another thread, finishes the fetcher (its
    callbacks run there) and ends its loops: no socket or thread is left behind."""
    gc.collect()
    fds, loops = open_fds(), loop_threads()
    gc.disable()  # collect only where this test says
    try:
        f = parafetch.Fetcher(4, threads=2)
        for i in range(8):
            f.start_request(f"{server.base}/echo/{i}", results, i)
        cycle = [f]
        cycle.append(cycle)
        del f, cycle
        assert wait_for(lambda: loop_threads() == loops + 2)
        collector = threading.Thread(target=gc.collect)
        collector.start()
        collector.join(30)
        assert not collector.is_alive()
    finally:
        gc.enable()
    assert sorted(results.by_cookie()) == list(range(8))
    # A joined thread leaves /proc/self/task a moment after its joiner returns.
    assert wait_for(lambda: loop_threads() == loops), (loop_threads(), loops)
    # The server's side of each connection closes once it sees ours close.
    assert wait_for(lambda: open_fds() <= fds), (open_fds(), fds)
