"""parafetch.compat.ParallelCurl: pyparallelcurl's API, its pycurl options and info codes,
each checked at a local server; and pyparallelcurl's example script run against a stand-in
of the search API it queried."""

import base64
import collections
import json
import os
import pathlib
import socket
import ssl
import subprocess
import sys
import textwrap
import threading

import pytest

import parafetch
import parafetch.compat as pycurl
from conftest import Server, stop
from parafetch.compat import ParallelCurl

HERE = pathlib.Path(__file__).parent
DATA = HERE / "data"

PROXY_VARIABLES = [
    "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
    "no_proxy", "NO_PROXY",
]


@pytest.fixture(autouse=True)
def no_proxy_from_env(monkeypatch):
    """The fetcher reads proxy variables when built (curl does too): none here."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


class Calls:
    """A pyparallelcurl callback that keeps its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, content, url, ch, user_data):
        self.calls.append((content, url, ch, user_data))


def fetch(url, options=None, post_fields=None):
    """(content, ch) of one request, after checking it was called back exactly once."""
    calls = Calls()
    pc = ParallelCurl(10, options)
    pc.startrequest(url, calls, "mine", post_fields)
    pc.finishallrequests()
    assert len(calls.calls) == 1
    content, got_url, ch, user_data = calls.calls[0]
    assert got_url == url and user_data == "mine"
    return content, ch


def echo(url, options=None, post_fields=None):
    """What /echo saw: method, path, headers (names lowercased), body."""
    content, ch = fetch(url, options, post_fields)
    assert content is not None, ch.errstr()
    doc = json.loads(content)
    doc["headers"] = {k.lower(): v for k, v in doc["headers"]}
    return doc


# -- the API ------------------------------------------------------------------------------


def test_callback_gets_content_url_handle_and_user_data(server):
    calls = Calls()
    data = {"somekey": "somevalue"}
    pc = ParallelCurl(10)
    pc.startrequest(server.base + "/status/200", calls, data)
    pc.finishallrequests()
    [(content, url, ch, user_data)] = calls.calls
    assert content == b"status 200"  # bytes, as pycurl's write buffer holds
    assert url == server.base + "/status/200"
    assert ch.getinfo(pycurl.HTTP_CODE) == 200
    assert ch.errstr() == ""
    assert isinstance(ch.result, parafetch.Response)
    assert user_data is data


def test_positional_arguments_and_aliases_are_pyparallelcurls(server):
    calls = Calls()
    pc = ParallelCurl(3, {pycurl.USERAGENT: "ua"})
    assert pc.max_requests == 3 and pc.options == {pycurl.USERAGENT: "ua"}
    pc.setMaxRequests(4)
    assert pc.max_requests == 4
    pc.startRequest(server.base + "/echo/a", calls, 1, "x=1")
    pc.startrequest(server.base + "/echo/b", calls)
    pc.finishallrequests()
    by_url = {url: (content, user_data) for content, url, _, user_data in calls.calls}
    doc = json.loads(by_url[server.base + "/echo/a"][0])
    assert (doc["method"], doc["body"], by_url[server.base + "/echo/a"][1]) == ("POST", "x=1", 1)
    # Omitted user_data: a new {} per request (pyparallelcurl shared one).
    assert by_url[server.base + "/echo/b"][1] == {}


def test_keyword_arguments_by_either_name(server):
    for pc in (
        ParallelCurl(in_max_requests=3, in_options={pycurl.USERAGENT: "ua"}),
        ParallelCurl(max_requests=3, options={pycurl.USERAGENT: "ua"}),
    ):
        assert pc.max_requests == 3 and pc.options == {pycurl.USERAGENT: "ua"}
    with pytest.raises(TypeError, match="not both"):
        ParallelCurl(4, max_requests=3)
    with pytest.raises(TypeError, match="not both"):
        ParallelCurl(3, {}, options={})


def test_checkforcompletedrequests_and_waiting_for_fewer_outstanding(server):
    """pyparallelcurl's other two methods, and its outstanding_requests, for scripts that
    call back finished requests while they do something else."""
    calls = Calls()
    pc = ParallelCurl(10)
    assert pc.outstanding_requests == {}
    pc.checkforcompletedrequests()  # nothing outstanding: returns at once
    pc.startrequest(server.base + "/hold", calls, "held")
    for i in range(3):
        pc.startrequest(server.base + f"/echo/{i}", calls, i)
    assert sorted(r["user_data"] for r in pc.outstanding_requests.values()
                  if r["user_data"] != "held") == [0, 1, 2]
    # With threads=1 the loop runs inside these calls: /hold is sent in this one and
    # held by the server until released.
    pc.waitforoutstandingrequeststodropbelow(2)  # the three answers, not /hold
    assert sorted(c[3] for c in calls.calls) == [0, 1, 2]
    [left] = pc.outstanding_requests.values()
    assert left["url"] == server.base + "/hold" and left["callback"] is calls
    with pytest.raises(ValueError, match="max"):
        pc.waitForOutstandingRequestsToDropBelow(0)
    server.release.set()
    for _ in range(50):  # each call waits up to a second for an answer
        if not pc.outstanding_requests:
            break
        pc.checkForCompletedRequests()
    assert pc.outstanding_requests == {}
    assert [c[3] for c in calls.calls][-1] == "held"
    pc.finishallrequests()
    assert len(calls.calls) == 4


