"""How a Fetcher ends: abort, Ctrl-C, exceptions that stop the callbacks, reference
cycles, exit, threads sharing one fetcher, fork. Each on both drivers."""

import _thread
import functools
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import parafetch

from test_threads import loop_threads, wait_for


@pytest.fixture(params=[1, 2], ids=["caller-driven", "threads=2"])
def Fetcher(request):
    return functools.partial(parafetch.Fetcher, threads=request.param)


def test_abort_calls_back_shut_down_without_waiting(Fetcher, server, results):
    f = Fetcher(4)
    for i in range(3):
        f.start_request(server.base + "/hold", results, i)
    f.abort()  # /hold would answer only after HOLD_LIMIT
    assert sorted(results.by_cookie()) == [0, 1, 2]
    assert all(isinstance(r, parafetch.ShutDown) for r in results.by_cookie().values())
    assert f.closed
    with pytest.raises(parafetch.ShutDown):
        f.start_request(server.base + "/echo", results)
    f.abort()  # twice is fine


@pytest.mark.parametrize("raised", [ZeroDivisionError, KeyboardInterrupt])
def test_leaving_a_with_block_by_an_exception_aborts(Fetcher, server, results, raised):
    with pytest.raises(raised):
        with Fetcher(4) as f:
            for i in range(3):
                f.start_request(server.base + "/hold", results, i)
            raise raised()
    got = results.by_cookie()
    assert sorted(got) == [0, 1, 2]
    assert all(isinstance(r, parafetch.ShutDown) for r in got.values()), got
    assert not server.release.is_set()  # nothing waited for the held requests


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler, as a program started from a terminal has it. A test
    runner started in the background by a shell (`cmd &`) inherits SIGINT ignored; Python
    then installs no handler, and `_thread.interrupt_main()` does nothing."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def test_ctrl_c_interrupts_the_wait_and_the_with_block_aborts(Fetcher, server, results, python_sigint):
    """A SIGINT during finish_all_requests raises KeyboardInterrupt between ticks; the
    with block then aborts rather than waiting for the held request."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")

    def interrupt():
        if server.wait_for(lambda s: s.active == 1):
            _thread.interrupt_main()

    t = threading.Thread(target=interrupt)
    with pytest.raises(KeyboardInterrupt):
        with Fetcher() as f:
            f.start_request(server.base + "/hold", results, "held")
            t.start()
            f.finish_all_requests()
    t.join()
    (r,) = results.by_cookie().values()
    assert isinstance(r, parafetch.ShutDown)


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_a_non_exception_from_a_callback_stops_the_callbacks_at_once(Fetcher, server, raised):
    seen = []

    def on_done(result, url, cookie):
        seen.append(cookie)
        if len(seen) == 1:
            raise raised("stop")

    f = Fetcher(10)
    for i in range(10):
        f.start_request(f"{server.base}/echo/{i}", on_done, i)
    with pytest.raises(raised):
        f.finish_all_requests()
    assert len(seen) == 1  # raised at once, no other callback ran
    assert f.pending == 9
    f.finish_all_requests()  # the rest, each once
    assert sorted(seen) == list(range(10))


def test_an_exception_in_a_callback_is_raised_after_the_others(Fetcher, server):
    seen = []

    def on_done(result, url, cookie):
        seen.append(cookie)
        if cookie == 3:
            raise ValueError("three")

    f = Fetcher(2)
    for i in range(8):
        f.start_request(f"{server.base}/echo/{i}", on_done, i)
    with pytest.raises(ValueError, match="three"):
        f.finish_all_requests()
    assert sorted(seen) == list(range(8))


def test_a_callback_closing_over_its_fetcher_is_collected_and_finished(Fetcher, server, results):
    """The cycle fetcher -> callback -> fetcher: gc finishes the requests (their
    callbacks run), ends the loops and frees it."""
    gc.collect()
    loops = loop_threads()

    def make():
        f = Fetcher(4)

        def on_done(result, url, cookie):
            results(result, url, cookie)
            assert f is not None  # the closure holds the fetcher

        for i in range(6):
            f.start_request(f"{server.base}/echo/{i}", on_done, i)
        return f.pending

    assert make() > 0
    gc.collect()
    got = results.by_cookie()
    assert sorted(got) == list(range(6))
    assert all(r.status == 200 for r in got.values())
    assert wait_for(lambda: loop_threads() == loops)


def test_an_open_fetcher_is_finished_at_exit(server, tmp_path):
    """A module-level fetcher nobody finished, one in a reference cycle and one on loop
    threads: the atexit hook runs their callbacks before the interpreter goes."""
    script = textwrap.dedent(
        f"""
        import parafetch

        def report(result, url, cookie):
            print(cookie, result.status, flush=True)

        plain = parafetch.Fetcher()
        plain.start_request("{server.base}/echo/a", report, "plain")
        threaded = parafetch.Fetcher(threads=2)
        threaded.start_request("{server.base}/echo/b", report, "threaded")

        def cycle():
            f = parafetch.Fetcher()
            f.start_request("{server.base}/echo/c", lambda r, u, c: (f, report(r, u, c)), "cycle")

        cycle()
        """
    )
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    # From tmp_path: the source folder python/parafetch must not shadow the package.
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split("\n")[:-1]) == ["cycle 200", "plain 200", "threaded 200"]
    assert out.stderr == ""


def test_a_fetcher_shared_by_threads_is_idle_only_when_no_callback_runs(Fetcher, server):
    """finish_all_requests on one thread waits while another thread is inside a
    callback: that callback's follow-up is called back before it returns."""
    f = Fetcher(4)
    entered, go = threading.Event(), threading.Event()
    follow_ups = []

    def first(result, url, cookie):
        entered.set()
        go.wait(10)
        f.start_request(server.base + "/echo/follow-up", lambda r, u, c: follow_ups.append(r))

    a = threading.Thread(target=lambda: (f.start_request(server.base + "/echo", first),
                                         f.finish_all_requests()))
    a.start()
    assert entered.wait(10)
    seen_at_return = []
    b = threading.Thread(target=lambda: (f.finish_all_requests(),
                                         seen_at_return.append(len(follow_ups))))
    b.start()
    b.join(0.3)
    assert b.is_alive()  # thread a is still inside the callback
    go.set()
    b.join(10)
    a.join(10)
    assert not a.is_alive() and not b.is_alive()
    assert len(follow_ups) == 1 and follow_ups[0].status == 200
    assert seen_at_return == [1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_gets_a_clear_error(Fetcher, server, results):
    f = Fetcher()
    f.start_request(server.base + "/echo", results)
    f.finish_all_requests()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        try:
            f.start_request(server.base + "/echo", results)
            message = "no error"
        except RuntimeError as e:
            message = str(e)
        except BaseException as e:  # reported to the parent
            message = repr(e)
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as r:
        message = r.read()
    os.waitpid(pid, 0)
    assert "forked child" in message, message
    f.start_request(server.base + "/echo", results)  # the parent's is fine
    f.close()
    assert len(results.calls) == 2


def test_the_gil_is_released_during_a_long_fetch(Fetcher, server):
    """Another thread makes progress while finish_all_requests waits on a held request:
    it is that thread that releases it."""
    progress = []

    def other():
        if server.wait_for(lambda s: s.active == 1):
            for i in range(1000):
                progress.append(i)
            server.release.set()

    t = threading.Thread(target=other)
    statuses = []
    f = Fetcher()
    f.start_request(server.base + "/hold", lambda r, u, c: statuses.append(r.status))
    t.start()
    f.finish_all_requests()
    t.join()
    assert statuses == [200]
    assert len(progress) == 1000


def test_ctrl_c_while_a_dropped_fetcher_drains_aborts_it(server, results, monkeypatch, python_sigint):
    """Dropping a fetcher finishes its requests; Ctrl-C meanwhile aborts the rest, and
    the KeyboardInterrupt is reported as unraisable (a destructor cannot raise)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_type))

    def interrupt():
        if server.wait_for(lambda s: s.active == 1):
            _thread.interrupt_main()

    t = threading.Thread(target=interrupt)
    f = parafetch.Fetcher()
    f.start_request(server.base + "/hold", results, "held")
    t.start()
    del f
    t.join()
    (r,) = results.by_cookie().values()
    assert isinstance(r, parafetch.ShutDown)
    assert reported == [KeyboardInterrupt]


def test_signatures_show_the_defaults():
    import inspect

    assert str(inspect.signature(parafetch.fetch_all)) == "(urls, max_in_flight=10, **options)"
    if sys.version_info < (3, 10):
        # With the stable ABI, a class's text signature reaches inspect from 3.10 on.
        with pytest.raises(ValueError, match="no signature found"):
            inspect.signature(parafetch.Fetcher)
        return
    for cls in (parafetch.Fetcher, parafetch.AsyncFetcher):
        assert str(inspect.signature(cls)) == "(max_in_flight=10, **options)", cls


def test_import_leaves_asyncio_until_asyncfetcher_is_used(tmp_path):
    code = (
        "import sys, parafetch\n"
        "before = 'asyncio' in sys.modules\n"
        "from parafetch import *\n"
        "print(before, AsyncFetcher.__name__, 'asyncio' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.stdout.split() == ["False", "AsyncFetcher", "True"], out.stderr
