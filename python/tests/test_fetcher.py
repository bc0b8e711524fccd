"""parafetch.Fetcher: start_request, callbacks, caps, options, the GIL, exceptions."""

import collections
import functools
import gc
import json
import threading

import pytest

import parafetch


@pytest.fixture(params=[1, 2], ids=["caller-driven", "threads=2"])
def Fetcher(request):
    """parafetch.Fetcher on each driver: one loop turned by the waiting thread
    (threads=1), or loops on threads of their own."""
    return functools.partial(parafetch.Fetcher, threads=request.param)


def test_callback_gets_result_url_and_cookie(Fetcher, server, results):
    f = Fetcher()
    cookie = object()
    f.start_request(server.base + "/echo/1", results, cookie)
    f.finish_all_requests()
    assert len(results.calls) == 1
    result, url, got = results.calls[0]
    assert isinstance(result, parafetch.Response)
    assert url == server.base + "/echo/1"
    assert got is cookie
    assert f.pending == 0


def test_cookie_defaults_to_none(Fetcher, server, results):
    f = Fetcher()
    f.start_request(server.base + "/status/204", results)
    f.finish_all_requests()
    assert results.calls[0][2] is None
    assert results.calls[0][0].status == 204


def test_exactly_one_callback_per_request(Fetcher, server):
    seen = collections.Counter()

    def on_done(result, url, cookie):
        assert isinstance(result, parafetch.Response), result
        assert result.status == 200
        seen[cookie] += 1

    f = Fetcher(max_in_flight=50)
    for i in range(1000):
        f.start_request(f"{server.base}/echo/{i}", on_done, i)
        assert f.pending <= 50
    f.finish_all_requests()
    assert len(seen) == 1000
    assert set(seen.values()) == {1}


def test_max_requests_caps_pending(Fetcher, server, results):
    f = Fetcher(3)
    assert f.max_requests == 3
    for i in range(10):
        f.start_request(f"{server.base}/echo/{i}", results, i)
        assert f.pending <= 3
    f.set_max_requests(5)
    assert f.max_requests == 5
    for i in range(10, 20):
        f.start_request(f"{server.base}/echo/{i}", results, i)
        assert f.pending <= 5
    f.finish_all_requests()
    assert sorted(results.by_cookie()) == list(range(20))
    with pytest.raises(ValueError, match="at least 1"):
        f.set_max_requests(0)
    with pytest.raises(ValueError, match="max_in_flight"):
        Fetcher(0)


def test_backlog_lets_start_request_run_ahead(Fetcher, server, results):
    f = Fetcher(1, backlog=4)
    for i in range(5):
        f.start_request(server.base + "/hold", results, i)
    assert f.pending == 5  # none finished: all five accepted without waiting
    server.release.set()
    f.finish_all_requests()
    assert len(results.calls) == 5


def test_context_manager_finishes_all(Fetcher, server, results):
    with Fetcher(4) as f:
        for i in range(10):
            f.start_request(f"{server.base}/echo/{i}", results, i)
    assert len(results.calls) == 10
    assert f.pending == 0
    assert repr(f) == "<parafetch.Fetcher closed>"
    with pytest.raises(parafetch.ShutDown, match="closed"):
        f.start_request(server.base + "/echo", results)
    f.close()  # twice is fine


def test_close_finishes_then_releases(Fetcher, server, results):
    f = Fetcher(2)
    for i in range(4):
        f.start_request(f"{server.base}/echo/{i}", results, i)
    f.close()
    assert len(results.calls) == 4
    assert f.pending == 0  # a count still, as AsyncFetcher's: nothing is pending


def test_exception_in_callback_is_raised_after_all_complete(Fetcher, server):
    done = []

    def on_done(result, url, cookie):
        done.append(cookie)
        if cookie == 7:
            raise ValueError("callback 7 broke")

    f = Fetcher(4)
    for i in range(20):
        f.start_request(f"{server.base}/echo/{i}", on_done, i)
    with pytest.raises(ValueError, match="callback 7 broke"):
        f.finish_all_requests()
    assert sorted(done) == list(range(20))
    f.finish_all_requests()  # raised once, not again