def test_a_request_that_never_started_is_not_outstanding(server, tmp_path):
    # The fetcher cannot be made (COOKIEFILE names a directory): startrequest raises, and
    # nothing is left counted as outstanding.
    pc = ParallelCurl(2, {pycurl.COOKIEFILE: str(tmp_path)})
    with pytest.raises(OSError):
        pc.startrequest(server.base + "/echo", Calls())
    assert pc.outstanding_requests == {}


def test_a_request_is_outstanding_until_its_callback_returned(server):
    seen = []
    pc = ParallelCurl(2)
    pc.startrequest(server.base + "/echo", lambda *a: seen.append(len(pc.outstanding_requests)))
    pc.finishallrequests()
    assert seen == [1] and pc.outstanding_requests == {}


def test_an_unwritable_cookiejar_leaves_the_parallelcurl_usable(server, tmp_path):
    with pytest.raises(OSError, match="no-such-dir"):
        with ParallelCurl(2, {pycurl.COOKIEJAR: str(tmp_path / "no-such-dir" / "j")}) as pc:
            pc.startrequest(server.base + "/setcookie", Calls())
    pc.setoptions({})
    calls = Calls()
    pc.startrequest(server.base + "/echo", calls)
    pc.finishallrequests()
    assert calls.calls[0][0] is not None, calls.calls[0][2].errstr()


def test_max_requests_as_a_str_of_a_number():
    # pyparallelcurl's example passed sys.argv[1] as is.
    assert ParallelCurl("7").max_requests == 7
    with pytest.raises(ValueError, match="max_requests"):
        ParallelCurl("seven")
    with pytest.raises(TypeError, match="max_requests"):
        ParallelCurl(2.5)


def test_exactly_one_callback_per_request(server, closed_port):
    seen = collections.Counter()

    def on_done(content, url, ch, i):
        seen[i] += 1

    pc = ParallelCurl(20)
    for i in range(300):
        # Some succeed, some fail at connect, some are malformed: one callback each.
        url = [
            f"{server.base}/echo/{i}",
            f"http://127.0.0.1:{closed_port}/{i}",
            "http://[::1/broken",
        ][i % 3]
        pc.startrequest(url, on_done, i)
    pc.finishallrequests()
    assert sorted(seen) == list(range(300))
    assert set(seen.values()) == {1}


def run_capped(server, cap, count, set_to=None):
    """Starts `count` /hold requests from a thread through ParallelCurl(cap) (then
    setmaxrequests(set_to)); once the server holds as many as the cap allows, releases
    them. Returns, for each startrequest, whether it returned after the release."""
    after_release = []
    calls = Calls()
    done = threading.Event()

    def run():
        try:
            pc = ParallelCurl(cap)
            if set_to is not None:
                pc.setmaxrequests(set_to)
            for i in range(count):
                pc.startrequest(server.base + "/hold", calls, i)
                after_release.append(server.release.is_set())
            pc.finishallrequests()
        finally:
            done.set()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    limit = set_to if set_to is not None else cap
    assert server.wait_holding(limit), "fewer requests than the cap reached the server"
    server.release.set()
    assert done.wait(20)
    assert len(calls.calls) == count
    assert all(content == b"held" for content, *_ in calls.calls)
    assert server.most_holding == limit
    return after_release


def test_max_requests_caps_what_is_in_flight(server):
    after_release = run_capped(server, cap=2, count=6)
    # The third startrequest could only return once a request finished: after the release.
    assert after_release[2:] == [True] * 4


def test_setmaxrequests_changes_the_cap(server):
    after_release = run_capped(server, cap=2, count=8, set_to=4)
    assert after_release[4:] == [True] * 4


def test_zero_max_requests_means_no_limit(server):
    # pyparallelcurl waited only `if self.max_requests > 0`.
    calls = Calls()
    pc = ParallelCurl(0)
    for i in range(12):
        pc.startrequest(server.base + "/hold", calls, i)  # none waits
    assert server.holding == 0, "the loop runs only inside ParallelCurl's calls"
    # The loop runs in finishallrequests: the server sees all twelve at once.
    seen = []

    def release_when_all_held():
        seen.append(server.wait_holding(12))
        server.release.set()

    watcher = threading.Thread(target=release_when_all_held)
    watcher.start()
    pc.finishallrequests()
    watcher.join()
    assert seen == [True]
    assert len(calls.calls) == 12


def test_with_block_finishes_all_requests(server):
    calls = Calls()
    with ParallelCurl(10) as pc:
        for i in range(5):
            pc.startrequest(f"{server.base}/echo/{i}", calls, i)
        # Callbacks run only inside ParallelCurl's calls, on this thread: none yet.
        assert calls.calls == []
    assert sorted(ud for *_, ud in calls.calls) == list(range(5))


def test_del_finishes_all_requests(server):
    calls = Calls()
    pc = ParallelCurl(10)
    for i in range(5):
        pc.startrequest(f"{server.base}/echo/{i}", calls, i)
    assert calls.calls == []
    del pc  # the last reference: freed now, not at some later collection
    assert sorted(ud for *_, ud in calls.calls) == list(range(5))


