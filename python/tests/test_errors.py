"""parafetch.Error and its subclasses: raised by start_request, handed to callbacks."""

import pytest

import parafetch

KINDS = {
    "InvalidUrl": "invalid_url",
    "UnsupportedScheme": "unsupported_scheme",
    "InvalidRequest": "invalid_request",
    "Dns": "dns",
    "Connect": "connect",
    "Tls": "tls",
    "Timeout": "timeout",
    "Malformed": "malformed",
    "Truncated": "truncated",
    "EmptyReply": "empty_reply",
    "TooLarge": "too_large",
    "TooManyRedirects": "too_many_redirects",
    "BadRedirect": "bad_redirect",
    "Io": "io",
    "Proxy": "proxy",
    "QueueFull": "queue_full",
    "Robots": "robots",
    "ShutDown": "shut_down",
}


def test_one_subclass_per_kind():
    assert issubclass(parafetch.Error, Exception)
    assert parafetch.Error.kind is None
    for name, kind in KINDS.items():
        cls = getattr(parafetch, name)
        assert issubclass(cls, parafetch.Error), name
        assert cls.kind == kind
        assert cls.__module__ == "parafetch"
        assert name in parafetch.__all__


def test_malformed_url_raises_invalid_url():
    f = parafetch.Fetcher()
    with pytest.raises(parafetch.InvalidUrl) as info:
        f.start_request("not a url", print, 1)
    e = info.value
    assert (e.kind, e.phase, e.url, e.attempts) == ("invalid_url", "prepare", "not a url", 0)
    assert "is not a valid url" in e.message
    assert str(e).startswith("invalid_url during prepare:")
    with pytest.raises(parafetch.InvalidUrl):
        f.start_request("http://", print)
    assert f.pending == 0


def test_other_scheme_raises_unsupported_scheme():
    with pytest.raises(parafetch.UnsupportedScheme) as info:
        parafetch.Fetcher().start_request("ftp://example.com/x", print)
    assert info.value.kind == "unsupported_scheme"


def test_connection_refused_is_connect(closed_port, results):
    f = parafetch.Fetcher(proxy_from_env=False)
    url = f"http://127.0.0.1:{closed_port}/x"
    f.start_request(url, results)
    f.finish_all_requests()
    e, got_url, _ = results.calls[0]
    assert isinstance(e, parafetch.Connect)
    assert (e.kind, e.phase, e.url) == ("connect", "connect", url)
    assert e.attempts == 1


def test_held_request_times_out(server, results):
    f = parafetch.Fetcher(timeout=0.2)
    f.start_request(server.base + "/hold", results)
    f.finish_all_requests()
    e = results.calls[0][0]
    assert isinstance(e, parafetch.Timeout)
    assert e.kind == "timeout"
    assert e.phase == "receive_head"


def test_too_large_and_too_many_redirects(server, results):
    f = parafetch.Fetcher(max_body=1000, follow_redirects=True, max_redirects=1)
    f.start_request(server.base + "/big", results, "big")
    f.start_request(server.base + "/redirect/3", results, "loop")
    f.finish_all_requests()
    got = results.by_cookie()
    assert isinstance(got["big"], parafetch.TooLarge)
    assert isinstance(got["loop"], parafetch.TooManyRedirects)
    assert got["loop"].phase == "redirect"


def test_robots_disallow(server, results):
    f = parafetch.Fetcher(obey_robots=True)
    f.start_request(server.base + "/private/page", results, "private")
    f.start_request(server.base + "/echo/public", results, "public")
    f.finish_all_requests()
    got = results.by_cookie()
    assert isinstance(got["private"], parafetch.Robots)
    assert got["public"].status == 200


def test_malformed_proxy_is_refused_at_construction():
    with pytest.raises(parafetch.Proxy) as info:
        parafetch.Fetcher(proxy="http://user:hunter2@")
    assert "hunter2" not in str(info.value)


def test_an_http_404_is_a_response(server, results):
    f = parafetch.Fetcher()
    f.start_request(server.base + "/nowhere", results)
    f.finish_all_requests()
    r = results.calls[0][0]
    assert isinstance(r, parafetch.Response)
    assert r.status == 404 and not r.ok


