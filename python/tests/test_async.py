"""parafetch.AsyncFetcher: asyncio futures over loops on threads of their own.

Plain tests, each running its coroutine with asyncio.run under a 10 s bound (no plugin).
Nothing sleeps to synchronise: a Gate replaces the server's `release` event, counts the
requests /hold holds at once and tells the event loop when that changes.

Every test runs twice, once per way the loop threads wake the event loop: `bell` (the
event loop watches the fetcher's socket pair with add_reader, what a selector loop does)
and `call` (call_soon_threadsafe, for loops that cannot watch a file descriptor; here a
selector loop whose add_reader raises NotImplementedError, as the proactor loop's does).
"""

import asyncio
import gc
import os
import select
import subprocess
import sys
import threading
import weakref

import pytest

import parafetch


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


class NoReaderLoop(asyncio.SelectorEventLoop):
    """An event loop that cannot watch file descriptors, like Windows' proactor loop."""

    def add_reader(self, fd, callback, *args):
        raise NotImplementedError


class Policy(asyncio.DefaultEventLoopPolicy):
    def __init__(self, loop_class):
        super().__init__()
        self.loop_class = loop_class

    def new_event_loop(self):
        return self.loop_class()


@pytest.fixture(autouse=True, params=["bell", "call"])
def wake(request):
    """The event loops asyncio.run makes in this test: ones that watch the bell, or ones
    the fetcher must wake with call_soon_threadsafe."""
    loop_class = asyncio.SelectorEventLoop if request.param == "bell" else NoReaderLoop
    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(Policy(loop_class))
    yield request.param
    asyncio.set_event_loop_policy(old)


def registered(loop):
    """The file descriptors a selector event loop watches."""
    return set(loop._selector.get_map())


