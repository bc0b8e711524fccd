"""parafetch.Response, Headers and Timings."""

import pytest

import parafetch


def fetch_one(url, **options):
    got = []
    f = parafetch.Fetcher(**options)
    f.start_request(url, lambda r, u, c: got.append(r))
    f.finish_all_requests()
    assert len(got) == 1
    return got[0]


def test_response_fields(server):
    r = fetch_one(server.base + "/multi")
    assert r.status == 200
    assert r.reason == "OK"
    assert r.ok
    assert r.http_version == "HTTP/1.1"
    assert isinstance(r.body, bytes)
    assert r.body == b'{"a": [1, 2], "s": "caf\\u00e9"}'
    assert r.url == server.base + "/multi"
    assert r.redirects == 0
    assert r.attempts == 1
    assert r.reused_connection is False
    assert r.remote_addr == ("127.0.0.1", server.server_address[1])
    assert r.tls is None
    assert r.json() == {"a": [1, 2], "s": "café"}
    assert r.text().startswith('{"a"')


def test_headers_are_a_case_insensitive_multimap(server):
    h = fetch_one(server.base + "/multi").headers
    assert isinstance(h, parafetch.Headers)
    assert h["x-multi"] == "one"
    assert h["X-MULTI"] == "one"
    assert h.get_all("X-Multi") == ["one", "two"]
    assert h.get("content-type") == "application/json; charset=utf-8"
    assert h.get("absent") is None
    assert h.get("absent", "dflt") == "dflt"
    assert h.get_all("absent") == []
    assert "X-MULTI" in h and "absent" not in h
    with pytest.raises(KeyError):
        h["absent"]
    assert len(h) == len(h.items()) == len(list(h))
    assert [k.lower() for k in h].count("x-multi") == 2
    assert ("X-Multi", "one") in h.items() and ("x-multi", "two") in h.items()
    assert h.keys() == list(h)


def test_reprs_hide_secrets(server):
    r = fetch_one(server.base + "/multi")
    assert "s3cret" not in repr(r.headers)
    assert "<redacted>" in repr(r.headers)
    assert "one" in repr(r.headers)
    assert repr(r).startswith("<Response [200 OK] http://127.0.0.1:")
    # A URL's password never shows in a repr.
    r = fetch_one(f"http://user:pw-secret@127.0.0.1:{server.server_address[1]}/echo")
    assert "pw-secret" not in repr(r)
    assert "***" in repr(r)
    # Nor a user name without a password: often a token.
    r = fetch_one(f"http://ghp_TOKENabc@127.0.0.1:{server.server_address[1]}/echo")
    assert "ghp_TOKENabc" not in repr(r)
    assert f"http://***@127.0.0.1:{server.server_address[1]}/echo" in repr(r)


def test_credential_headers_are_redacted(server):
    h = fetch_one(server.base + "/secrets").headers
    assert h["x-api-key"] == "k-s3cret"  # readable, never shown
    assert "k-s3cret" not in repr(h) and "t-s3cret" not in repr(h)
    assert "X-Plain" in repr(h)


def test_text_follows_the_charset(server):
    r = fetch_one(server.base + "/latin1")
    assert r.text() == "café"
    assert r.text("utf-8") == "caf\ufffd"
    with pytest.raises(UnicodeDecodeError):
        r.text("utf-8", "strict")


def test_redirects_and_final_url(server):
    r = fetch_one(server.base + "/redirect/3", follow_redirects=True)
    assert r.status == 200
    assert r.body == b"arrived"
    assert r.redirects == 3
    assert r.url == server.base + "/redirect/0"


def test_timings(server):
    t = fetch_one(server.base + "/echo").timings
    assert isinstance(t, parafetch.Timings)
    d = t.as_dict()
    assert set(d) == {"resolve", "connect", "proxy", "tls", "first_byte", "total"}
    assert all(isinstance(v, float) and v >= 0 for v in d.values())
    assert t.total >= t.first_byte > 0
    assert t.total == d["total"]
    assert repr(t).startswith("Timings(resolve=")


def test_decompress(server):
    plain = fetch_one(server.base + "/gzip")
    assert plain.headers["content-encoding"] == "gzip"
    assert plain.body != b"unzipped " * 100
    r = fetch_one(server.base + "/gzip", decompress=True)
    assert r.body == b"unzipped " * 100
