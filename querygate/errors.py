"""The one exception tree of querygate.

Every error a caller can see is a ``QuerygateError``; its class carries the
HTTP status and a stable ``code``, so the API, the CLI and the audit log
render it in one place::

    QuerygateError                 500 internal
    ├── ProjectError               project files are invalid (file and line)
    ├── NotAuthenticated           401 unknown, expired or revoked identity
    ├── NotFound                   404 no such function
    ├── PolicyDenied(rule, reason) 403 refused by policy
    ├── BadParameters(name)        422 a parameter is missing, unknown or invalid
    ├── LimitExceeded              429 over a limit
    ├── UpstreamError(sqlstate)    502 PostgreSQL refused the query
    ├── Unavailable                503 the database cannot be reached in time
    │   └── AuditUnavailable       503 the audit store cannot record the call
    ├── StatementTimeout           504 the query ran past statement_timeout
    └── ClientGone                 499 the caller went away; the query was cancelled

Messages are written by querygate, never copied from PostgreSQL: a server
message or DETAIL can echo a protected value.
"""

from __future__ import annotations


class QuerygateError(Exception):
    """Root of every querygate error."""

    status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}


class ProjectError(QuerygateError):
    """The project folder is invalid; the message names the file and line."""

    code = "project_invalid"

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.line = line


class NotAuthenticated(QuerygateError):
    status = 401
    code = "not_authenticated"


class NotFound(QuerygateError):
    status = 404
    code = "not_found"


class PolicyDenied(QuerygateError):
    """Refused by policy: ``rule`` names the rule, ``reason`` says why."""

    status = 403
    code = "policy_denied"

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"{reason} (rule: {rule})")
        self.rule = rule
        self.reason = reason

    def to_json(self) -> dict[str, object]:
        body = super().to_json()
        body["error"]["rule"] = self.rule  # type: ignore[index]
        return body


class BadParameters(QuerygateError):
    status = 422
    code = "bad_parameters"

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter

    def to_json(self) -> dict[str, object]:
        body = super().to_json()
        if self.parameter is not None:
            body["error"]["parameter"] = self.parameter  # type: ignore[index]
        return body


class LimitExceeded(QuerygateError):
    status = 429
    code = "limit_exceeded"


class UpstreamError(QuerygateError):
    """PostgreSQL refused the query; only the SQLSTATE is kept."""

    status = 502
    code = "upstream_error"

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class Unavailable(QuerygateError):
    status = 503
    code = "unavailable"


class AuditUnavailable(Unavailable):
    code = "audit_unavailable"


class StatementTimeout(QuerygateError):
    status = 504
    code = "statement_timeout"


class ClientGone(QuerygateError):
    """The client disconnected before the answer; its query was cancelled in the server."""

    status = 499
    code = "client_closed"


__all__ = [
    "AuditUnavailable",
    "BadParameters",
    "ClientGone",
    "LimitExceeded",
    "NotAuthenticated",
    "NotFound",
    "PolicyDenied",
    "ProjectError",
    "QuerygateError",
    "StatementTimeout",
    "Unavailable",
    "UpstreamError",
]
