"""parafetch.compat: pyparallelcurl's ``ParallelCurl`` for Python 3, over ``parafetch.Fetcher``.

pyparallelcurl (Pete Warden's Python 2 wrapper over pycurl's CurlMulti) had this API, and
this class keeps it: names, argument order and callback signature::

    from parafetch.compat import ParallelCurl
    import parafetch.compat as pycurl          # the pycurl constants, pycurl not needed

    def on_request_done(content, url, ch, user_data):
        if content is None:                     # the request failed
            print("failed:", url, ch.errstr())
            return
        print(url, ch.getinfo(pycurl.HTTP_CODE), len(content))

    parallel_curl = ParallelCurl(10, {pycurl.FOLLOWLOCATION: True, pycurl.TIMEOUT: 30})
    parallel_curl.startrequest("http://example.com/", on_request_done, {"some": "data"})
    parallel_curl.finishallrequests()           # also run on del, on `with` exit, at exit

Porting a pyparallelcurl script takes its imports: ``import pyparallelcurl`` becomes
``from parafetch import compat as pyparallelcurl`` and ``import pycurl`` becomes
``from parafetch import compat as pycurl`` (or import ``ParallelCurl`` and the constants
by name).

``ParallelCurl(in_max_requests=10, in_options={})``
    At most ``in_max_requests`` requests in flight; 0 or less means no limit, as in
    pyparallelcurl. By keyword, ``max_requests=`` and ``options=`` are accepted too. A numeric str is accepted: pyparallelcurl's own example passed
    ``sys.argv[1]`` unconverted. ``in_options`` is a dict of pycurl option -> value (the
    format of PHP's ``curl_setopt_array``), applied to every request started afterwards.
``setmaxrequests(in_max_requests)`` (alias ``setMaxRequests``)
    Changes the cap at once, from a callback too.
``setoptions(in_options)``
    Replaces the options for requests started afterwards. Options that belong to the
    whole fetcher (PROXY, PROXYUSERPWD, PROXYTYPE, PROXYPORT, NOPROXY, COOKIEFILE,
    COOKIEJAR turned on, SSL_VERIFYPEER, CAINFO) can only change between fetchers:
    changing one first finishes every outstanding request. From inside a callback, that
    kind of change, ``finishallrequests``, ``checkforcompletedrequests`` and
    ``waitforoutstandingrequeststodropbelow`` raise RuntimeError (the requests are being
    called back by the call the callback runs in); ``startrequest`` works there.
``startrequest(url, callback, user_data={}, post_fields=None)`` (alias ``startRequest``)
    Returns at once while fewer than the cap are outstanding; otherwise calls back finished
    requests until one may start. ``post_fields`` (str or bytes) makes it a POST of that
    body, as pycurl's POST + POSTFIELDS did. Omitted ``user_data`` is a new empty dict per
    request (pyparallelcurl shared one ``{}`` between all of them).
``finishallrequests()``
    Calls back every outstanding request, then writes COOKIEJAR's file if set. Also run by
    ``del`` (when the object is freed), on leaving a ``with`` block, and at interpreter
    exit for any ParallelCurl still alive.
``checkforcompletedrequests()`` (alias ``checkForCompletedRequests``)
    Calls back the requests that have finished, waiting up to a second for one if none
    has, as pyparallelcurl's did: for a script doing other work between its requests.
``waitforoutstandingrequeststodropbelow(max)`` (alias ``waitForOutstandingRequestsToDropBelow``)
    Calls back finished requests until fewer than ``max`` are outstanding.
``outstanding_requests``
    The requests started and not yet called back: a dict of ``{"url", "callback",
    "user_data"}`` dicts, keyed by a number (pyparallelcurl's keys were curl handles).

Callbacks are called exactly once per request, as ``callback(content, url, ch, user_data)``:

- ``content``: the body as ``bytes`` -- pyparallelcurl collected it in a ``cStringIO``
  buffer, whose value was a Python 2 byte string, and pycurl on Python 3 hands the write
  buffer only bytes (``json.loads`` takes them; ``content.decode()`` for text). Any HTTP
  status has content (404 included), as with curl, unless FAILONERROR is set. ``None`` when
  the request failed (connection, timeout, TLS, bad URL, too many redirects, body over
  MAXFILESIZE, ...): ``ch.errstr()`` says why. A malformed URL is reported the same way, as
  curl did, not raised.
- ``url``: the URL as given to ``startrequest``.
- ``ch``: a ``Handle`` standing for the curl handle: ``ch.getinfo(code)`` for the pycurl
  info codes below, ``ch.getinfo_raw(code)`` (str values as bytes), ``ch.errstr()`` ("" on
  success), and ``ch.result``, the ``parafetch.Response`` or ``parafetch.Error`` behind it.
- ``user_data``: the object given to ``startrequest``.

An exception raised by a callback is raised by the ParallelCurl call during which it ran
(``startrequest``, ``finishallrequests``, ``checkforcompletedrequests``,
``waitforoutstandingrequeststodropbelow``, or a ``setoptions`` that finished the requests) (every other request still completes and is
called back); when several callbacks raised, the first is raised (Python 3.11+ notes how
many more). A callback's own ``startrequest`` calls never raise it: it is raised by the
outermost call, once the callback returned. pyparallelcurl let it escape from the middle
of its bookkeeping. KeyboardInterrupt, SystemExit and other exceptions that are not
``Exception`` subclasses are not kept: raised by a callback, they stop the callbacks at once
and propagate from the ParallelCurl call; the requests not yet called back stay pending
(``finishallrequests()``, ``with``, ``del`` or exit calls them back later).

Options (pycurl constants are libcurl's CURLOPT_* numbers, exported here):

==================================  ===========================================================
FOLLOWLOCATION                      follow redirects (default off, as in curl)
MAXREDIRS                           most redirects followed; -1: no limit (default: parafetch's 10)
TIMEOUT, TIMEOUT_MS                 whole-request deadline; 0: none (default none, as in curl)
CONNECTTIMEOUT, CONNECTTIMEOUT_MS   connect deadline; 0: curl's default, 300 s
USERAGENT, REFERER, COOKIE          the User-Agent, Referer, Cookie headers
USERPWD                             "user:password" as HTTP Basic authorization
HTTPHEADER                          ["Name: value", "Name;" (empty value), ...]; an entry
                                    overrides the header an option above would send
ENCODING / ACCEPT_ENCODING          "": ask for and decode gzip/deflate (what parafetch
                                    decodes); another value is sent as Accept-Encoding and
                                    what parafetch can decode is decoded; None: off (default)
POST, POSTFIELDS, COPYPOSTFIELDS    POST (with that body, and Content-Type
                                    application/x-www-form-urlencoded unless HTTPHEADER sets one)
HTTPGET, NOBODY, CUSTOMREQUEST      GET; HEAD; another method
MAXFILESIZE (= MAXFILESIZE_LARGE)   most body bytes (default: parafetch's 64 MiB; curl has none)
FAILONERROR                         a status >= 400 is a failure: content None, errstr
                                    "The requested URL returned error: N"
SSL_VERIFYPEER, SSL_VERIFYHOST      0 for VERIFYPEER: accept any certificate (parafetch's
                                    danger_accept_invalid_certs, which also skips the name
                                    check). VERIFYHOST 0 alone is refused: parafetch cannot
                                    skip only the name check.
CAINFO                              a PEM file of CA certificates, trusted in addition to
                                    Mozilla's roots (curl trusts only the file)
PROXY, PROXYUSERPWD, NOPROXY        the proxy URL ("host:port" means http://), its
                                    "user:password", hosts reached directly; PROXY "": no proxy,
                                    whatever the environment says
PROXYTYPE, PROXYPORT                the scheme (PROXYTYPE_HTTP, _HTTPS, _SOCKS5, _SOCKS4A,
                                    _SOCKS5_HOSTNAME; not _SOCKS4 or _HTTP_1_0) and port of a
                                    PROXY that names none
COOKIEFILE                          turns on a cookie jar shared by every request of this
                                    ParallelCurl (each pycurl handle had its own), started
                                    from the Netscape cookie file named, if it exists ("":
                                    empty)
COOKIEJAR                           turns the jar on and writes it to this file (Netscape
                                    format, readable by its owner only) when the requests are
                                    finished: finishallrequests(), ``with``, ``del``, exit
NOSIGNAL, NOPROGRESS (1), URL       accepted, no effect (startrequest's URL wins, as it did)
==================================  ===========================================================

Any other option raises ``ValueError: parafetch.compat: pycurl option VERBOSE (41) is not
supported`` (WRITEFUNCTION, HEADER, UPLOAD, HTTPAUTH, ... included). Options
are read and checked when given (constructor, ``setoptions``), not when a request starts:
changing the dict afterwards changes nothing (pyparallelcurl re-read it per request).
Error messages name the option, never a value that may be a secret (a password, a cookie,
a header).

Info codes for ``ch.getinfo``: HTTP_CODE / RESPONSE_CODE (0 after a failure), EFFECTIVE_URL,
REDIRECT_COUNT, REDIRECT_URL (the Location not followed), CONTENT_TYPE, PRIMARY_IP,
PRIMARY_PORT, INFO_HTTP_VERSION, SIZE_DOWNLOAD (the body as delivered, after decoding),
SPEED_DOWNLOAD, CONTENT_LENGTH_DOWNLOAD (-1 if not sent), and NAMELOOKUP_TIME,
CONNECT_TIME, APPCONNECT_TIME (0 without TLS), PRETRANSFER_TIME, STARTTRANSFER_TIME,
TOTAL_TIME in seconds from the start (the ``_T`` variants in microseconds). Times are those
of the final request after redirects, not the sum over them; after a failure they are 0.
Others (HEADER_SIZE, REQUEST_SIZE, REDIRECT_TIME, NUM_CONNECTS, LOCAL_IP, ...) raise
ValueError naming the code.

Without PROXY, the proxy comes from the environment as curl takes it: ``http_proxy``
(lowercase only, as curl), ``https_proxy``, ``all_proxy`` and ``no_proxy``.

Other differences from pyparallelcurl and curl: a response silent for 30 s fails
(parafetch's idle timeout; curl waits unless told otherwise); no SIGPIPE handler is
installed (parafetch needs none); the handles are not pycurl handles, so nothing else of
pycurl's API exists on them.
"""

