"""pyparallelcurl's own example script, examples/pyparallelcurl_test.py (its test.py, ported
by its imports and what Python 3 forces), run unchanged against a stand-in of the API it
calls.

The script still asks http://ajax.googleapis.com for each search. It runs in a subprocess
whose `http_proxy` names a stand-in on 127.0.0.1: parafetch reads the variable as curl
does, so the script's requests reach the stand-in in absolute form
(`GET http://ajax.googleapis.com/ajax/services/search/web?... HTTP/1.1`), as a proxy
receives them, and nothing resolves or reaches Google. The stand-in answers with the JSON
that Google's AJAX Search API sent, and takes three terms down the script's three failure
paths: a broken response (content None), a 503, and a response without results.
"""

import ast
import collections
import hashlib
import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading
import urllib.parse

import pytest

EXAMPLE = pathlib.Path(__file__).parent.parent / "examples" / "pyparallelcurl_test.py"

# What the original script asks for, verbatim: the test checks it still does.
SEARCH_URL_PREFIX = "http://ajax.googleapis.com/ajax/services/search/web?v=1.0&rsz=large&filter=0"
SEARCH_HOST = "ajax.googleapis.com"
SEARCH_PATH = "/ajax/services/search/web"
USER_AGENT = "Parallel Curl test script"  # the script's USERAGENT option

RESULTS_PER_TERM = 8  # rsz=large: eight results a page
BROKEN_TERM = "Anna"  # the response breaks off: the callback gets content None
FAILING_TERM = "Mary"  # 503
EMPTY_TERM = "Emma"  # responseData without results

PROXY_VARIABLES = (
    "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
    "no_proxy", "NO_PROXY",
)


def titles(term):
    """The result titles the stand-in gives for `term`, as the API wrote them (HTML, with
    non-ASCII text sent as JSON escapes)."""
    return [f"<b>{term}</b> result {i} \u2013 caf\u00e9" for i in range(1, RESULTS_PER_TERM + 1)]


class StandInHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        with server.cond:
            server.requests.append((self.path, self.headers.get("Host"),
                                    self.headers.get("User-Agent")))

        target = urllib.parse.urlsplit(self.path)
        if (target.scheme, target.netloc, target.path) != ("http", SEARCH_HOST, SEARCH_PATH):
            return self._send(404, b"not the search API")
        term = urllib.parse.parse_qs(target.query).get("q", [""])[0]
        if term == BROKEN_TERM:
            # Promises more than it sends, then closes: a failed transfer.
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript; charset=utf-8")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"responseData": {"resu')
            self.close_connection = True
            return None
        if term == FAILING_TERM:
            return self._send(503, b"", "text/html")
        if term == EMPTY_TERM:
            doc = {"responseData": {"cursor": {}}, "responseDetails": None,
                   "responseStatus": 200}
        else:
            results = [
                {"GsearchResultClass": "GwebSearch", "title": title,
                 "url": f"http://example.invalid/{term}/{i}", "content": f"{term} is a name"}
                for i, title in enumerate(titles(term), 1)
            ]
            doc = {"responseData": {"results": results, "cursor": {}},
                   "responseDetails": None, "responseStatus": 200}
        return self._send(200, json.dumps(doc).encode("ascii"))

    def _send(self, status, body, content_type="text/javascript; charset=utf-8"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class StandIn(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self):
        super().__init__(("127.0.0.1", 0), StandInHandler)
        self.cond = threading.Condition()
        self.requests = []  # (request target, Host, User-Agent)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@pytest.fixture
def stand_in():
    srv = StandIn()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(20)


def script_terms():
    """The script's terms_list, read from its source."""
    tree = ast.parse(EXAMPLE.read_text())
    return next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "terms_list"
    )


def search_url(term):
    return SEARCH_URL_PREFIX + "&" + urllib.parse.urlencode({"q": term})


