"""One way every benchmark builds its command line: its docstring is its --help."""

from __future__ import annotations

import argparse
from importlib.machinery import ModuleSpec


def arguments(doc: str | None, spec: ModuleSpec | None) -> argparse.ArgumentParser:
    """A parser whose help is the module's docstring, named as it is run
    (``python -m bench.area.name``); pass ``__doc__, __spec__``."""
    name = spec.name if spec is not None else "bench"
    return argparse.ArgumentParser(prog=f"python -m {name}", description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