import atexit
import base64
import os
import sys
import threading
import urllib.parse
import weakref

import parafetch

__all__ = ["Handle", "ParallelCurl"]  # and the pycurl constants, added below

# -- pycurl option constants: libcurl's CURLOPT_* numbers (curl/curl.h), pycurl's names --

# Supported (see the module doc).
URL = 10002
PROXY = 10004
USERPWD = 10005
PROXYUSERPWD = 10006
TIMEOUT = 13
POSTFIELDS = 10015
REFERER = 10016
USERAGENT = 10018
COOKIE = 10022
HTTPHEADER = 10023
COOKIEFILE = 10031
CUSTOMREQUEST = 10036
NOPROGRESS = 43
NOBODY = 44
FAILONERROR = 45
POST = 47
FOLLOWLOCATION = 52
SSL_VERIFYPEER = 64
CAINFO = 10065
MAXREDIRS = 68
CONNECTTIMEOUT = 78
HTTPGET = 80
SSL_VERIFYHOST = 81
NOSIGNAL = 99
ACCEPT_ENCODING = 10102
ENCODING = ACCEPT_ENCODING  # its older name
MAXFILESIZE_LARGE = 30117
MAXFILESIZE = MAXFILESIZE_LARGE  # pycurl's MAXFILESIZE is the _LARGE one
TIMEOUT_MS = 155
CONNECTTIMEOUT_MS = 156
COPYPOSTFIELDS = 10165
NOPROXY = 10177

