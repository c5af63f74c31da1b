"""Policy: tags, roles and the decisions they give each output column.

Rule order, written once: several tags on a column → the most restrictive
decision; several roles granting a function → the most permissive; a tag a
role does not mention → ``mask.full``; nothing granted → deny.
"""

from querygate.policy._decisions import (
    DECISIONS,
    DEFAULT_UNMENTIONED,
    MASKS,
    ORDER,
    Verdict,
    may_filter,
    most_permissive,
    most_restrictive,
)
from querygate.policy._masks import MASKS as MASK_FUNCTIONS
from querygate.policy._masks import mask_hash
from querygate.policy._model import UNCLASSIFIED, Classification, Role, TableClass
from querygate.policy._plan import (
    ColumnPlan,
    ColumnSpec,
    Plan,
    classify_columns,
    column_verdict,
    plan,
)

__all__ = [
    "DECISIONS",
    "DEFAULT_UNMENTIONED",
    "MASKS",
    "MASK_FUNCTIONS",
    "ORDER",
    "UNCLASSIFIED",
    "Classification",
    "ColumnPlan",
    "ColumnSpec",
    "Plan",
    "Role",
    "TableClass",
    "Verdict",
    "classify_columns",
    "column_verdict",
    "mask_hash",
    "may_filter",
    "most_permissive",
    "most_restrictive",
    "plan",
]
