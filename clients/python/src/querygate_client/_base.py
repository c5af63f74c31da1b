"""What the two clients share: request bodies, headers, answers turned into results or errors,
and the retry rule.

The retry rule: a POST (a call, an export, ad-hoc SQL) is sent at most once, because once the
gateway has it the call may have been audited, and a replay would be a second access in the
log. Only a failure to *connect* is retried for it (the request never left; httpx's transport
``retries``). A GET (the function list) is read-only, so it is also retried after a broken
connection, a read timeout or a 502/503/504.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from querygate_client._errors import ConnectionFailed, QuerygateError, Timeout, error_for
from querygate_client._models import Receipt, receipt_from

__version__ = "0.1.0"

RETRY_STATUSES = frozenset({502, 503, 504})
BACKOFF_S = 0.2  # doubled for each further GET attempt


def token_from(token: str | None) -> str | None:
    return token if token is not None else os.environ.get("QUERYGATE_TOKEN")


def headers_for(token: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"User-Agent": f"querygate-client/{__version__}", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra or {})
    return headers


def function_path(kind: str, function: str) -> str:
    """``/v1/call/NAME``: the name is one path segment, whatever it holds."""
    return f"/v1/{kind}/{quote(function, safe='')}"


def call_body(params: Mapping[str, Any] | None, extra: Mapping[str, Any],
              reason: str | None) -> dict[str, Any]:
    """``{"params": ..., "reason": ...}``: ``params`` and keyword arguments merged (a parameter
    named like a keyword of ``call`` goes in ``params``)."""
    merged = {**(params or {}), **extra}
    body: dict[str, Any] = {"params": merged}
    if reason is not None:
        body["reason"] = reason
    return body


def payload_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def checked(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a 200 answer; any other answer raises its ``QuerygateError``."""
    payload = payload_of(response)
    if response.status_code != 200:
        raise error_for(response.status_code, payload)
    if not isinstance(payload, dict):
        raise QuerygateError("the gateway answered without a JSON object", code="bad_response",
                             status=response.status_code)
    return payload


def transport_error(exc: httpx.TransportError, url: str) -> QuerygateError:
    if isinstance(exc, httpx.TimeoutException):
        late = Timeout(f"no answer from {url} within the client's timeout ({type(exc).__name__})",
                       code="client_timeout")
        late.status = None  # no answer came: not the gateway's 504
        return late
    return ConnectionFailed(f"cannot reach the gateway at {url} ({type(exc).__name__})",
                            code="connection_failed")


def retry_get(status: int | None, attempt: int, retries: int) -> bool:
    return attempt < retries and (status is None or status in RETRY_STATUSES)


class ExportHeader:
    """The first line of an export: columns, masks, how many rows follow, the audit event."""

    columns: list[str]
    fields: dict[str, str]
    count: int
    truncated: bool
    audit_id: str
    receipt: Receipt | None

    def _read_header(self, line: str | None) -> None:
        if line is None:
            raise QuerygateError("the export ended before its header line", code="bad_response")
        head = json.loads(line)
        self.columns = list(head["columns"])
        self.fields = dict(head.get("fields") or {})
        self.count = int(head.get("rows") or 0)
        self.truncated = bool(head.get("truncated"))
        self.audit_id = str(head["audit_id"])
        self.receipt = receipt_from(head)


def row_of(line: str) -> list[Any] | None:
    if not line.strip():
        return None
    row = json.loads(line)
    return list(row)
