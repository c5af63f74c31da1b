"""SCIM 2.0 (RFC 7643/7644) as identity providers send it: resources, filters, PATCH values.

Only what Okta and Entra ID use is understood: ``attr eq "value"`` filters,
``add``/``replace``/``remove`` operations with or without a path, and Entra's
string booleans (``"False"``). Anything else is a 400 ``invalidFilter`` or
``invalidValue``, never a guess.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from querygate.errors import ScimError

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_FILTER = re.compile(r'\s*([A-Za-z][\w.:]*)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*', re.IGNORECASE)
_MEMBER_PATH = re.compile(r'\s*members\s*\[\s*value\s+eq\s+"((?:[^"\\]|\\.)*)"\s*\]\s*',
                          re.IGNORECASE)




def parse_filter(text: str | None, allowed: Mapping[str, str]) -> tuple[str, str] | None:
    """``userName eq "x"`` as (column, value); ``allowed`` maps SCIM attributes to columns."""
    if not text:
        return None
    match = _FILTER.fullmatch(text)
    attribute = match.group(1).lower() if match else None
    columns = {k.lower(): v for k, v in allowed.items()}
    if match is None or attribute not in columns:
        forms = ", ".join(f'{a} eq "…"' for a in allowed)
        raise ScimError(400, f"unsupported filter; use one of: {forms}", "invalidFilter")
    return columns[attribute], re.sub(r"\\(.)", r"\1", match.group(2))


def member_path(path: str) -> str | None:
    """The user id in Okta's ``members[value eq "usr_…"]`` path."""
    match = _MEMBER_PATH.fullmatch(path)
    return re.sub(r"\\(.)", r"\1", match.group(1)) if match else None


def boolean(value: object) -> bool:
    """SCIM booleans, including Entra ID's ``"True"``/``"False"`` strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ScimError(400, "active must be a boolean", "invalidValue")


def operations(body: Mapping[str, Any]) -> list[tuple[str, str | None, Any]]:
    """A PatchOp's operations as (op, path, value); ``op`` lower-cased."""
    ops = body.get("Operations")
    if not isinstance(ops, list) or not ops:
        raise ScimError(400, "a PATCH needs an Operations list", "invalidSyntax")
    found = []
    for op in ops:
        name = str(op.get("op", "")).lower() if isinstance(op, dict) else ""
        if name not in ("add", "replace", "remove"):
            raise ScimError(400, "each operation's op must be add, replace or remove",
                            "invalidSyntax")
        path = op.get("path")
        if path is not None and not isinstance(path, str):
            raise ScimError(400, "path must be a string", "invalidPath")
        found.append((name, path, op.get("value")))
    return found


def flatten(path: str | None, value: Any) -> list[tuple[str, Any]]:
    """Okta's path-less ``{"value": {"active": false}}`` as (path, value) pairs."""
    if path:
        return [(path, value)]
    if not isinstance(value, Mapping):
        raise ScimError(400, "an operation without a path needs an object value", "invalidValue")
    pairs: list[tuple[str, Any]] = []
    for key, item in value.items():
        if key == "name" and isinstance(item, Mapping):
            pairs += [(f"name.{k}", v) for k, v in item.items()]
        else:
            pairs.append((str(key), item))
    return pairs


def email_of(body: Mapping[str, Any]) -> str:
    """The directory's key for a SCIM user: userName when it is an email, else the primary email."""
    name = body.get("userName")
    if isinstance(name, str) and "@" in name:
        return name.strip().lower()
    found = body.get("emails")
    emails: list[Any] = found if isinstance(found, list) else []
    primary = [e for e in emails if isinstance(e, dict) and e.get("primary")] or emails
    value = primary[0].get("value") if primary and isinstance(primary[0], dict) else None
    if not isinstance(value, str) or "@" not in value or len(value) > 254:
        raise ScimError(400, "userName (or a primary email) must be an email address",
                        "invalidValue")
    return value.strip().lower()


def display_name(body: Mapping[str, Any]) -> str | None:
    name = body.get("displayName")
    found = body.get("name")
    parts: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    if not isinstance(name, str):
        name = parts.get("formatted") or " ".join(
            p for p in (parts.get("givenName"), parts.get("familyName")) if isinstance(p, str))
    return str(name)[:200] if name else None


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_resource(row: Mapping[str, Any], base: str) -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA], "id": row["id"], "externalId": row["external_id"],
        "userName": row["email"], "displayName": row["display_name"],
        "name": {"formatted": row["display_name"]} if row["display_name"] else {},
        "emails": [{"value": row["email"], "primary": True, "type": "work"}],
        "active": row["status"] == "active",
        "groups": [{"value": g, "display": n} for g, n in row["groups"] or []],
        "meta": {"resourceType": "User", "created": stamp(row["created_at"]),
                 "lastModified": stamp(row["updated_at"]), "location": f"{base}/Users/{row['id']}"},
    }


def group_resource(row: Mapping[str, Any], base: str, *, members: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": [GROUP_SCHEMA], "id": row["id"], "externalId": row["external_id"],
        "displayName": row["display_name"],
        "meta": {"resourceType": "Group", "created": stamp(row["created_at"]),
                 "lastModified": stamp(row["updated_at"]), "location": f"{base}/Groups/{row['id']}"},
    }
    if members:
        body["members"] = [{"value": m, "display": e} for m, e in row["members"] or []]
    return body


def list_response(resources: list[dict[str, Any]], total: int, start: int) -> dict[str, Any]:
    return {"schemas": [LIST_SCHEMA], "totalResults": total, "startIndex": start,
            "itemsPerPage": len(resources), "Resources": resources}