def test_exit_finishes_a_parallelcurl_kept_alive_by_a_cycle(server):
    # The callback refers to the ParallelCurl: a cycle through the Rust fetcher that the
    # garbage collector cannot see. Exit still finishes it.
    script = textwrap.dedent(
        f"""
        from parafetch.compat import ParallelCurl

        class Crawler:
            def __init__(self):
                self.pc = ParallelCurl(10)
                self.done = 0

            def on_done(self, content, url, ch, i):
                self.done += 1
                print("done", i, ch.getinfo(2097154), self.pc.max_requests, flush=True)

        crawler = Crawler()
        for i in range(3):
            crawler.pc.startrequest("{server.base}/echo/%d" % i, crawler.on_done, i)
        del crawler
        print("end of script", flush=True)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
        env=clean_env(), cwd=str(HERE.parent.parent),
    )
    assert out.returncode == 0, out.stderr
    # (A collector that could see the cycle may run the callbacks before the last print.)
    assert sorted(out.stdout.splitlines()) == [f"done {i} 200 10" for i in range(3)] + [
        "end of script"
    ]


def test_a_callbacks_exception_is_raised_by_the_call_it_ran_in(server):
    calls = Calls()

    def boom(content, url, ch, user_data):
        raise ValueError("from the callback")

    pc = ParallelCurl(1)
    pc.startrequest(server.base + "/echo/1", boom)
    # No room: this call waits, calling back the first request, whose exception it raises.
    with pytest.raises(ValueError, match="from the callback"):
        pc.startrequest(server.base + "/echo/2", calls, 2)
    pc.finishallrequests()  # the second request was started, and is called back
    assert [ud for *_, ud in calls.calls] == [2]

    pc.setmaxrequests(10)
    pc.startrequest(server.base + "/echo/3", boom)
    pc.startrequest(server.base + "/echo/4", calls, 4)
    with pytest.raises(ValueError, match="from the callback"):
        pc.finishallrequests()
    assert [ud for *_, ud in calls.calls] == [2, 4]
    pc.finishallrequests()  # raised once only


def test_callbacks_can_start_follow_ups(server):
    # A crawler's shape: the callback starts more requests on the same ParallelCurl.
    seen = []

    def on_done(content, url, ch, depth):
        seen.append(depth)
        if depth < 3:
            pc.startrequest(f"{server.base}/echo/{depth + 1}", on_done, depth + 1)

    pc = ParallelCurl(1)
    pc.startrequest(server.base + "/echo/0", on_done, 0)
    pc.finishallrequests()
    assert seen == [0, 1, 2, 3]


def test_a_callbacks_exception_is_not_raised_into_another_callbacks_follow_ups(server):
    follow_ups = Calls()
    started = []

    def on_done(content, url, ch, n):
        if n == 0:
            server.release.set()  # only now may request 1 finish: its callback runs later
            raise ValueError("callback 0 failed")
        for j in range(5):
            pc.startrequest(f"{server.base}/echo/f{j}", follow_ups, j)
            started.append(j)

    pc = ParallelCurl(10)
    pc.startrequest(server.base + "/echo/0", on_done, 0)
    pc.startrequest(server.base + "/hold", on_done, 1)
    with pytest.raises(ValueError, match="callback 0 failed"):
        pc.finishallrequests()  # the outermost call raises it, once callback 1 returned
    assert started == [0, 1, 2, 3, 4]
    pc.finishallrequests()  # raised once only
    assert sorted(ud for *_, ud in follow_ups.calls) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit])
def test_ctrl_c_in_a_callback_stops_the_callbacks_at_once(server, raised):
    calls = Calls()

    def stop(content, url, ch, user_data):
        calls(content, url, ch, user_data)
        if len(calls.calls) == 1:
            raise raised()

    pc = ParallelCurl(10)
    for i in range(10):
        pc.startrequest(f"{server.base}/echo/{i}", stop, i)
    with pytest.raises(raised):
        pc.finishallrequests()
    assert len(calls.calls) == 1  # not kept until every other callback ran
    pc.finishallrequests()  # the others stayed pending; nothing is raised again
    assert sorted(ud for *_, ud in calls.calls) == list(range(10))


# -- failures -------------------------------------------------------------------------------


def test_failure_gives_none_and_errstr(closed_port):
    url = f"http://127.0.0.1:{closed_port}/x"
    content, ch = fetch(url)
    assert content is None
    assert "refused" in ch.errstr()
    assert isinstance(ch.result, parafetch.Connect)
    assert ch.getinfo(pycurl.HTTP_CODE) == 0
    assert ch.getinfo(pycurl.EFFECTIVE_URL) == url
    assert ch.getinfo(pycurl.PRIMARY_IP) == ""
    assert ch.getinfo(pycurl.TOTAL_TIME) == 0.0
    assert ch.getinfo(pycurl.CONTENT_TYPE) is None


@pytest.mark.parametrize("url", ["ftp://example.invalid/", "http://[::1/broken", "no url"])
def test_malformed_url_is_called_back_not_raised(url):
    # curl reported these through the callback (CURLE_URL_MALFORMAT, ...UNSUPPORTED_PROTOCOL).
    content, ch = fetch(url)
    assert content is None
    assert ch.errstr()
    assert isinstance(ch.result, (parafetch.InvalidUrl, parafetch.UnsupportedScheme))


def test_errstr_never_shows_the_urls_password(closed_port):
    content, ch = fetch(f"http://user:hunter2@127.0.0.1:{closed_port}/x")
    assert content is None
    assert "hunter2" not in ch.errstr()
    assert "hunter2" not in repr(ch)


# -- getinfo -----------------------------------------------------------------------------


def test_getinfo_codes(server):
    content, ch = fetch(server.base + "/redirect/2", {pycurl.FOLLOWLOCATION: 1})
    assert content == b"arrived"
    port = int(server.base.rsplit(":", 1)[1])
    assert ch.getinfo(pycurl.HTTP_CODE) == ch.getinfo(pycurl.RESPONSE_CODE) == 200
    assert ch.getinfo(pycurl.EFFECTIVE_URL) == server.base + "/redirect/0"
    assert ch.getinfo(pycurl.REDIRECT_COUNT) == 2
    assert ch.getinfo(pycurl.REDIRECT_URL) is None
    assert ch.getinfo(pycurl.PRIMARY_IP) == "127.0.0.1"
    assert ch.getinfo(pycurl.PRIMARY_PORT) == port
    assert ch.getinfo(pycurl.INFO_HTTP_VERSION) == pycurl.CURL_HTTP_VERSION_1_1
    assert ch.getinfo(pycurl.SIZE_DOWNLOAD) == 7.0
    assert ch.getinfo(pycurl.SIZE_DOWNLOAD_T) == 7
    assert ch.getinfo(pycurl.CONTENT_LENGTH_DOWNLOAD) == 7.0
    assert ch.getinfo(pycurl.CONTENT_LENGTH_DOWNLOAD_T) == 7
    assert ch.getinfo(pycurl.CONTENT_TYPE) is None  # /redirect/0 sends none
    assert ch.getinfo(pycurl.SPEED_DOWNLOAD) > 0
    assert ch.getinfo(pycurl.APPCONNECT_TIME) == 0.0  # no TLS
    times = [
        ch.getinfo(code)
        for code in (
            pycurl.NAMELOOKUP_TIME, pycurl.CONNECT_TIME, pycurl.PRETRANSFER_TIME,
            pycurl.STARTTRANSFER_TIME, pycurl.TOTAL_TIME,
        )
    ]
    assert all(isinstance(t, float) for t in times)
    assert times == sorted(times) and times[-1] > 0
    total_us = ch.getinfo(pycurl.TOTAL_TIME_T)
    assert isinstance(total_us, int) and abs(total_us - times[-1] * 1e6) <= 1
    assert ch.getinfo_raw(pycurl.EFFECTIVE_URL) == (server.base + "/redirect/0").encode()

    content, ch = fetch(server.base + "/multi")
    assert ch.getinfo(pycurl.CONTENT_TYPE) == "application/json; charset=utf-8"


def test_unsupported_info_code_is_named(server):
    _, ch = fetch(server.base + "/echo")
    with pytest.raises(ValueError, match=r"getinfo\(HEADER_SIZE \(2097163\)\) is not supported"):
        ch.getinfo(pycurl.HEADER_SIZE)
    with pytest.raises(ValueError, match=r"getinfo\(12345\) is not supported"):
        ch.getinfo(12345)


# -- options -----------------------------------------------------------------------------


def test_constants_are_libcurls():
    # From curl/curl.h (CURLOPT_*: type base + number; CURLINFO_*: type bits + number) and
    # pycurl's module.c, where MAXFILESIZE is CURLOPT_MAXFILESIZE_LARGE.
    expected = {
        "URL": 10002, "FOLLOWLOCATION": 52, "MAXREDIRS": 68, "TIMEOUT": 13,
        "TIMEOUT_MS": 155, "CONNECTTIMEOUT": 78, "CONNECTTIMEOUT_MS": 156,
        "USERAGENT": 10018, "HTTPHEADER": 10023, "SSL_VERIFYPEER": 64,
        "SSL_VERIFYHOST": 81, "PROXY": 10004, "PROXYUSERPWD": 10006, "NOPROXY": 10177,
        "ENCODING": 10102, "ACCEPT_ENCODING": 10102, "COOKIEFILE": 10031,
        "COOKIEJAR": 10082, "NOSIGNAL": 99, "POST": 47, "POSTFIELDS": 10015,
        "CUSTOMREQUEST": 10036, "HTTPGET": 80, "MAXFILESIZE": 30117, "NOBODY": 44,
        "FAILONERROR": 45, "REFERER": 10016, "COOKIE": 10022, "USERPWD": 10005,
        "CAINFO": 10065, "VERBOSE": 41, "WRITEFUNCTION": 20011,
        "HTTP_CODE": 0x200002, "RESPONSE_CODE": 0x200002, "EFFECTIVE_URL": 0x100001,
        "TOTAL_TIME": 0x300003, "NAMELOOKUP_TIME": 0x300004, "CONNECT_TIME": 0x300005,
        "APPCONNECT_TIME": 0x300021, "PRETRANSFER_TIME": 0x300006,
        "STARTTRANSFER_TIME": 0x300011, "REDIRECT_COUNT": 0x200014,
        "SIZE_DOWNLOAD": 0x300008, "CONTENT_TYPE": 0x100012, "PRIMARY_IP": 0x100020,
        "PRIMARY_PORT": 0x200028, "HEADER_SIZE": 0x20000B, "REDIRECT_URL": 0x10001F,
    }
    assert {name: getattr(pycurl, name) for name in expected} == expected
    assert set(expected) <= set(pycurl.__all__)


def test_useragent_referer_cookie_and_userpwd_reach_the_server(server):
    doc = echo(
        server.base + "/echo",
        {
            pycurl.USERAGENT: "Parallel Curl test script",
            pycurl.REFERER: "http://example.invalid/from",
            pycurl.COOKIE: "a=1; b=2",
            pycurl.USERPWD: "me:s3cret",
        },
    )
    h = doc["headers"]
    assert h["user-agent"] == "Parallel Curl test script"
    assert h["referer"] == "http://example.invalid/from"
    assert h["cookie"] == "a=1; b=2"
    assert h["authorization"] == "Basic " + base64.b64encode(b"me:s3cret").decode()


def test_httpheader_reaches_the_server_and_overrides(server):
    doc = echo(
        server.base + "/echo",
        {
            pycurl.USERAGENT: "overridden",
            pycurl.HTTPHEADER: ["X-One: 1", b"X-Two:   two words ", "X-Empty;", "User-Agent: mine"],
        },
    )
    h = doc["headers"]
    assert (h["x-one"], h["x-two"], h["x-empty"], h["user-agent"]) == (
        "1", "two words", "", "mine",
    )


@pytest.mark.parametrize(
    "lines, match",
    [
        (["Accept:"], "would remove a header"),
        (["no colon here"], "entry 0 is not 'Name: value'"),
        ("X-One: 1", "expected a list"),
    ],
)
def test_httpheader_entries_curl_would_treat_otherwise_are_refused(lines, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ParallelCurl(1, {pycurl.HTTPHEADER: lines})


def test_followlocation_on_and_off(server):
    content, ch = fetch(server.base + "/redirect/2")  # off by default, as in curl
    assert content == b"" and ch.getinfo(pycurl.HTTP_CODE) == 302
    assert ch.getinfo(pycurl.REDIRECT_URL) == server.base + "/redirect/1"
    content, ch = fetch(server.base + "/redirect/2", {pycurl.FOLLOWLOCATION: True})
    assert content == b"arrived" and ch.getinfo(pycurl.REDIRECT_COUNT) == 2


@pytest.mark.parametrize("maxredirs, arrives", [(1, False), (2, True), (-1, True)])
def test_maxredirs(server, maxredirs, arrives):
    options = {pycurl.FOLLOWLOCATION: 1, pycurl.MAXREDIRS: maxredirs}
    content, ch = fetch(server.base + "/redirect/2", options)
    if arrives:
        assert content == b"arrived"
    else:
        assert content is None
        assert isinstance(ch.result, parafetch.TooManyRedirects), ch.errstr()


@pytest.mark.parametrize("option, value", [(pycurl.TIMEOUT_MS, 300), (pycurl.TIMEOUT, 1)])
def test_timeout_fails_a_held_request(server, option, value):
    content, ch = fetch(server.base + "/hold", {option: value})
    assert content is None
    assert isinstance(ch.result, parafetch.Timeout)
    assert "timeout" in ch.errstr()
    assert server.wait_holding(1)  # it reached the server, which still holds it


@pytest.fixture
def unanswered_port():
    """A port whose listen queue is full: a connect to it gets no answer (Linux drops the
    SYN), so only a connect timeout ends it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(listener.getsockname())
        fillers.append(s)
    try:
        yield listener.getsockname()[1]
    finally:
        for s in fillers + [listener]:
            s.close()


@pytest.mark.parametrize(
    "option, value", [(pycurl.CONNECTTIMEOUT_MS, 300), (pycurl.CONNECTTIMEOUT, 1)]
)
def test_connecttimeout(unanswered_port, option, value):
    content, ch = fetch(f"http://127.0.0.1:{unanswered_port}/", {option: value})
    assert content is None
    assert isinstance(ch.result, parafetch.Timeout), ch.errstr()
    assert ch.result.phase == "connect"


def test_postfields_and_post_fields_send_a_post(server):
    doc = echo(server.base + "/echo", {pycurl.POSTFIELDS: "a=1&b=2"})
    assert (doc["method"], doc["body"]) == ("POST", "a=1&b=2")
    assert doc["headers"]["content-type"] == "application/x-www-form-urlencoded"
    doc = echo(server.base + "/echo", {pycurl.COPYPOSTFIELDS: b"raw"})
    assert (doc["method"], doc["body"]) == ("POST", "raw")
    doc = echo(server.base + "/echo", post_fields=b"c=3")
    assert (doc["method"], doc["body"]) == ("POST", "c=3")
    # A Content-Type of the caller's wins.
    doc = echo(
        server.base + "/echo",
        {pycurl.POSTFIELDS: "{}", pycurl.HTTPHEADER: ["Content-Type: application/json"]},
    )
    assert doc["headers"]["content-type"] == "application/json"


def test_post_httpget_customrequest_and_nobody_set_the_method(server):
    doc = echo(server.base + "/echo", {pycurl.POST: 1})
    assert (doc["method"], doc["body"], doc["headers"].get("content-length")) == ("POST", "", "0")
    # Later options win, as pycurl's setopt calls did.
    doc = echo(server.base + "/echo", {pycurl.POSTFIELDS: "a=1", pycurl.HTTPGET: 1})
    assert (doc["method"], doc["body"]) == ("GET", "")
    doc = echo(server.base + "/echo", {pycurl.POSTFIELDS: "a=1", pycurl.CUSTOMREQUEST: "PUT"})
    assert (doc["method"], doc["body"]) == ("PUT", "a=1")
    content, ch = fetch(server.base + "/echo", {pycurl.NOBODY: 1})
    # HEAD: the length of the JSON a GET would have had, and no body.
    assert content == b"" and ch.getinfo(pycurl.CONTENT_LENGTH_DOWNLOAD) > 0


def test_encoding(server):
    content, _ = fetch(server.base + "/gzip")
    assert content[:2] == b"\x1f\x8b"  # off by default: the body as sent
    content, _ = fetch(server.base + "/gzip", {pycurl.ENCODING: ""})
    assert content == b"unzipped " * 100
    doc = echo(server.base + "/echo", {pycurl.ACCEPT_ENCODING: ""})
    assert "gzip" in doc["headers"]["accept-encoding"]
    doc = echo(server.base + "/echo", {pycurl.ACCEPT_ENCODING: "deflate"})
    assert doc["headers"]["accept-encoding"] == "deflate"
    assert "accept-encoding" not in echo(server.base + "/echo")["headers"]


def test_maxfilesize(server):
    content, ch = fetch(server.base + "/big", {pycurl.MAXFILESIZE: 1000})
    assert content is None and isinstance(ch.result, parafetch.TooLarge), ch.errstr()
    content, _ = fetch(server.base + "/big", {pycurl.MAXFILESIZE_LARGE: 100_000})
    assert len(content) == 100_000


def test_failonerror(server):
    content, ch = fetch(server.base + "/status/404")
    assert content == b"status 404" and ch.errstr() == ""
    content, ch = fetch(server.base + "/status/404", {pycurl.FAILONERROR: True})
    assert content is None
    assert ch.errstr() == "The requested URL returned error: 404"
    assert ch.getinfo(pycurl.HTTP_CODE) == 404
    content, _ = fetch(server.base + "/status/204", {pycurl.FAILONERROR: True})
    assert content == b""


def test_cookiefile_empty_turns_a_shared_jar_on(server):
    def two_requests(options):
        calls = Calls()
        pc = ParallelCurl(1, options)
        pc.startrequest(server.base + "/setcookie", calls, 1)
        pc.finishallrequests()
        pc.startrequest(server.base + "/echo", calls, 2)
        pc.finishallrequests()
        headers = dict((k.lower(), v) for k, v in json.loads(calls.calls[1][0])["headers"])
        return headers.get("cookie")

    assert two_requests({}) is None
    assert two_requests({pycurl.COOKIEFILE: ""}) == "session=s3cret"


def netscape_lines(path):
    """{(domain, path, name): value} of a Netscape cookie file."""
    cookies = {}
    for line in pathlib.Path(path).read_text().splitlines():
        if line.startswith("#HttpOnly_"):
            line = line[len("#HttpOnly_"):]
        elif not line or line.startswith("#"):
            continue
        domain, _sub, cpath, _secure, _expires, name, value = line.split("\t")
        cookies[(domain, cpath, name)] = value
    return cookies


def test_cookiefile_reads_a_cookie_file_and_cookiejar_writes_one(server, tmp_path):
    given = tmp_path / "in.txt"
    given.write_text(
        "# Netscape HTTP Cookie File\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tpre\tloaded\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t1\tgone\texpired-in-1970\n"
    )
    written = tmp_path / "out.txt"
    calls = Calls()
    pc = ParallelCurl(1, {pycurl.COOKIEFILE: str(given), pycurl.COOKIEJAR: str(written)})
    pc.startrequest(server.base + "/echo/1", calls, 1)
    pc.startrequest(server.base + "/setcookie", calls, 2)
    pc.startrequest(server.base + "/echo/3", calls, 3)
    assert not written.exists()  # written once the requests are finished
    pc.finishallrequests()
    sent = [
        dict((k.lower(), v) for k, v in json.loads(c[0])["headers"]).get("cookie")
        for c in calls.calls
        if c[3] != 2
    ]
    assert sent == ["pre=loaded", "pre=loaded; session=s3cret"]
    assert netscape_lines(written) == {
        ("127.0.0.1", "/", "pre"): "loaded",
        ("127.0.0.1", "/", "session"): "s3cret",
    }
    assert written.stat().st_mode & 0o777 == 0o600  # cookies are secrets
    assert not list(tmp_path.glob("*.tmp"))


def test_a_missing_cookiefile_starts_an_empty_jar_as_in_curl(server, tmp_path):
    calls = Calls()
    pc = ParallelCurl(1, {pycurl.COOKIEFILE: str(tmp_path / "missing.txt")})
    pc.startrequest(server.base + "/echo/1", calls, 1)
    pc.startrequest(server.base + "/setcookie", calls, 2)
    pc.startrequest(server.base + "/echo/3", calls, 3)
    pc.finishallrequests()
    sent = [
        dict((k.lower(), v) for k, v in json.loads(c[0])["headers"]).get("cookie")
        for c in calls.calls
        if c[3] != 2
    ]
    assert sent == [None, "session=s3cret"]


def test_cookiejar_is_written_when_the_parallelcurl_is_finished(server, tmp_path):
    written = tmp_path / "jar.txt"
    with ParallelCurl(4, {pycurl.COOKIEJAR: str(written)}) as pc:
        pc.startrequest(server.base + "/setcookie", Calls())
    assert netscape_lines(written) == {("127.0.0.1", "/", "session"): "s3cret"}
    # An unwritable COOKIEJAR is an error of the call that writes it; the jar is kept,
    # and a COOKIEJAR set afterwards gets it.
    pc = ParallelCurl(4, {pycurl.COOKIEJAR: str(tmp_path / "no-such-dir" / "jar.txt")})
    pc.startrequest(server.base + "/setcookie", Calls())
    with pytest.raises(OSError, match="no-such-dir"):
        pc.finishallrequests()
    again = tmp_path / "again.txt"
    pc.setoptions({pycurl.COOKIEJAR: str(again)})
    pc.finishallrequests()
    assert netscape_lines(again) == {("127.0.0.1", "/", "session"): "s3cret"}


def test_proxyport_and_proxytype(server):
    # http.server answers a proxy's absolute-form request like any other: it is the proxy.
    host, port = server.base.split("://", 1)[1].rsplit(":", 1)
    options = {pycurl.PROXY: host, pycurl.PROXYPORT: int(port),
               pycurl.PROXYTYPE: pycurl.PROXYTYPE_HTTP}
    doc = echo("http://example.invalid/echo/via-proxy", options)
    assert doc["path"] == "http://example.invalid/echo/via-proxy"  # the absolute form
    # The scheme PROXYTYPE gives, when PROXY has none; PROXY's own scheme and port win.
    def plan(proxy="127.0.0.1", more=()):
        return pycurl._Plan({pycurl.PROXY: proxy, **dict(more)}).fetcher["proxy"]

    assert plan(more={pycurl.PROXYTYPE: pycurl.PROXYTYPE_SOCKS5_HOSTNAME,
                      pycurl.PROXYPORT: 1080}) == "socks5h://127.0.0.1:1080"
    assert plan(more={pycurl.PROXYTYPE: pycurl.PROXYTYPE_SOCKS4A}) == "socks4a://127.0.0.1"
    assert plan(proxy="proxy:", more={pycurl.PROXYPORT: 3128}) == "http://proxy:3128"
    assert plan(proxy="[::1]", more={pycurl.PROXYPORT: 3128}) == "http://[::1]:3128"
    assert plan(proxy="http://127.0.0.1:3128",
                more={pycurl.PROXYTYPE: pycurl.PROXYTYPE_SOCKS5,
                      pycurl.PROXYPORT: 1080}) == "http://127.0.0.1:3128"
    with pytest.raises(ValueError, match=r"PROXYTYPE \(101\): SOCKS4 is not supported"):
        ParallelCurl(1, {pycurl.PROXYTYPE: pycurl.PROXYTYPE_SOCKS4})
    with pytest.raises(ValueError, match=r"PROXYPORT \(59\): must be a port number"):
        ParallelCurl(1, {pycurl.PROXYPORT: 70000})


def test_proxy_and_proxyuserpwd(server):
    # http.server answers a proxy's absolute-form request like any other: it is the proxy.
    target = "http://example.invalid/echo/via-proxy"
    host_port = server.base.split("://", 1)[1]
    options = {pycurl.PROXY: host_port, pycurl.PROXYUSERPWD: "me:p@ss word"}
    calls = Calls()
    pc = ParallelCurl(10, options)
    pc.startrequest(target, calls)
    assert "p@ss" not in repr(pc) and "p%40ss" not in repr(pc)
    pc.finishallrequests()
    doc = json.loads(calls.calls[0][0])
    headers = {k.lower(): v for k, v in doc["headers"]}
    assert doc["path"] == target
    assert headers["proxy-authorization"] == "Basic " + base64.b64encode(b"me:p@ss word").decode()


def test_proxy_password_stays_out_of_errors(closed_port):
    options = {pycurl.PROXY: f"127.0.0.1:{closed_port}", pycurl.PROXYUSERPWD: "me:hunter2"}
    content, ch = fetch("http://example.invalid/", options)
    assert content is None and ch.errstr()
    assert "hunter2" not in ch.errstr()


def test_empty_proxy_ignores_the_environment(server, closed_port, monkeypatch):
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port}")
    content, ch = fetch(server.base + "/echo")
    assert content is None  # the environment's proxy was used, and refused
    content, ch = fetch(server.base + "/echo", {pycurl.PROXY: ""})
    assert content is not None, ch.errstr()


