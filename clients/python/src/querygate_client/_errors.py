"""The client's exceptions: one per kind of answer, each carrying the gateway's code and message::

    QuerygateError                 anything the gateway (or the way to it) refused
    ├── NotAuthenticated           401 unknown, expired or revoked token
    ├── Refused                    403 refused by policy (``rule`` names the rule)
    ├── NotFound                   404 no such function
    ├── TooLarge                   413 the request body is over the gateway's limit
    ├── BadParameters              422 a parameter is missing, unknown or invalid (``parameter``)
    ├── OverLimit                  429 over a limit
    ├── UpstreamError              502 PostgreSQL refused the query
    ├── Unavailable                503 the database cannot be reached in time
    │   └── AuditUnavailable       503 the audit store cannot record the call: no data was returned
    ├── Timeout                    504 the query ran past its timeout (or the client's own timeout)
    └── ConnectionFailed           no answer: the gateway could not be reached
"""

from __future__ import annotations

from typing import Any


class QuerygateError(Exception):
    """Root of every error this client raises; ``status`` is None when no answer came."""

    status: int | None = None

    def __init__(self, message: str, *, code: str = "error", status: int | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.message = message
        self.code = code
        if status is not None:
            self.status = status
        self.body: dict[str, Any] = body or {}


class NotAuthenticated(QuerygateError):
    status = 401


class Refused(QuerygateError):
    """Refused by policy; ``rule`` names the rule that refused it."""

    status = 403

    @property
    def rule(self) -> str | None:
        rule = self.body.get("rule")
        return rule if isinstance(rule, str) else None


class NotFound(QuerygateError):
    status = 404


class TooLarge(QuerygateError):
    status = 413


class BadParameters(QuerygateError):
    """A parameter is missing, unknown or invalid; ``parameter`` names it when known."""

    status = 422

    @property
    def parameter(self) -> str | None:
        name = self.body.get("parameter")
        return name if isinstance(name, str) else None


class OverLimit(QuerygateError):
    status = 429


class UpstreamError(QuerygateError):
    status = 502


class Unavailable(QuerygateError):
    status = 503


class AuditUnavailable(Unavailable):
    """The call could not be audited, so the gateway returned no data."""


class Timeout(QuerygateError):
    """The query ran past its timeout (504), or no answer came within the client's own timeout
    (code ``client_timeout``, ``status`` None)."""

    status: int | None = 504


class ConnectionFailed(QuerygateError):
    """The gateway could not be reached, or the connection broke before an answer came."""


_BY_STATUS: dict[int, type[QuerygateError]] = {
    401: NotAuthenticated, 403: Refused, 404: NotFound, 413: TooLarge, 422: BadParameters,
    429: OverLimit, 502: UpstreamError, 503: Unavailable, 504: Timeout,
}


def error_for(status: int, payload: object) -> QuerygateError:
    """The exception for an error answer: its class from the status, code and message from the
    body ``{"error": {"code": ..., "message": ...}}``."""
    body: dict[str, Any] = {}
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        body = payload["error"]
    code = str(body.get("code") or f"http_{status}")
    message = str(body.get("message") or f"the gateway answered HTTP {status}")
    cls = _BY_STATUS.get(status, QuerygateError)
    if status == 503 and code == "audit_unavailable":
        cls = AuditUnavailable
    return cls(message, code=code, status=status, body=body)
