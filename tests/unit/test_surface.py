"""The public surface: everything the packages promise in ``__all__`` is there."""

from __future__ import annotations

import importlib

import pytest

import querygate

PACKAGES = ["querygate", "querygate.catalog", "querygate.policy", "querygate.identity",
            "querygate.execute", "querygate.audit", "querygate.api", "querygate.lineage",
            "querygate.demo"]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_promised_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, name
    for attribute in module.__all__:
        assert getattr(module, attribute) is not None, f"{name}.{attribute}"


def test_errors_are_one_tree_with_statuses() -> None:
    errors = [getattr(querygate, n) for n in querygate.__all__ if n.endswith(
        ("Error", "Denied", "Unavailable", "Timeout", "Exceeded", "Found", "Authenticated",
         "Parameters", "Gone"))]
    assert len(errors) >= 10
    for error in errors:
        assert issubclass(error, querygate.QuerygateError)
        assert 400 <= error.status < 600