# Known, refused with their name (pycurl's names; INFILESIZE and POSTFIELDSIZE are its
# _LARGE ones, FILE is WRITEDATA, OPT_FILETIME is CURLOPT_FILETIME).
PORT = 3
CRLF = 27
SSLVERSION = 32
TIMECONDITION = 33
TIMEVALUE = 34
LOW_SPEED_LIMIT = 19
LOW_SPEED_TIME = 20
VERBOSE = 41
HEADER = 42
UPLOAD = 46
NETRC = 51
PUT = 54
AUTOREFERER = 58
PROXYPORT = 59
HTTPPROXYTUNNEL = 61
OPT_FILETIME = 69
MAXCONNECTS = 71
FRESH_CONNECT = 74
FORBID_REUSE = 75
HTTP_VERSION = 84
DNS_CACHE_TIMEOUT = 92
COOKIESESSION = 96
BUFFERSIZE = 98
PROXYTYPE = 101
UNRESTRICTED_AUTH = 105
HTTPAUTH = 107
IPRESOLVE = 113
TCP_NODELAY = 121
IGNORE_CONTENT_LENGTH = 136
HTTP_TRANSFER_DECODING = 157
HTTP_CONTENT_DECODING = 158
POSTREDIR = 161
PROTOCOLS = 181
REDIR_PROTOCOLS = 182
TCP_KEEPALIVE = 213
SSL_OPTIONS = 216
HEADEROPT = 229
PATH_AS_IS = 234
PROXY_SSL_VERIFYPEER = 248
PROXY_SSL_VERIFYHOST = 249
WRITEDATA = 10001
FILE = WRITEDATA
RANGE = 10007
READDATA = 10009
HTTPPOST = 10024
SSLCERT = 10025
KEYPASSWD = 10026
HEADERDATA = 10029
STDERR = 10037
INTERFACE = 10062
COOKIEJAR = 10082
SSL_CIPHER_LIST = 10083
SSLKEY = 10087
CAPATH = 10097
SHARE = 10100
HTTP200ALIASES = 10104
COOKIELIST = 10135
USERNAME = 10173
PASSWORD = 10174
PROXYUSERNAME = 10175
PROXYPASSWORD = 10176
RESOLVE = 10203
PROXYHEADER = 10228
PINNEDPUBLICKEY = 10230
UNIX_SOCKET_PATH = 10231
CONNECT_TO = 10243
PROXY_CAINFO = 10246
DOH_URL = 10279
WRITEFUNCTION = 20011
READFUNCTION = 20012
PROGRESSFUNCTION = 20056
HEADERFUNCTION = 20079
DEBUGFUNCTION = 20094
XFERINFOFUNCTION = 20219
INFILESIZE = 30115
RESUME_FROM = 30116
POSTFIELDSIZE = 30120

# -- pycurl info constants: libcurl's CURLINFO_* numbers --

_STRING, _LONG, _DOUBLE, _OFF_T = 0x100000, 0x200000, 0x300000, 0x600000

# Supported.
EFFECTIVE_URL = _STRING + 1
RESPONSE_CODE = _LONG + 2
HTTP_CODE = RESPONSE_CODE
TOTAL_TIME = _DOUBLE + 3
NAMELOOKUP_TIME = _DOUBLE + 4
CONNECT_TIME = _DOUBLE + 5
PRETRANSFER_TIME = _DOUBLE + 6
SIZE_DOWNLOAD = _DOUBLE + 8
SPEED_DOWNLOAD = _DOUBLE + 9
CONTENT_LENGTH_DOWNLOAD = _DOUBLE + 15
STARTTRANSFER_TIME = _DOUBLE + 17
CONTENT_TYPE = _STRING + 18
REDIRECT_COUNT = _LONG + 20
REDIRECT_URL = _STRING + 31
PRIMARY_IP = _STRING + 32
APPCONNECT_TIME = _DOUBLE + 33
PRIMARY_PORT = _LONG + 40
INFO_HTTP_VERSION = _LONG + 46
SIZE_DOWNLOAD_T = _OFF_T + 8
SPEED_DOWNLOAD_T = _OFF_T + 9
CONTENT_LENGTH_DOWNLOAD_T = _OFF_T + 15
TOTAL_TIME_T = _OFF_T + 50
NAMELOOKUP_TIME_T = _OFF_T + 51
CONNECT_TIME_T = _OFF_T + 52
PRETRANSFER_TIME_T = _OFF_T + 53
STARTTRANSFER_TIME_T = _OFF_T + 54
APPCONNECT_TIME_T = _OFF_T + 56

# Known, refused with their name.
SIZE_UPLOAD = _DOUBLE + 7
SPEED_UPLOAD = _DOUBLE + 10
HEADER_SIZE = _LONG + 11
REQUEST_SIZE = _LONG + 12
SSL_VERIFYRESULT = _LONG + 13
INFO_FILETIME = _LONG + 14
CONTENT_LENGTH_UPLOAD = _DOUBLE + 16
REDIRECT_TIME = _DOUBLE + 19
HTTP_CONNECTCODE = _LONG + 22
OS_ERRNO = _LONG + 25
NUM_CONNECTS = _LONG + 26
LOCAL_IP = _STRING + 41
LOCAL_PORT = _LONG + 42
EFFECTIVE_METHOD = _STRING + 58

# Values of PROXYTYPE (CURLPROXY_*).
PROXYTYPE_HTTP = 0
PROXYTYPE_HTTP_1_0 = 1
PROXYTYPE_HTTPS = 2
PROXYTYPE_SOCKS4 = 4
PROXYTYPE_SOCKS5 = 5
PROXYTYPE_SOCKS4A = 6
PROXYTYPE_SOCKS5_HOSTNAME = 7

