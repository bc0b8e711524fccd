"""Fetcher and fetch_all against a server no one here wrote: the system nginx (conftest.py's
`nginx` fixture, nginx.py). Connections are counted on nginx's side, from its access log
(`$connection $connection_requests`), not from what parafetch says of itself."""

import collections
import gzip

import pytest

import parafetch


def fetch_each(paths_or_urls, max_in_flight=4, **request):
    """Fetches each URL through one Fetcher; {cookie (the URL): result}, after checking
    there was exactly one callback per request."""
    calls = []
    with parafetch.Fetcher(max_in_flight) as f:
        for url in paths_or_urls:
            f.start_request(url, lambda r, u, c: calls.append((c, r)), url, **request)
    assert sorted(c for c, _ in calls) == sorted(paths_or_urls)
    return dict(calls)


def check_static(nginx, path, r, port=None):
    """`r` is nginx's 200 answer for the file at `path`, head and body."""
    assert isinstance(r, parafetch.Response), r
    body = nginx.files[path]
    assert (r.status, r.reason, r.http_version) == (200, "OK", "HTTP/1.1")
    assert r.ok
    assert r.body == body
    assert r.headers["Content-Length"] == str(len(body))
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["server"].startswith("nginx/")
    assert r.headers["ETag"].startswith('"')
    assert "last-modified" in r.headers
    assert r.remote_addr == ("127.0.0.1", port or nginx.http_port)


def test_fetcher_gets_static_files_with_their_headers(nginx):
    got = fetch_each([nginx.url("/1k"), nginx.url("/64k")])
    check_static(nginx, "/1k", got[nginx.url("/1k")])
    check_static(nginx, "/64k", got[nginx.url("/64k")])
    assert got[nginx.url("/64k")].url == nginx.url("/64k")


def test_fetch_all_gets_static_files_with_their_headers(nginx):
    urls = [nginx.url(p) for p in ("/1k", "/64k", "/1k?again", "/64k?again")]
    got = list(parafetch.fetch_all(urls, max_in_flight=2))
    assert sorted(u for u, _ in got) == sorted(urls)
    for url, r in got:
        check_static(nginx, url.split("?")[0][len(nginx.base) :], r)


def test_fetcher_reuses_kept_alive_connections(nginx):
    mark = nginx.log_mark()
    urls = [nginx.url(f"/1k?keepalive={i}") for i in range(200)]
    got = fetch_each(urls, max_in_flight=4)
    log = nginx.log_since(mark, 200)
    assert sorted(e.uri for e in log) == sorted(u[len(nginx.base) :] for u in urls)
    connections = {e.connection for e in log}
    # At most one connection per request in flight, each used for many requests.
    assert 1 <= len(connections) <= 4
    assert sum(e.requests == 1 for e in log) == len(connections)
    assert max(e.requests for e in log) >= 200 // 4
    # parafetch's own account agrees: only each connection's first request was not reused.
    assert sum(not r.reused_connection for r in got.values()) == len(connections)
    for r in got.values():
        assert r.body == nginx.files["/1k"]


def test_fetch_all_reuses_kept_alive_connections(nginx):
    mark = nginx.log_mark()
    urls = [nginx.url(f"/1k?fetch_all_keepalive={i}") for i in range(100)]
    got = dict(parafetch.fetch_all(urls, max_in_flight=3))
    assert sorted(got) == sorted(urls)
    log = nginx.log_since(mark, 100)
    assert len(log) == 100
    connections = {e.connection for e in log}
    assert 1 <= len(connections) <= 3
    assert sum(not r.reused_connection for r in got.values()) == len(connections)


def test_a_server_that_closes_costs_a_connection_per_request(nginx):
    # The other side of the reuse tests: the listener with keepalive_timeout 0 answers
    # `Connection: close`, and no connection may be reused.
    mark = nginx.log_mark()
    urls = [nginx.close_base + f"/1k?close={i}" for i in range(20)]
    got = fetch_each(urls, max_in_flight=4)
    log = nginx.log_since(mark, 20)
    assert len(log) == 20
    assert len({e.connection for e in log}) == 20
    assert {e.requests for e in log} == {1}
    for r in got.values():
        check_static(nginx, "/1k", r, port=nginx.close_port)
        assert r.headers["connection"] == "close"
        assert not r.reused_connection