def test_noproxy(server, closed_port):
    options = {pycurl.PROXY: f"http://127.0.0.1:{closed_port}"}
    assert fetch(server.base + "/echo", options)[0] is None
    content, ch = fetch(server.base + "/echo", {**options, pycurl.NOPROXY: "127.0.0.1"})
    assert content is not None, ch.errstr()


def test_proxyuserpwd_without_proxy_is_refused():
    with pytest.raises(ValueError, match=r"PROXYUSERPWD \(10006\) is not supported: without PROXY"):
        ParallelCurl(1, {pycurl.PROXYUSERPWD: "me:hunter2"})


@pytest.fixture
def https_server():
    srv = Server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(DATA / "compat-server.pem")
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        stop(srv, thread)


def https_url(srv):
    return srv.base.replace("http://", "https://") + "/status/200"


def test_certificates_are_verified_by_default(https_server):
    content, ch = fetch(https_url(https_server))
    assert content is None and isinstance(ch.result, parafetch.Tls), ch.errstr()


def test_ssl_verifypeer_off_accepts_any_certificate(https_server):
    options = {pycurl.SSL_VERIFYPEER: False, pycurl.SSL_VERIFYHOST: False}
    content, ch = fetch(https_url(https_server), options)
    assert content == b"status 200", ch.errstr()
    assert ch.getinfo(pycurl.APPCONNECT_TIME) > 0
    assert ch.getinfo(pycurl.APPCONNECT_TIME) <= ch.getinfo(pycurl.PRETRANSFER_TIME)


