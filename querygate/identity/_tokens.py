"""API tokens: high-entropy secrets with a recognisable prefix, stored only as SHA-256."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "qg_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def looks_like_token(token: str) -> bool:
    return token.startswith(PREFIX) and 20 <= len(token) <= 100


def new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(8)}"