def test_several_exceptions_raise_the_first_and_count_the_rest(Fetcher, server):
    def on_done(result, url, cookie):
        raise KeyError(cookie)

    f = Fetcher(1)
    for i in range(3):
        f.start_request(f"{server.base}/echo/{i}", on_done, i)
    with pytest.raises(KeyError) as info:
        f.finish_all_requests()
    assert info.value.args == (0,)
    notes = getattr(info.value, "__notes__", None)
    if notes is not None:  # Python 3.11+
        assert notes == ["parafetch: 2 more callback(s) raised after this one"]


def test_exception_in_callback_raised_from_with_block(Fetcher, server):
    def on_done(result, url, cookie):
        raise RuntimeError("from the callback")

    with pytest.raises(RuntimeError, match="from the callback"):
        with Fetcher() as f:
            f.start_request(server.base + "/echo", on_done)


def test_with_block_error_is_not_swallowed(Fetcher, server, results):
    with pytest.raises(ZeroDivisionError):
        with Fetcher() as f:
            f.start_request(server.base + "/echo", results)
            1 / 0
    # Called back once: answered already, or aborted by the block's exception.
    ((result, _, _),) = results.calls
    assert isinstance(result, (parafetch.Response, parafetch.ShutDown)), result


def test_follow_ups_started_from_a_callback(Fetcher, server):
    seen = []

    def on_done(result, url, depth):
        seen.append((url, depth))
        if depth < 3:
            for j in range(2):
                f.start_request(f"{server.base}/echo/{depth + 1}/{j}", on_done, depth + 1)

    f = Fetcher(2)
    f.start_request(server.base + "/echo/0", on_done, 0)
    f.finish_all_requests()
    assert len(seen) == 1 + 2 + 4 + 8
    assert collections.Counter(d for _, d in seen) == {0: 1, 1: 2, 2: 4, 3: 8}


def test_callback_starting_a_bad_url_gets_the_error_at_once(Fetcher, server):
    caught = []

    def on_done(result, url, cookie):
        with pytest.raises(parafetch.InvalidUrl):
            f.start_request("not a url", on_done)
        caught.append(cookie)
        f.set_max_requests(7)

    f = Fetcher(2)
    f.start_request(server.base + "/echo", on_done, "first")
    f.finish_all_requests()
    assert caught == ["first"]
    assert f.max_requests == 7


def test_finish_all_requests_from_a_callback_is_refused(Fetcher, server):
    def on_done(result, url, cookie):
        f.finish_all_requests()

    f = Fetcher()
    f.start_request(server.base + "/echo", on_done)
    with pytest.raises(RuntimeError, match="cannot be called from a callback"):
        f.finish_all_requests()


def test_callback_must_be_callable(Fetcher, server):
    with pytest.raises(TypeError, match="callable"):
        Fetcher().start_request(server.base + "/echo", "not callable")


def test_gil_is_released_while_the_loop_waits(Fetcher, server):
    """A counter thread must make progress while the fetch waits: /hold answers only once
    the counter has moved on (or answers 504 after HOLD_LIMIT if the GIL was kept)."""
    counter = {"n": 0}
    stop = threading.Event()
    target = 50_000

    def count():
        while not stop.is_set():
            counter["n"] += 1
            if counter["n"] == target:
                server.release.set()

    statuses = []
    f = Fetcher()
    f.start_request(server.base + "/hold", lambda r, u, c: statuses.append(r.status))
    before = counter["n"]
    t = threading.Thread(target=count)
    t.start()
    try:
        f.finish_all_requests()
    finally:
        stop.set()
        t.join()
    assert statuses == [200]
    assert counter["n"] - before >= target