# Values of INFO_HTTP_VERSION (CURL_HTTP_VERSION_*).
CURL_HTTP_VERSION_NONE = 0
CURL_HTTP_VERSION_1_0 = 1
CURL_HTTP_VERSION_1_1 = 2

# Aliases are left out of the name tables: the first name is the one errors use.
_ALIASES = {"ENCODING", "MAXFILESIZE_LARGE", "FILE", "HTTP_CODE"}


def _names(first, last):
    """{value: name} of the constants defined between `first` and `last` above."""
    names = list(globals())
    chosen = names[names.index(first) : names.index(last) + 1]
    return {
        globals()[n]: n
        for n in chosen
        if n.isupper() and not n.startswith("_") and n not in _ALIASES
    }


_OPTION_NAMES = _names("URL", "POSTFIELDSIZE")
_INFO_NAMES = _names("EFFECTIVE_URL", "EFFECTIVE_METHOD")
__all__ += sorted(
    n for n in globals() if n.isupper() and not n.startswith("_") and isinstance(globals()[n], int)
)

# curl's defaults where parafetch's differ: no whole-request deadline, 300 s to connect.
_CURL_CONNECT_TIMEOUT = 300.0
# MAXREDIRS -1: no limit (parafetch counts redirects in a u32 and still stops loops).
_NO_REDIRECT_LIMIT = 2**32 - 1
# max_requests <= 0: no limit.
_NO_CAP = sys.maxsize


def _option_name(option):
    name = _OPTION_NAMES.get(option)
    return f"{name} ({option})" if name else str(option)


def _info_name(code):
    name = _INFO_NAMES.get(code)
    return f"{name} ({code})" if name else str(code)


def _refuse(option, why=""):
    why = f": {why}" if why else ""
    return ValueError(
        f"parafetch.compat: pycurl option {_option_name(option)} is not supported{why}"
    )


def _bad_value(option, what):
    return ValueError(f"parafetch.compat: pycurl option {_option_name(option)}: {what}")


def _wrong_type(option, expected):
    return TypeError(f"parafetch.compat: pycurl option {_option_name(option)}: expected {expected}")


def _long(option, value):
    if not isinstance(value, int):
        raise _wrong_type(option, "an int")
    return int(value)


def _text(option, value):
    """A str option's value (bytes decoded as latin-1, byte for byte), or None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    raise _wrong_type(option, "a str or bytes")


def _seconds(option, value, per_second):
    n = _long(option, value)
    if n < 0:
        raise _bad_value(option, "must not be negative")
    return n / per_second


def _header_lines(option, value):
    """HTTPHEADER's list into (name, value) pairs, by curl's rules."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise _wrong_type(option, "a list of 'Name: value' strings")
    pairs = []
    for i, line in enumerate(value):
        line = _text(option, line)
        if line is None:
            raise _wrong_type(option, "a list of 'Name: value' strings")
        line = line.rstrip("\r\n")
        name, colon, rest = line.partition(":")
        name = name.strip()
        if colon and name and rest.strip():
            pairs.append((name, rest.strip()))
        elif colon and name:
            # curl: "Name:" removes a header curl would send; "Name;" sends it empty.
            raise _bad_value(
                option,
                f"entry {i} ({name}:) would remove a header, which parafetch cannot do "
                f"(use '{name};' for an empty value)",
            )
        elif not colon and line.endswith(";") and line[:-1].strip():
            pairs.append((line[:-1].strip(), ""))
        else:
            raise _bad_value(option, f"entry {i} is not 'Name: value'")
    return pairs


def _body(option, value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise _wrong_type(option, "a str or bytes")


# PROXYTYPE -> the proxy URL's scheme (as curl, a scheme in PROXY wins over PROXYTYPE).
_PROXY_SCHEMES = {
    PROXYTYPE_HTTP: "http",
    PROXYTYPE_HTTPS: "https",
    PROXYTYPE_SOCKS5: "socks5",
    PROXYTYPE_SOCKS4A: "socks4a",
    PROXYTYPE_SOCKS5_HOSTNAME: "socks5h",
}


def _proxy_url(proxy, userpwd, scheme="http", port=None):
    """The proxy URL for parafetch: `scheme` (PROXYTYPE's) when PROXY has none, `port`
    (PROXYPORT) when it has none, `userpwd` as its userinfo."""
    if "://" not in proxy:
        proxy = f"{scheme}://{proxy}"
    parts = urllib.parse.urlsplit(proxy)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    try:
        has_port = parts.port is not None
    except ValueError:
        has_port = True  # malformed: parafetch's own check names it
    if port and not has_port:
        hostport = f"{hostport.rstrip(':')}:{port}"  # "proxy:" has an empty port
    if userpwd is not None:
        user, _, password = userpwd.partition(":")
        quote = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731
        userinfo, at = f"{quote(user)}:{quote(password)}", "@"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}{at}{hostport}"))


