"""The public surface, pinned: each package's ``__all__`` is exactly the names it exposes.

A name added to a package without a place in ``__all__`` fails here, and so does a name in
``__all__`` that is gone; private modules (``_name``) stay out of reach by the layering check
in ``./run lint``.
"""

from __future__ import annotations
import __future__

import importlib
import pkgutil
from types import ModuleType

import pytest

import querygate


def _packages() -> list[str]:
    found = ["querygate"]
    for info in pkgutil.walk_packages(querygate.__path__, "querygate."):
        if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(found)


def _public(module: ModuleType) -> set[str]:
    """What ``from package import *`` would find without ``__all__``: names that do not start
    with an underscore, other than submodules and ``from __future__`` features."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, ModuleType | __future__._Feature):
            continue
        names.add(name)
    return names


def test_every_package_is_covered() -> None:
    assert {"querygate.gateway", "querygate.api", "querygate.audit", "querygate.pgwire"} <= set(
        _packages())


@pytest.mark.parametrize("name", _packages())
def test_all_is_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    promised = set(module.__all__)
    assert len(promised) == len(module.__all__), f"{name}.__all__ repeats a name"
    lazy = set(getattr(module, "_LAZY", {}))  # querygate's heavy names load on first use
    assert promised - {"__version__"} == _public(module) | lazy
    for attribute in module.__all__:
        assert getattr(module, attribute) is not None, f"{name}.{attribute}"


def test_the_in_process_api_is_on_the_package() -> None:
    from querygate.gateway import InProcess, open_gateway

    assert querygate.open is open_gateway
    assert querygate.InProcess is InProcess