@pytest.mark.parametrize(
    "args, max_requests", [([], 10), (["3"], 3)], ids=["default", "argv-3"]
)
def test_pyparallelcurl_example_script_runs_unchanged_against_a_stand_in(
    stand_in, args, max_requests
):
    terms = script_terms()
    assert len(terms) == len(set(terms)) == 100
    assert terms[:2] == ["John", "Mary"] and terms[-1] == "Dora"
    assert {BROKEN_TERM, FAILING_TERM, EMPTY_TERM} <= set(terms)

    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env.pop("PYTHONPATH", None)
    env["http_proxy"] = "http://127.0.0.1:%d" % stand_in.server_address[1]
    env["PYTHONIOENCODING"] = "utf-8"
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True, encoding="utf-8", timeout=60, env=env,
        cwd=EXAMPLE.parent,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""

    # What the script prints for each term, as its callback writes it; the terms finish
    # in any order, each one's lines together.
    expected = {}
    for term in terms:
        search = '"' + term + ' is a"'
        if term == BROKEN_TERM:
            lines = ["Fetch error for " + search_url(term)]
        elif term == FAILING_TERM:
            lines = ["Fetch error 503 for '" + search_url(term) + "'"]
        elif term == EMPTY_TERM:
            lines = ["No results found for '" + search + "'"]
        else:
            lines = ["********", search + ":", "********", *titles(term)]
        expected[lines[0] if lines[0] != "********" else lines[1]] = lines
    printed = out.stdout.splitlines()
    assert printed[-1] == f"max_requests={max_requests}"
    seen, i = [], 0
    while i < len(printed) - 1:
        key = printed[i + 1] if printed[i] == "********" else printed[i]
        assert key in expected, f"unexpected output line {i}: {printed[i]!r}"
        lines = expected[key]
        assert printed[i : i + len(lines)] == lines
        seen.append(key)
        i += len(lines)
    assert sorted(seen) == sorted(expected)  # each term's lines once

    # Every term was asked for exactly once, at the original URL, in absolute form (as a
    # proxy receives it), for Google's host, with the script's User-Agent.
    assert collections.Counter(stand_in.requests) == collections.Counter(
        (search_url(t), SEARCH_HOST, USER_AGENT) for t in terms
    )


# The lines the port changed, by their number in the original: (the port's line, the
# original's), as the script's header comment lists them. The header is the block that
# starts after the original's line 8 and ends with the second of its two rules.
CHANGED_LINES = {
    1: ("#!/usr/bin/env python3", "#!/usr/bin/env python"),
    10: ("from parafetch import compat as pyparallelcurl", "import pyparallelcurl"),
    11: ("from parafetch import compat as pycurl", "import pycurl"),
    12: ("import urllib.parse", "import urllib"),
    22: ('        print("Fetch error for "+url)', '        print "Fetch error for "+url'),
    27: (
        '        print("Fetch error "+str(httpcode)+" for \'"+url+"\'")',
        '        print "Fetch error "+str(httpcode)+" for \'"+url+"\'"',
    ),
    32: (
        '        print("No results found for \'"+search+"\'")',
        '        print "No results found for \'"+search+"\'"',
    ),
    35: ('    print("********")', '    print "********"'),
    36: ('    print(search+":")', '    print search+":"'),
    37: ('    print("********")', '    print "********"'),
    42: ("        print(title)", "        print title"),
    114: (
        "    search_url = SEARCH_URL_PREFIX+'&'+urllib.parse.urlencode({'q':terms})",
        "    search_url = SEARCH_URL_PREFIX+'&'+urllib.urlencode({'q':terms})",
    ),
    121: ("print('max_requests='+str(max_requests))", "print 'max_requests='+str(max_requests)"),
}
# sha256 of test.py at github.com/petewarden/pyparallelcurl, commit 149c051 (3236 chars).
ORIGINAL_SHA256 = "5f4de019cd9ce9fe768adf28558a97da33007a21208806cc68b767c227ed5678"
RULE = "# " + "-" * 87


def test_pyparallelcurl_example_script_is_the_original_but_for_its_listed_lines():
    lines = EXAMPLE.read_text(encoding="utf-8").split("\n")
    assert lines[8] == "#" and lines[9] == RULE
    end = lines.index(RULE, 10)
    original = lines[:8] + lines[end + 1 :]  # without the header
    for number, (ported, was) in CHANGED_LINES.items():
        assert original[number - 1] == ported, number
        original[number - 1] = was
    text = "\n".join(original)
    assert len(text) == 3236
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == ORIGINAL_SHA256
