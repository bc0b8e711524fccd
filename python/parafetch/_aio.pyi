# Type stubs of parafetch.AsyncFetcher (parafetch/_aio.py over python/src/async_fetcher.rs).

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, Optional, Union

from parafetch._native import Error, Response, _HeaderFields, _Seconds

class AsyncFetcher:
    """Fetches many URLs at once for asyncio; results wake the event loop through a socket
    pair it watches (or its call_soon_threadsafe), never by polling."""

    def __init__(self, max_in_flight: int = 10, **options: Any) -> None: ...
    def fetch(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: Optional[_HeaderFields] = None,
        data: Union[bytes, bytearray, str, None] = None,
        connect_timeout: Optional[_Seconds] = None,
        follow_redirects: Optional[bool] = None,
        max_redirects: Optional[int] = None,
        max_body: Optional[int] = None,
        retries: Optional[int] = None,
        decompress: Optional[bool] = None,
        timeout: Optional[_Seconds] = ...,
    ) -> asyncio.Future[Response]: ...
    def fetch_all(
        self, urls: Union[Iterable[str], AsyncIterable[str]], **kwargs: Any
    ) -> AsyncIterator[tuple[str, Union[Response, Error]]]: ...
    def abort(self) -> None: ...
    async def aclose(self) -> None: ...
    def set_max_requests(self, n: int) -> None: ...
    @property
    def max_requests(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def threads(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    async def __aenter__(self) -> "AsyncFetcher": ...
    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool: ...
