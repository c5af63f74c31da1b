"""Ad-hoc SQL under the same rules as named functions, with every value masked at its source.

The promise: what a caller may not see cannot change anything they observe. An ad-hoc
statement is checked and planned by the gateway (``querygate.gateway``); this package holds
what it runs on: the allowlist of functions, the masked sources in ``querygate_masked``, the
rewrite of every table onto them, and the run as a role that can read nothing else, in a
transaction that leaves the connection as it found it.
"""

from querygate.adhoc._allow import FUNCTIONS, Allowlist, allowlist
from querygate.adhoc._masked import (
    ADHOC_ROLE,
    MASKED_SCHEMA,
    MaskedSources,
    MaskedView,
    NotPrepared,
    masked_views,
    readable_tables,
    sync,
)
from querygate.adhoc._rewrite import Matches, TableRef, needs_tree, rewrite, spliced, table_refs
from querygate.adhoc._session import run_adhoc

__all__ = [
    "ADHOC_ROLE",
    "FUNCTIONS",
    "MASKED_SCHEMA",
    "Allowlist",
    "MaskedSources",
    "MaskedView",
    "Matches",
    "NotPrepared",
    "TableRef",
    "allowlist",
    "masked_views",
    "needs_tree",
    "readable_tables",
    "rewrite",
    "run_adhoc",
    "spliced",
    "sync",
    "table_refs",
]
