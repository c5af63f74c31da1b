"""Modules found by name inside a package: how the API and the CLI gather their parts.

A module ``querygate/api/_routes_scim.py`` exposing ``routes(gateway)`` adds its
routes; a module ``querygate/cli/_cmd_detect.py`` exposing ``COMMANDS`` adds its
commands. Nothing else has to be edited to add one.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def modules(package: str, prefix: str) -> list[ModuleType]:
    """The modules of ``package`` whose names start with ``prefix``, in name order."""
    parent = importlib.import_module(package)
    names = sorted(m.name for m in pkgutil.iter_modules(parent.__path__) if m.name.startswith(prefix))
    return [importlib.import_module(f"{package}.{name}") for name in names]