def test_fetchers_on_several_threads(Fetcher, server):
    """Each thread drives its own fetcher at the same time; none deadlocks."""
    counts = [0] * 4
    errors = []

    def work(k):
        try:
            def on_done(result, url, cookie):
                assert result.status == 200
                counts[k] += 1

            with Fetcher(5) as f:
                for i in range(50):
                    f.start_request(f"{server.base}/echo/{k}/{i}", on_done)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert counts == [50] * 4


def test_dropping_a_fetcher_finishes_its_requests(Fetcher, server, results):
    f = Fetcher()
    for i in range(5):
        f.start_request(f"{server.base}/echo/{i}", results, i)
    del f
    gc.collect()
    assert len(results.calls) == 5


def test_per_request_method_headers_data(Fetcher, server, results):
    f = Fetcher()
    f.start_request(
        server.base + "/echo",
        results,
        method="POST",
        headers={"X-One": "1", "Content-Type": "text/plain"},
        data="héllo",
    )
    f.start_request(server.base + "/echo", results, method="PUT", data=b"\x00\x01",
                    headers=[("X-Rep", "a"), ("X-Rep", "b")])
    f.finish_all_requests()
    posted, put = (json.loads(r.body) for r, _, _ in results.calls)
    if posted["method"] != "POST":
        posted, put = put, posted
    assert posted["method"] == "POST"
    assert posted["body"] == "héllo".encode().decode("latin-1")
    assert ["X-One", "1"] in posted["headers"]
    assert put["method"] == "PUT"
    assert put["body"] == "\x00\x01"
    assert [v for k, v in put["headers"] if k == "X-Rep"] == ["a", "b"]


def test_per_request_timeout_and_redirects(Fetcher, server, results):
    f = Fetcher()
    f.start_request(server.base + "/hold", results, "held", timeout=0.2)
    f.start_request(server.base + "/redirect/2", results, "follow", follow_redirects=True)
    f.start_request(server.base + "/redirect/2", results, "not")
    f.finish_all_requests()
    got = results.by_cookie()
    assert isinstance(got["held"], parafetch.Timeout)
    assert got["follow"].status == 200 and got["follow"].redirects == 2
    assert got["not"].status == 302


def test_bad_request_arguments(Fetcher, server):
    f = Fetcher()
    with pytest.raises(TypeError, match="data"):
        f.start_request(server.base, print, data=12)
    with pytest.raises(TypeError, match="headers"):
        f.start_request(server.base, print, headers="X-A: 1")
    with pytest.raises(ValueError, match="timeout"):
        f.start_request(server.base, print, timeout=-1)
    with pytest.raises(parafetch.InvalidRequest):
        f.start_request(server.base, print, headers={"bad name": "x"})
    assert f.pending == 0


def test_repr_shows_counts(server):
    f = parafetch.Fetcher(3)
    assert repr(f) == "<parafetch.Fetcher max_requests=3 pending=0 threads=1>"


@pytest.mark.parametrize("threads", [1, 2])
def test_poll_calls_back_what_has_finished(server, threads):
    got = []
    f = parafetch.Fetcher(max_in_flight=10, threads=threads)
    assert f.poll() == 0 and f.poll(None) == 0  # nothing pending: at once
    f.start_request(server.base + "/hold", lambda r, u, c: got.append(c), "held")
    for i in range(3):
        f.start_request(server.base + f"/echo/{i}", lambda r, u, c: got.append(c), i)
    called = 0
    for _ in range(100):  # poll(None) returns once at least one was called back
        if called == 3:
            break
        n = f.poll(None)
        assert n >= 1
        called += n
    assert called == 3 and sorted(got) == [0, 1, 2]
    assert f.pending == 1
    assert f.poll(0.05) == 0  # /hold is held: nothing more within the timeout
    server.release.set()
    assert f.poll(None) == 1 and got[-1] == "held"
    with pytest.raises(ValueError, match="timeout"):
        f.poll(-1)
    f.close()


def test_poll_raises_what_a_callback_raised(server):
    def boom(result, url, cookie):
        raise ValueError("from the callback")

    f = parafetch.Fetcher()
    f.start_request(server.base + "/echo", boom)
    with pytest.raises(ValueError, match="from the callback"):
        f.poll(None)  # returns (raising) once the one request was called back
    f.close()