class _Plan:
    """The options of a ParallelCurl, as parafetch's: `fetcher` for Fetcher(**fetcher) and
    the keyword arguments of each start_request, plus what the callback side needs."""

    def __init__(self, options):
        if options is None:
            options = {}
        if not hasattr(options, "items"):
            raise TypeError(
                "parafetch.compat: options must be a dict of pycurl option -> value"
            )
        s = {
            "follow": False, "max_redirects": None, "timeout": None, "connect_timeout": None,
            "headers": [], "user_agent": None, "referer": None, "cookie": None,
            "userpwd": None, "encoding": None, "method": "GET", "body": None, "custom": None,
            "max_body": None, "fail": False, "verify_peer": True, "verify_host": True,
            "cainfo": None, "proxy": None, "proxy_userpwd": None, "no_proxy": None,
            "proxy_scheme": "http", "proxy_port": None, "jar": False, "jar_file": None,
            "save_jar": None,
        }
        # In order, as pycurl's setopt calls were made: a later option wins.
        for option, value in options.items():
            if not isinstance(option, int) or isinstance(option, bool):
                raise TypeError(
                    "parafetch.compat: option keys must be pycurl option constants (ints), "
                    f"not {type(option).__name__}; parafetch's own options go to "
                    "parafetch.Fetcher"
                )
            self._set(s, option, value)
        if not s["verify_host"] and s["verify_peer"]:
            raise _refuse(
                SSL_VERIFYHOST,
                "0 without SSL_VERIFYPEER 0: parafetch cannot skip only the name check",
            )
        if s["proxy_userpwd"] is not None and not s["proxy"]:
            raise _refuse(
                PROXYUSERPWD,
                "without PROXY: parafetch cannot add credentials to a proxy from the "
                "environment",
            )

        fetcher = {"timeout": None, "connect_timeout": _CURL_CONNECT_TIMEOUT}
        if not s["verify_peer"]:
            fetcher["danger_accept_invalid_certs"] = True
        if s["cainfo"] is not None:
            fetcher["tls_roots_pem"] = s["cainfo"]
        if s["proxy"] == "":
            fetcher["no_proxy"] = "*"
        elif s["proxy"] is not None:
            fetcher["proxy"] = _proxy_url(
                s["proxy"], s["proxy_userpwd"], s["proxy_scheme"], s["proxy_port"]
            )
        if s["no_proxy"] is not None and "no_proxy" not in fetcher:
            fetcher["no_proxy"] = s["no_proxy"]
        if s["jar_file"] is not None:
            fetcher["cookie_jar"] = s["jar_file"]
        elif s["jar"] or s["save_jar"] is not None:
            fetcher["cookies"] = True
        self.fetcher = fetcher
        # COOKIEJAR: where the jar is written when the requests are finished.
        self.save_jar = s["save_jar"]

        custom = s["headers"]
        named = {name.lower() for name, _ in custom}
        derived = []

        def add(name, value):
            if value is not None and name.lower() not in named:
                derived.append((name, value))

        add("User-Agent", s["user_agent"])
        add("Referer", s["referer"])
        add("Cookie", s["cookie"])
        if s["userpwd"] is not None:
            token = base64.b64encode(s["userpwd"].encode("utf-8")).decode("ascii")
            add("Authorization", "Basic " + token)
        if s["encoding"]:
            add("Accept-Encoding", s["encoding"])
        self._headers = derived + custom
        self._method = s["method"]
        self._body = s["body"]
        self._custom = s["custom"]
        request = {
            "follow_redirects": s["follow"],
            "decompress": s["encoding"] is not None,
        }
        for key in ("max_redirects", "timeout", "connect_timeout", "max_body"):
            if s[key] is not None:
                request[key] = s[key]
        self._request = request
        self.fail_on_error = s["fail"]

    @staticmethod
    def _set(s, option, value):
        if option == FOLLOWLOCATION:
            s["follow"] = bool(_long(option, value))
        elif option == MAXREDIRS:
            n = _long(option, value)
            if n < -1:
                raise _bad_value(option, "must be -1 (no limit) or more")
            s["max_redirects"] = _NO_REDIRECT_LIMIT if n == -1 else n
        elif option in (TIMEOUT, TIMEOUT_MS):
            secs = _seconds(option, value, 1 if option == TIMEOUT else 1000)
            s["timeout"] = secs or None  # 0: no deadline
        elif option in (CONNECTTIMEOUT, CONNECTTIMEOUT_MS):
            secs = _seconds(option, value, 1 if option == CONNECTTIMEOUT else 1000)
            s["connect_timeout"] = secs or None  # 0: the default
        elif option == USERAGENT:
            s["user_agent"] = _text(option, value)
        elif option == REFERER:
            s["referer"] = _text(option, value)
        elif option == COOKIE:
            s["cookie"] = _text(option, value)
        elif option == USERPWD:
            s["userpwd"] = _text(option, value)
        elif option == HTTPHEADER:
            s["headers"] = [] if value is None else _header_lines(option, value)
        elif option == ACCEPT_ENCODING:
            s["encoding"] = _text(option, value)
        elif option == POST:
            s["method"] = "POST" if _long(option, value) else "GET"
        elif option in (POSTFIELDS, COPYPOSTFIELDS):
            s["body"] = _body(option, value)
            s["method"] = "POST"
        elif option == HTTPGET:
            if _long(option, value):
                s["method"] = "GET"
        elif option == NOBODY:
            s["method"] = "HEAD" if _long(option, value) else "GET"
        elif option == CUSTOMREQUEST:
            s["custom"] = _text(option, value)
        elif option == MAXFILESIZE:
            n = _long(option, value)
            if n < 0:
                raise _bad_value(option, "must not be negative")
            s["max_body"] = n or None  # 0: no limit of our own (parafetch's default stays)
        elif option == FAILONERROR:
            s["fail"] = bool(_long(option, value))
        elif option == SSL_VERIFYPEER:
            s["verify_peer"] = bool(_long(option, value))
        elif option == SSL_VERIFYHOST:
            n = _long(option, value)
            if n not in (0, 1, 2):
                raise _bad_value(option, "must be 0, 1 or 2")
            s["verify_host"] = n != 0
        elif option == CAINFO:
            path = _text(option, value)
            if path is None:
                s["cainfo"] = None
            else:
                try:
                    with open(path, "rb") as f:
                        s["cainfo"] = f.read()
                except OSError as e:
                    raise _bad_value(option, f"cannot read {path!r}: {e.strerror}") from None
        elif option == PROXY:
            s["proxy"] = _text(option, value)
        elif option == PROXYUSERPWD:
            s["proxy_userpwd"] = _text(option, value)
        elif option == NOPROXY:
            s["no_proxy"] = _text(option, value)
        elif option == PROXYTYPE:
            kind = _long(option, value)
            if kind == PROXYTYPE_SOCKS4:
                raise _bad_value(
                    option,
                    "SOCKS4 is not supported; PROXYTYPE_SOCKS4A (the proxy resolves names) is",
                )
            if kind == PROXYTYPE_HTTP_1_0:
                raise _bad_value(option, "HTTP/1.0 proxies are not supported")
            if kind not in _PROXY_SCHEMES:
                raise _bad_value(option, f"unknown proxy type {kind}")
            s["proxy_scheme"] = _PROXY_SCHEMES[kind]
        elif option == PROXYPORT:
            port = _long(option, value)
            if not 0 <= port <= 65535:
                raise _bad_value(option, "must be a port number, 0 to 65535")
            s["proxy_port"] = port or None  # 0: the scheme's default
        elif option == COOKIEFILE:
            # "": the jar on, nothing read. A file is read, as curl reads it, when the
            # fetcher is made; as with curl, a missing one starts the jar empty.
            path = _text(option, value)
            s["jar"] = path is not None
            s["jar_file"] = path if path and os.path.exists(path) else None
        elif option == COOKIEJAR:
            # The jar on, written to this file (Netscape format, as curl writes it) by
            # finishallrequests() and when the ParallelCurl is finished (with, del, exit).
            path = _text(option, value)
            s["save_jar"] = path or None
        elif option == NOPROGRESS:
            if not _long(option, value):
                raise _refuse(option, "0: there is no progress meter")
        elif option in (NOSIGNAL, URL):
            pass  # NOSIGNAL: no signals are used; URL: startrequest's URL wins
        else:
            raise _refuse(option)

    def request(self, post_fields):
        """start_request's keyword arguments, with startrequest's `post_fields`."""
        method, body = self._method, self._body
        if post_fields is not None:
            method, body = "POST", _body(POSTFIELDS, post_fields)
        headers = list(self._headers)
        if method == "POST":
            if "content-type" not in {n.lower() for n, _ in headers}:
                headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        else:
            body = None  # curl keeps POSTFIELDS but sends them only with POST
        kwargs = dict(self._request)
        kwargs["method"] = self._custom or method
        kwargs["headers"] = headers
        kwargs["data"] = b"" if method == "POST" and body is None else body
        return kwargs