def test_timeout_and_connect_are_builtin_errors_too():
    assert issubclass(parafetch.Timeout, TimeoutError)
    assert issubclass(parafetch.Connect, ConnectionError)
    assert parafetch.Timeout.__module__ == parafetch.Connect.__module__ == "parafetch"


def test_errors_pickle_with_their_attributes(closed_port, results):
    import pickle

    f = parafetch.Fetcher()
    f.start_request(f"http://127.0.0.1:{closed_port}/x", results)
    f.finish_all_requests()
    e = results.calls[0][0]
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is parafetch.Connect
    assert isinstance(back, ConnectionError)
    assert (back.kind, back.phase, back.url, back.attempts, back.message) == (
        e.kind, e.phase, e.url, e.attempts, e.message)
    assert str(back) == str(e)


def test_a_url_password_never_shows_in_an_error():
    f = parafetch.Fetcher()
    with pytest.raises(parafetch.InvalidUrl) as info:
        f.start_request("http://user:pw-s3cret@", print)
    e = info.value
    assert "pw-s3cret" not in str(e) and "pw-s3cret" not in repr(e)
    assert "pw-s3cret" not in e.url and "***" in e.url
    with pytest.raises(parafetch.InvalidRequest) as info:
        f.start_request("http://user:pw-s3cret@127.0.0.1:9/", print, method="BAD METHOD")
    assert "pw-s3cret" not in info.value.url


def test_an_unparsable_urls_redaction_is_the_messages():
    """`url` keeps the scheme and user the message shows, only the password hidden."""
    with pytest.raises(parafetch.InvalidUrl) as info:
        parafetch.Fetcher().start_request("http://u:pw-s3cret@exa mple.com/", print)
    e = info.value
    assert e.url == "http://u:***@exa mple.com/"
    assert f'"{e.url}" is not a valid url' in str(e)


def test_a_token_as_the_user_name_never_shows(closed_port, results):
    token = "ghp_TOKENabc"
    f = parafetch.Fetcher()
    with pytest.raises(parafetch.InvalidUrl) as info:  # does not parse
        f.start_request(f"http://{token}@exa mple.com/", print)
    e = info.value
    assert e.url == "http://***@exa mple.com/"
    for shown in (str(e), repr(e), e.message, e.url):
        assert token not in shown, shown
    f.start_request(f"http://{token}@127.0.0.1:{closed_port}/", results)  # parses
    f.finish_all_requests()
    [(e, _, _)] = results.calls
    assert isinstance(e, parafetch.Connect)
    assert e.url == f"http://***@127.0.0.1:{closed_port}/"
    for shown in (str(e), repr(e), e.message, e.url):
        assert token not in shown, shown


def test_a_bad_header_raises_before_waiting_for_room(server):
    """The fetcher is full (a held request): a bad header still raises at once."""
    f = parafetch.Fetcher(1)
    f.start_request(server.base + "/hold", print)
    with pytest.raises(parafetch.InvalidRequest, match="header name"):
        f.start_request(server.base + "/echo", print, headers={"bad name": "x"})
    with pytest.raises(parafetch.InvalidRequest, match="header value"):
        f.start_request(server.base + "/echo", print, headers={"X-A": "a\r\nb"})
    with pytest.raises(parafetch.InvalidUrl):
        f.start_request("not a url", print)
    assert f.pending == 1
    f.abort()


def test_the_type_stubs_name_what_the_package_exports():
    import ast
    import pathlib

    here = pathlib.Path(parafetch.__file__).parent
    assert (here / "py.typed").exists()
    stubbed = set()
    for stub in ("_native.pyi", "_aio.pyi"):
        tree = ast.parse((here / stub).read_text())
        kinds = (ast.ClassDef, ast.FunctionDef)
        stubbed |= {n.name for n in tree.body if isinstance(n, kinds)}
        stubbed |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
    assert set(parafetch.__all__) <= stubbed
