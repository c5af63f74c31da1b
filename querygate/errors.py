"""The one exception tree of querygate.

Every error a caller can see is a ``QuerygateError``; its class carries the
HTTP status and a stable ``code``, so the API, the CLI and the audit log
render it in one place. Every subclass is defined here, and
``tests/unit/test_errors.py`` holds the tree to this drawing and to the error
table in ``docs/contracts.md``::

    QuerygateError                     500 internal
    ├── ProjectError                   500 project_invalid     project files are invalid (file and line)
    ├── LineageError                   500 lineage_error       SQL that cannot be analysed
    ├── CheckpointError                500 checkpoint_error    a signing key or checkpoint cannot be used
    ├── ArchiveError                   500 archive_invalid     an audit archive edited, damaged or unanchored
    ├── IdentityError                  400 identity_error      a directory change that cannot be made
    ├── EventError                     400 bad_event           backtest input that is not an event
    ├── LogFormatError                 400 bad_log_format      a database log querygate cannot read
    ├── NotAuthenticated               401 not_authenticated   unknown, expired or revoked identity
    ├── PolicyDenied(rule, reason)     403 policy_denied       refused by policy
    ├── CsrfRefused                    403 csrf                a console form without its session's token
    ├── NotFound                       404 not_found           no such function
    ├── RequestClosed                  409 request_closed      an access request already decided
    ├── TooLarge                       413 too_large           a request body over the limit
    ├── BadParameters(name)            422 bad_parameters      a parameter is missing, unknown or invalid
    ├── LimitExceeded                  429 limit_exceeded      over a limit
    ├── ClientGone                     499 client_closed       the caller went away; the query was cancelled
    ├── UpstreamError(sqlstate)        502 upstream_error      PostgreSQL refused the query
    ├── UpstreamRefused(status, code)  502 upstream_refused    the gateway's answer, relayed by `mcp`
    ├── ScimError(status, detail)      400 scim_error          a SCIM request refused, in SCIM's format
    ├── Unavailable                    503 unavailable         the database cannot be reached in time
    │   └── AuditUnavailable           503 audit_unavailable   the audit store cannot record the call
    └── StatementTimeout               504 statement_timeout   the query ran past statement_timeout

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


class LineageError(QuerygateError):
    """The SQL cannot be analysed; the message names the problem."""

    code = "lineage_error"


class CheckpointError(QuerygateError):
    """A key or checkpoint file cannot be used; the message says which and what to do."""

    code = "checkpoint_error"


class ArchiveError(QuerygateError):
    """An audit archive that cannot be trusted (edited, damaged, unanchored) or cannot be read."""

    code = "archive_invalid"


class IdentityError(QuerygateError):
    """A change to the directory that cannot be made (an unknown person, a duplicate)."""

    status = 400
    code = "identity_error"


class EventError(QuerygateError, ValueError):
    """A line of backtest input that is not an event; the message says which field."""

    status = 400
    code = "bad_event"


class LogFormatError(QuerygateError, ValueError):
    """The log is not one this reader knows, or lacks what it needs (a role per line)."""

    status = 400
    code = "bad_log_format"


class CsrfRefused(QuerygateError):
    """A console form posted without the token of the session it claims."""

    status = 403
    code = "csrf"


class RequestClosed(QuerygateError):
    """The request was already decided, cancelled or has lapsed."""

    status = 409
    code = "request_closed"


class TooLarge(QuerygateError):
    """A request body larger than ``max_request_bytes``."""

    status = 413
    code = "too_large"


class UpstreamRefused(QuerygateError):
    """(``querygate mcp``) The gateway answered with an HTTP error: its status, code and message,
    as it sent them."""

    status = 502
    code = "upstream_refused"

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(QuerygateError):
    """An error in SCIM's own format (RFC 7644 §3.12); the status is the instance's."""

    status = 400
    code = "scim_error"

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.scim_type = scim_type

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"schemas": [SCIM_ERROR_SCHEMA], "status": str(self.status),
                                   "detail": self.message}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


__all__ = [
    "SCIM_ERROR_SCHEMA",
    "ArchiveError",
    "AuditUnavailable",
    "BadParameters",
    "CheckpointError",
    "ClientGone",
    "CsrfRefused",
    "EventError",
    "IdentityError",
    "LimitExceeded",
    "LineageError",
    "LogFormatError",
    "NotAuthenticated",
    "NotFound",
    "PolicyDenied",
    "ProjectError",
    "QuerygateError",
    "RequestClosed",
    "ScimError",
    "StatementTimeout",
    "TooLarge",
    "Unavailable",
    "UpstreamError",
    "UpstreamRefused",
]
