#!/usr/bin/env python3
"""pyparallelcurl's example, on parafetch: search a web API for many terms, at most N
requests at once (N: the first argument, default 10), and print each term's result titles.

pyparallelcurl (github.com/petewarden/pyparallelcurl) shipped a test.py that did this
against Google's AJAX Search API. This is our own script written to use ParallelCurl
exactly as that one did -- a max_requests taken from sys.argv unconverted, the same curl
options, the same four-argument callback checking `content is None` and
`ch.getinfo(pycurl.HTTP_CODE)`, `startrequest(url, callback, search)`, then
`finishallrequests()` -- not a copy of it. What moving such a script to parafetch takes is
its two import lines, marked below:

    import pyparallelcurl   ->  from parafetch import compat as pyparallelcurl
    import pycurl           ->  from parafetch import compat as pycurl

That API was shut down in 2016: set SEARCH_API_BASE to the scheme and host of a stand-in
(python/tests/conftest.py serves one at /ajax/services/search/web).

    SEARCH_API_BASE=http://127.0.0.1:8000 python pyparallelcurl_test.py 20
"""

import json
import os
import sys
import urllib.parse

from parafetch import compat as pyparallelcurl  # was: import pyparallelcurl
from parafetch import compat as pycurl  # was: import pycurl

SEARCH_URL_PREFIX = (
    os.environ.get("SEARCH_API_BASE", "http://ajax.googleapis.com")
    + "/ajax/services/search/web?v=1.0&rsz=large&filter=0"
)

# What to search for.
TERMS = [
    "Amsterdam", "Bergen", "Cairo", "Dakar", "Edinburgh", "Fukuoka", "Geneva", "Hanoi",
    "Istanbul", "Jakarta", "Kyoto", "Lagos", "Lima", "Madrid", "Nairobi", "Oslo",
    "Porto", "Quito", "Riga", "Santiago", "Tbilisi", "Utrecht", "Valparaiso", "Warsaw",
    "Xi'an", "Yerevan", "Zagreb", "Accra", "Bogota", "Cusco", "Dublin", "Essen",
    "Fez", "Graz", "Hobart", "Ibiza", "Jaipur", "Kigali", "Leeds", "Minsk",
]


def on_request_done(content, url, ch, search):
    """Called once per search: content is the body (bytes), or None if the fetch failed."""
    if content is None:
        print("Fetch error for " + url + ": " + ch.errstr())
        return

    httpcode = ch.getinfo(pycurl.HTTP_CODE)
    if httpcode != 200:
        print("Fetch error " + str(httpcode) + " for '" + url + "'")
        return

    response = json.loads(content)
    data = response.get("responseData") or {}
    if "results" not in data:
        print("No results found for '" + search + "'")
        return

    print("********")
    print(search + ":")
    print("********")
    for result in data["results"]:
        print(result["title"])


# A str, as sys.argv gives it: ParallelCurl takes a number in a str too.
max_requests = sys.argv[1] if len(sys.argv) > 1 else 10

curl_options = {
    pycurl.SSL_VERIFYPEER: False,
    pycurl.SSL_VERIFYHOST: False,
    pycurl.USERAGENT: "Parallel Curl test script",
    pycurl.FOLLOWLOCATION: True,
}

parallel_curl = pyparallelcurl.ParallelCurl(max_requests, curl_options)

for term in TERMS:
    search = '"' + term + ' is a"'
    search_url = SEARCH_URL_PREFIX + "&" + urllib.parse.urlencode({"q": term})
    parallel_curl.startrequest(search_url, on_request_done, search)

# Optional: also run when parallel_curl is freed, or at exit.
parallel_curl.finishallrequests()

print("max_requests=" + str(max_requests))
