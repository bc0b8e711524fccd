"""parafetch.AsyncFetcher: the coroutine half (closing, ``async with``, ``fetch_all``) over
the native half in python/src/async_fetcher.rs (``fetch``, ``abort``, the hand-over).

Nothing here waits on a thread: every wait is on a future the native side resolves on
the event loop's thread (its drain, or the closing thread's ``call_soon_threadsafe``).
"""

import asyncio
import collections

from parafetch._native import Error, ShutDown, _AsyncFetcher

__all__ = ["AsyncFetcher"]


class AsyncFetcher(_AsyncFetcher):
    """Fetches many URLs at once for asyncio: ``AsyncFetcher(max_in_flight=10, **options)``,
    the options of ``Fetcher``. The fetching runs on loops of their own threads; results
    come back to the event loop with one wake-up per burst, never by polling: the loop
    thread writes a byte, without the GIL, to a socket pair the event loop watches
    (``add_reader``), or, on an event loop that cannot watch one (Windows' proactor
    loop), calls ``call_soon_threadsafe``. From its first ``fetch`` until it is closed
    and idle, the fetcher is one more file descriptor its event loop watches.

        async with parafetch.AsyncFetcher(max_in_flight=20, timeout=30.0) as f:
            r = await f.fetch(url)                     # a Response, or raises parafetch.Error
            async for url, result in f.fetch_all(urls):
                ...                                    # result: Response or Error instance

    ``fetch(url, *, method="GET", headers=None, data=None, timeout=None,
    connect_timeout=None, follow_redirects=None, max_redirects=None, max_body=None,
    retries=None, decompress=None)`` sends the request at once and returns an
    ``asyncio.Future`` of its ``Response`` (any status, 404 and 500 included); a failure
    is raised as a ``parafetch.Error`` subclass. A malformed URL or request raises at the
    call. While ``max_in_flight`` (plus the ``backlog`` option) requests are pending, a new
    one waits for room, in order, without blocking the event loop. Cancelling a fetch
    (its task or its future) drops the result: a request already sent still completes
    inside (its connection stays usable), one still waiting for room is never sent.

    ``fetch_all(urls, **per-request args)`` is an async iterator of ``(url, result)``
    pairs as requests finish, like ``parafetch.fetch_all``.

    ``await aclose()`` (and leaving ``async with`` normally) refuses new fetches, waits for
    the pending ones, then ends the loops. Leaving ``async with`` by an exception or a
    cancellation calls ``abort()`` instead: every pending fetch gets ``parafetch.ShutDown``
    at once. An open fetcher that is garbage-collected aborts the same way, without
    waiting. ``pending``, ``max_requests``, ``set_max_requests(n)``, ``threads`` and
    ``closed`` as for ``Fetcher``. In a process forked after it was made, its methods
    raise RuntimeError (its loops are the parent's threads): make a new one there.

    All futures belong to the event loop of the first ``fetch``; another loop (a later
    ``asyncio.run``) may take the fetcher over while nothing is pending.
    """

    __slots__ = ()

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc, tb):
        if exc_type is None:
            await self.aclose()
        else:
            self.abort()
            await self._idle()
            await self._shutdown()
        return False

    async def aclose(self):
        """Refuses new fetches, waits for the pending ones, then ends the loops (on a
        thread of their own: the event loop never waits on one). Idempotent."""
        self._stop()
        await self._idle()
        await self._shutdown()

    def fetch_all(self, urls, **kwargs):
        """An async iterator of ``(url, result)`` pairs as the requests finish,
        ``result`` a ``Response`` or a ``parafetch.Error`` instance (not raised); an
        invalid URL is yielded at once with its error. ``urls`` is an iterable or an async
        iterable of str, taken lazily: at most ``max_requests`` (plus ``backlog``) of this
        iterator's requests are pending at once. ``kwargs`` are ``fetch``'s per-request
        arguments.

        Stopped early (``break``, ``aclose()``, garbage collection), it takes no more
        URLs: those not yet started are never started, and those running finish inside
        with their results dropped (they are not cut off: the fetcher may serve others).
        """
        if isinstance(urls, (str, bytes)):
            raise TypeError("fetch_all: urls must be an iterable of URLs, not one str")
        if not (hasattr(urls, "__aiter__") or hasattr(urls, "__iter__")):
            raise TypeError("fetch_all: urls must be an iterable or an async iterable")
        return _fetch_all(self, urls, kwargs)


async def _fetch_all(fetcher, urls, kwargs):
    loop = asyncio.get_running_loop()
    if hasattr(urls, "__aiter__"):
        source = urls.__aiter__()
        next_async = type(source).__anext__
        next_sync = None
    else:
        source = iter(urls)
        next_async = None
        next_sync = source.__next__
    running = {}  # future -> url
    ready = collections.deque()  # (url, result)
    wake = [None]  # the future this iterator waits on, if it waits

    def on_done(future):
        url = running.pop(future, None)
        if url is None or future.cancelled():
            return
        error = future.exception()
        ready.append((url, future.result() if error is None else error))
        w = wake[0]
        if w is not None and not w.done():
            w.set_result(None)

    exhausted = False
    try:
        while True:
            # Take URLs while there is room and no result is ready to hand out.
            while not exhausted and not ready and len(running) < fetcher._room:
                try:
                    url = await next_async(source) if next_async else next_sync()
                except (StopIteration, StopAsyncIteration):
                    exhausted = True
                    break
                if not isinstance(url, str):
                    raise TypeError(
                        f"fetch_all: a URL must be a str, got {type(url).__name__}"
                    )
                try:
                    future = fetcher.fetch(url, **kwargs)
                except ShutDown:
                    raise
                except Error as e:
                    ready.append((url, e))
                    break
                running[future] = url
                future.add_done_callback(on_done)
            if ready:
                yield ready.popleft()
                continue
            if not running:
                return
            wake[0] = loop.create_future()
            await wake[0]
            wake[0] = None
    finally:
        # Stopped early: the running requests finish inside, their results dropped.
        for future in list(running):
            future.cancel()
        running.clear()