class Gate:
    """A server's `release` event that holds each /hold request until released one by
    one (or all, by `set`), counting how many it holds at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.waiters = []
        self.all = False
        self.held = 0
        self.max_held = 0
        self.seen = 0
        self.released = 0
        self.loop = None
        self.changed = None

    # The server side (handler threads).
    def wait(self, timeout=None):
        mine = threading.Event()
        with self.lock:
            if self.all:
                mine.set()
            self.waiters.append(mine)
            self.held += 1
            self.seen += 1
            self.max_held = max(self.max_held, self.held)
        self._notify()
        ok = mine.wait(timeout)
        with self.lock:
            self.held -= 1
        self._notify()
        return ok

    def set(self):
        with self.lock:
            self.all = True
            for w in self.waiters:
                w.set()

    def _notify(self):
        loop, changed = self.loop, self.changed
        if loop is not None:
            try:
                loop.call_soon_threadsafe(changed.set)
            except RuntimeError:
                pass  # that loop is closed

    # The test side (the event loop).
    @property
    def blocked(self):
        """How many it holds and has not released (under the lock)."""
        return sum(not w.is_set() for w in self.waiters)

    def release_one(self):
        with self.lock:
            next(w for w in self.waiters if not w.is_set()).set()
            self.released += 1

    async def until(self, predicate):
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.loop, self.changed = loop, asyncio.Event()
        while True:
            self.changed.clear()
            with self.lock:
                if predicate(self):
                    return
            await self.changed.wait()


@pytest.fixture
def gate(server):
    g = Gate()
    server.release = g
    yield g
    g.set()


def test_fetch_ok_404_and_errors_by_kind(server, closed_port):
    async def main():
        async with parafetch.AsyncFetcher(max_in_flight=4) as f:
            fut = f.fetch(server.base + "/echo/x", method="POST", data=b"hi",
                          headers={"X-A": "1"})
            assert isinstance(fut, asyncio.Future)
            r = await fut
            assert r.status == 200 and r.json()["body"] == "hi"
            assert ["X-A", "1"] in r.json()["headers"]
            r = await f.fetch(server.base + "/status/404")
            assert isinstance(r, parafetch.Response) and r.status == 404
            with pytest.raises(parafetch.Connect) as e:
                await f.fetch(f"http://127.0.0.1:{closed_port}/")
            assert e.value.url == f"http://127.0.0.1:{closed_port}/"
            with pytest.raises(parafetch.Timeout):
                await f.fetch(server.base + "/hold", timeout=0.2)
            with pytest.raises(parafetch.InvalidUrl):
                f.fetch("not a url")  # raised at the call: nothing started
            with pytest.raises(parafetch.UnsupportedScheme):
                f.fetch("ftp://127.0.0.1/")
            assert f.pending == 0
        assert f.closed
        with pytest.raises(parafetch.ShutDown):
            f.fetch(server.base + "/echo")

    run(main())


def test_fetch_needs_a_running_loop(server):
    f = parafetch.AsyncFetcher()
    with pytest.raises(RuntimeError):
        f.fetch(server.base + "/echo")
    assert repr(f).startswith("<parafetch.AsyncFetcher max_requests=10 pending=0")
    f.abort()
    assert repr(f) == "<parafetch.AsyncFetcher closed>"


def test_many_concurrent_fetches_one_result_each(server):
    async def main():
        async with parafetch.AsyncFetcher(max_in_flight=8) as f:
            urls = [f"{server.base}/echo/{i}" for i in range(300)]
            got = await asyncio.gather(*(f.fetch(u) for u in urls))
            assert [r.json()["path"] for r in got] == [f"/echo/{i}" for i in range(300)]
            assert f.pending == 0
        assert server.hits == 300

    run(main())


def test_the_cap_holds_at_the_server(server, gate):
    async def main():
        async with parafetch.AsyncFetcher(max_in_flight=3) as f:
            futs = [f.fetch(server.base + "/hold") for _ in range(10)]
            assert f.pending == 10
            for _ in range(10):
                await gate.until(lambda g: g.blocked == min(3, 10 - g.released))
                gate.release_one()
            got = await asyncio.gather(*futs)
            assert all(r.status == 200 for r in got)
        assert gate.seen == 10 and gate.max_held == 3

    run(main())


def test_cancelled_fetch_completes_inside_and_nothing_leaks(server, gate):
    async def main():
        f = parafetch.AsyncFetcher(max_in_flight=2)
        fut = f.fetch(server.base + "/hold")
        ref = weakref.ref(fut)

        async def waiter(fut):
            return await fut

        task = asyncio.ensure_future(waiter(fut))
        del fut
        await gate.until(lambda g: g.held == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert f.pending == 1  # still running inside
        gate.release_one()
        await f.aclose()  # waits for it
        assert f.pending == 0
        assert gate.seen == 1 and server.hits == 1
        del task
        gc.collect()
        assert ref() is None

    run(main())


def test_cancelled_while_waiting_for_room_is_never_sent(server, gate):
    async def main():
        async with parafetch.AsyncFetcher(max_in_flight=1) as f:
            held = f.fetch(server.base + "/hold")
            await gate.until(lambda g: g.held == 1)

            async def get(url):
                return await f.fetch(url)

            waiting = asyncio.ensure_future(get(server.base + "/echo/never"))
            await asyncio.sleep(0)  # one turn of the loop: the task starts its fetch
            after = f.fetch(server.base + "/echo/after")
            waiting.cancel()
            assert f.pending == 3
            gate.release_one()
            assert (await held).status == 200
            assert (await after).json()["path"] == "/echo/after"
            with pytest.raises(asyncio.CancelledError):
                await waiting
        assert f.pending == 0
        assert server.hits == 2  # /hold and /echo/after, never /echo/never

    run(main())


def test_raising_the_cap_sends_what_waits(server, gate):
    async def main():
        async with parafetch.AsyncFetcher(max_in_flight=1) as f:
            held = f.fetch(server.base + "/hold")
            await gate.until(lambda g: g.held == 1)
            waiting = f.fetch(server.base + "/echo/w")
            f.set_max_requests(2)
            assert f.max_requests == 2
            assert (await waiting).status == 200  # while /hold is still held
            assert not held.done()
            gate.release_one()
            await held

    run(main())


def test_fetch_all_yields_each_url_once(server, closed_port):
    async def main():
        async with parafetch.AsyncFetcher(max_in_flight=8) as f:
            urls = [f"{server.base}/echo/{i}" for i in range(100)]
            bad = ["not a url", f"http://127.0.0.1:{closed_port}/"]
            got = {}
            async for url, result in f.fetch_all(urls + bad):
                assert url not in got
                got[url] = result
            assert set(got) == set(urls + bad)
            assert all(got[u].status == 200 for u in urls)
            assert isinstance(got["not a url"], parafetch.InvalidUrl)
            assert isinstance(got[bad[1]], parafetch.Connect)
            assert f.pending == 0

    run(main())


def test_fetch_all_in_completion_order_from_an_async_iterable(server, gate):
    async def urls():
        yield server.base + "/hold"
        yield server.base + "/echo/fast"

    async def main():
        async with parafetch.AsyncFetcher(max_in_flight=2) as f:
            order = []
            async for url, result in f.fetch_all(urls(), timeout=5.0):
                order.append(url.rsplit("/", 1)[1])
                if len(order) == 1:
                    gate.set()
            assert order == ["fast", "hold"]

    run(main())


def test_fetch_all_early_break_starts_nothing_more(server):
    taken = []

    def gen():
        for i in range(20):
            taken.append(i)
            yield f"{server.base}/echo/{i}"

    async def main():
        f = parafetch.AsyncFetcher(max_in_flight=2)
        it = f.fetch_all(gen())
        async for url, result in it:
            assert result.status == 200
            break
        await it.aclose()
        await f.aclose()  # the other running one finishes inside
        assert taken == [0, 1]
        assert server.hits == 2 and f.pending == 0

    run(main())


def test_fetch_all_bad_input():
    f = parafetch.AsyncFetcher()
    with pytest.raises(TypeError, match="not one str"):
        f.fetch_all("http://example.com/")

    async def main():
        with pytest.raises(TypeError, match="a URL must be a str"):
            async for _ in f.fetch_all([1]):
                pass
        await f.aclose()

    run(main())


def test_async_with_waits_for_pending(server, gate):
    async def main():
        async def release_when_held():
            await gate.until(lambda g: g.held == 1)
            gate.release_one()

        helper = asyncio.ensure_future(release_when_held())
        async with parafetch.AsyncFetcher() as f:
            fut = f.fetch(server.base + "/hold")
        assert fut.done() and fut.result().status == 200
        assert f.closed and f.pending == 0
        await helper

    run(main())


def test_exception_in_async_with_aborts(server, gate):
    async def main():
        with pytest.raises(ZeroDivisionError):
            async with parafetch.AsyncFetcher(max_in_flight=2) as f:
                futs = [f.fetch(server.base + "/hold") for _ in range(3)]
                await gate.until(lambda g: g.held == 2)
                1 / 0
        for fut in futs:
            assert isinstance(fut.exception(), parafetch.ShutDown)
        assert f.pending == 0 and f.closed
        assert gate.seen == 2  # the third waited for room and was never sent

    run(main())


def test_cancellation_in_async_with_aborts(server, gate):
    async def main():
        futs = []

        async def block():
            async with parafetch.AsyncFetcher() as f:
                futs.append(f.fetch(server.base + "/hold"))
                await gate.until(lambda g: g.held == 1)
                await asyncio.get_running_loop().create_future()  # forever

        task = asyncio.ensure_future(block())
        await gate.until(lambda g: g.held == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert isinstance(futs[0].exception(), parafetch.ShutDown)

    run(main())


def test_dropping_an_open_fetcher_aborts_without_waiting(server, gate):
    async def main():
        fut = parafetch.AsyncFetcher().fetch(server.base + "/hold")
        gc.collect()
        # Had the drop waited for /hold, this would time out (the gate is never opened).
        with pytest.raises(parafetch.ShutDown):
            await fut

    run(main())


def test_a_closed_event_loop_drops_results_quietly(server, gate):
    f = parafetch.AsyncFetcher()

    async def leave_one_running():
        f.fetch(server.base + "/hold")
        await gate.until(lambda g: g.held == 1)

    run(leave_one_running())  # its loop closes with the request pending
    assert f.pending == 1
    gate.set()
    # Ends the loops once every request was called back. Its event loop being closed, the
    # result is dropped: at _shutdown if it was already here (rung for a loop that will
    # never read), or as it comes (call_soon_threadsafe raises, or nobody listens).
    async def shut_down():
        await f._shutdown()

    run(shut_down())
    assert f.pending == 0 and server.hits == 1


def test_a_new_loop_takes_over_from_a_closed_one(server, gate):
    async def leave_one_running(f):
        f.fetch(server.base + "/hold")
        await gate.until(lambda g: g.held == 1)

    async def again(f):
        assert (await f.fetch(server.base + "/echo/again")).status == 200
        gate.set()
        await f.aclose()
        assert f.pending == 0

    f = parafetch.AsyncFetcher()
    run(leave_one_running(f))
    run(again(f))


def test_a_new_loop_takes_over_after_a_drain_was_queued_on_the_closed_one(server, wake):
    """The result arrives while the first loop is stopped, so its wake-up waits in that
    loop (a queued drain, or a rung bell); closing the loop discards it. The next loop
    must still get results."""

    class Loop(asyncio.get_event_loop_policy().loop_class):
        woken = threading.Event()
        bell = None

        def call_soon_threadsafe(self, callback, *args, **kwargs):
            handle = super().call_soon_threadsafe(callback, *args, **kwargs)
            if type(callback).__name__ == "Drain":
                self.woken.set()
            return handle

        def add_reader(self, fd, callback, *args):
            handle = super().add_reader(fd, callback, *args)
            Loop.bell = fd
            return handle

    f = parafetch.AsyncFetcher()
    loop1 = Loop()

    async def leave_one_running():
        fut = f.fetch(server.base + "/hold")
        assert await asyncio.get_running_loop().run_in_executor(None, server.wait_holding, 1)
        return fut

    fut = loop1.run_until_complete(asyncio.wait_for(leave_one_running(), 10))
    server.release.set()
    if wake == "bell":
        # The bell rings: its socket becomes readable, and loop1 does not run to read it.
        assert Loop.bell is not None
        assert select.select([Loop.bell], [], [], 10)[0] == [Loop.bell]
    else:
        assert Loop.woken.wait(10)  # the result is here, its drain queued on loop1
    loop1.close()  # and discarded, unrun
    assert not fut.done()

    async def again():
        r = await f.fetch(server.base + "/echo/again")
        assert r.status == 200
        await f.aclose()

    run(again())
    assert f.pending == 0


def test_the_loop_threads_never_call_into_python_with_the_bell(server, wake):
    """With the bell, a result wakes the event loop through the socket pair only: nothing
    is scheduled with call_soon_threadsafe (which would take the GIL on a loop thread)."""
    calls = []

    class Loop(asyncio.get_event_loop_policy().loop_class):
        def call_soon_threadsafe(self, callback, *args, **kwargs):
            calls.append(type(callback).__name__)
            return super().call_soon_threadsafe(callback, *args, **kwargs)

    async def main():
        async with parafetch.AsyncFetcher(max_in_flight=4) as f:
            results = await asyncio.gather(
                *(f.fetch(server.base + f"/echo/{i}") for i in range(20))
            )
            assert [r.status for r in results] == [200] * 20

    loop = Loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 10))
    finally:
        loop.close()
    drains = calls.count("Drain")
    if wake == "bell":
        assert drains == 0, calls
    else:
        assert drains >= 1, calls


def test_the_event_loop_lets_go_of_the_bell(server, wake):
    """Closing (normally, by abort, or by dropping an idle fetcher) leaves the event loop
    watching no more file descriptors than before: none leaks over many fetchers."""

    async def main():
        loop = asyncio.get_running_loop()
        before = registered(loop)
        for i in range(30):
            f = parafetch.AsyncFetcher(max_in_flight=2)
            assert (await f.fetch(server.base + "/echo")).status == 200
            # With the bell the event loop watches one more descriptor while the fetcher
            # is open; without, none.
            assert len(registered(loop) - before) == (1 if wake == "bell" else 0)
            if i % 3 == 0:
                await f.aclose()
            elif i % 3 == 1:
                async with f:
                    f.abort()
            else:
                del f
                gc.collect()
            assert registered(loop) == before

    run(main())


def test_an_aborted_fetcher_dropped_with_work_pending_lets_go_once_resolved(server, gate, wake):
    async def main():
        loop = asyncio.get_running_loop()
        before = registered(loop)
        f = parafetch.AsyncFetcher()
        fut = f.fetch(server.base + "/hold")
        await gate.until(lambda g: g.held == 1)
        del f
        gc.collect()
        with pytest.raises(parafetch.ShutDown):
            await fut
        # The drain that resolved the last pending future let go of the bell.
        assert registered(loop) == before

    run(main())


class ThreadLoop:
    """An event loop of the policy's kind running forever on a thread of its own."""

    def __init__(self):
        self.loop = asyncio.get_event_loop_policy().new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever)
        self.thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def registered(self):
        async def look():
            return registered(self.loop)

        return self.run(look())

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_a_loop_running_in_another_thread_gives_the_fetcher_up(server, wake):
    """Loop 1 runs on a thread of its own and keeps running, idle; loop 2 (this thread)
    takes the fetcher over. Loop 2 gets the results, and loop 1 lets go of its bell (on
    its own thread: an event loop is not thread-safe)."""
    loop1 = ThreadLoop()
    f = parafetch.AsyncFetcher()
    try:
        base = loop1.registered()

        async def first():
            return (await f.fetch(server.base + "/echo/1")).status

        assert loop1.run(first()) == 200
        assert len(loop1.registered() - base) == (1 if wake == "bell" else 0)

        async def second():
            assert (await f.fetch(server.base + "/echo/2")).status == 200
            await f.aclose()

        run(second())
        # The removal was queued to loop 1 ahead of this look.
        assert loop1.registered() == base
    finally:
        loop1.close()