def test_repeated_poll_without_waiting_gets_everything_done(server):
    # With threads=1 the loop runs only inside these calls: each poll() turns it once.
    got = []
    f = parafetch.Fetcher(max_in_flight=4)
    for i in range(8):
        f.start_request(server.base + f"/echo/{i}", lambda r, u, c: got.append(c), i)
    for _ in range(100_000):  # a bound on a broken test, not a timing
        if len(got) == 8:
            break
        f.poll()
    assert sorted(got) == list(range(8)) and f.pending == 0
    f.close()


def test_poll_with_nothing_pending_does_not_wait_for_another_threads_callback(server):
    entered, leave = threading.Event(), threading.Event()

    def slow(result, url, cookie):
        entered.set()
        leave.wait(10)

    f = parafetch.Fetcher()
    f.start_request(server.base + "/echo", slow)
    t = threading.Thread(target=f.finish_all_requests)
    t.start()
    try:
        assert entered.wait(10)
        assert f.pending == 0
        assert f.poll(None) == 0  # returns at once: nothing pending here,
        assert t.is_alive()  # while the other thread is still inside its callback
    finally:
        leave.set()
        t.join(10)
    f.close()


@pytest.mark.parametrize("threads", [1, 2])
def test_cookie_jar_reads_a_netscape_file_and_save_cookies_writes_one(server, tmp_path, threads):
    given = tmp_path / "in.txt"
    given.write_text("127.0.0.1\tFALSE\t/\tFALSE\t0\tpre\tloaded\n")
    saved = tmp_path / "out.txt"
    sent = []

    def on_echo(result, url, cookie):
        sent.append(dict((k.lower(), v) for k, v in result.json()["headers"]).get("cookie"))

    with parafetch.Fetcher(max_in_flight=1, cookie_jar=given, threads=threads) as f:
        f.start_request(server.base + "/echo/1", on_echo)
        f.finish_all_requests()
        f.start_request(server.base + "/setcookie", lambda r, u, c: None)
        f.finish_all_requests()
        f.start_request(server.base + "/echo/2", on_echo)
        f.finish_all_requests()
        assert f.save_cookies(saved) == 2
        assert sorted(f.cookies()) == [
            ("127.0.0.1", "/", "pre", "loaded"),
            ("127.0.0.1", "/", "session", "s3cret"),
        ]
    assert sent == ["pre=loaded", "pre=loaded; session=s3cret"]
    assert saved.stat().st_mode & 0o777 == 0o600
    with parafetch.Fetcher(cookie_jar=str(saved)) as again:
        again.start_request(server.base + "/echo/3", on_echo)
    assert sent[-1] == "pre=loaded; session=s3cret"
    with pytest.raises(OSError, match="missing.txt"):
        parafetch.Fetcher(cookie_jar=tmp_path / "missing.txt")
    with pytest.raises(TypeError, match="cookie_jar"):
        parafetch.Fetcher(cookie_jar=3)
    with parafetch.Fetcher() as off:  # no jar: an empty file
        assert off.save_cookies(saved) == 0
    assert "session" not in saved.read_text()


def test_save_cookies_from_two_threads_at_once_writes_whole_files(server, tmp_path):
    saved = tmp_path / "jar.txt"
    errors = []
    with parafetch.Fetcher(cookies=True, threads=2) as f:
        f.start_request(server.base + "/setcookie", lambda r, u, c: None)
        f.finish_all_requests()

        def save():
            try:
                for _ in range(50):
                    assert f.save_cookies(saved) == 1
            except BaseException as e:  # noqa: B036 -- reported below
                errors.append(e)

        threads = [threading.Thread(target=save) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
    lines = [l for l in saved.read_text().splitlines() if l and not l.startswith("#")]
    assert lines == ["127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\ts3cret"]
    assert saved.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["jar.txt"]  # no temporary file left
