"""The cycle collector's settings for a long-running server process (the gateway, the
detector)."""

from __future__ import annotations

import gc

# Container allocations between two young collections (CPython's default is 700). A call
# allocates thousands of short-lived tuples, lists and dicts; at 700 the collector ran several
# times per call and traversed a page's or an export chunk's rows while they were still in use,
# and again when they had moved to the older generations (docs/performance.md).
YOUNG_THRESHOLD = 50_000


def tune_for_serving() -> None:
    """Collect once; freeze what loading made (modules, the catalog, the lineage, which live as
    long as the process, so no later collection traverses them again); then look for garbage
    cycles less often. Reference counting still frees every object the moment it is unused:
    only the search for unreachable cycles runs less often, so memory grows by at most what
    one young generation holds."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