def test_a_loop_that_cannot_register_the_bell_leaves_the_fetcher_as_it_was(server, wake):
    """Taking the fetcher over fails in add_reader: it stays bound to the loop it had,
    which still gets its results."""

    class Refusing(asyncio.get_event_loop_policy().loop_class):
        def add_reader(self, fd, callback, *args):
            raise OSError("no room in this selector")

    loop1 = ThreadLoop()
    f = parafetch.AsyncFetcher()
    try:
        async def fetch(path):
            return (await f.fetch(server.base + path)).status

        assert loop1.run(fetch("/echo/1")) == 200
        loop2 = Refusing()
        try:
            with pytest.raises(OSError, match="no room"):
                loop2.run_until_complete(fetch("/echo/2"))
        finally:
            loop2.close()
        assert loop1.run(fetch("/echo/3")) == 200
        loop1.run(f.aclose())
        assert f.pending == 0
    finally:
        loop1.close()


def test_abort_of_an_idle_fetcher_lets_go_of_the_bell_at_once(server):
    async def main():
        loop = asyncio.get_running_loop()
        before = registered(loop)
        f = parafetch.AsyncFetcher()
        assert (await f.fetch(server.base + "/echo")).status == 200
        f.abort()
        assert registered(loop) == before
        await f.aclose()

    run(main())


