"""Ad-hoc SQL under the same rules as named functions, with every value masked at its source.

The promise: what a caller may not see cannot change anything they observe. An ad-hoc
statement is checked (one read-only query, allowlisted functions, the project's relations),
planned (lineage names each output column's treatment and the subjects), rewritten so every
table is read through its masked source, and run as a role that can read nothing else, in a
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
from querygate.adhoc._prepare import (
    ADHOC_FUNCTION,
    MAX_SQL_CHARS,
    AdhocSetting,
    AdhocStatement,
    adhoc_roles,
    prepare_adhoc,
)
from querygate.adhoc._session import run_adhoc

__all__ = [
    "ADHOC_FUNCTION",
    "ADHOC_ROLE",
    "FUNCTIONS",
    "MASKED_SCHEMA",
    "MAX_SQL_CHARS",
    "AdhocSetting",
    "AdhocStatement",
    "Allowlist",
    "MaskedSources",
    "MaskedView",
    "NotPrepared",
    "adhoc_roles",
    "allowlist",
    "masked_views",
    "prepare_adhoc",
    "readable_tables",
    "run_adhoc",
    "sync",
]
