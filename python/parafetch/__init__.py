"""parafetch: fetch many URLs at once from one thread.

The Rust heir of ParallelCurl / pyparallelcurl: "start this URL, call me back when it is
done, never more than N at once", over a mio event loop written in Rust. With
``threads=1`` (the default) the loop runs on the thread that waits, the GIL released;
with ``threads=N`` (or ``"auto"``), on N threads of its own. Either way callbacks run on
the thread that calls ``start_request`` / ``finish_all_requests``.

    import parafetch

    def on_done(result, url, cookie):
        if isinstance(result, parafetch.Error):
            print(cookie, url, "failed:", result.kind, result.phase, result)
        else:
            print(cookie, url, result.status, len(result.body))

    with parafetch.Fetcher(max_in_flight=10, timeout=30.0, per_host=2) as fetcher:
        for i, url in enumerate(urls):
            fetcher.start_request(url, on_done, i)  # returns at once while there is room
    # leaving the block finishes every request, then raises what a callback raised;
    # leaving it by an exception (Ctrl-C too) aborts: what is pending is called back
    # with parafetch.ShutDown errors, unfetched

    for url, result in parafetch.fetch_all(urls, max_in_flight=20):
        ...

    async with parafetch.AsyncFetcher(max_in_flight=20) as f:  # asyncio
        response = await f.fetch(url)
        async for url, result in f.fetch_all(urls):
            ...

Callbacks are called as ``callback(result, url, cookie)``: ``result`` is a ``Response``
(any status, 404 and 500 included) or an instance of a ``parafetch.Error`` subclass (not
raised), ``url`` the URL given to ``start_request``, ``cookie`` the caller's object. An
``Exception`` a callback raises is raised by ``finish_all_requests`` once the others are
done; a ``KeyboardInterrupt`` or ``SystemExit`` is raised at once.

A fetcher still open at exit is finished by an ``atexit`` hook, as one that is garbage
collected is; during interpreter shutdown pending requests are dropped uncalled. A
fetcher belongs to the process that made it: a forked child must make its own.

``parafetch.compat`` is pyparallelcurl's ``ParallelCurl`` (with pycurl's option and info
constants) over ``Fetcher``, for scripts written for it. ``python -m parafetch demo`` runs
the offline demo: one local server with a delay, 1 then 20 requests in flight.
"""

from parafetch._native import (
    BadRedirect,
    Connect,
    Dns,
    EmptyReply,
    Error,
    FetchAll,
    Fetcher,
    Headers,
    InvalidRequest,
    InvalidUrl,
    Io,
    Malformed,
    Proxy,
    QueueFull,
    Response,
    Robots,
    ShutDown,
    Timeout,
    Timings,
    Tls,
    TooLarge,
    TooManyRedirects,
    Truncated,
    UnsupportedScheme,
    __version__,
    fetch_all,
)

__all__ = [
    "AsyncFetcher",
    "BadRedirect",
    "Connect",
    "Dns",
    "EmptyReply",
    "Error",
    "FetchAll",
    "Fetcher",
    "Headers",
    "InvalidRequest",
    "InvalidUrl",
    "Io",
    "Malformed",
    "Proxy",
    "QueueFull",
    "Response",
    "Robots",
    "ShutDown",
    "Timeout",
    "Timings",
    "Tls",
    "TooLarge",
    "TooManyRedirects",
    "Truncated",
    "UnsupportedScheme",
    "__version__",
    "fetch_all",
]


def __getattr__(name):
    # AsyncFetcher on first use: its module imports asyncio, which costs a program that
    # never uses it some 70 ms and 11 MiB at `import parafetch`.
    if name == "AsyncFetcher":
        from parafetch._aio import AsyncFetcher

        globals()["AsyncFetcher"] = AsyncFetcher
        return AsyncFetcher
    raise AttributeError(f"module 'parafetch' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"AsyncFetcher"})
