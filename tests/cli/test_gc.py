"""The serving processes' cycle collector: run in a child process, since it is process-wide."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import gc, json, weakref
from querygate.cli._gc import YOUNG_THRESHOLD, tune_for_serving

before = gc.get_threshold()
tune_for_serving()
after = gc.get_threshold()
frozen = gc.get_freeze_count()

class Node:
    pass

collected = []
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle: reference counting alone never frees it
weakref.finalize(a, collected.append, "a")
del a, b
early = list(collected)
keep = [[i] for i in range(YOUNG_THRESHOLD * 2)]  # enough new containers for a young collection
print(json.dumps({"before": before, "after": after, "frozen": frozen, "early": early,
                  "collected": collected}))
"""


def test_serving_collects_cycles_less_often_and_still_frees_them() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         check=True, timeout=60)
    seen = json.loads(out.stdout)
    assert seen["before"][0] == 700  # CPython's default, which the server raises
    assert seen["after"] == [50_000, *seen["before"][1:]]
    assert seen["frozen"] > 10_000  # what importing querygate made is left out of collections
    assert seen["early"] == []  # a cycle waits for the next young collection ...
    assert seen["collected"] == ["a"]  # ... and is freed by it
