"""One error tree: every error class lives in ``querygate.errors``, has its own code and an
HTTP status, and has its row in the error table of docs/contracts.md."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import querygate
from querygate import errors
from querygate.errors import QuerygateError

TABLE = Path(__file__).parents[2] / "docs" / "contracts.md"
ROW = re.compile(r"^\| (\d{3}) \| `([a-z_]+)` \| `([A-Za-z]+)` \|", re.M)


def _every_error() -> list[type[QuerygateError]]:
    """Every subclass, after importing every module of the package (a class defined anywhere
    in it is found)."""
    for info in pkgutil.walk_packages(querygate.__path__, "querygate."):
        if info.name != "querygate.__main__":
            importlib.import_module(info.name)
    found: list[type[QuerygateError]] = [QuerygateError]
    for cls in found:
        found.extend(cls.__subclasses__())
    return found


def test_every_error_class_is_defined_in_errors_and_drawn_in_its_tree() -> None:
    drawing = errors.__doc__ or ""
    for cls in _every_error():
        assert cls.__module__ == "querygate.errors", f"{cls.__qualname__} is in {cls.__module__}"
        assert re.search(rf"\b{cls.__name__}\b.*\b{cls.status} {cls.code}\b", drawing), cls


def test_codes_are_unique_and_statuses_are_http_errors() -> None:
    every = _every_error()
    codes = [cls.code for cls in every]
    assert len(set(codes)) == len(codes), sorted(c for c in codes if codes.count(c) > 1)
    for cls in every:
        assert isinstance(cls.status, int) and 400 <= cls.status < 600, cls


def test_every_error_has_its_row_in_the_docs_table() -> None:
    rows = {cls: (int(status), code) for status, code, cls in ROW.findall(TABLE.read_text())}
    for cls in _every_error():
        assert rows.get(cls.__name__) == (cls.status, cls.code), (
            f"{cls.__name__}: add `| {cls.status} | `{cls.code}` | `{cls.__name__}` | … |` to "
            "the error table in docs/contracts.md")
    assert set(rows) == {cls.__name__ for cls in _every_error()}, "a row for no class"


def test_public_errors_are_on_the_package() -> None:
    for name in ("QuerygateError", "PolicyDenied", "NotAuthenticated", "AuditUnavailable"):
        assert getattr(querygate, name) is getattr(errors, name)