def _redact(text, url):
    """`text` without the password of `url`, if it has one."""
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        password = None
    if password:
        text = text.replace(password, "***")
        quoted = urllib.parse.quote(password, safe="")
        text = text.replace(quoted, "***")
    return text


class Handle:
    """What a pyparallelcurl callback got as its curl handle: ``getinfo(code)``,
    ``getinfo_raw(code)`` and ``errstr()`` over a finished request; ``result`` is the
    ``parafetch.Response`` or ``parafetch.Error`` itself."""

    __slots__ = ("result", "_url", "_failed")

    def __init__(self, result, url, fail_on_error=False):
        self.result = result
        self._url = url
        failed = None
        if isinstance(result, parafetch.Error):
            failed = _redact(str(result), url)
        elif fail_on_error and result.status >= 400:
            failed = f"The requested URL returned error: {result.status}"
        self._failed = failed

    @property
    def content(self):
        """The callback's `content`: the body, or None after a failure."""
        return None if self._failed is not None else self.result.body

    def errstr(self):
        """Why the request failed ("" if it did not), as pycurl's errstr()."""
        return self._failed or ""

    def getinfo(self, code):
        """The value of a pycurl info code (see the module doc for those answered)."""
        r = self.result
        if isinstance(r, parafetch.Error):
            return self._failure_info(code)
        t = r.timings
        connect = t.resolve + t.connect
        pretransfer = connect + t.proxy + t.tls
        size = len(r.body)
        length = r.headers.get("content-length")
        length = int(length) if length is not None and length.isdigit() else -1
        times = {
            NAMELOOKUP_TIME: t.resolve,
            CONNECT_TIME: connect,
            APPCONNECT_TIME: pretransfer if r.tls is not None else 0.0,
            PRETRANSFER_TIME: pretransfer,
            STARTTRANSFER_TIME: t.first_byte,
            TOTAL_TIME: t.total,
        }
        if code in times:
            return times[code]
        micro = {
            NAMELOOKUP_TIME_T: NAMELOOKUP_TIME,
            CONNECT_TIME_T: CONNECT_TIME,
            APPCONNECT_TIME_T: APPCONNECT_TIME,
            PRETRANSFER_TIME_T: PRETRANSFER_TIME,
            STARTTRANSFER_TIME_T: STARTTRANSFER_TIME,
            TOTAL_TIME_T: TOTAL_TIME,
        }
        if code in micro:
            return round(times[micro[code]] * 1_000_000)
        speed = size / t.total if t.total > 0 else 0.0
        if code == RESPONSE_CODE:
            return r.status
        if code == EFFECTIVE_URL:
            return r.url
        if code == REDIRECT_COUNT:
            return r.redirects
        if code == REDIRECT_URL:
            location = r.headers.get("location")
            if 300 <= r.status < 400 and location is not None:
                return urllib.parse.urljoin(r.url, location)
            return None
        if code == CONTENT_TYPE:
            return r.headers.get("content-type")
        if code == PRIMARY_IP:
            return r.remote_addr[0]
        if code == PRIMARY_PORT:
            return r.remote_addr[1]
        if code == INFO_HTTP_VERSION:
            return {"HTTP/1.0": CURL_HTTP_VERSION_1_0, "HTTP/1.1": CURL_HTTP_VERSION_1_1}.get(
                r.http_version, CURL_HTTP_VERSION_NONE
            )
        if code == SIZE_DOWNLOAD:
            return float(size)
        if code == SIZE_DOWNLOAD_T:
            return size
        if code == SPEED_DOWNLOAD:
            return speed
        if code == SPEED_DOWNLOAD_T:
            return int(speed)
        if code == CONTENT_LENGTH_DOWNLOAD:
            return float(length)
        if code == CONTENT_LENGTH_DOWNLOAD_T:
            return length
        raise self._unsupported(code)

    def _failure_info(self, code):
        # What curl answers for a transfer that got no response.
        if code in (EFFECTIVE_URL,):
            return self._url
        if code in (REDIRECT_URL, CONTENT_TYPE):
            return None
        if code == PRIMARY_IP:
            return ""
        if code in (CONTENT_LENGTH_DOWNLOAD,):
            return -1.0
        if code in (CONTENT_LENGTH_DOWNLOAD_T,):
            return -1
        if code in (NAMELOOKUP_TIME, CONNECT_TIME, APPCONNECT_TIME, PRETRANSFER_TIME,
                    STARTTRANSFER_TIME, TOTAL_TIME, SIZE_DOWNLOAD, SPEED_DOWNLOAD):
            return 0.0
        if code in (RESPONSE_CODE, REDIRECT_COUNT, PRIMARY_PORT, INFO_HTTP_VERSION,
                    SIZE_DOWNLOAD_T, SPEED_DOWNLOAD_T, NAMELOOKUP_TIME_T, CONNECT_TIME_T,
                    APPCONNECT_TIME_T, PRETRANSFER_TIME_T, STARTTRANSFER_TIME_T,
                    TOTAL_TIME_T):
            return 0
        raise self._unsupported(code)

    @staticmethod
    def _unsupported(code):
        return ValueError(f"parafetch.compat: getinfo({_info_name(code)}) is not supported")

    def getinfo_raw(self, code):
        """As getinfo, with str values as bytes (pycurl's getinfo_raw)."""
        value = self.getinfo(code)
        return value.encode("utf-8") if isinstance(value, str) else value

    def __repr__(self):
        r = self.result
        if self._failed is not None:
            kind = getattr(r, "kind", None) or getattr(r, "status", "?")
            return f"<parafetch.compat.Handle failed: {kind}>"
        return f"<parafetch.compat.Handle {r.status}>"


