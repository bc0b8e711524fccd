#!/usr/bin/env python3
 
# A test script for the ParallelCurl class
# 
# This example fetches a 100 different results from Google's search API, with no more
# than 10 outstanding at any time.
#
# By Pete Warden <pete@petewarden.com>, freely reusable, see http://petewarden.typepad.com for more
#
# ---------------------------------------------------------------------------------------
# parafetch: this is pyparallelcurl's example script, test.py as published by Pete Warden
# (github.com/petewarden/pyparallelcurl, commit 149c051 "Initial import", Oct 13 2010:
# the project PyPI lists as pyparallelcurl 0.0.4), ported to Python 3 and to
# parafetch.compat with the fewest changes. Its licence, as it stated it (line 8 above,
# kept as it was): "By Pete Warden <pete@petewarden.com>, freely reusable, see
# http://petewarden.typepad.com for more".
#
# Every line changed from the original (its line numbers; this comment block is the only
# addition, after its line 8; nothing else was removed or reordered):
#   1         #!/usr/bin/env python -> python3: `python` is Python 2, or absent, where
#             Python 3 is `python3` (PEP 394).
#   10        import pyparallelcurl -> from parafetch import compat as pyparallelcurl:
#             the port; pyparallelcurl.ParallelCurl(...) below is unchanged.
#   11        import pycurl -> from parafetch import compat as pycurl: parafetch.compat
#             exports pycurl's constants (SSL_VERIFYPEER, USERAGENT, HTTP_CODE, ...), so
#             pycurl is not needed.
#   12, 114   import urllib -> import urllib.parse, and urllib.urlencode ->
#             urllib.parse.urlencode: Python 3 moved urlencode into urllib.parse.
#   22, 27, 32, 35, 36, 37, 42, 121
#             print x -> print(x): print is a function in Python 3.
# Nothing else needed changing: json.loads takes the bytes that `content` is, and
# ParallelCurl takes max_requests as the str that sys.argv gives.
#
# Google's AJAX Search API, which the script still calls, is gone. To run it against a
# stand-in, point http_proxy (read as curl reads it) at one, as python/tests/test_example.py
# does: the stand-in answers the absolute-form requests that an HTTP proxy receives.
#
#     http_proxy=http://127.0.0.1:PORT python3 pyparallelcurl_test.py 20
# ---------------------------------------------------------------------------------------

from parafetch import compat as pyparallelcurl
from parafetch import compat as pycurl
import urllib.parse
import json
import sys

SEARCH_URL_PREFIX = 'http://ajax.googleapis.com/ajax/services/search/web?v=1.0&rsz=large&filter=0'

# This function gets called back for each request that completes
def on_request_done(content, url, ch, search):
    
    if content is None:
        print("Fetch error for "+url)
        return
    
    httpcode = ch.getinfo(pycurl.HTTP_CODE);    
    if httpcode != 200:
        print("Fetch error "+str(httpcode)+" for '"+url+"'")
        return
    
    responseobject = json.loads(content)
    if 'responseData' not in responseobject or 'results' not in responseobject['responseData']:
        print("No results found for '"+search+"'")
        return
    
    print("********")
    print(search+":")
    print("********")
    
    allresponseresults = responseobject['responseData']['results']
    for responseresult in allresponseresults:
        title = responseresult['title']
        print(title)

# The terms to search for on Google
terms_list = [
    "John", "Mary",
    "William", "Anna",
    "James", "Emma",
    "George", "Elizabeth",
    "Charles", "Margaret",
    "Frank", "Minnie",
    "Joseph", "Ida",
    "Henry", "Bertha",
    "Robert", "Clara",
    "Thomas", "Alice",
    "Edward", "Annie",
    "Harry", "Florence",
    "Walter", "Bessie",
    "Arthur", "Grace",
    "Fred", "Ethel",
    "Albert", "Sarah",
    "Samuel", "Ella",
    "Clarence", "Martha",
    "Louis", "Nellie",
    "David", "Mabel",
    "Joe", "Laura",
    "Charlie", "Carrie",
    "Richard", "Cora",
    "Ernest", "Helen",
    "Roy", "Maude",
    "Will", "Lillian",
    "Andrew", "Gertrude",
    "Jesse", "Rose",
    "Oscar", "Edna",
    "Willie", "Pearl",
    "Daniel", "Edith",
    "Benjamin", "Jennie",
    "Carl", "Hattie",
    "Sam", "Mattie",
    "Alfred", "Eva",
    "Earl", "Julia",
    "Peter", "Myrtle",
    "Elmer", "Louise",
    "Frederick", "Lillie",
    "Howard", "Jessie",
    "Lewis", "Frances",
    "Ralph", "Catherine",
    "Herbert", "Lula",
    "Paul", "Lena",
    "Lee", "Marie",
    "Tom", "Ada",
    "Herman", "Josephine",
    "Martin", "Fanny",
    "Jacob", "Lucy",
    "Michael", "Dora"
]

if len(sys.argv) > 1:
    max_requests = sys.argv[1]
else:
    max_requests = 10

curl_options = {
    pycurl.SSL_VERIFYPEER: False,
    pycurl.SSL_VERIFYHOST: False,
    pycurl.USERAGENT: 'Parallel Curl test script',
    pycurl.FOLLOWLOCATION: True
}

parallel_curl = pyparallelcurl.ParallelCurl(max_requests, curl_options)

for terms in terms_list:
    search = '"'+terms+' is a"';
    search_url = SEARCH_URL_PREFIX+'&'+urllib.parse.urlencode({'q':terms})
    parallel_curl.startrequest(search_url, on_request_done, search)

# This should be called when you need to wait for the requests to finish.
# This will automatically run on destruct of the ParallelCurl object, so the next line is optional.
parallel_curl.finishallrequests()

print('max_requests='+str(max_requests))
