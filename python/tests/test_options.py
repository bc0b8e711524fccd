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
        max_queued_followups=1000,
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


def test_reprs_never_show_a_proxy_password(server):
    f = parafetch.Fetcher(proxy="http://user:hunter2@127.0.0.1:9")
    assert "hunter2" not in repr(f)