def test_cainfo_trusts_a_ca(https_server):
    content, ch = fetch(https_url(https_server), {pycurl.CAINFO: str(DATA / "compat-ca.pem")})
    assert content == b"status 200", ch.errstr()


def test_tls_options_curl_would_treat_otherwise_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"SSL_VERIFYHOST \(81\) is not supported: 0 without"):
        ParallelCurl(1, {pycurl.SSL_VERIFYHOST: 0})
    with pytest.raises(ValueError, match=r"CAINFO \(10065\): cannot read"):
        ParallelCurl(1, {pycurl.CAINFO: str(tmp_path / "missing.pem")})


def test_nosignal_noprogress_and_url_are_accepted_without_effect(server):
    options = {
        pycurl.NOSIGNAL: 1,
        pycurl.NOPROGRESS: 1,
        pycurl.URL: "http://example.invalid/",  # startrequest's URL wins, as it did
    }
    doc = echo(server.base + "/echo/here", options)
    assert doc["path"] == "/echo/here"


def test_unsupported_options_are_named():
    with pytest.raises(ValueError) as e:
        ParallelCurl(10, {pycurl.VERBOSE: 1})
    assert str(e.value) == "parafetch.compat: pycurl option VERBOSE (41) is not supported"
    with pytest.raises(ValueError, match=r"pycurl option 12345 is not supported"):
        ParallelCurl(10, {12345: 1})
    with pytest.raises(ValueError, match=r"WRITEFUNCTION \(20011\)"):
        ParallelCurl(10).setoptions({pycurl.WRITEFUNCTION: print})
    with pytest.raises(TypeError, match="pycurl option constants"):
        ParallelCurl(10, {"useragent": "x"})