def test_shutdown_without_waiting_still_delivers_to_a_live_loop(server, gate):
    async def main():
        loop = asyncio.get_running_loop()
        before = registered(loop)
        f = parafetch.AsyncFetcher()
        fut = f.fetch(server.base + "/hold")
        await gate.until(lambda g: g.held == 1)
        ended = f._shutdown()  # the close thread waits for /hold
        gate.set()
        assert (await fut).status == 200
        await ended
        assert f.pending == 0 and registered(loop) == before

    run(main())


def test_another_running_loop_is_refused(server, gate):
    f = parafetch.AsyncFetcher()

    async def other():
        with pytest.raises(RuntimeError, match="another event loop"):
            f.fetch(server.base + "/echo")

    async def main():
        fut = f.fetch(server.base + "/hold")
        await gate.until(lambda g: g.held == 1)
        t = threading.Thread(target=asyncio.run, args=(other(),))
        t.start()
        await asyncio.get_running_loop().run_in_executor(None, t.join)
        gate.release_one()
        assert (await fut).status == 200
        await f.aclose()

    run(main())


def test_the_event_loop_stays_responsive(server, gate):
    async def main():
        async with parafetch.AsyncFetcher() as f:
            fut = f.fetch(server.base + "/hold")
            ticks = 0
            while not fut.done():
                ticks += 1
                if ticks == 100:
                    gate.set()
                await asyncio.sleep(0)
            assert (await fut).status == 200
            assert ticks >= 100

    run(main())