class _Pending:
    """One request's side of the callback, carried as the Fetcher's cookie."""

    __slots__ = ("callback", "user_data", "url", "fail_on_error", "key")

    def __init__(self, callback, user_data, url, fail_on_error):
        self.callback = callback
        self.user_data = user_data
        self.url = url
        self.fail_on_error = fail_on_error
        self.key = None


class _Delivery:
    """Calls the pyparallelcurl callbacks and keeps what they raise until the outermost
    ParallelCurl call they ran in ends: a callback's own ``startrequest`` (a crawler's
    follow-up) must not raise another callback's exception into it. A KeyboardInterrupt,
    SystemExit or other non-``Exception`` is not kept: it goes through the Fetcher, which
    stops calling back and raises it at once. Holds no reference to the ParallelCurl or its
    Fetcher, so a ParallelCurl is freed (and finishes its requests) as soon as its last
    user lets go."""

    def __init__(self):
        self.raised = None
        self.more = 0
        self._local = threading.local()  # .depth: callbacks running on this thread
        # The requests started and not yet called back, by a number of their own.
        self.outstanding = {}
        self._next = 0

    def add(self, pending):
        """Counts `pending` as outstanding until it is called back."""
        pending.key = self._next
        self._next += 1
        self.outstanding[pending.key] = pending

    def __call__(self, result, url, pending):
        handle = Handle(result, url, pending.fail_on_error)
        local = self._local
        local.depth = getattr(local, "depth", 0) + 1
        try:
            pending.callback(handle.content, pending.url, handle, pending.user_data)
        except Exception as e:  # raised again by the outermost ParallelCurl call
            if self.raised is None:
                self.raised = e
            else:
                self.more += 1
        finally:
            local.depth -= 1
            # Outstanding until its callback returned, as in pyparallelcurl.
            self.outstanding.pop(pending.key, None)

    def raise_kept(self):
        """Raises the first kept exception, unless called from inside a callback."""
        if getattr(self._local, "depth", 0):
            return
        e, more = self.raised, self.more
        self.raised, self.more = None, 0
        if e is None:
            return
        if more and hasattr(e, "add_note"):
            e.add_note(f"parafetch.compat: {more} more callback(s) raised after this one")
        raise e


_live = weakref.WeakSet()


@atexit.register
def _finish_at_exit():
    """Finishes every ParallelCurl still alive, as pyparallelcurl's destructor would have:
    one kept alive by a reference cycle (a callback that refers to it) is never freed."""
    first = None
    for pc in list(_live):
        try:
            pc._close()
        except BaseException as e:  # noqa: B036 -- the first is raised below
            first = first or e
    if first is not None:
        raise first


_FRESH = object()
_UNSET = object()


