"""``Client``: the synchronous client."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
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


class Export(ExportHeader):
    """A streamed export: the request is sent on ``with`` (or when iteration starts); iterating
    yields one row (a list) at a time as it arrives, never holding the whole result."""

    def __init__(self, client: Client, path: str, body: dict[str, Any]) -> None:
        self._client, self._path, self._body = client, path, body
        self._response: httpx.Response | None = None
        self._lines: Iterator[str] | None = None

    def __enter__(self) -> Export:
        http, url = self._client._http, self._client.url
        try:
            self._response = http.send(http.build_request("POST", self._path, json=self._body),
                                       stream=True)
            if self._response.status_code != 200:
                self._response.read()
                checked(self._response)
            self._lines = self._response.iter_lines()
            self._read_header(next(self._lines, None))
        except httpx.TransportError as exc:
            self.close()
            raise transport_error(exc, url) from None
        except BaseException:
            self.close()
            raise
        return self

    def __iter__(self) -> Iterator[list[Any]]:
        if self._lines is None:
            self.__enter__()
        assert self._lines is not None
        try:
            for line in self._lines:
                row = row_of(line)
                if row is not None:
                    yield row
        except httpx.TransportError as exc:
            raise transport_error(exc, self._client.url) from None
        finally:
            self.close()

    def close(self) -> None:
        if self._response is not None:
            self._response.close()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Client:
    """A gateway at ``url``, called with ``token`` (default: ``$QUERYGATE_TOKEN``).

    ``timeout`` is in seconds (or an ``httpx.Timeout``); ``retries`` is how often a failed
    connection (and a failed GET) is tried again, see the module ``_base`` for which requests
    are never replayed."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float | httpx.Timeout = 60.0,
                 retries: int = 2, headers: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  headers=headers_for(token_from(token), headers),
                                  transport=transport or httpx.HTTPTransport(retries=retries))

    def call(self, function: str, /, params: Mapping[str, Any] | None = None, *,
             reason: str | None = None, **kwargs: Any) -> Result:
        """Call ``function`` with its parameters (as keywords, or a ``params`` mapping)."""
        return result_from(self._post(function_path("call", function), call_body(params, kwargs, reason)))

    def sql(self, statement: str, /, *, reason: str | None = None) -> Result:
        """Ad-hoc SQL, for roles with ``adhoc: true``: the same masks and audit."""
        body: dict[str, Any] = {"sql": statement}
        if reason is not None:
            body["reason"] = reason
        return result_from(self._post("/v1/sql", body))

    def functions(self) -> list[Function]:
        """The functions this token may call, with their parameters and masks."""
        return functions_from(self._get("/v1/functions"))

    def export(self, function: str, /, params: Mapping[str, Any] | None = None, *,
               reason: str | None = None, **kwargs: Any) -> Export:
        """A large result, streamed: ``with qg.export(...) as rows: for row in rows: ...``."""
        return Export(self, function_path("export", function), call_body(params, kwargs, reason))

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(path, json=body)
        except httpx.TransportError as exc:
            raise transport_error(exc, self.url) from None
        return checked(response)

    def _get(self, path: str) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                return checked(self._http.get(path))
            except httpx.TransportError as exc:
                if not retry_get(None, attempt, self.retries):
                    raise transport_error(exc, self.url) from None
            except QuerygateError as exc:
                if not retry_get(exc.status, attempt, self.retries):
                    raise
            time.sleep(BACKOFF_S * 2 ** attempt)
            attempt += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