def test_the_gil_is_released_while_waiting(server):
    counter = {"n": 0}
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counter["n"] += 1
            if counter["n"] == 50_000:
                server.release.set()

    async def main():
        async with parafetch.AsyncFetcher() as f:
            return await f.fetch(server.base + "/hold")

    t = threading.Thread(target=count)
    t.start()
    try:
        r = run(main())
    finally:
        stop.set()
        t.join(20)
    assert r.status == 200
    assert counter["n"] >= 50_000


def test_exiting_with_a_fetch_pending_does_not_hang(server, gate, tmp_path):
    script = f"""
import asyncio, parafetch
f = parafetch.AsyncFetcher()
async def main():
    fut = f.fetch({server.base + "/hold"!r})
    await asyncio.sleep(0)
asyncio.run(main())
print("left")
"""
    # The /hold request is never released: an exit that waited for it would time out.
    # (From elsewhere than python/, whose parafetch/ lacks the extension.)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=10, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"left\n"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_gets_a_clear_error(server):
    f = parafetch.AsyncFetcher()

    async def fetch():
        return (await f.fetch(server.base + "/echo")).status

    assert run(fetch()) == 200
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        try:
            messages = []
            for call in (
                lambda: asyncio.run(asyncio.wait_for(fetch(), 5)),
                lambda: f.set_max_requests(2),
                lambda: asyncio.run(asyncio.wait_for(f.aclose(), 5)),
                f.abort,
            ):
                try:
                    call()
                    messages.append("no error")
                except RuntimeError as e:
                    messages.append(str(e))
                except BaseException as e:  # a fetch accepted and never resolved, say
                    messages.append(repr(e))
            del f  # lets go of the parent's loops without touching them
            gc.collect()
            report = "\n".join(messages)
        except BaseException as e:
            report = repr(e)
        os.write(write, report.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as r:
        report = r.read()
    os.waitpid(pid, 0)
    messages = report.split("\n")
    assert len(messages) == 4, report
    assert all("forked child" in m for m in messages), report
    assert run(fetch()) == 200  # the parent's is fine
    run(f.aclose())
