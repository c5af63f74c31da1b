"""What ad-hoc SQL may call: PostgreSQL's own functions that only compute, and nothing else.

The list is of names in ``pg_catalog``. Ad-hoc statements run with ``search_path`` set to
``pg_catalog`` alone, so an unqualified name resolves exactly as it is checked here; a name
qualified with any other schema is refused unless the project lists it
(``adhoc_functions:``). At start the gateway asks PostgreSQL for every listed name's overloads
and keeps only names whose every overload is immutable or stable and not a set-returning
function of another kind than the ones listed (``Allowlist.verified``).

Left out on purpose: anything that sleeps (``pg_sleep*``), runs SQL given as text
(``query_to_xml``, ``ts_stat``, ``ts_rewrite``, ``cursor_to_xml``…), reads files or the
server's state (``pg_read_file``, ``pg_ls_dir``, ``current_setting``, ``pg_stat_*``),
changes the session or the database (``set_config``, ``nextval``, ``lo_*``,
``pg_advisory*``, ``pg_notify``), talks to other servers (``dblink``), or is volatile
(``random``, ``gen_random_uuid``, ``clock_timestamp``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from querygate.errors import BadParameters, PolicyDenied

_NAMES = (
    "lower upper initcap length char_length character_length octet_length bit_length substr",
    "substring left right lpad rpad trim btrim ltrim rtrim replace reverse repeat split_part",
    "strpos position concat concat_ws format md5 sha224 sha256 sha384 sha512 encode decode to_hex",
    "ascii chr translate regexp_replace regexp_match regexp_matches regexp_split_to_array",
    "regexp_split_to_table regexp_like regexp_count regexp_substr regexp_instr starts_with",
    "quote_ident quote_literal quote_nullable string_to_array string_to_table array_to_string",
    "to_char to_number to_date to_timestamp overlay normalize unistr abs ceil ceiling floor round",
    "trunc sign sqrt cbrt exp ln log log10 power pow mod div pi degrees radians sin cos tan asin",
    "acos atan atan2 sinh cosh tanh width_bucket gcd lcm factorial scale min_scale trim_scale",
    "numeric_inc greatest least coalesce nullif num_nulls num_nonnulls now current_date",
    "current_time current_timestamp localtime localtimestamp transaction_timestamp",
    "statement_timestamp date_trunc date_part extract age make_date make_time make_timestamp",
    "make_timestamptz make_interval justify_days justify_hours justify_interval date_bin isfinite",
    "timezone count sum avg min max string_agg array_agg bool_and bool_or every stddev stddev_pop",
    "stddev_samp variance var_pop var_samp percentile_cont percentile_disc mode json_agg",
    "jsonb_agg json_object_agg jsonb_object_agg bit_and bit_or bit_xor corr covar_pop covar_samp",
    "regr_slope regr_intercept regr_count regr_r2 regr_avgx regr_avgy regr_sxx regr_syy regr_sxy",
    "any_value row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value",
    "last_value nth_value to_json to_jsonb row_to_json array_to_json json_build_object",
    "jsonb_build_object json_build_array jsonb_build_array json_object jsonb_object",
    "json_array_length jsonb_array_length json_extract_path json_extract_path_text",
    "jsonb_extract_path jsonb_extract_path_text json_typeof jsonb_typeof jsonb_pretty jsonb_set",
    "jsonb_insert jsonb_strip_nulls json_strip_nulls json_each json_each_text jsonb_each",
    "jsonb_each_text json_array_elements json_array_elements_text jsonb_array_elements",
    "jsonb_array_elements_text json_object_keys jsonb_object_keys jsonb_path_query",
    "jsonb_path_query_array jsonb_path_query_first jsonb_path_exists jsonb_path_match",
    "array_length cardinality unnest array_position array_positions array_remove array_replace",
    "array_append array_prepend array_cat array_upper array_lower array_ndims array_dims",
    "generate_series generate_subscripts array_fill trim_array",
)
FUNCTIONS = frozenset(n for line in _NAMES for n in line.split())

# Typed syntax sqlglot parses without a function name PostgreSQL would show: always allowed.
_STRUCTURAL: tuple[type[exp.Expr], ...] = (
    exp.Cast, exp.Case, exp.If, exp.Array, exp.Extract, exp.Coalesce, exp.Nullif,
    exp.CurrentDate, exp.CurrentTimestamp, exp.CurrentTime, exp.Localtimestamp, exp.Exists,
    exp.Greatest, exp.Least, exp.Unnest, exp.Explode, exp.Any, exp.All,
)


@functools.cache
def _typed(names: frozenset[str]) -> frozenset[type[exp.Expr]]:
    """The sqlglot classes the allowed names parse into (``upper(x)`` is ``exp.Upper``)."""
    found: set[type[exp.Expr]] = set(_STRUCTURAL)
    for name in names:
        for args in ("", "a", "a, b", "a, b, c", "a, b, c, d"):
            try:
                tree = sqlglot.parse_one(f"SELECT {name}({args})", read="postgres")
            except (SqlglotError, ValueError):
                continue
            found |= {type(n) for n in tree.find_all(exp.Func) if not isinstance(n, exp.Anonymous)}
    return frozenset(found)


@dataclass(frozen=True)
class Allowlist:
    """The functions ad-hoc SQL may call: ``names`` in pg_catalog, ``qualified`` elsewhere."""

    names: frozenset[str] = FUNCTIONS
    qualified: frozenset[str] = frozenset()  # "schema.name", from the project
    known: frozenset[str] | None = None  # every pg_catalog function name (None: not loaded)

    def warm(self) -> None:
        """Derive the typed classes now (a third of a second), not in the first caller's call."""
        _typed(FUNCTIONS)

    def check(self, statement: exp.Expr, where: str = "the statement") -> None:
        """Refuse ``statement`` if it calls anything not listed."""
        typed = _typed(FUNCTIONS)  # syntax (coalesce, trim, extract…) has no pg_proc name
        for node in statement.find_all(exp.Func):
            if isinstance(node, exp.Connector | exp.Binary | exp.Unary):
                continue  # operators (AND, OR, …): resolved in pg_catalog like everything else
            if isinstance(node, exp.Anonymous):
                self._check_named(node, where)
            elif type(node) not in typed:
                name = node.sql_name().lower()
                raise PolicyDenied("adhoc: function not allowed",
                                   f"{where} calls {name}, which is not on the ad-hoc allowlist")

    def _check_named(self, node: exp.Anonymous, where: str) -> None:
        this = node.this
        quoted = isinstance(this, exp.Identifier) and this.quoted
        name = str(this.this if isinstance(this, exp.Identifier) else this)
        name = name if quoted else name.lower()
        parent = node.parent
        schema = None
        if isinstance(parent, exp.Dot) and parent.expression is node:
            schema = parent.this.name if isinstance(parent.this, exp.Expr) else str(parent.this)
            schema = schema.lower() if not (isinstance(parent.this, exp.Identifier)
                                            and parent.this.quoted) else schema
        if schema in (None, "pg_catalog") and name in self.names:
            return
        if schema is not None and f"{schema}.{name}" in self.qualified:
            return
        if schema in (None, "pg_catalog") and self.known is not None and name not in self.known:
            raise BadParameters(f"no function named {name[:80]} in PostgreSQL", parameter="sql")
        shown = f"{schema}.{name}" if schema else name
        raise PolicyDenied("adhoc: function not allowed",
                           f"{where} calls {shown[:80]}, which is not on the ad-hoc allowlist "
                           "(functions that only compute; see adhoc_functions in querygate.yaml)")

    async def verified(self, conn: psycopg.AsyncConnection[Any]) -> tuple[Allowlist, list[str]]:
        """This list narrowed to what PostgreSQL says is immutable or stable, and why any
        name was dropped (a project-listed name that is missing or volatile is a problem)."""
        rows = await (await conn.execute(_VOLATILITY, {"names": sorted(self.names),
                                                       "qualified": sorted(self.qualified)})
                      ).fetchall()
        safe = {str(name) for name, ok in rows if ok}
        known = await (await conn.execute(
            "SELECT DISTINCT proname FROM pg_catalog.pg_proc "
            "WHERE pronamespace = 'pg_catalog'::regnamespace")).fetchall()
        dropped = [f"ad-hoc function {q} is missing or volatile in the database"
                   for q in sorted(self.qualified) if q not in safe]
        return Allowlist(frozenset(n for n in self.names if n in safe),
                         frozenset(q for q in self.qualified if q in safe),
                         frozenset(str(n) for (n,) in known)), dropped


_VOLATILITY = """
SELECT p.proname, bool_and(p.provolatile IN ('i', 's'))
FROM pg_catalog.pg_proc p
WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY(%(names)s)
GROUP BY p.proname
UNION ALL
SELECT n.nspname || '.' || p.proname, bool_and(p.provolatile IN ('i', 's'))
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname || '.' || p.proname = ANY(%(qualified)s)
GROUP BY 1
"""


def allowlist(extra: Iterable[str]) -> Allowlist:
    """The built-in list plus the project's ``adhoc_functions`` (``schema.name`` each)."""
    qualified = frozenset(e for e in extra if "." in e)
    names = FUNCTIONS | frozenset(e for e in extra if "." not in e)
    return Allowlist(names, qualified)
