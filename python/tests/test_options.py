"""Fetcher(**options): the Rust builder's options under their names."""

import json

import pytest

import parafetch


def echo(url, **options):
    got = []
    with parafetch.Fetcher(**options) as f:
        f.start_request(url, lambda r, u, c: got.append(r))
    (r,) = got
    assert isinstance(r, parafetch.Response), r
    return json.loads(r.body)


def test_every_option_is_accepted(server):
    f = parafetch.Fetcher(
        5,
        per_host=2,
        host_delay=0.001,
        host_rate=(1000.0, 10),
        rate=1000,
        timeout=10,
        connect_timeout=2.5,
        idle_timeout=5,
        follow_redirects=True,
        max_redirects=3,
        decompress=True,
        obey_robots=False,
        user_agent="tester/1",
        headers={"X-A": "1"},
        retries=1,
        retry_backoff=0.01,
        max_body=10_000_000,
        max_head=65536,
        max_headers=100,
        backlog=2,
        cookies=True,
        keep_alive=True,
        allow_https_downgrade=False,
        host_backoff=True,
        no_proxy="localhost",
        pool_idle_timeout=30,
        danger_accept_invalid_certs=False,
    )
    got = []
    for i in range(4):
        f.start_request(f"{server.base}/echo/{i}", lambda r, u, c: got.append(r.status))
    f.finish_all_requests()
    assert got == [200] * 4
    # AutoThrottle starts at a 5 s delay per host: one request, which starts at once.
    f = parafetch.Fetcher(host_rate=50, timeout=None, auto_throttle=2.0)
    f.start_request(server.base + "/echo", print)
    f.finish_all_requests()


def test_max_queued_followups_is_refused_with_why():
    # Rust callbacks queue follow-ups in a bounded queue; Python ones call start_request.
    with pytest.raises(TypeError, match="max_queued_followups' does not apply in Python"):
        parafetch.Fetcher(max_queued_followups=10)


def test_unknown_option_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="unknown option 'max_inflight'"):
        parafetch.Fetcher(max_inflight=3)
    with pytest.raises(TypeError, match="unknown option 'nope'"):
        list(parafetch.fetch_all([], nope=1))


@pytest.mark.parametrize(
    "option, value, error, words",
    [
        ("per_host", "2", TypeError, "option per_host: expected an int, got str"),
        ("per_host", 0, ValueError, "option per_host: must be at least 1"),
        ("retries", -1, ValueError, "option retries"),
        ("timeout", "5", TypeError, "option timeout: expected seconds"),
        ("timeout", -1.0, ValueError, "option timeout"),
        ("host_delay", float("nan"), ValueError, "option host_delay"),
        ("follow_redirects", 1, TypeError, "option follow_redirects: expected a bool"),
        ("headers", 5, TypeError, "option headers"),
        ("user_agent", 5, TypeError, "option user_agent: expected a str"),
        ("host_rate", "fast", TypeError, "option host_rate"),
        ("tls_roots_pem", 3, TypeError, "option tls_roots_pem"),
    ],
)
def test_bad_values_name_the_option(option, value, error, words):
    with pytest.raises(error, match=words):
        parafetch.Fetcher(**{option: value})


def test_rejected_by_the_engine_keeps_its_kind():
    with pytest.raises(parafetch.InvalidRequest, match="host_rate"):
        parafetch.Fetcher(host_rate=-1.0)
    with pytest.raises(parafetch.Tls):
        parafetch.Fetcher(tls_roots_pem="not a certificate")


def test_user_agent_and_headers_are_sent(server):
    doc = echo(server.base + "/echo", user_agent="parafetch-test/9", headers=[("X-Team", "py")])
    headers = dict(doc["headers"])
    assert headers["User-Agent"] == "parafetch-test/9"
    assert headers["X-Team"] == "py"


