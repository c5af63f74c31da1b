"""querygate's errors as PostgreSQL SQLSTATEs, so drivers raise their usual exception classes.

The message is querygate's own (``QuerygateError.message``), never a PostgreSQL message.
"""

from __future__ import annotations

from querygate.errors import (
    AuditUnavailable,
    BadParameters,
    ClientGone,
    LimitExceeded,
    NotAuthenticated,
    NotFound,
    PolicyDenied,
    QuerygateError,
    StatementTimeout,
    Unavailable,
    UpstreamError,
)

INVALID_PASSWORD = "28P01"  # noqa: S105 - a SQLSTATE, not a password
INSUFFICIENT_PRIVILEGE = "42501"
INVALID_PARAMETER = "22023"
UNDEFINED_FUNCTION = "42883"
UNDEFINED_COLUMN = "42703"
SYNTAX_ERROR = "42601"
PROGRAM_LIMIT = "54000"
TOO_MANY_CONNECTIONS = "53300"
CONFIGURATION_LIMIT = "53400"
QUERY_CANCELED = "57014"
CANNOT_CONNECT_NOW = "57P03"
PROTOCOL_VIOLATION = "08P01"
FEATURE_NOT_SUPPORTED = "0A000"
UNDEFINED_OBJECT = "42704"
INVALID_STATEMENT_NAME = "26000"
INVALID_CURSOR_NAME = "34000"
IN_FAILED_TRANSACTION = "25P02"
IDLE_TIMEOUT = "57P05"
INTERNAL = "XX000"

SQLSTATES: dict[type[QuerygateError], str] = {
    NotAuthenticated: INVALID_PASSWORD,
    PolicyDenied: INSUFFICIENT_PRIVILEGE,
    NotFound: UNDEFINED_FUNCTION,
    BadParameters: INVALID_PARAMETER,
    LimitExceeded: CONFIGURATION_LIMIT,
    StatementTimeout: QUERY_CANCELED,
    ClientGone: QUERY_CANCELED,
    AuditUnavailable: CANNOT_CONNECT_NOW,
    Unavailable: CANNOT_CONNECT_NOW,
}


def sqlstate_of(exc: QuerygateError) -> str:
    """The SQLSTATE a driver sees for ``exc``: the nearest class in the table."""
    for kind in type(exc).__mro__:
        if kind in SQLSTATES:
            return SQLSTATES[kind]
    if isinstance(exc, UpstreamError) and exc.sqlstate and exc.sqlstate[:2] not in ("00", "01"):
        return exc.sqlstate
    return INTERNAL


class WireError(Exception):
    """An error this front door raises itself, with its SQLSTATE and querygate's text."""

    def __init__(self, sqlstate: str, message: str, *, hint: str | None = None,
                 fatal: bool = False) -> None:
        super().__init__(message)
        self.sqlstate, self.message, self.hint, self.fatal = sqlstate, message, hint, fatal


def from_querygate(exc: QuerygateError) -> WireError:
    fatal = isinstance(exc, NotAuthenticated)  # a revoked session ends with its statement
    hint = None
    if isinstance(exc, PolicyDenied):
        hint = "SELECT * FROM querygate.functions lists what you may call"
    return WireError(sqlstate_of(exc), exc.message, hint=hint, fatal=fatal)
