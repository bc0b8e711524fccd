"""parafetch.Error and its subclasses: raised by start_request, handed to callbacks."""

import asyncio
import socket
import struct
import threading

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


# --- Every kind a real request can end in, from servers that get HTTP (or DNS) wrong ---
#
# `raw_server` answers each connection by the script its request path names, byte for
# byte; `nameserver` answers every DNS question NXDOMAIN. Each test checks the exception
# class, `kind`, `phase`, `url` and `attempts`, so a request that came out as another
# kind (or as a Response) fails it.
#
# QueueFull is not among them: Python's start_request from a callback hands the request
# to the Rust fetcher at once (or waits for room), never to the bounded follow-up queue
# of a Rust callback, so no request made from Python can end in it.

BOUND = 5.0  # seconds: only a bound on a broken test, never a way to synchronise


def read_head(conn):
    """The request head, read up to its blank line (a GET has no body): the client's
    request is then wholly received, so closing sends a FIN, not a RST for unread bytes."""
    head = b""
    while b"\r\n\r\n" not in head:
        data = conn.recv(4096)
        if not data:
            break
        head += data
    return head


def reply(data):
    """A script: write `data`, then close (a FIN)."""
    return lambda conn: conn.sendall(data)


def close_at_once(conn):
    """A script: close without a byte (a FIN)."""


def reset(conn):
    """A script: close with a RST (SO_LINGER on, timeout 0), without a byte."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def redirect_to(location):
    return reply(
        b"HTTP/1.1 302 Found\r\nLocation: " + location
        + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )


SCRIPTS = {
    "/empty": close_at_once,
    "/reset": reset,
    "/short-body": reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"
        + b"x" * 10
    ),
    "/cut-chunk": reply(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"64\r\n" + b"x" * 10
    ),
    "/cut-head": reply(b"HTTP/1.1 200 OK\r\nContent-Le"),
    "/garbage-status": reply(b"garbage\r\n\r\n"),
    "/bad-header": reply(b"HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 0\r\n\r\n"),
    "/bad-length": reply(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nxyz"),
    "/bad-gzip": reply(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n"
        b"Connection: close\r\n\r\nnot gzip!!"
    ),
    "/to-ftp": redirect_to(b"ftp://127.0.0.1/file"),
    "/to-unparsable": redirect_to(b"http://[::1/x"),
}


class RawServer:
    """A TCP server on 127.0.0.1 (port 0): each connection's request head is read, then
    the script of its path (SCRIPTS) writes what it will, and the connection is closed.
    `paths` lists the paths asked, in order."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.paths = []
        self.stopping = False
        self.workers = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            conn, _ = self.sock.accept()
            if self.stopping:
                conn.close()
                return
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.workers.append(worker)
            worker.start()

    def _serve(self, conn):
        with conn:
            conn.settimeout(BOUND)
            try:
                head = read_head(conn)
                path = head.split(b" ", 2)[1].decode()
                self.paths.append(path)
                SCRIPTS[path](conn)
            except (OSError, IndexError):
                pass  # a client that gave up; a test then fails on what it got

    def stop(self):
        self.stopping = True
        socket.create_connection(("127.0.0.1", self.port)).close()  # wakes accept()
        self.thread.join(BOUND)
        for worker in self.workers:
            worker.join(BOUND)
        self.sock.close()


@pytest.fixture
def raw_server():
    srv = RawServer()
    try:
        yield srv
    finally:
        srv.stop()


class Nameserver:
    """A DNS server on 127.0.0.1 (UDP, port 0) that answers every question NXDOMAIN.
    `questions` lists the (name, type) pairs asked."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.questions = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            query, peer = self.sock.recvfrom(4096)
            if self.stopping:
                return
            end = 12
            labels = []
            while end < len(query) and query[end]:
                labels.append(query[end + 1:end + 1 + query[end]].decode("ascii", "replace"))
                end += 1 + query[end]
            end += 5  # the root label, QTYPE and QCLASS
            if end > len(query):
                continue
            qtype = struct.unpack("!H", query[end - 4:end - 2])[0]
            self.questions.append((".".join(labels), qtype))
            # Same ID; QR, RD, RA, RCODE 3 (NXDOMAIN); the question and nothing else.
            answer = query[:2] + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + query[12:end]
            self.sock.sendto(answer, peer)

    def stop(self):
        self.stopping = True
        self.sock.sendto(b"stop", self.sock.getsockname())  # wakes recvfrom()
        self.thread.join(BOUND)
        self.sock.close()


@pytest.fixture
def nameserver():
    ns = Nameserver()
    try:
        yield ns
    finally:
        ns.stop()


def via_fetcher(url, **options):
    """The one result a Fetcher's callback is given for `url`, checked to be an Error."""
    got = []
    with parafetch.Fetcher(**options) as f:
        f.start_request(url, lambda result, u, cookie: got.append((result, u, cookie)), "c")
        f.finish_all_requests()
    [(e, got_url, cookie)] = got
    assert (got_url, cookie) == (url, "c")
    assert isinstance(e, parafetch.Error), e
    return e


