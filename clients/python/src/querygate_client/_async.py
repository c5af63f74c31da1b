"""``AsyncClient``: the asynchronous client, the same methods as ``Client``, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import httpx

from querygate_client._base import (
    BACKOFF_S,
    ExportHeader,
    call_body,
    checked,
    function_path,
    headers_for,
    retry_get,
    row_of,
    token_from,
    transport_error,
)
from querygate_client._errors import QuerygateError
from querygate_client._models import Function, Result, functions_from, result_from


class AsyncExport(ExportHeader):
    """A streamed export: the request is sent on ``async with`` (or when iteration starts);
    iterating yields one row (a list) at a time as it arrives, never holding the whole result."""

    def __init__(self, client: AsyncClient, path: str, body: dict[str, Any]) -> None:
        self._client, self._path, self._body = client, path, body
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None

    async def __aenter__(self) -> AsyncExport:
        http, url = self._client._http, self._client.url
        try:
            self._response = await http.send(http.build_request("POST", self._path, json=self._body),
                                       stream=True)
            if self._response.status_code != 200:
                await self._response.aread()
                checked(self._response)
            self._lines = self._response.aiter_lines()
            self._read_header(await anext(self._lines, None))
        except httpx.TransportError as exc:
            await self.aclose()
            raise transport_error(exc, url) from None
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aiter__(self) -> AsyncIterator[list[Any]]:
        if self._lines is None:
            await self.__aenter__()
        assert self._lines is not None
        try:
            async for line in self._lines:
                row = row_of(line)
                if row is not None:
                    yield row
        except httpx.TransportError as exc:
            raise transport_error(exc, self._client.url) from None
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._response is not None:
            await self._response.aclose()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class AsyncClient:
    """``Client``, asynchronous: a gateway at ``url``, called with ``token`` (default:
    ``$QUERYGATE_TOKEN``).

    ``timeout`` is in seconds (or an ``httpx.Timeout``); ``retries`` is how often a failed
    connection (and a failed GET) is tried again, see the module ``_base`` for which requests
    are never replayed."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float | httpx.Timeout = 60.0,
                 retries: int = 2, headers: Mapping[str, str] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout,
                                  headers=headers_for(token_from(token), headers),
                                  transport=transport or httpx.AsyncHTTPTransport(retries=retries))

    async def call(self, function: str, /, params: Mapping[str, Any] | None = None, *,
             reason: str | None = None, **kwargs: Any) -> Result:
        """Call ``function`` with its parameters (as keywords, or a ``params`` mapping)."""
        body = call_body(params, kwargs, reason)
        return result_from(await self._post(function_path("call", function), body))

    async def sql(self, statement: str, /, *, reason: str | None = None) -> Result:
        """Ad-hoc SQL, for roles with ``adhoc: true``: the same masks and audit."""
        body: dict[str, Any] = {"sql": statement}
        if reason is not None:
            body["reason"] = reason
        return result_from(await self._post("/v1/sql", body))

    async def functions(self) -> list[Function]:
        """The functions this token may call, with their parameters and masks."""
        return functions_from(await self._get("/v1/functions"))

    def export(self, function: str, /, params: Mapping[str, Any] | None = None, *,
               reason: str | None = None, **kwargs: Any) -> AsyncExport:
        """A large result, streamed: ``async with qg.export(...) as rows: async for row in rows``."""
        return AsyncExport(self, function_path("export", function), call_body(params, kwargs, reason))

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.post(path, json=body)
        except httpx.TransportError as exc:
            raise transport_error(exc, self.url) from None
        return checked(response)

    async def _get(self, path: str) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                return checked(await self._http.get(path))
            except httpx.TransportError as exc:
                if not retry_get(None, attempt, self.retries):
                    raise transport_error(exc, self.url) from None
            except QuerygateError as exc:
                if not retry_get(exc.status, attempt, self.retries):
                    raise
            await asyncio.sleep(BACKOFF_S * 2 ** attempt)
            attempt += 1

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
