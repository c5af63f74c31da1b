"""Masks applied to result values in Python, after the query and before the response."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Callable

FULL = "****"


def _text(value: object) -> str:
    if type(value) is str:
        return value
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    return str(value)


def mask_full(value: object, key: bytes) -> object:
    return None if value is None else FULL


def mask_last4(value: object, key: bytes) -> object:
    if value is None:
        return None
    text = value if type(value) is str else _text(value)
    return FULL + text[-4:] if len(text) > 4 else FULL


def mask_email(value: object, key: bytes) -> object:
    if value is None:
        return None
    text = value if type(value) is str else _text(value)
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return FULL
    return f"{local[0]}***@{domain}"


def mask_year(value: object, key: bytes) -> object:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.year
    text = _text(value)
    year = text[:4]
    return int(year) if len(text) >= 4 and year.isdigit() else FULL


def mask_hash(value: object, key: bytes) -> object:
    """A keyed HMAC: the same value always masks the same, so masked values still join."""
    if value is None:
        return None
    digest = hmac.new(key, _text(value).encode("utf-8"), hashlib.sha256).digest()
    return "h:" + base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def mask_null(value: object, key: bytes) -> object:
    return None


MASKS: dict[str, Callable[[object, bytes], object]] = {
    "mask.full": mask_full,
    "mask.last4": mask_last4,
    "mask.email": mask_email,
    "mask.year": mask_year,
    "mask.hash": mask_hash,
    "mask.null": mask_null,
}