def via_fetch_all(url, **options):
    """The error `fetch_all` yields for `url`."""
    [(got_url, e)] = list(parafetch.fetch_all([url], **options))
    assert got_url == url
    assert isinstance(e, parafetch.Error), e
    return e


def via_async(url, **options):
    """The error `AsyncFetcher.fetch` raises for `url`."""

    async def main():
        async with parafetch.AsyncFetcher(**options) as f:
            with pytest.raises(parafetch.Error) as info:
                await f.fetch(url)
            return info.value

    return asyncio.run(asyncio.wait_for(main(), BOUND))


VIAS = {"fetcher": via_fetcher, "fetch_all": via_fetch_all, "async": via_async}


def check(e, cls, kind, phase, url, attempts=1):
    assert type(e) is cls, repr(e)
    assert (e.kind, e.phase, e.url, e.attempts) == (kind, phase, url, attempts), repr(e)
    assert str(e).startswith(f"{kind} during {phase}: ")


# path, class, phase, words of the message, options
SERVER_FAULTS = [
    ("/empty", parafetch.EmptyReply, "receive_head", "empty reply", {}),
    ("/reset", parafetch.Io, "receive_head", "connection reset", {}),
    ("/short-body", parafetch.Truncated, "receive_body", "before the end", {}),
    ("/cut-chunk", parafetch.Truncated, "receive_body", "before the end", {}),
    ("/cut-head", parafetch.Truncated, "receive_head", "inside the response head", {}),
    ("/garbage-status", parafetch.Malformed, "receive_head", "malformed response head", {}),
    ("/bad-header", parafetch.Malformed, "receive_head", "malformed response head", {}),
    ("/bad-length", parafetch.Malformed, "receive_head", "invalid content-length", {}),
    # Decoding is off by default: the body would be handed over as sent.
    ("/bad-gzip", parafetch.Malformed, "receive_body", "content-encoding", {"decompress": True}),
]


@pytest.mark.parametrize("via", list(VIAS))
@pytest.mark.parametrize(
    "path, cls, phase, words, options", SERVER_FAULTS, ids=[f[0][1:] for f in SERVER_FAULTS]
)
def test_a_server_at_fault_gives_its_kind(raw_server, via, path, cls, phase, words, options):
    url = raw_server.base + path
    e = VIAS[via](url, **options)
    check(e, cls, KINDS[cls.__name__], phase, url)
    assert words in e.message
    assert raw_server.paths == [path]  # one attempt, on the wire: not refused before


@pytest.mark.parametrize("via", list(VIAS))
@pytest.mark.parametrize(
    "path, words",
    [("/to-ftp", "refusing to follow"), ("/to-unparsable", "bad location")],
    ids=["to-ftp", "to-unparsable"],
)
def test_a_redirect_that_cannot_be_followed_is_bad_redirect(raw_server, via, path, words):
    url = raw_server.base + path
    e = VIAS[via](url, follow_redirects=True)
    check(e, parafetch.BadRedirect, "bad_redirect", "redirect", url)
    assert words in e.message
    assert raw_server.paths == [path]


def test_an_unfollowed_bad_redirect_is_a_response(raw_server, results):
    f = parafetch.Fetcher()
    f.start_request(raw_server.base + "/to-ftp", results)
    f.finish_all_requests()
    r = results.calls[0][0]
    assert isinstance(r, parafetch.Response)
    assert r.status == 302


@pytest.mark.parametrize("via", list(VIAS))
def test_a_name_the_nameserver_does_not_know_is_dns(nameserver, via):
    url = "http://no-such-host.parafetch.test/x"
    # No search list: the name is asked as it is, of our nameserver only.
    e = VIAS[via](url, dns_servers=[nameserver.address], dns_search=([], 1))
    check(e, parafetch.Dns, "dns", "resolve", url)
    assert "NXDOMAIN" in e.message
    assert {name for name, _ in nameserver.questions} == {"no-such-host.parafetch.test"}


def test_no_nameserver_to_ask_is_dns():
    url = "http://no-such-host.parafetch.test/x"
    e = via_fetcher(url, dns_servers=[], dns_search=([], 1))
    check(e, parafetch.Dns, "dns", "resolve", url)
    assert "no nameserver" in e.message
