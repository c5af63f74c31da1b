"""querygate-client: call a querygate gateway's functions from Python, as yourself.

::

    from querygate_client import Client
    with Client("http://127.0.0.1:8080", token=TOKEN) as qg:
        r = qg.call("get_customer_by_id", customer_id=42, reason="TICKET-1")
        r.columns, r.rows, r.fields, r.audit_id, r.records()

Every error is a ``QuerygateError`` carrying the gateway's ``code`` and ``message``.
"""

from querygate_client._async import AsyncClient, AsyncExport
from querygate_client._base import __version__
from querygate_client._client import Client, Export
from querygate_client._errors import (
    AuditUnavailable,
    BadParameters,
    ConnectionFailed,
    NotAuthenticated,
    NotFound,
    OverLimit,
    QuerygateError,
    Refused,
    Timeout,
    TooLarge,
    Unavailable,
    UpstreamError,
)
from querygate_client._models import Function, Parameter, Receipt, Result

__all__ = [
    "AsyncClient",
    "AsyncExport",
    "AuditUnavailable",
    "BadParameters",
    "Client",
    "ConnectionFailed",
    "Export",
    "Function",
    "NotAuthenticated",
    "NotFound",
    "OverLimit",
    "Parameter",
    "QuerygateError",
    "Receipt",
    "Refused",
    "Result",
    "Timeout",
    "TooLarge",
    "Unavailable",
    "UpstreamError",
    "__version__",
]