def test_wrong_value_types_name_the_option_not_the_value():
    with pytest.raises(TypeError, match=r"TIMEOUT \(13\): expected an int"):
        ParallelCurl(10, {pycurl.TIMEOUT: "5"})
    with pytest.raises(TypeError) as e:
        ParallelCurl(10, {pycurl.USERPWD: ["me", "hunter2"]})
    assert "hunter2" not in str(e.value)
    with pytest.raises(ValueError, match=r"TIMEOUT_MS \(155\): must not be negative"):
        ParallelCurl(10, {pycurl.TIMEOUT_MS: -1})


def test_setoptions_applies_to_later_requests(server):
    calls = Calls()
    pc = ParallelCurl(10, {pycurl.USERAGENT: "first"})
    pc.startrequest(server.base + "/echo/1", calls, 1)
    pc.setoptions({pycurl.USERAGENT: "second"})
    assert pc.options == {pycurl.USERAGENT: "second"}
    pc.startrequest(server.base + "/echo/2", calls, 2)
    pc.finishallrequests()
    agents = {ud: dict(json.loads(c)["headers"])["User-Agent"] for c, _, _, ud in calls.calls}
    assert agents == {1: "first", 2: "second"}


def test_setoptions_of_a_fetcher_wide_option_finishes_outstanding_requests(server):
    calls = Calls()
    pc = ParallelCurl(10)
    pc.startrequest(server.base + "/echo/1", calls, 1)
    pc.setoptions({pycurl.USERAGENT: "x"})  # per request: nothing waits
    assert calls.calls == []
    pc.setoptions({pycurl.COOKIEFILE: ""})  # the fetcher's: the first request finishes
    assert [ud for *_, ud in calls.calls] == [1]
    pc.finishallrequests()


def test_setoptions_keeps_its_options_when_closing_raises_a_callbacks_exception(server):
    calls = Calls()

    def boom(content, url, ch, user_data):
        raise ValueError("callback failed")

    pc = ParallelCurl(4)
    pc.startrequest(server.base + "/echo/1", boom)
    new = {pycurl.USERAGENT: "new-agent", pycurl.COOKIEFILE: ""}  # closes the Fetcher
    with pytest.raises(ValueError, match="callback failed"):
        pc.setoptions(new)
    assert pc.options == new
    pc.startrequest(server.base + "/echo/2", calls, 2)
    pc.finishallrequests()
    [(content, *_)] = calls.calls
    assert dict(json.loads(content)["headers"])["User-Agent"] == "new-agent"