def test_cookies_are_kept_between_requests(server):
    got = []
    f = parafetch.Fetcher(cookies=True)
    f.start_request(server.base + "/setcookie", lambda r, u, c: got.append(r))
    f.finish_all_requests()
    f.start_request(server.base + "/echo", lambda r, u, c: got.append(r))
    f.finish_all_requests()
    headers = dict(json.loads(got[1].body)["headers"])
    assert headers["Cookie"] == "session=s3cret"
    # Off by default.
    doc_plain = []
    g = parafetch.Fetcher()
    g.start_request(server.base + "/setcookie", print)
    g.finish_all_requests()
    g.start_request(server.base + "/echo", lambda r, u, c: doc_plain.append(r))
    g.finish_all_requests()
    assert "Cookie" not in dict(json.loads(doc_plain[0].body)["headers"])


def test_requests_go_through_the_proxy(server):
    # http.server answers a proxy's absolute-form request line like any other.
    doc = echo("http://example.invalid/echo/via-proxy", proxy=server.base)
    assert doc["path"] == "http://example.invalid/echo/via-proxy"


def test_a_proxy_password_never_shows_in_an_error(closed_port):
    got = []
    f = parafetch.Fetcher(proxy=f"http://user:hunter2@127.0.0.1:{closed_port}")
    f.start_request("http://example.invalid/", lambda r, u, c: got.append(r))
    f.finish_all_requests()
    (e,) = got
    assert isinstance(e, parafetch.Error), e
    assert "hunter2" not in str(e) and "hunter2" not in repr(e)
    assert "hunter2" not in repr(f)


@pytest.mark.parametrize("threads", [1, 2])
def test_per_host_caps_requests_at_the_server(server, threads):
    """Six requests that each wait (at the server) for a second one: per_host=2 lets
    exactly two in at once."""
    server.meet, server.meet_total = 2, 6
    got = []
    f = parafetch.Fetcher(10, per_host=2, threads=threads)
    for i in range(6):
        f.start_request(server.base + "/meet", lambda r, u, c: got.append(r.status))
    f.finish_all_requests()
    assert got == [200] * 6
    assert server.most_active == 2


def test_max_in_flight_caps_requests_at_the_server(server):
    server.meet, server.meet_total = 3, 9
    f = parafetch.Fetcher(3)
    for i in range(9):
        f.start_request(server.base + "/meet", print)
    f.finish_all_requests()
    assert server.most_active == 3


@pytest.mark.parametrize("option", [{"host_delay": 60.0}, {"rate": 1 / 60}])
def test_host_delay_and_rate_hold_the_next_request_back(server, option):
    """With a minute between starts, the second request never reaches the server before
    the first one's callback aborts the fetcher."""
    seen = []

    def on_done(result, url, cookie):
        seen.append((cookie, type(result), server.hits))
        if cookie == 1:
            f.abort()

    f = parafetch.Fetcher(10, **option)
    f.start_request(server.base + "/echo/1", on_done, 1)
    f.start_request(server.base + "/echo/2", on_done, 2)
    f.finish_all_requests()
    assert seen == [(1, parafetch.Response, 1), (2, parafetch.ShutDown, 1)]
    assert server.hits == 1


def test_retries_retry_at_the_server(server):
    got = {}
    f = parafetch.Fetcher(retries=2, retry_backoff=0.001)
    f.start_request(server.base + "/flaky/a/2", lambda r, u, c: got.update(a=r))
    f.start_request(server.base + "/flaky/b/3", lambda r, u, c: got.update(b=r))
    f.finish_all_requests()
    assert (got["a"].status, got["a"].attempts) == (200, 3)
    assert (got["b"].status, got["b"].attempts) == (503, 3)
    assert server.flaky == {"a": 3, "b": 3}


def test_proxy_from_env(server, closed_port, monkeypatch):
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port}")
    got = []
    f = parafetch.Fetcher(proxy_from_env=False)
    f.start_request(server.base + "/echo", lambda r, u, c: got.append(r))
    f.finish_all_requests()
    g = parafetch.Fetcher()  # reads the environment by default
    g.start_request(server.base + "/echo", lambda r, u, c: got.append(r))
    g.finish_all_requests()
    direct, proxied = got
    assert direct.status == 200
    assert isinstance(proxied, (parafetch.Proxy, parafetch.Connect)), proxied