class ParallelCurl:
    """pyparallelcurl's ParallelCurl over a ``parafetch.Fetcher``; see the module doc."""

    def __init__(self, in_max_requests=10, in_options=None, *, max_requests=_UNSET,
                 options=_UNSET):
        # pyparallelcurl's names, positional or by keyword, or the plain ones.
        if max_requests is not _UNSET:
            if in_max_requests != 10:
                raise TypeError(
                    "parafetch.compat: give max_requests or in_max_requests, not both"
                )
            in_max_requests = max_requests
        if options is not _UNSET:
            if in_options is not None:
                raise TypeError("parafetch.compat: give options or in_options, not both")
            in_options = options
        self._fetcher = None
        self._fetcher_options = None
        self._delivery = _Delivery()
        self._max_requests, self._cap = self._parse_cap(in_max_requests)
        self._plan = _Plan(in_options)
        self._options = {} if in_options is None else in_options
        _live.add(self)

    @staticmethod
    def _parse_cap(n):
        if isinstance(n, (str, bytes)):
            try:
                n = int(n)
            except ValueError:
                raise ValueError(
                    "parafetch.compat: max_requests must be an int (or a str of one)"
                ) from None
        if not isinstance(n, int):
            raise TypeError("parafetch.compat: max_requests must be an int")
        return n, (n if n > 0 else _NO_CAP)

    @property
    def max_requests(self):
        """The cap as set (0 or less: no limit); assigning sets it."""
        return self._max_requests

    @max_requests.setter
    def max_requests(self, n):
        self.setmaxrequests(n)

    @property
    def options(self):
        """The options dict as set; assigning sets it (as setoptions)."""
        return self._options

    @options.setter
    def options(self, in_options):
        self.setoptions(in_options)

    def setmaxrequests(self, in_max_requests):
        """Sets how many requests may be outstanding at once (0 or less: no limit)."""
        self._max_requests, self._cap = self._parse_cap(in_max_requests)
        if self._fetcher is not None:
            self._fetcher.set_max_requests(self._cap)

    setMaxRequests = setmaxrequests

    def setoptions(self, in_options):
        """Sets the pycurl options of the requests started afterwards. A change to a
        fetcher-wide option (proxy, TLS, cookie jar) first finishes outstanding requests."""
        plan = _Plan(in_options)
        if self._fetcher is not None and plan.fetcher != self._fetcher_options:
            self._close_fetcher()
        self._plan = plan
        self._options = {} if in_options is None else in_options
        # After the options are set: what a callback raised while closing is that
        # callback's failure, not this call's.
        self._delivery.raise_kept()

    def startrequest(self, url, callback, user_data=_FRESH, post_fields=None):
        """Starts fetching `url`; `callback(content, url, ch, user_data)` is called once
        it is done. Waits (calling back finished requests) while the cap is reached."""
        if not callable(callback):
            raise TypeError("parafetch.compat: callback must be callable")
        if user_data is _FRESH:
            user_data = {}
        plan = self._plan
        kwargs = plan.request(post_fields)
        target = url.decode("utf-8") if isinstance(url, (bytes, bytearray)) else url
        if not isinstance(target, str):
            raise TypeError("parafetch.compat: url must be a str")
        pending = _Pending(callback, user_data, url, plan.fail_on_error)
        self._delivery.add(pending)
        try:
            fetcher = self._open()
            try:
                fetcher.start_request(target, self._delivery, pending, **kwargs)
            except parafetch.Error as e:
                # curl reported a malformed URL through the callback, not as an exception.
                self._delivery(e, target, pending)
        except BaseException:
            # Not started (the fetcher could not be made, Ctrl-C while waiting for room):
            # never called back, so not outstanding.
            self._delivery.outstanding.pop(pending.key, None)
            raise
        self._delivery.raise_kept()

    startRequest = startrequest

    def finishallrequests(self):
        """Waits for every outstanding request and calls it back; then writes the cookie
        jar to COOKIEJAR's file, if set."""
        if self._fetcher is not None:
            self._fetcher.finish_all_requests()
            self._save_cookies(self._fetcher)
        self._delivery.raise_kept()

    def checkforcompletedrequests(self):
        """Calls back the requests that have finished, waiting up to a second for one if
        none has (pyparallelcurl's ``select(1.0)`` then ``perform``)."""
        if self._fetcher is not None:
            self._fetcher.poll(1.0)
        self._delivery.raise_kept()

    def waitforoutstandingrequeststodropbelow(self, max):  # noqa: A002 -- its name
        """Calls back finished requests until fewer than `max` are outstanding."""
        if not isinstance(max, int) or max < 1:
            raise ValueError("parafetch.compat: max must be an int, 1 or more")
        fetcher = self._fetcher
        while fetcher is not None and fetcher.pending >= max:
            fetcher.poll(None)
        self._delivery.raise_kept()

    checkForCompletedRequests = checkforcompletedrequests
    waitForOutstandingRequestsToDropBelow = waitforoutstandingrequeststodropbelow

    @property
    def outstanding_requests(self):
        """The requests started and not yet called back, as pyparallelcurl kept them: a
        dict of ``{"url", "callback", "user_data"}`` dicts (keyed by a number here, not a
        curl handle). A copy: changing it changes nothing."""
        return {
            key: {"url": p.url, "callback": p.callback, "user_data": p.user_data}
            for key, p in self._delivery.outstanding.items()
        }

    def _save_cookies(self, fetcher):
        path = self._plan.save_jar
        if path is not None and not fetcher.closed:
            fetcher.save_cookies(path)

    def _open(self):
        if self._fetcher is None:
            options = self._plan.fetcher
            self._fetcher = parafetch.Fetcher(self._cap, **options)
            self._fetcher_options = options
        return self._fetcher

    def _close(self):
        """Finishes every request and lets the Fetcher's loop threads end; raises what a
        callback raised."""
        self._close_fetcher()
        self._delivery.raise_kept()

    def _close_fetcher(self):
        fetcher = self._fetcher
        if fetcher is not None:
            # Interrupted (Ctrl-C), it stays: its requests are still pending, and
            # dropping it would wait for them where no signal can interrupt.
            fetcher.finish_all_requests()
            try:
                self._save_cookies(fetcher)  # COOKIEJAR's file, once all have answered
            finally:
                fetcher.close()
                self._fetcher = None
                self._fetcher_options = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self._close()
        return False

    def __del__(self):
        if getattr(self, "_fetcher", None) is not None:
            self._close()

    def __repr__(self):
        pending = self._fetcher.pending if self._fetcher is not None else 0
        return (
            f"<parafetch.compat.ParallelCurl max_requests={self._max_requests} "
            f"pending={pending}>"
        )
