"""The audit event and its canonical encoding: the bytes that are hashed.

The encoding is JSON with sorted keys, no insignificant white space, UTF-8,
and only strings, integers, booleans, null, lists and objects: no floats (a
duration is whole microseconds) and no ``jsonb::text``. The same event always
encodes to the same bytes; any change of any field changes them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

ENCODING_VERSION = 2  # 2: policy_version joined the hashed content
GENESIS = bytes(32)


@dataclass(frozen=True)
class AuditEvent:
    """One call through the gateway: allowed, denied, or failed."""

    occurred_at: dt.datetime
    function_name: str
    decision: str  # allowed | denied | error
    actor_id: str | None = None
    actor_email: str | None = None
    actor_roles: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None
    error_code: str | None = None
    rows_returned: int = 0
    fields: Mapping[str, str] = field(default_factory=dict)
    subjects: tuple[tuple[str, str], ...] = ()
    client_addr: str | None = None
    duration_us: int = 0
    context: Mapping[str, str] = field(default_factory=dict)  # on_behalf_of, access request, …
    policy_version: str | None = None  # the catalog and policy that decided (audit.policy_version)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def content(self) -> dict[str, Any]:
        """Every field that the hash covers, as plain JSON values."""
        return {
            "v": ENCODING_VERSION,
            "event_id": str(self.event_id),
            "occurred_at": timestamp(self.occurred_at),
            "actor_id": self.actor_id,
            "actor_email": self.actor_email,
            "actor_roles": list(self.actor_roles),
            "function_name": self.function_name,
            "parameters": dict(self.parameters),
            "decision": self.decision,
            "reason": self.reason,
            "error_code": self.error_code,
            "rows_returned": self.rows_returned,
            "fields": dict(self.fields),
            "subjects": [{"type": t, "id": i} for t, i in self.subjects],
            "client_addr": self.client_addr,
            "duration_us": self.duration_us,
            "context": dict(self.context),
            "policy_version": self.policy_version,
        }

    def content_hash(self) -> bytes:
        return hashlib.sha256(canonical(self.content())).digest()


def timestamp(moment: dt.datetime) -> str:
    """UTC, microseconds, ``Z``: exactly what timestamptz keeps."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check(value: object) -> None:
    """Only strings, integers, booleans, null, lists and string-keyed objects: no floats."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is dict:
            for key, inner in item.items():  # type: ignore[attr-defined]
                if type(key) is not str:
                    raise TypeError("object keys must be strings")
                scalar = type(inner)
                if not (scalar is str or scalar is int or scalar is bool or inner is None):
                    stack.append(inner)  # plain scalars pass here; anything else is checked
        elif kind is list:
            stack.extend(item)  # type: ignore[arg-type]
        elif isinstance(item, float):
            raise TypeError("floats are not allowed in a hashed audit event")
        elif isinstance(item, str | int) and not isinstance(item, bool | float):
            continue  # subclasses of str and int encode as their base type
        else:
            raise TypeError(f"{kind.__name__} is not allowed in a hashed audit event")


def canonical(content: Mapping[str, Any]) -> bytes:
    """The canonical bytes of an event's content.

    orjson with sorted keys gives exactly the bytes of ``json.dumps(sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` in UTF-8 (a property test holds the two
    together); integers past 64 bits, which orjson refuses, go through the standard library.
    """
    _check(dict(content))
    return encode(content)


DOCUMENTS = ("parameters", "fields", "subjects", "context")  # kept as json, as hashed


def canonical_parts(content: Mapping[str, Any]) -> tuple[bytes, dict[str, bytes]]:
    """``canonical(content)`` and the canonical bytes of each of its four documents, every
    document encoded once (the store keeps them as they were hashed)."""
    _check(dict(content))
    documents = {name: encode(content[name]) for name in DOCUMENTS}
    whole = {**content, **{name: orjson.Fragment(data) for name, data in documents.items()}}
    try:
        return orjson.dumps(whole, option=orjson.OPT_SORT_KEYS), documents
    except TypeError:  # an integer past 64 bits outside the documents
        return _reference(content), documents


def encode(value: object) -> bytes:
    """Canonical bytes of any JSON value (sorted keys, compact, UTF-8), unchecked."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return _reference(value)


def _reference(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def link(prev_hash: bytes, seq: int, content_hash: bytes) -> bytes:
    """The chain: each hash covers the previous one, the sequence number and the content."""
    return hashlib.sha256(prev_hash + seq.to_bytes(8, "big", signed=True) + content_hash).digest()