def test_resolve_pins_a_name(server):
    port = server.server_address[1]
    doc = echo(f"http://pinned.invalid:{port}/echo", resolve={f"pinned.invalid:{port}": "127.0.0.1"})
    assert dict(doc["headers"])["Host"] == f"pinned.invalid:{port}"
    with pytest.raises(ValueError, match="option resolve"):
        parafetch.Fetcher(resolve={"no-port": "127.0.0.1"})
    with pytest.raises(ValueError, match="option resolve"):
        parafetch.Fetcher(resolve={"a:1": "not an ip"})


def test_capture_wire_keeps_the_exchange_and_redacts(server):
    got = []
    f = parafetch.Fetcher(capture_wire=True)
    f.start_request(server.base + "/echo", lambda r, u, c: got.append(r),
                    headers={"Authorization": "Bearer tok-s3cret"})
    f.finish_all_requests()
    wire = got[0].wire
    assert wire["request"].startswith(b"GET /echo HTTP/1.1\r\n")
    assert b"tok-s3cret" not in wire["request"]
    assert wire["response"].startswith(b"HTTP/1.1 200")
    assert wire["sent_at"] > 0
    plain = []
    g = parafetch.Fetcher()
    g.start_request(server.base + "/echo", lambda r, u, c: plain.append(r))
    g.finish_all_requests()
    assert plain[0].wire is None


def test_the_jar_can_be_read_back(server):
    f = parafetch.Fetcher(cookies=True)
    assert f.cookies() == []
    f.start_request(server.base + "/setcookie", print)
    f.finish_all_requests()
    assert f.cookies() == [("127.0.0.1", "/", "session", "s3cret")]
    assert parafetch.Fetcher().cookies() == []


def test_more_options_are_accepted():
    parafetch.Fetcher(
        politeness_key="domain",
        proxy_from_env=False,
        proxy_tunnel=True,
        pool_max_idle=(4, 64),
        robots_cache_ttl=(3600, 60),
        dns_servers=["127.0.0.1", "127.0.0.1:5353", "[::1]:53"],
        dns_search=(["example.com"], 1),
        dns_timeout=(1.5, 2),
        dns_cache_ttl=(1, 600),
        tls_default_roots=True,
        capture_secrets=False,
        auto_throttle_delays=(1, 30),
        proxy_default_roots=True,
        proxy_danger_accept_invalid_certs=False,
        system_resolver=1,
    )
    parafetch.Fetcher(proxy=["http://127.0.0.1:1", "http://127.0.0.1:2"],
                      proxy_rotation="sticky_per_host")
    with pytest.raises(ValueError, match="politeness_key"):
        parafetch.Fetcher(politeness_key="street")
    with pytest.raises(TypeError, match="pool_max_idle"):
        parafetch.Fetcher(pool_max_idle=4)
    with pytest.raises(ValueError, match="proxy_rotation"):
        parafetch.Fetcher(proxy_rotation="random")


def test_a_request_timeout_of_none_disables_the_fetchers(server):
    """The fetcher's 0.2 s timeout ends the second request; its callback releases the
    server, and the first (timeout=None) is answered."""
    got = {}

    def on_done(result, url, cookie):
        got[cookie] = result
        if cookie == "default":
            server.release.set()

    f = parafetch.Fetcher(timeout=0.2)
    f.start_request(server.base + "/hold", on_done, "none", timeout=None)
    f.start_request(server.base + "/hold", on_done, "default")
    f.finish_all_requests()
    assert isinstance(got["default"], parafetch.Timeout)
    assert got["none"].status == 200
    with pytest.raises(TypeError, match="unexpected keyword argument 'timeuot'"):
        f.start_request(server.base, print, timeuot=1)