def test_head_has_no_body_and_the_connection_goes_on(nginx):
    # One at a time: the GET after the HEAD must find the connection in step, which it
    # does only if the HEAD's Content-Length was not read as a body to wait for.
    mark = nginx.log_mark()
    url = nginx.url("/64k?head")
    calls = []
    with parafetch.Fetcher(1) as f:
        f.start_request(url, lambda r, u, c: calls.append((c, r)), "HEAD", method="HEAD")
        f.start_request(url, lambda r, u, c: calls.append((c, r)), "GET")
    (c1, head), (c2, get) = calls
    assert (c1, c2) == ("HEAD", "GET")
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == str(64 * 1024)
    assert get.body == nginx.files["/64k"]
    assert get.reused_connection
    first, second = nginx.log_since(mark, 2)
    assert (first.method, second.method) == ("HEAD", "GET")
    assert first.connection == second.connection
    assert (first.requests, second.requests) == (1, 2)


def test_a_missing_file_is_a_404_response_not_an_error(nginx):
    url = nginx.url("/no-such-file")
    r = fetch_each([url])[url]
    assert isinstance(r, parafetch.Response), r
    assert r.status == 404
    assert not r.ok
    assert b"404 Not Found" in r.body
    assert r.headers["content-type"] == "text/html"
    assert r.headers["content-length"] == str(len(r.body))


def test_gzip_is_decoded_when_asked_and_kept_when_not(nginx):
    text = nginx.files["/text.txt"]
    url = nginx.url("/text.txt")
    plain = fetch_each([url])[url]
    # Not asked for: parafetch sends no Accept-Encoding, so nginx does not compress.
    assert plain.body == text
    assert "content-encoding" not in plain.headers
    raw = fetch_each([url], headers={"Accept-Encoding": "gzip"})[url]
    assert raw.headers["content-encoding"] == "gzip"
    assert "content-length" not in raw.headers  # nginx streams it chunked
    assert raw.headers["transfer-encoding"] == "chunked"
    assert len(raw.body) < len(text) // 4
    assert gzip.decompress(raw.body) == text
    decoded = fetch_each([url], decompress=True)[url]
    assert decoded.body == text


def test_fetch_all_decompress_option(nginx):
    url = nginx.url("/text.txt")
    [(got_url, r)] = parafetch.fetch_all([url], decompress=True)
    assert got_url == url
    assert r.body == nginx.files["/text.txt"]


def plan(n):
    """n requests of several kinds: (path, method, expected status, expected body)."""
    kinds = [
        ("/1k", "GET", 200),
        ("/64k", "GET", 200),
        ("/no-such-file", "GET", 404),
        ("/text.txt", "GET", 200),
        ("/64k", "HEAD", 200),
    ]
    return [kinds[i % len(kinds)] for i in range(n)]


def test_exactly_one_callback_per_request_for_a_thousand(nginx):
    requests = plan(1000)
    calls = collections.Counter()
    wrong = []

    def on_done(result, url, i):
        calls[i] += 1
        path, method, status = requests[i]
        if not isinstance(result, parafetch.Response) or result.status != status:
            wrong.append((i, result))
        elif status == 200:
            want = b"" if method == "HEAD" else nginx.files[path]
            if result.body != want:
                wrong.append((i, len(result.body)))

    mark = nginx.log_mark()
    with parafetch.Fetcher(max_in_flight=20) as f:
        for i, (path, method, _) in enumerate(requests):
            f.start_request(nginx.url(f"{path}?one={i}"), on_done, i, method=method)
            assert f.pending <= 20
    assert wrong == []
    assert calls == collections.Counter(range(1000))
    # And the server saw each request once: no request was sent twice.
    log = nginx.log_since(mark, 1000)
    assert collections.Counter(e.uri.rsplit("=", 1)[1] for e in log) == collections.Counter(
        str(i) for i in range(1000)
    )


def test_fetch_all_yields_each_of_a_thousand_once(nginx):
    requests = plan(1000)
    urls = [nginx.url(f"{path}?each={i}") for i, (path, method, _) in enumerate(requests)]
    # fetch_all only GETs: the HEAD rows are GETs here.
    seen = collections.Counter()
    for url, r in parafetch.fetch_all(urls, max_in_flight=20):
        seen[url] += 1
        i = int(url.rsplit("=", 1)[1])
        path, _, status = requests[i]
        assert isinstance(r, parafetch.Response), r
        assert r.status == status
        if status == 200:
            assert r.body == nginx.files[path]
    assert seen == collections.Counter(urls)


@pytest.mark.parametrize("n", [1, 20])
def test_every_request_on_one_connection_at_n_1_and_bounded_at_n_20(nginx, n):
    mark = nginx.log_mark()
    urls = [nginx.url(f"/1k?n{n}={i}") for i in range(300)]
    fetch_each(urls, max_in_flight=n)
    log = nginx.log_since(mark, 300)
    assert len(log) == 300
    assert 1 <= len({e.connection for e in log}) <= n
